/**
 * 500 idle unauthenticated connections (TLS handshakes never finished) and slowloris clients
 * (request head trickled one byte a second) against the real bridge binary: an honest client still
 * connects and transfers in good time, and the idle ones are dropped at the configured timeout
 * (HANDSHAKE_TIMEOUT_MS, here 2 s; nginx's client_header_timeout by default).
 */
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLimits } from '../../src/core/limits.js';
import { silentLogger } from '../../src/log/logger.js';
import { MuxSession } from '../../src/mux/session.js';
import { dialBridge } from '../../src/transport/registry.js';
import { parseShareUri } from '../../src/transport/uri.js';
import { stopAll } from '../helpers/proc.js';
import { deterministicBytes, echoServer, type Local } from '../helpers/servers.js';
import { init, startBridge, withPort } from '../helpers/stack.js';

const HANDSHAKE_TIMEOUT_MS = 2_000;
const IDLE_COUNT = 500;
const SLOWLORIS_COUNT = 20;
/** "Reasonable time" for the honest dial + 2 MiB echo, under a loaded test run. */
const HONEST_MAX_MS = 10_000;

let port: number;
let uri: string;
let echo: Local<net.Server>;
const sockets = new Set<net.Socket>();

beforeAll(async () => {
  echo = await echoServer('127.0.0.1');
  const made = await init();
  const cfg = JSON.parse(fs.readFileSync(made.config, 'utf8')) as Record<string, unknown>;
  cfg.limits = { HANDSHAKE_TIMEOUT_MS, HTTP_KEEPALIVE_TIMEOUT_MS: 1_000 };
  fs.writeFileSync(made.config, JSON.stringify(cfg, null, 2));
  ({ port } = await startBridge(made.config));
  uri = withPort(made.uri, port);
}, 30_000);

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await stopAll();
  await echo?.close();
});

/** Resolves with the time (ms after `t0`) the server closed the connection, or null if we cut it. */
function closedAt(s: net.Socket, t0: number, maxMs: number): Promise<number | null> {
  sockets.add(s);
  return new Promise((resolve) => {
    const cut = setTimeout(() => {
      resolve(null);
      s.destroy();
    }, maxMs);
    s.on('error', () => undefined);
    s.once('close', () => {
      clearTimeout(cut);
      sockets.delete(s);
      resolve(performance.now() - t0);
    });
  });
}

describe('slowloris and idle connections (issue 4 limits)', () => {
  it('do not stop an honest client, and are dropped at HANDSHAKE_TIMEOUT_MS', async () => {
    const maxMs = HANDSHAKE_TIMEOUT_MS + 8_000;
    // 500 TCP connections whose TLS handshake never finishes: half send nothing, half the first
    // bytes of a ClientHello record and then stop.
    const idle: Array<Promise<number | null>> = [];
    for (let i = 0; i < IDLE_COUNT; i++) {
      const t0 = performance.now();
      const s = net.connect({ host: '127.0.0.1', port });
      if (i % 2 === 1) s.once('connect', () => s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
      idle.push(closedAt(s, t0, maxMs));
    }
    // Slowloris: TLS done, then one byte of a never-ending request head per second.
    const head = 'GET / HTTP/1.1\r\nHost: bridge.example\r\nX-Slow: ' + 'a'.repeat(100);
    const slow: Array<Promise<number | null>> = [];
    const timers: NodeJS.Timeout[] = [];
    for (let i = 0; i < SLOWLORIS_COUNT; i++) {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
      slow.push(
        new Promise((resolve) => {
          s.once('secureConnect', () => {
            const t0 = performance.now();
            let at = 0;
            const t = setInterval(() => {
              if (!s.destroyed && at < head.length) s.write(head[at++]!);
            }, 1_000);
            timers.push(t);
            s.write(head[at++]!);
            void closedAt(s, t0, maxMs).then(resolve);
          });
          s.on('error', () => undefined);
        }),
      );
    }

    // The honest client, while all of that is open.
    await new Promise((r) => setTimeout(r, 300));
    const limits = defaultLimits();
    const started = performance.now();
    const transport = await dialBridge(parseShareUri(uri), { limits, logger: silentLogger() });
    const session = new MuxSession(transport, { role: 'client', limits, logger: silentLogger() });
    const stream = await session.open({ kind: 'ipv4', host: '127.0.0.1', port: echo.port });
    const payload = deterministicBytes(2 * 1024 * 1024);
    const back: Buffer[] = [];
    let got = 0;
    const done = new Promise<void>((resolve, reject) => {
      stream.on('data', (d: Buffer) => {
        back.push(d);
        got += d.length;
        if (got >= payload.length) resolve();
      });
      stream.on('error', reject);
    });
    stream.write(payload);
    await done;
    const honestMs = performance.now() - started;
    if (process.env.POSTERN_TEST_REPORT) process.stderr.write(`honest dial + 2 MiB echo: ${Math.round(honestMs)} ms\n`);
    expect(Buffer.concat(back).equals(payload)).toBe(true);
    // Alone on this 2-core machine it takes ≈ 0.1 s; the bound leaves room for a loaded test run.
    expect(honestMs).toBeLessThan(HONEST_MAX_MS);
    session.close();

    const idleClosed = await Promise.all(idle);
    const slowClosed = await Promise.all(slow);
    for (const t of timers) clearInterval(t);
    for (const times of [idleClosed, slowClosed]) {
      expect(times.every((t) => t !== null)).toBe(true); // every one was dropped by the bridge
      const ms = times as number[];
      expect(Math.min(...ms)).toBeGreaterThan(HANDSHAKE_TIMEOUT_MS - 200);
      expect(Math.max(...ms)).toBeLessThan(HANDSHAKE_TIMEOUT_MS + 3_000);
    }
  }, 30_000);
});
