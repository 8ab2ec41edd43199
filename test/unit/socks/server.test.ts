import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { SocksClient } from 'socks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Target } from '../../../src/core/address.js';
import { PosternError, type ErrorCode } from '../../../src/core/errors.js';
import { defaultLimits, type Limits } from '../../../src/core/limits.js';
import { silentLogger, type Logger } from '../../../src/log/logger.js';
import {
  AuthMethod,
  Command,
  encodeGreeting,
  encodeRequest,
  encodeUserPass,
  SocksReply,
} from '../../../src/socks/codec.js';
import { SocksServer, type SocksConnect } from '../../../src/socks/server.js';
import { captureLogger, duplexPair, TestClient, TestTarget, waitFor } from './helpers.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const DEST: Target = { kind: 'domain', host: 'echo.invalid', port: 80 };
const NO_AUTH = encodeGreeting([AuthMethod.NONE]);
const CONNECT = encodeRequest(Command.CONNECT, DEST);
const USER = 'alice';
const PASS = 's3cret-pass';

let servers: SocksServer[] = [];
let clients: TestClient[] = [];
let target: TestTarget;

beforeEach(async () => {
  target = await new TestTarget().start();
});

afterEach(async () => {
  for (const c of clients) c.destroy();
  await Promise.all(servers.map((s) => s.close()));
  await target.close();
  servers = [];
  clients = [];
});

interface Started {
  server: SocksServer;
  port: number;
  /** Targets `connect` was asked for, in order. */
  calls: Target[];
  signals: AbortSignal[];
}

async function start(
  opts: {
    auth?: { username: string; password: string } | null;
    limits?: Partial<Limits>;
    connect?: SocksConnect;
    logger?: Logger;
  } = {},
): Promise<Started> {
  const calls: Target[] = [];
  const signals: AbortSignal[] = [];
  const inner: SocksConnect = opts.connect ?? (() => target.dial());
  const server = new SocksServer({
    host: '127.0.0.1',
    port: 0,
    auth: opts.auth ?? null,
    limits: defaultLimits(opts.limits),
    logger: opts.logger ?? silentLogger(),
    connect: (t, signal) => {
      calls.push(t);
      signals.push(signal);
      return inner(t, signal);
    },
  });
  servers.push(server);
  const addr = await server.listen();
  expect(addr.host).toBe('127.0.0.1');
  expect(addr.port).toBeGreaterThan(0);
  return { server, port: addr.port, calls, signals };
}

async function client(port: number, halfOpen = false): Promise<TestClient> {
  const c = await TestClient.connect(port, halfOpen);
  clients.push(c);
  return c;
}

/** A connect that never settles until its signal aborts. */
const hangingConnect: SocksConnect = (_t, signal) =>
  new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error)));

/** Greeting and CONNECT without auth; returns after the success reply. */
async function openTunnel(port: number, payload?: Buffer, halfOpen = false): Promise<{ app: TestClient; far: TestClient }> {
  const n = target.sockets.length + 1;
  const app = await client(port, halfOpen);
  app.write(Buffer.concat([NO_AUTH, CONNECT, payload ?? Buffer.alloc(0)]));
  expect(await app.read(2)).toEqual(hex('05 00'));
  expect((await app.readReply()).reply).toBe(SocksReply.SUCCEEDED);
  const far = await target.accepted(n);
  return { app, far };
}

describe('SocksServer: CONNECT (RFC 1928 §4, §6)', () => {
  it('carries a payload pipelined with the greeting and request in one write, both ways', async () => {
    const { port, calls } = await start();
    const { app, far } = await openTunnel(port, Buffer.from('hello'));
    expect((await far.read(5)).toString()).toBe('hello');
    far.write('world');
    expect((await app.read(5)).toString()).toBe('world');
    expect(calls).toEqual([DEST]);
  });

  it('answers a greeting, then a request sent separately, each after the previous reply', async () => {
    const { port } = await start();
    const app = await client(port);
    app.write(NO_AUTH);
    expect(await app.read(2)).toEqual(hex('05 00'));
    app.write(CONNECT);
    const reply = await app.readReply();
    expect(reply).toEqual({ reply: 0, bind: { kind: 'ipv4', host: '0.0.0.0', port: 0 } });
    app.write('ping');
    expect((await (await target.accepted()).read(4)).toString()).toBe('ping');
  });

  it('completes a handshake fed one byte at a time', async () => {
    const { port, calls } = await start();
    const app = await client(port);
    for (const b of Buffer.concat([NO_AUTH, CONNECT])) {
      app.write(Buffer.from([b]));
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(await app.read(2)).toEqual(hex('05 00'));
    expect((await app.readReply()).reply).toBe(SocksReply.SUCCEEDED);
    expect(calls).toEqual([DEST]);
  });

  it('accepts the largest legal handshake (255 methods, 255-byte credentials, 255-byte domain) in one write', async () => {
    const { port, calls } = await start({ auth: { username: 'u'.repeat(255), password: 'p'.repeat(255) } });
    const longDest: Target = { kind: 'domain', host: `${'a'.repeat(246)}.invalid`, port: 443 };
    const app = await client(port);
    app.write(
      Buffer.concat([
        encodeGreeting(Array.from({ length: 255 }, (_, i) => i)),
        encodeUserPass('u'.repeat(255), 'p'.repeat(255)),
        encodeRequest(Command.CONNECT, longDest),
      ]),
    );
    expect(await app.read(4)).toEqual(hex('05 02 01 00'));
    expect((await app.readReply()).reply).toBe(SocksReply.SUCCEEDED);
    expect(calls).toEqual([longDest]);
  });

  it('passes the target to connect as parsed: IPv4, canonical IPv6', async () => {
    const { port, calls } = await start();
    for (const t of [
      { kind: 'ipv4', host: '127.0.0.1', port: 9 },
      { kind: 'ipv6', host: '0:0:0:0:0:0:0:1', port: 9 },
    ] as const) {
      const app = await client(port);
      app.write(Buffer.concat([NO_AUTH, encodeRequest(Command.CONNECT, t)]));
      await app.read(2);
      expect((await app.readReply()).reply).toBe(SocksReply.SUCCEEDED);
    }
    expect(calls).toEqual([
      { kind: 'ipv4', host: '127.0.0.1', port: 9 },
      { kind: 'ipv6', host: '::1', port: 9 },
    ]);
  });

  it('relays through an in-process duplex returned by connect', async () => {
    const [near, far] = duplexPair();
    far.on('data', (d: Buffer) => far.write(d.toString().toUpperCase()));
    const { port } = await start({ connect: async () => near });
    const app = await client(port);
    app.write(Buffer.concat([NO_AUTH, CONNECT, Buffer.from('early')]));
    await app.read(2);
    await app.readReply();
    expect((await app.read(5)).toString()).toBe('EARLY');
    app.write('later');
    expect((await app.read(5)).toString()).toBe('LATER');
  });

  it('works with the socks npm package as the client', async () => {
    const { port, calls } = await start();
    const info = await SocksClient.createConnection({
      proxy: { host: '127.0.0.1', port, type: 5 },
      command: 'connect',
      destination: { host: 'echo.invalid', port: 80 },
      timeout: 3_000,
    });
    const app = new TestClient(info.socket);
    clients.push(app);
    app.write('via socks');
    const far = await target.accepted();
    expect((await far.read(9)).toString()).toBe('via socks');
    far.write('back');
    expect((await app.read(4)).toString()).toBe('back');
    expect(calls).toEqual([DEST]);
  });

  it.each<[ErrorCode, number]>([
    ['E_CONN_REFUSED', 0x05],
    ['E_NOT_ALLOWED', 0x02],
    ['E_DNS', 0x04],
    ['E_HOST_UNREACHABLE', 0x04],
    ['E_TIMEOUT', 0x06],
    ['E_NET_UNREACHABLE', 0x03],
    ['E_TUNNEL_DOWN', 0x01],
  ])('replies to a connect failing with %s with REP %i and closes (§6)', async (code, rep) => {
    const { port } = await start({ connect: async () => Promise.reject(new PosternError(code)) });
    const app = await client(port);
    app.write(Buffer.concat([NO_AUTH, CONNECT]));
    await app.read(2);
    expect((await app.readReply()).reply).toBe(rep);
    await app.waitClosed();
  });

  it.each<[string, SocksConnect]>([
    ['rejecting with a plain Error', async () => Promise.reject(new Error('ECONNREFUSED 10.1.2.3:80'))],
    ['throwing synchronously', () => {
      throw new Error('boom');
    }],
    ['returning a destroyed stream', async () => {
      const [a] = duplexPair();
      a.destroy();
      return a;
    }],
  ])('replies general failure 0x01 to a connect %s', async (_n, connect) => {
    const { port } = await start({ connect });
    const app = await client(port);
    app.write(Buffer.concat([NO_AUTH, CONNECT]));
    await app.read(2);
    expect((await app.readReply()).reply).toBe(SocksReply.GENERAL_FAILURE);
    await app.waitClosed();
  });

  it('holds early data beyond SOCKS_EARLY_DATA_MAX_BYTES in the socket and delivers all of it in order', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { port } = await start({
      limits: { SOCKS_EARLY_DATA_MAX_BYTES: 4 },
      connect: async () => {
        await gate;
        return target.dial();
      },
    });
    const app = await client(port);
    app.write(Buffer.concat([NO_AUTH, CONNECT, Buffer.from('0123456789')]));
    await app.read(2);
    app.write('abcdef');
    await new Promise((r) => setTimeout(r, 50));
    release();
    expect((await app.readReply()).reply).toBe(SocksReply.SUCCEEDED);
    expect((await (await target.accepted()).read(16)).toString()).toBe('0123456789abcdef');
  });

  it('propagates backpressure: a stalled destination stalls the app instead of buffering in the proxy', async () => {
    const { port } = await start();
    const { app, far } = await openTunnel(port);
    far.keep = false;
    far.sock.pause();
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    const total = 64;
    for (let i = 0; i < total; i++) app.sock.write(chunk);
    await new Promise((r) => setTimeout(r, 500));
    // Kernel buffers on loopback absorb some MB; most must still wait in the app's socket.
    expect(app.sock.writableLength).toBeGreaterThan(8 * 1024 * 1024);
    far.sock.resume();
    await waitFor(() => far.received === total * chunk.length, 'all bytes at the destination', 20_000);
  });
});

describe('SocksServer: half-close (RFC 1928 relay semantics)', () => {
  it('an app FIN ends only the upstream direction; the destination can still answer', async () => {
    const { server, port } = await start();
    const { app, far } = await openTunnel(port, undefined, true);
    app.write('request');
    app.sock.end();
    expect((await far.read(7)).toString()).toBe('request');
    await far.waitEnded();
    far.write('response');
    expect((await app.read(8)).toString()).toBe('response');
    far.sock.end();
    await app.waitEnded();
    await app.waitClosed();
    await waitFor(() => server.connectionCount === 0, 'connection count 0');
  });

  it('a destination FIN ends only the downstream direction; the app can still send', async () => {
    const { server, port } = await start();
    const { app, far } = await openTunnel(port, undefined, true);
    far.write('banner');
    far.sock.end();
    expect((await app.read(6)).toString()).toBe('banner');
    await app.waitEnded();
    app.write('still here');
    expect((await far.read(10)).toString()).toBe('still here');
    app.sock.end();
    await far.waitEnded();
    await app.waitClosed();
    await waitFor(() => server.connectionCount === 0, 'connection count 0');
  });

  it('a destination reset resets the app connection (no clean FIN for a truncated stream)', async () => {
    const { port } = await start();
    const { app, far } = await openTunnel(port);
    far.sock.resetAndDestroy();
    await app.waitClosed();
    expect(app.ended).toBe(false);
  });
});

describe('SocksServer: unsupported requests (RFC 1928 §4, §6)', () => {
  it.each([
    ['BIND', Command.BIND, SocksReply.COMMAND_NOT_SUPPORTED],
    ['UDP ASSOCIATE', Command.UDP_ASSOCIATE, SocksReply.COMMAND_NOT_SUPPORTED],
  ])('answers %s with REP 0x07 and closes, without calling connect', async (_n, cmd, rep) => {
    const { port, calls } = await start();
    const app = await client(port);
    app.write(Buffer.concat([NO_AUTH, encodeRequest(cmd, { kind: 'ipv4', host: '0.0.0.0', port: 0 })]));
    await app.read(2);
    expect((await app.readReply()).reply).toBe(rep);
    await app.waitClosed();
    expect(calls).toEqual([]);
  });

  it.each([
    ['ATYP 0x05', '05 01 00 05 7f000001 0050', SocksReply.ADDRESS_TYPE_NOT_SUPPORTED],
    ['an unknown CMD 0x09', '05 09 00 01 7f000001 0050', SocksReply.COMMAND_NOT_SUPPORTED],
    ['a non-zero RSV', '05 01 01 01 7f000001 0050', SocksReply.GENERAL_FAILURE],
    ['an empty domain', '05 01 00 03 00 0050', SocksReply.GENERAL_FAILURE],
    ['a domain with a NUL byte', '05 01 00 03 03 610062 0050', SocksReply.GENERAL_FAILURE],
  ])('answers a request with %s with its reply code and closes', async (_n, request, rep) => {
    const { port, calls } = await start();
    const app = await client(port);
    app.write(Buffer.concat([NO_AUTH, hex(request)]));
    await app.read(2);
    expect((await app.readReply()).reply).toBe(rep);
    await app.waitClosed();
    expect(calls).toEqual([]);
  });

  it.each([
    ['a SOCKS4 request', '04 01 0050 7f000001 00'],
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n').toString('hex')],
    ['a greeting with NMETHODS 0', '05 00'],
    ['a request with VER 4 after a good greeting', '05 01 00 04 01 00 01 7f000001 0050'],
  ])('closes on %s without a reply, and keeps serving', async (_n, bytes) => {
    const { port, server } = await start();
    const bad = await client(port);
    bad.write(hex(bytes));
    await bad.waitClosed();
    expect(bad.pending.subarray(2).length).toBe(0); // at most the method choice
    await waitFor(() => server.connectionCount === 0, 'connection count 0');
    await openTunnel(port);
  });
});

describe('SocksServer: username/password (RFC 1929)', () => {
  const auth = { username: USER, password: PASS };

  it('accepts the right credentials from the socks npm package', async () => {
    const { port } = await start({ auth });
    const info = await SocksClient.createConnection({
      proxy: { host: '127.0.0.1', port, type: 5, userId: USER, password: PASS },
      command: 'connect',
      destination: { host: 'echo.invalid', port: 80 },
      timeout: 3_000,
    });
    const app = new TestClient(info.socket);
    clients.push(app);
    app.write('authed');
    expect((await (await target.accepted()).read(6)).toString()).toBe('authed');
  });

  it('accepts greeting, credentials, request and payload pipelined in one write', async () => {
    const { port } = await start({ auth });
    const app = await client(port);
    app.write(Buffer.concat([encodeGreeting([0x00, 0x02]), encodeUserPass(USER, PASS), CONNECT, Buffer.from('x')]));
    expect(await app.read(4)).toEqual(hex('05 02 01 00'));
    expect((await app.readReply()).reply).toBe(SocksReply.SUCCEEDED);
    expect((await (await target.accepted()).read(1)).toString()).toBe('x');
  });

  it.each([
    ['a wrong password', USER, 'wrong'],
    ['a wrong username', 'bob', PASS],
    ['a password that is a prefix of the right one', USER, PASS.slice(0, -1)],
    ['a password longer than the right one', USER, `${PASS}x`],
  ])('answers %s with status 0x01 and closes, without calling connect', async (_n, user, pass) => {
    const { port, calls } = await start({ auth });
    const app = await client(port);
    app.write(Buffer.concat([encodeGreeting([0x02]), encodeUserPass(user, pass), CONNECT]));
    expect(await app.read(4)).toEqual(hex('05 02 01 01'));
    await app.waitClosed();
    expect(app.pending.length).toBe(0);
    expect(calls).toEqual([]);
  });

  it('answers a greeting without method 0x02 with 0xFF and closes', async () => {
    const { port, calls } = await start({ auth });
    const app = await client(port);
    app.write(Buffer.concat([NO_AUTH, CONNECT]));
    expect(await app.read(2)).toEqual(hex('05 ff'));
    await app.waitClosed();
    expect(calls).toEqual([]);
  });

  it('answers a malformed RFC 1929 message (ULEN 0) with status 0x01 and closes', async () => {
    const { port } = await start({ auth });
    const app = await client(port);
    app.write(Buffer.concat([encodeGreeting([0x02]), hex('01 00 01 61')]));
    expect(await app.read(4)).toEqual(hex('05 02 01 01'));
    await app.waitClosed();
  });

  it('without auth configured, offers only method 0x00: a client offering only 0x02 gets 0xFF', async () => {
    const { port } = await start();
    const app = await client(port);
    app.write(encodeGreeting([0x02]));
    expect(await app.read(2)).toEqual(hex('05 ff'));
    await app.waitClosed();
  });

  it('refuses to serve a non-loopback address without auth unless allowed explicitly', () => {
    const base = { port: 0, limits: defaultLimits(), logger: silentLogger(), connect: hangingConnect };
    expect(() => new SocksServer({ ...base, host: '0.0.0.0', auth: null })).toThrowError(
      expect.objectContaining({ code: 'E_CONFIG' }) as Error,
    );
    expect(() => new SocksServer({ ...base, host: '0.0.0.0', auth: null, allowOpenProxy: true })).not.toThrow();
    expect(() => new SocksServer({ ...base, host: '0.0.0.0', auth })).not.toThrow();
    expect(() => new SocksServer({ ...base, host: '127.0.0.1', auth: { username: '', password: 'x' } })).toThrow(PosternError);
  });
});

describe('SocksServer: limits and hostile clients', () => {
  it('closes a connection whose handshake is not complete within SOCKS_HANDSHAKE_TIMEOUT_MS', async () => {
    const { port, server } = await start({ limits: { SOCKS_HANDSHAKE_TIMEOUT_MS: 200 } });
    const silent = await client(port);
    const partial = await client(port);
    partial.write(hex('05 01 00 05 01 00 03 10 61')); // greeting, then a request cut inside the domain
    const t0 = Date.now();
    await Promise.all([silent.waitClosed(), partial.waitClosed()]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    await waitFor(() => server.connectionCount === 0, 'connection count 0');
  });

  it('closes a connection whose handshake exceeds SOCKS_HANDSHAKE_MAX_BYTES', async () => {
    const { port, calls } = await start({ limits: { SOCKS_HANDSHAKE_MAX_BYTES: 64 } });
    const app = await client(port);
    app.write(Buffer.concat([hex('05 ff'), Buffer.alloc(100, 0x01)])); // announces 255 methods, sends 100
    await app.waitClosed();
    expect(app.pending.length).toBe(0);
    expect(calls).toEqual([]);
  });

  it('destroys a refused connection whose app never hangs up, after the linger bound (§6: terminate shortly)', async () => {
    const { port, server } = await start({ limits: { SOCKS_HANDSHAKE_TIMEOUT_MS: 200 } });
    const app = await client(port, true); // keeps its side open after our FIN
    app.write(Buffer.concat([NO_AUTH, encodeRequest(Command.BIND, DEST)]));
    await app.read(2);
    expect((await app.readReply()).reply).toBe(SocksReply.COMMAND_NOT_SUPPORTED);
    await app.waitEnded();
    expect(server.connectionCount).toBe(1);
    await waitFor(() => server.connectionCount === 0, 'linger timeout', 2_000);
    // The socket is gone: a write draws an RST, and the next one fails (bounded retries).
    for (let i = 0; i < 20 && !app.closed; i++) {
      app.write('anyone there?');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(app.closed).toBe(true);
  });

  it('refuses connections beyond LOCAL_MAX_CONNECTIONS and accepts again once one closes', async () => {
    const { port, server } = await start({ limits: { LOCAL_MAX_CONNECTIONS: 2 } });
    const a = await client(port);
    await client(port);
    await waitFor(() => server.connectionCount === 2, 'two connections');
    const over = await client(port);
    await over.waitClosed();
    expect(over.pending.length).toBe(0);
    a.destroy();
    await waitFor(() => server.connectionCount === 1, 'one connection');
    await openTunnel(port);
  });

  it.each([
    ['end()', (c: TestClient) => c.sock.end()],
    ['destroy()', (c: TestClient) => c.sock.destroy()],
    ['resetAndDestroy()', (c: TestClient) => c.sock.resetAndDestroy()],
  ])('aborts the pending connect when the app hangs up with %s during it', async (_n, hangUp) => {
    const { port, server, signals } = await start({ connect: hangingConnect });
    const app = await client(port);
    app.write(Buffer.concat([NO_AUTH, CONNECT]));
    await app.read(2);
    await waitFor(() => signals.length === 1, 'connect to be called');
    expect(signals[0]!.aborted).toBe(false);
    hangUp(app);
    await waitFor(() => signals[0]!.aborted, 'the signal to abort');
    expect(signals[0]!.reason).toMatchObject({ code: 'E_CANCELLED' });
    await waitFor(() => server.connectionCount === 0, 'connection count 0');
  });

  it('destroys a stream that connect delivers after the app left', async () => {
    let resolve!: (d: Duplex) => void;
    const { port, signals } = await start({ connect: () => new Promise<Duplex>((r) => (resolve = r)) });
    const app = await client(port);
    app.write(Buffer.concat([NO_AUTH, CONNECT]));
    await app.read(2);
    await waitFor(() => signals.length === 1, 'connect to be called');
    app.destroy();
    await waitFor(() => signals[0]!.aborted, 'the signal to abort');
    const late = await target.dial();
    resolve(late);
    await waitFor(() => late.destroyed, 'the late stream to be destroyed');
  });

  it('survives 20 garbage connections and then serves a good one', async () => {
    // Random bytes may by chance form a valid CONNECT: refuse those, so every garbage connection ends.
    let open = false;
    const { port, server } = await start({
      limits: { SOCKS_HANDSHAKE_TIMEOUT_MS: 1_000 },
      connect: () => (open ? target.dial() : Promise.reject(new PosternError('E_NOT_ALLOWED'))),
    });
    const garbage: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      const prefix = [Buffer.alloc(0), hex('05'), hex('05 01 00'), hex('05 01 00 05 01 00'), hex('05 02 00 02 01')][i % 5]!;
      garbage.push(Buffer.concat([prefix, randomBytes(1 + ((i * 97) % 700))]));
    }
    const bad = await Promise.all(garbage.map(() => client(port)));
    bad.forEach((c, i) => {
      c.write(garbage[i]!);
      if (i % 2 === 0) c.sock.end();
      else if (i % 3 === 0) c.sock.resetAndDestroy();
    });
    await Promise.all(bad.map((c) => c.waitClosed(3_000)));
    await waitFor(() => server.connectionCount === 0, 'connection count 0');
    open = true;
    const { app, far } = await openTunnel(port, Buffer.from('ok'));
    expect((await far.read(2)).toString()).toBe('ok');
    expect(app.closed).toBe(false);
  });

  it('close() stops accepting, destroys open connections and aborts pending connects', async () => {
    let calls = 0;
    const { port, server, signals } = await start({
      connect: (t, s) => (++calls === 1 ? target.dial() : hangingConnect(t, s)),
    });
    const { app } = await openTunnel(port);
    const pending = await client(port);
    pending.write(Buffer.concat([NO_AUTH, CONNECT]));
    await waitFor(() => signals.length === 2, 'second connect');
    const idle = await client(port);
    await waitFor(() => server.connectionCount === 3, 'three connections');
    await server.close();
    await Promise.all([app.waitClosed(), pending.waitClosed(), idle.waitClosed()]);
    expect(signals[1]!.aborted).toBe(true);
    expect(server.connectionCount).toBe(0);
    await expect(
      new Promise((resolve, reject) => net.connect(port, '127.0.0.1').on('connect', resolve).on('error', reject)),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

describe('SocksServer: logging (privacy by default)', () => {
  it('logs with a connection id and never the app address, the destination or credentials', async () => {
    const cap = captureLogger();
    const secretDest: Target = { kind: 'domain', host: 'secret-destination.invalid', port: 4321 };
    let n = 0;
    const { port } = await start({
      auth: { username: USER, password: PASS },
      logger: cap.logger,
      connect: async () => (++n === 1 ? target.dial() : Promise.reject(new Error('connect ECONNREFUSED secret-destination.invalid:4321'))),
    });
    const ok = await client(port);
    ok.write(Buffer.concat([encodeGreeting([2]), encodeUserPass(USER, PASS), encodeRequest(Command.CONNECT, secretDest)]));
    await ok.read(4);
    expect((await ok.readReply()).reply).toBe(0);
    const failing = await client(port);
    failing.write(Buffer.concat([encodeGreeting([2]), encodeUserPass(USER, PASS), encodeRequest(Command.CONNECT, secretDest)]));
    await failing.read(4);
    expect((await failing.readReply()).reply).toBe(SocksReply.GENERAL_FAILURE);
    const wrong = await client(port);
    wrong.write(Buffer.concat([encodeGreeting([2]), encodeUserPass(USER, 'not-the-password')]));
    await wrong.waitClosed();
    ok.destroy();
    await ok.waitClosed();
    await waitFor(() => cap.lines.some((l) => l.msg === 'socks connection closed' && l.conn === 3), 'close log');

    const connLines = cap.lines.filter((l) => l.msg !== 'socks listening');
    expect(connLines.length).toBeGreaterThan(5);
    for (const line of connLines) expect(typeof line.conn).toBe('number');
    expect(new Set(connLines.map((l) => l.conn))).toEqual(new Set([1, 2, 3]));
    const text = cap.text();
    for (const secret of ['secret-destination', '4321', USER, PASS, 'not-the-password', '127.0.0.1']) {
      expect(connLines.map((l) => JSON.stringify(l)).join('\n')).not.toContain(secret);
    }
    for (const c of [ok, failing, wrong]) expect(text).not.toContain(String(c.sock.localPort));
    expect(cap.lines.find((l) => l.msg === 'connect failed')).toMatchObject({ code: 'unknown', reply: 1 });
  });
});
