import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isBorrowedRead, observeReads } from '../../../src/core/borrowed-read.js';
import { connectTcp } from '../../../src/core/dial.js';
import { relay } from '../../../src/core/relay.js';
import type { MuxStream } from '../../../src/mux/stream.js';
import { sessionPair } from '../mux/helpers.js';

/** Byte j of the test stream: differs between any two reads, so a read overwritten by the next one shows. */
const patternByte = (j: number): number => (j * 131 + Math.floor(j / 65_536) * 29 + 7) & 0xff;

const servers: net.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A TCP server that sends `size` pattern bytes from `from` in writes of `chunk` bytes, then ends. */
async function patternServer(size: number, chunk: number, from = 0): Promise<number> {
  const srv = net.createServer((s) => {
    s.on('error', () => undefined);
    let at = 0;
    const pump = (): void => {
      while (at < size) {
        const n = Math.min(chunk, size - at);
        const b = Buffer.allocUnsafe(n);
        for (let i = 0; i < n; i++) b[i] = patternByte(from + at + i);
        at += n;
        if (!s.write(b)) return void s.once('drain', pump);
      }
      s.end();
    };
    pump();
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return (srv.address() as net.AddressInfo).port;
}

/** Reads `s` slowly (pausing `pauseMs` every `everyBytes`), so the sender keeps running out of credit. */
function readSlowly(s: MuxStream, everyBytes: number, pauseMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let sinceBreak = 0;
    s.on('data', (d: Buffer) => {
      parts.push(Buffer.from(d));
      sinceBreak += d.length;
      if (sinceBreak >= everyBytes) {
        sinceBreak = 0;
        s.pause();
        setTimeout(() => s.resume(), pauseMs);
      }
    });
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });
}

describe('borrowed reads (src/core/borrowed-read.ts)', () => {
  it.each([
    ['64 KiB writes', 65_536],
    ['odd-sized writes', 10_007],
  ])('borrowed-read sockets relayed into mux streams deliver every byte, in order, while credit keeps running out (%s)', async (_name, chunk) => {
    const size = 2 * 1024 * 1024;
    const streams = 3;
    // Each server's bytes start at its own offset in the pattern, so a stream that kept the shared
    // buffer past its read would carry another socket's bytes.
    const ports = await Promise.all(Array.from({ length: streams }, (_, k) => patternServer(size, chunk, k * 1_000_003)));
    // The smallest window: a stream stops for credit every 64 KiB, so reads wait in the stream
    // (copied, as writeBorrowed must) while the other sockets' reads fill the shared buffer.
    const p = sessionPair({ STREAM_WINDOW_BYTES: 64 * 1024 });
    let observed = 0;
    p.bridge.on('open', (inc) => {
      const stream = inc.accept();
      void connectTcp('127.0.0.1', inc.target.port, 5_000, new AbortController().signal, true).then((socket) => {
        expect(isBorrowedRead(socket)).toBe(true);
        expect(socket.isPaused()).toBe(true);
        observeReads(socket, (c) => (observed += c.length));
        relay(stream, socket);
      });
    });
    const got = await Promise.all(
      ports.map(async (port) => {
        const s = await p.client.open({ kind: 'ipv4', host: '127.0.0.1', port });
        s.end();
        return readSlowly(s, 128 * 1024, 3);
      }),
    );
    for (const [k, g] of got.entries()) {
      expect(g.length).toBe(size);
      let firstBad = -1;
      for (let j = 0; j < size && firstBad < 0; j++) if (g[j] !== patternByte(k * 1_000_003 + j)) firstBad = j;
      expect(firstBad, `stream ${k}: first wrong byte`).toBe(-1);
    }
    expect(observed).toBe(streams * size);
    p.client.close();
    p.bridge.close();
  });

  it('MuxStream.writeBorrowed keeps a copy of what waits, also behind a write already waiting', async () => {
    const p = sessionPair({ STREAM_WINDOW_BYTES: 64 * 1024 });
    const accepted = new Promise<MuxStream>((r) => p.bridge.once('open', (inc) => r(inc.accept())));
    const c = await p.client.open({ kind: 'ipv4', host: '127.0.0.1', port: 9 });
    const b = await accepted;
    const first = Buffer.alloc(100 * 1024, 1); // more than the window: part of it waits for credit
    const lent = Buffer.alloc(50 * 1024, 2);
    b.write(first);
    expect(b.writableLength).toBeGreaterThan(0);
    b.writeBorrowed(lent); // queued behind `first`
    lent.fill(3); // the lender reuses its buffer
    b.end();
    const got = new Promise<Buffer>((r) => {
      const parts: Buffer[] = [];
      c.on('data', (d: Buffer) => parts.push(Buffer.from(d))).once('end', () => r(Buffer.concat(parts)));
    });
    const all = await got;
    expect(all.length).toBe(150 * 1024);
    expect(all.subarray(0, 100 * 1024).every((x) => x === 1)).toBe(true);
    expect(all.subarray(100 * 1024).every((x) => x === 2)).toBe(true);
    p.client.close();
    p.bridge.close();
  });

  it('a plain socket is not borrowed-read', async () => {
    const port = await patternServer(10, 10);
    const socket = await connectTcp('127.0.0.1', port, 5_000, new AbortController().signal);
    expect(isBorrowedRead(socket)).toBe(false);
    socket.destroy();
  });
});
