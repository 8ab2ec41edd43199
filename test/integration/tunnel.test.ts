import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopAll } from '../helpers/proc.js';
import { deterministicBytes, echoServer, httpServer, sha256, type Local } from '../helpers/servers.js';
import { closeKind, connectRaw, domainRequest, ipv4Request, ipv6Request, readN, socksConnect } from '../helpers/socks.js';
import { TRANSPORTS, startStack, type Stack } from '../helpers/stack.js';
import { curl as runCurl } from '../helpers/ops.js';

const exec = promisify(execFile);

let stack: Stack;
let web: Local<import('node:http').Server>;
let web6: Local<import('node:http').Server>;
let echo: Local<net.Server>;

beforeAll(async () => {
  [web, web6, echo] = await Promise.all([httpServer('127.0.0.1'), httpServer('::1'), echoServer('127.0.0.1')]);
});

afterAll(async () => {
  await stopAll();
  await Promise.all([web?.close(), web6?.close(), echo?.close()]);
});

/** curl with a 20 s bound (large transfers). */
const curl = (args: string[]) => runCurl(args, 20);

/** Sends `data` through the tunnel to the echo server and returns the SHA-256 of what came back. */
async function echoThrough(data: Buffer): Promise<string> {
  const { socket, reply } = await socksConnect(stack.socksPort, ipv4Request('127.0.0.1', echo.port));
  expect(reply).toBe(0);
  const hash = crypto.createHash('sha256');
  let got = 0;
  const done = new Promise<void>((resolve, reject) => {
    socket.on('data', (d: Buffer) => {
      hash.update(d);
      got += d.length;
    });
    socket.on('end', () => resolve());
    socket.on('error', reject);
  });
  socket.resume();
  // Write in chunks, respecting backpressure.
  const CHUNK = 256 * 1024;
  for (let off = 0; off < data.length; off += CHUNK) {
    if (!socket.write(data.subarray(off, off + CHUNK))) await new Promise((r) => socket.once('drain', r));
  }
  socket.end();
  await done;
  socket.destroy();
  expect(got).toBe(data.length);
  return hash.digest('hex');
}

describe.each(TRANSPORTS)('postern client → bridge over transport=%s, end to end with the built binary', (transport) => {
  beforeAll(async () => {
    stack = await startStack({ transport, bridgeArgs: ['--allow-private', '--log-level', 'debug'] });
  });
  afterAll(async () => {
    await stopAll();
  });

  it('carries the session in the transport the link names', async () => {
    // A ws link against a --no-http2 bridge is WebSocket; transport=h2 is HTTP/2 (protocol.md §12).
    expect(stack.uri.includes('transport=h2')).toBe(transport === 'h2');
    // The client's "tunnel up" can be read before the bridge's own line about it.
    await stack.bridge.waitFor((l) => l.msg === 'session accepted', 5_000, 'session accepted');
    expect(stack.bridge.lines.some((l) => l.msg === 'h2 session accepted')).toBe(transport === 'h2');
  });

  it('serves curl through the HTTP CONNECT proxy on the same port', async () => {
    const r = await curl(['-p', '-x', `http://127.0.0.1:${stack.socksPort}`, `http://localhost:${web.port}/connect`]);
    expect(r.stdout).toContain('/connect');
  });

  it('serves curl --socks5-hostname: the name is resolved at the bridge', async () => {
    const r = await curl(['--socks5-hostname', `127.0.0.1:${stack.socksPort}`, `http://localhost:${web.port}/page`]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('hello through postern');
    expect(r.stdout).toContain('/page');
  });

  it('serves curl --socks5 (address resolved by curl, sent as IPv4)', async () => {
    const r = await curl(['--socks5', `127.0.0.1:${stack.socksPort}`, `http://127.0.0.1:${web.port}/v4`]);
    expect(r.stdout).toContain('hello through postern');
  });

  it('reaches an IPv6 target [::1] (RFC 1928 ATYP 4)', async () => {
    const r = await curl(['--socks5', `127.0.0.1:${stack.socksPort}`, `http://[::1]:${web6.port}/v6`]);
    expect(r.stdout).toContain('/v6');
    const { socket, reply } = await socksConnect(stack.socksPort, ipv6Request([...Array(15).fill(0), 1], web6.port));
    expect(reply).toBe(0);
    socket.destroy();
  });

  it('serves ncat through the SOCKS5 port', async () => {
    const { stdout } = await exec('bash', [
      '-c',
      `printf 'ncat-was-here' | timeout 15 ncat --proxy 127.0.0.1:${stack.socksPort} --proxy-type socks5 127.0.0.1 ${echo.port}`,
    ]);
    expect(stdout).toBe('ncat-was-here');
  });

  it('serves PySocks (Debian python3-socks)', async () => {
    const script = [
      'import socks, sys',
      's = socks.socksocket()',
      `s.set_proxy(socks.SOCKS5, "127.0.0.1", ${stack.socksPort}, rdns=True)`,
      's.settimeout(15)',
      `s.connect(("localhost", ${echo.port}))`,
      's.sendall(b"pysocks-ok")',
      'print(s.recv(100).decode())',
    ].join('\n');
    const { stdout } = await exec('/usr/bin/python3', ['-c', script], { timeout: 20_000 });
    expect(stdout.trim()).toBe('pysocks-ok');
  });

  it('carries 64 MiB of random data both ways with matching SHA-256', async () => {
    const data = crypto.randomBytes(64 * 1024 * 1024);
    expect(await echoThrough(data)).toBe(sha256(data));
  });

  it('downloads 16 MiB over HTTP intact through curl', async () => {
    const n = 16 * 1024 * 1024;
    const r = await exec('bash', ['-c', `curl -s --max-time 30 --socks5-hostname 127.0.0.1:${stack.socksPort} http://localhost:${web.port}/bytes/${n} | sha256sum`]);
    expect(r.stdout.split(' ')[0]).toBe(sha256(deterministicBytes(n)));
  });

  it('keeps 100 concurrent streams correct, each on its own data', async () => {
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const data = deterministicBytes(64 * 1024 + i * 97, `stream-${i}`);
        return (await echoThrough(data)) === sha256(data);
      }),
    );
    expect(results.filter(Boolean).length).toBe(100);
  });

  it('lets one stream go at full speed while another stream has a reader that does not read', async () => {
    // A stalled reader: the echo comes back but the app never reads it.
    const { socket: stalled } = await socksConnect(stack.socksPort, ipv4Request('127.0.0.1', echo.port));
    stalled.pause();
    const junk = Buffer.alloc(1024 * 1024, 1);
    for (let i = 0; i < 16; i++) stalled.write(junk);
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    const data = crypto.randomBytes(16 * 1024 * 1024);
    expect(await echoThrough(data)).toBe(sha256(data));
    const ms = Date.now() - t0;
    stalled.destroy();
    // 16 MiB each way within 20 s: the stalled stream did not block the session.
    expect(ms).toBeLessThan(20_000);
  });

  it('half-closes each direction independently (app → destination FIN, then the reply still arrives)', async () => {
    const srv = net.createServer({ allowHalfOpen: true }, (s) => {
      const parts: Buffer[] = [];
      s.on('data', (d: Buffer) => parts.push(d));
      s.on('end', () => s.end(`got ${Buffer.concat(parts).length} bytes`));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as net.AddressInfo).port;
      const { socket } = await socksConnect(stack.socksPort, ipv4Request('127.0.0.1', port));
      socket.end(Buffer.alloc(1000, 7));
      const reply = await readN(socket, 'got 1000 bytes'.length);
      expect(reply.toString()).toBe('got 1000 bytes');
      expect(await closeKind(socket)).toBe('end');
    } finally {
      srv.close();
    }
  });

  it('half-closes the other way (destination FIN first, the app keeps sending)', async () => {
    let received = 0;
    const gotAll = new Promise<void>((resolve) => {
      const srv = net.createServer({ allowHalfOpen: true }, (s) => {
        s.end('bye');
        s.on('data', (d: Buffer) => {
          received += d.length;
          if (received >= 5000) {
            resolve();
            srv.close();
          }
        });
      });
      srv.listen(0, '127.0.0.1', async () => {
        const port = (srv.address() as net.AddressInfo).port;
        const { socket } = await socksConnect(stack.socksPort, ipv4Request('127.0.0.1', port));
        expect((await readN(socket, 3)).toString()).toBe('bye');
        expect(await closeKind(socket)).toBe('end');
        socket.write(Buffer.alloc(5000, 1));
      });
    });
    await gotAll;
    expect(received).toBe(5000);
  });

  it('handles a pipelined client (greeting, request and first payload in one write)', async () => {
    const s = await connectRaw(stack.socksPort);
    s.write(Buffer.concat([Buffer.from([5, 1, 0]), ipv4Request('127.0.0.1', echo.port), Buffer.from('early-data')]));
    const bytes = await readN(s, 2 + 10 + 'early-data'.length);
    expect(bytes.subarray(0, 4)).toEqual(Buffer.from([5, 0, 5, 0]));
    expect(bytes.subarray(12).toString()).toBe('early-data');
    s.destroy();
  });

  // Refusals the client makes itself get their exact code in the default mode too; what the bridge
  // refuses (0x05, 0x04, 0x02) is exact with --exact-replies: see open-replies.test.ts.
  it.each([
    ['BIND', () => ipv4Request('127.0.0.1', 80, 2), 0x07],
    ['an unknown address type', () => Buffer.from([5, 1, 0, 9, 1, 2, 3, 4, 0, 80]), 0x08],
  ])('answers %s with SOCKS reply %s (RFC 1928 §6), refused locally', async (_name, request, code) => {
    const s = await connectRaw(stack.socksPort);
    s.write(Buffer.from([5, 1, 0]));
    expect(await readN(s, 2)).toEqual(Buffer.from([5, 0]));
    s.write(request());
    const reply = await readN(s, 2);
    expect(reply[1]).toBe(code);
    s.destroy();
  });

  it('survives malformed SOCKS input and keeps serving', async () => {
    const garbage = [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.from([4, 1, 0, 80, 127, 0, 0, 1, 0]),
      Buffer.from([5, 0]),
      Buffer.from([5, 255, ...Array(255).fill(0)]),
      Buffer.from([5, 1, 0, 5, 1, 0, 3, 0, 0, 80]),
      crypto.randomBytes(5000),
      Buffer.from([5]),
    ];
    for (const g of garbage) {
      const s = await connectRaw(stack.socksPort);
      s.on('error', () => undefined);
      s.end(g);
      await closeKind(s, 12_000);
      s.destroy();
    }
    const r = await curl(['--socks5-hostname', `127.0.0.1:${stack.socksPort}`, `http://localhost:${web.port}/still-alive`]);
    expect(r.stdout).toContain('/still-alive');
    expect(stack.client.child.exitCode).toBeNull();
    expect(stack.bridge.child.exitCode).toBeNull();
  });

  it('resets the app connection (never a clean end) when the destination resets', async () => {
    const srv = net.createServer((s) => {
      s.write('partial');
      setTimeout(() => s.resetAndDestroy(), 100);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as net.AddressInfo).port;
      const { socket } = await socksConnect(stack.socksPort, ipv4Request('127.0.0.1', port));
      expect((await readN(socket, 7)).toString()).toBe('partial');
      expect(await closeKind(socket)).toBe('reset');
    } finally {
      srv.close();
    }
  });

  it('never logs destinations or client addresses by default', () => {
    const logs = stack.client.stdout + stack.bridge.stdout;
    expect(logs).not.toContain('no-such-host.invalid');
    expect(logs).not.toMatch(new RegExp(`:${echo.port}\\b`));
    expect(logs).not.toContain('localhost');
  });
});
