/** Loopback fixtures for the transport tests. Everything started here is stopped by stopAll(). */
import net from 'node:net';
import tls from 'node:tls';
import { Writable } from 'node:stream';
import { defaultLimits, type Limits } from '../../../src/core/limits.js';
import { createLogger, silentLogger, type Logger } from '../../../src/log/logger.js';
import type { FrameTransport } from '../../../src/mux/transport.js';
import { TokenVerifier, generateSecret } from '../../../src/transport/auth.js';
import { createBuiltinDecoy } from '../../../src/decoy/builtin.js';
import { createBridgeListener, type BridgeListener } from '../../../src/transport/listener.js';
import type { BridgeInfo } from '../../../src/transport/uri.js';

const cleanups: Array<() => Promise<void> | void> = [];

export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export async function stopAll(): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop() as () => Promise<void> | void;
    try {
      await fn();
    } catch {
      // keep cleaning
    }
  }
}

/** Rejects when `p` takes longer than `ms`. */
export function within<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e as Error);
      },
    );
  });
}

export function track(t: FrameTransport): FrameTransport {
  onCleanup(() => t.terminate());
  return t;
}

/** A logger whose JSON lines are collected in `lines`. */
export function captureLogger(level = 'debug'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(l);
      cb();
    },
  });
  return { logger: createLogger({ level, pretty: false }, sink), lines };
}

export interface BridgeFixture {
  listener: BridgeListener;
  port: number;
  secret: Buffer;
  path: string;
  verifier: TokenVerifier;
  limits: Limits;
  /** Sessions the listener handed over, in order. */
  sessions: Array<{ transport: FrameTransport; user: string }>;
  nextSession(): Promise<{ transport: FrameTransport; user: string }>;
  info(over?: Partial<BridgeInfo>): BridgeInfo;
}

export async function startBridge(o: {
  tls: { keyPem: string; certPem: string } | null;
  pin?: Buffer;
  limits?: Partial<Limits>;
  logger?: Logger;
  path?: string;
  onSession?: (t: FrameTransport, user: string) => void;
  /** Serve HTTP/2 too (default false: these tests exercise the WebSocket transport, which a client offering h2 would otherwise not use). */
  http2?: boolean;
}): Promise<BridgeFixture> {
  const secret = generateSecret();
  const path = o.path ?? '/tunnel-8f3a';
  const limits = defaultLimits(o.limits);
  const verifier = new TokenVerifier([{ name: 'alice', secret }], {
    windowMs: limits.AUTH_WINDOW_MS,
    replayCacheCount: limits.AUTH_REPLAY_CACHE_PER_USER_COUNT,
  });
  const sessions: Array<{ transport: FrameTransport; user: string }> = [];
  const waiters: Array<(s: { transport: FrameTransport; user: string }) => void> = [];
  const listener = createBridgeListener({
    host: '127.0.0.1',
    port: 0,
    tls: o.tls,
    path,
    verifier,
    limits,
    decoy: createBuiltinDecoy({ siteTimeMs: Date.now() }),
    http2: o.http2 ?? false,
    logger: o.logger ?? silentLogger(),
    onSession: (transport, user) => {
      track(transport);
      o.onSession?.(transport, user);
      const s = { transport, user };
      sessions.push(s);
      waiters.shift()?.(s);
    },
  });
  const { port } = await listener.listen();
  onCleanup(() => listener.close());
  let taken = 0;
  return {
    listener,
    port,
    secret,
    path,
    verifier,
    limits,
    sessions,
    nextSession() {
      const i = taken++;
      const have = sessions[i];
      if (have !== undefined) return Promise.resolve(have);
      return within(new Promise((resolve) => waiters.push(resolve)), 5_000, 'session');
    },
    info(over = {}) {
      return {
        secret,
        host: '127.0.0.1',
        port,
        path,
        plain: o.tls === null,
        ...(o.pin !== undefined ? { pin: o.pin } : {}),
        ...over,
      };
    },
  };
}

/** Sends `request` over TLS (or TCP) and returns every byte the server sent until it closed. */
export function rawExchange(port: number, request: string | Buffer, useTls = true): Promise<Buffer> {
  return within(
    new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const sock: net.Socket = useTls
        ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
        : net.connect({ host: '127.0.0.1', port });
      onCleanup(() => void sock.destroy());
      sock.once(useTls ? 'secureConnect' : 'connect', () => sock.write(request));
      sock.on('data', (d: Buffer) => chunks.push(d));
      sock.on('error', reject);
      sock.on('close', () => resolve(Buffer.concat(chunks)));
    }),
    5_000,
    'raw exchange',
  );
}

/**
 * Sends a request and returns the first complete answer (head and Content-Length body), whether
 * the server then closes or keeps the connection (nginx keeps it for a refused upgrade).
 */
export function rawAnswer(port: number, request: string | Buffer, useTls = true): Promise<Buffer> {
  return within(
    new Promise<Buffer>((resolve, reject) => {
      let got = Buffer.alloc(0);
      const sock: net.Socket = useTls
        ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
        : net.connect({ host: '127.0.0.1', port });
      onCleanup(() => void sock.destroy());
      sock.once(useTls ? 'secureConnect' : 'connect', () => sock.write(request));
      sock.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
        const end = got.indexOf('\r\n\r\n');
        if (end === -1) return;
        const length = Number(/\r\nContent-Length: (\d+)\r\n/i.exec(got.subarray(0, end + 2).toString('latin1'))?.[1] ?? 0);
        if (got.length >= end + 4 + length) {
          resolve(got.subarray(0, end + 4 + length));
          sock.destroy();
        }
      });
      sock.on('error', reject);
      sock.on('close', () => resolve(got));
    }),
    5_000,
    'raw answer',
  );
}

/** A TCP port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
