/** Client side of one transfer over an already connected socket (TCP, TLS or SOCKS-tunnelled). */
import type net from 'node:net';
import { OP_DOWNLOAD, OP_UPLOAD, encodeRequest, patternChunk } from './wire.js';

const chunk = patternChunk();

export interface Transfer {
  bytes: number;
  ms: number;
  /** Decimal megabytes (10^6 bytes) per second. */
  mbps: number;
}

function finishTimer(start: bigint, bytes: number): Transfer {
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  return { bytes, ms, mbps: bytes / 1e6 / (ms / 1e3) };
}

/**
 * Asks the server for `size` bytes and counts them as they arrive. Timed from the request to the
 * last byte. The socket is destroyed afterwards.
 */
export function download(sock: net.Socket, size: number, timeoutMs: number): Promise<Transfer> {
  return new Promise((resolve, reject) => {
    let received = 0;
    let done = false;
    const start = process.hrtime.bigint();
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(finishTimer(start, received));
    };
    const timer = setTimeout(() => finish(new Error(`download: ${received}/${size} bytes after ${timeoutMs} ms`)), timeoutMs);
    sock.on('data', (d: Buffer) => {
      received += d.length;
      if (received >= size) finish();
    });
    sock.on('error', (e) => finish(e));
    sock.on('close', () => finish(received >= size ? undefined : new Error(`download: closed after ${received}/${size} bytes`)));
    sock.write(encodeRequest(OP_DOWNLOAD, size));
    sock.resume();
  });
}

/**
 * Sends `size` bytes (large writes, honouring write()'s return value) and waits for the server's
 * acknowledgement that all of them arrived. Timed from the request to the acknowledgement.
 */
export function upload(sock: net.Socket, size: number, timeoutMs: number): Promise<Transfer> {
  return new Promise((resolve, reject) => {
    let remaining = size;
    let done = false;
    const start = process.hrtime.bigint();
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(finishTimer(start, size));
    };
    const timer = setTimeout(() => finish(new Error(`upload: no acknowledgement after ${timeoutMs} ms (${size - remaining}/${size} sent)`)), timeoutMs);
    sock.on('data', () => finish());
    sock.on('error', (e) => finish(e));
    sock.on('close', () => finish(new Error(`upload: closed before the acknowledgement (${size - remaining}/${size} sent)`)));
    sock.resume();
    const pump = (): void => {
      while (remaining > 0 && !done) {
        const n = Math.min(remaining, chunk.length);
        remaining -= n;
        if (!sock.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          if (remaining > 0) sock.once('drain', pump);
          return;
        }
      }
    };
    sock.write(encodeRequest(OP_UPLOAD, size));
    pump();
  });
}
