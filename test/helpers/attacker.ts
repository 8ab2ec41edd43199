/**
 * An authenticated but hostile mux client for attack tests (issue 10): a TLS socket that does the
 * WebSocket upgrade with a valid token and then writes pre-built frames as fast as the bridge takes
 * them, reading nothing back until asked. Masked frames use the all-zero key, so payloads go out
 * as they are built (RFC 6455 §5.3 lets the client pick any key).
 */
import crypto from 'node:crypto';
import tls from 'node:tls';
import { encodeFrame } from '../../src/mux/codec.js';
import { FrameType, OpenCommand } from '../../src/mux/frame.js';
import { encodeCountFrame, ResumeFrameType } from '../../src/mux/resume.js';
import { makeToken } from '../../src/transport/auth.js';
import { parseShareUri } from '../../src/transport/uri.js';
import { drainOrClose } from './socks.js';

/** One binary WebSocket message from the client (masked, zero key). */
export function wsMessage(payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x82, 0x80 | n]) : n < 65_536 ? Buffer.from([0x82, 0x80 | 126, n >> 8, n & 0xff]) : Buffer.alloc(10);
  if (n >= 65_536) {
    head[0] = 0x82;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, Buffer.alloc(4), payload]);
}

export const pingFrame = (): Buffer => encodeFrame({ type: FrameType.PING, data: Buffer.alloc(8, 7) });

/** An OPEN with an unknown command: answered OPEN_RESULT 0x08 by the bridge without any connect. */
export function badOpenFrame(id: number): Buffer {
  return encodeFrame({ type: FrameType.OPEN, streamId: id, window: 65_536, cmd: 0x7f, target: { kind: 'ipv4', host: '127.0.0.1', port: 9 } });
}

export function openFrame(id: number, port: number): Buffer {
  return encodeFrame({ type: FrameType.OPEN, streamId: id, window: 512 * 1024, cmd: OpenCommand.CONNECT, target: { kind: 'ipv4', host: '127.0.0.1', port } });
}

export const resumeMessage = (received = 0): Buffer => wsMessage(encodeCountFrame(ResumeFrameType.RESUME, received));

export interface Attacker {
  readonly socket: tls.TLSSocket;
  /** Bytes the bridge sent after the 101 (only those read while reading was on). */
  received(): Buffer;
  /** Writes `chunk` again and again: at most `maxBytes` or `maxMs`; stops early when the bridge stops reading for `stallMs`. */
  flood(next: () => Buffer, maxBytes: number, maxMs: number, stallMs?: number): Promise<{ bytes: number; stalled: boolean }>;
  /** Reads again until nothing arrives for `quietMs` (at most `maxMs`); resolves with the bytes received in all. */
  readAll(quietMs?: number, maxMs?: number): Promise<number>;
  /** Reads again and resolves with the WebSocket close code and reason the bridge sent (or null if it just dropped us). */
  closeFrame(timeoutMs?: number): Promise<{ code: number; reason: string } | null>;
  destroy(): void;
}

/** Connects as the user of `uri` (a postern:// share link), upgrades, and stops reading. */
export async function attack(uri: string, opts: { sessionId?: string } = {}): Promise<Attacker> {
  const info = parseShareUri(uri);
  const socket = tls.connect({ host: info.host, port: info.port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  const token = makeToken(info.secret, info.path, Date.now(), undefined, opts.sessionId);
  socket.write(
    [
      `GET ${info.path} HTTP/1.1`,
      `Host: ${info.host}:${info.port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}`,
      'Sec-WebSocket-Version: 13',
      `Authorization: Bearer ${token}`,
      ...(opts.sessionId ? [`Postern-Session: ${opts.sessionId}`] : []),
      '',
      '',
    ].join('\r\n'),
  );
  let buf = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no upgrade answer')), 10_000);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(t);
      socket.off('data', onData);
      socket.pause();
      const head = buf.subarray(0, end).toString('latin1');
      if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
      buf = buf.subarray(end + 4);
      resolve();
    };
    socket.on('data', onData);
  });
  let rx = buf;
  const onRx = (d: Buffer): void => {
    rx = Buffer.concat([rx, d]);
  };
  return {
    socket,
    received: () => rx,
    async flood(next, maxBytes, maxMs, stallMs = 1_500) {
      const deadline = Date.now() + maxMs;
      let bytes = 0;
      while (bytes < maxBytes && Date.now() < deadline && !socket.destroyed) {
        const chunk = next();
        bytes += chunk.length;
        if (!socket.write(chunk)) {
          const drained = await drainOrClose(socket, Math.min(stallMs, Math.max(1, deadline - Date.now())));
          if (!drained) return { bytes, stalled: true };
        }
      }
      return { bytes, stalled: false };
    },
    async readAll(quietMs = 500, maxMs = 5_000) {
      socket.on('data', onRx);
      socket.resume();
      const deadline = Date.now() + maxMs;
      let last = -1;
      while (Date.now() < deadline && !socket.destroyed && rx.length !== last) {
        last = rx.length;
        await new Promise((r) => setTimeout(r, quietMs));
      }
      return rx.length;
    },
    async closeFrame(timeoutMs = 10_000) {
      socket.on('data', onRx);
      socket.resume();
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const c = findClose(rx);
        if (c !== undefined) return c;
        if (socket.destroyed || Date.now() > deadline) return findClose(rx) ?? null;
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    destroy: () => socket.destroy(),
  };
}

/** Walks server frames (unmasked) and returns the first close frame's code and reason. */
function findClose(b: Buffer): { code: number; reason: string } | undefined {
  let off = 0;
  while (off + 2 <= b.length) {
    const op = (b[off] as number) & 0x0f;
    let len = (b[off + 1] as number) & 0x7f;
    let at = off + 2;
    if (len === 126) {
      if (at + 2 > b.length) return undefined;
      len = b.readUInt16BE(at);
      at += 2;
    } else if (len === 127) {
      if (at + 8 > b.length) return undefined;
      len = Number(b.readBigUInt64BE(at));
      at += 8;
    }
    if (at + len > b.length) return undefined;
    if (op === 0x8) return { code: len >= 2 ? b.readUInt16BE(at) : 1005, reason: b.subarray(at + 2, at + len).toString('utf8') };
    off = at + len;
  }
  return undefined;
}

/** Samples a process's RSS every 100 ms; stop() returns the peak. */
export function rssSampler(pid: number, read: (pid: number) => number): { stop: () => number } {
  let peak = read(pid);
  const t = setInterval(() => {
    try {
      peak = Math.max(peak, read(pid));
    } catch {
      // the process is gone
    }
  }, 100);
  return {
    stop: () => {
      clearInterval(t);
      return peak;
    },
  };
}
