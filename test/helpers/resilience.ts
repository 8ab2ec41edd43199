/** Shared pieces of the resilience tests (issue 3): bridge limits, echo transfers, RSS. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type net from 'node:net';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { FaultyRelay, type FaultyRelayOptions } from './faulty-relay.js';
import { stopAll } from './proc.js';
import { echoServer, type Local } from './servers.js';
import { drainOrClose, ipv4Request, socksConnect } from './socks.js';

/**
 * A test file's loopback echo server, up while its tests run, and the FaultyRelays they start,
 * closed after each test together with every daemon (stopAll). Call once, at the file's top level.
 */
export function relayFixture(): { readonly echoPort: number; relay(opts: FaultyRelayOptions): FaultyRelay } {
  let echo: Local<net.Server> | null = null;
  const relays: FaultyRelay[] = [];
  beforeAll(async () => {
    echo = await echoServer('127.0.0.1');
  });
  afterEach(async () => {
    await stopAll();
    await Promise.all(relays.splice(0).map((r) => r.close()));
  });
  afterAll(async () => {
    await echo?.close();
  });
  return {
    get echoPort(): number {
      if (echo === null) throw new Error('relayFixture: the echo server starts in beforeAll');
      return echo.port;
    },
    relay(opts: FaultyRelayOptions): FaultyRelay {
      const r = new FaultyRelay(opts);
      relays.push(r);
      return r;
    },
  };
}

/** Merges `limits` into a bridge config file written by `postern init`. */
export function setBridgeLimits(configFile: string, limits: Record<string, number>): void {
  const c = JSON.parse(fs.readFileSync(configFile, 'utf8')) as { limits?: Record<string, number> };
  c.limits = { ...(c.limits ?? {}), ...limits };
  fs.writeFileSync(configFile, JSON.stringify(c, null, 2));
}

/** Deterministic pseudo-random bytes (fast): a seeded xorshift over 32-bit words. */
export function seededBytes(n: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(n + 4);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out.subarray(0, n);
}

/** The budgets a client with XDG_STATE_HOME=`stateHome` remembers in walls.json (docs/protocol.md §9.8). */
export function storedBudgets(stateHome: string): number[] {
  const stored = JSON.parse(fs.readFileSync(path.join(stateHome, 'postern', 'walls.json'), 'utf8')) as { bridges: Record<string, { budgetBytes: number }> };
  return Object.values(stored.bridges).map((e) => e.budgetBytes);
}

export function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

/**
 * Sends `data` through SOCKS to an echo server and resolves with the SHA-256 of what came back
 * and how it ended ('end' clean, or the error). `onProgress` sees bytes received so far.
 */
export async function echoTransfer(
  socksPort: number,
  echoPort: number,
  data: Buffer,
  onProgress?: (received: number, socket: net.Socket) => void,
): Promise<{ hash: string; bytes: number; ended: 'end' | 'error' }> {
  const { socket, reply } = await socksConnect(socksPort, ipv4Request('127.0.0.1', echoPort));
  if (reply !== 0) throw new Error(`SOCKS reply ${reply}`);
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  const done = new Promise<'end' | 'error'>((resolve) => {
    socket.on('data', (d: Buffer) => {
      hash.update(d);
      bytes += d.length;
      onProgress?.(bytes, socket);
    });
    socket.on('end', () => resolve('end'));
    socket.on('error', () => resolve('error'));
  });
  socket.resume();
  const CHUNK = 64 * 1024;
  for (let off = 0; off < data.length && !socket.destroyed; off += CHUNK) {
    if (!socket.write(data.subarray(off, off + CHUNK))) {
      await drainOrClose(socket);
    }
  }
  if (!socket.destroyed) socket.end();
  const ended = await done;
  socket.destroy();
  return { hash: hash.digest('hex'), bytes, ended };
}

/**
 * Writes `bytes` (64 KiB chunks of one byte value, write() backpressure honoured) through one SOCKS
 * stream to an echo server while reading them back, so that both ways run at once; resolves with
 * the bytes read when all came back or the stream closed. No hashing: for load, not integrity.
 */
export async function echoBulk(socksPort: number, echoPort: number, bytes: number): Promise<number> {
  const { socket, reply } = await socksConnect(socksPort, ipv4Request('127.0.0.1', echoPort));
  if (reply !== 0) throw new Error(`SOCKS reply ${reply}`);
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  let sent = 0;
  const pump = (): void => {
    while (sent < bytes) {
      sent += chunk.length;
      if (!socket.write(chunk)) return void socket.once('drain', pump);
    }
  };
  const received = new Promise<number>((resolve, reject) => {
    let n = 0;
    socket.on('data', (d: Buffer) => {
      n += d.length;
      if (n >= bytes) resolve(n);
    });
    socket.once('error', reject);
    socket.once('close', () => resolve(n));
    socket.resume();
  });
  pump();
  const n = await received;
  socket.destroy();
  return n;
}

/** Resident set size of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}
