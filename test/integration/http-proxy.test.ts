/**
 * The client's HTTP proxy, mixed port, separate listeners, forwards, WhatsApp entry point and
 * --lan, driven through the built binary with curl and raw sockets. Loopback only.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Postern, runPostern, stopAll, tempDir } from '../helpers/proc.js';
import { deterministicBytes, echoServer, sha256, type Local } from '../helpers/servers.js';
import { connectRaw, readN } from '../helpers/socks.js';
import { startBridge, startClient, startStack, withPort, type Stack } from '../helpers/stack.js';
import { curl as runCurl } from '../helpers/ops.js';

const exec = promisify(execFile);

/** curl with a 20 s bound (large transfers). */
const curl = (args: string[]) => runCurl(args, 20);

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  bodySha: string;
  bodyLen: number;
}

/** An origin that records what it received and answers with the body's hash, or /bytes/N. */
async function origin(): Promise<Local<http.Server> & { seen: Seen[] }> {
  const seen: Seen[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const h = crypto.createHash('sha256');
    let n = 0;
    req.on('data', (d: Buffer) => {
      h.update(d);
      n += d.length;
    });
    req.on('end', () => {
      const s: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, bodySha: h.digest('hex'), bodyLen: n };
      seen.push(s);
      const m = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
      if (m) {
        const body = deterministicBytes(Number(m[1]));
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
        res.end(body);
        return;
      }
      const z = /^\/zeros\/(\d+)$/.exec(req.url ?? '');
      if (z) {
        // N zero bytes, written with backpressure.
        let left = Number(z[1]);
        const block = Buffer.alloc(64 * 1024);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': left });
        const pump = () => {
          while (left > 0) {
            const n = Math.min(left, block.length);
            left -= n;
            if (!res.write(block.subarray(0, n))) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      if (req.url === '/chunked') {
        res.writeHead(200, { 'content-type': 'text/plain' }); // no length: Node sends chunked
        res.write('part one;');
        setTimeout(() => res.end('part two'), 20);
        return;
      }
      const body = JSON.stringify({ url: req.url, sha: s.bodySha, len: n });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    server,
    seen,
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Reads one HTTP response with a Content-Length body from a raw socket. */
async function readResponse(s: net.Socket): Promise<{ head: string; body: Buffer }> {
  let buf = Buffer.alloc(0);
  for (let i = 0; i < 200; i++) {
    const end = buf.indexOf('\r\n\r\n');
    if (end >= 0) {
      const head = buf.subarray(0, end).toString('latin1');
      const m = /content-length: (\d+)/i.exec(head);
      const len = m ? Number(m[1]) : 0;
      let rest = buf.subarray(end + 4);
      if (rest.length < len) rest = Buffer.concat([rest, await readN(s, len - rest.length)]);
      if (rest.length > len) s.unshift(rest.subarray(len));
      return { head, body: rest.subarray(0, len) };
    }
    buf = Buffer.concat([buf, await readN(s, 1)]);
  }
  throw new Error('no response head');
}

let stack: Stack;
let web: Awaited<ReturnType<typeof origin>>;
let web2: Awaited<ReturnType<typeof origin>>;
let echo: Local<net.Server>;
let authed: { client: Postern; port: number };
const dir = tempDir();

beforeAll(async () => {
  [web, web2, echo] = await Promise.all([origin(), origin(), echoServer('127.0.0.1')]);
  stack = await startStack();
  authed = await startClient(stack.uri, ['--user', 'alice', '--pass', 's3cret-pass']);
});

afterAll(async () => {
  await stopAll();
  await Promise.all([web?.close(), web2?.close(), echo?.close()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('HTTP proxy on the mixed port (curl -x http://)', () => {
  it('forwards an absolute-form GET; the name goes to the bridge unresolved', async () => {
    const r = await curl(['-x', `http://127.0.0.1:${stack.socksPort}`, `http://localhost:${web.port}/plain?x=1`]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout).url).toBe('/plain?x=1');
  });

  it('tunnels with CONNECT (curl -p): 200 Connection established, then bytes both ways', async () => {
    const r = await curl(['-p', '-v', '-x', `http://127.0.0.1:${stack.socksPort}`, `http://localhost:${web.port}/via-connect`]);
    expect(r.stderr).toContain('HTTP/1.1 200 Connection established');
    expect(JSON.parse(r.stdout).url).toBe('/via-connect');
    expect(web.seen.at(-1)?.headers['proxy-connection']).toBeUndefined();
  });

  it('relays 2 MiB through CONNECT and 2 MiB through plain HTTP intact', async () => {
    const want = sha256(deterministicBytes(2 * 1024 * 1024));
    for (const extra of [['-p'], []]) {
      const r = await exec('sh', ['-c', `curl -s --max-time 30 ${extra.join(' ')} -x http://127.0.0.1:${stack.socksPort} http://localhost:${web.port}/bytes/${2 * 1024 * 1024} | sha256sum`]);
      expect(r.stdout.split(' ')[0]).toBe(want);
    }
  });

  it('CONNECT: bytes sent right behind the request head reach the destination; half-close is relayed', async () => {
    const s = await connectRaw(stack.socksPort);
    s.write(Buffer.concat([Buffer.from(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`), Buffer.from('early bytes')]));
    const reply = await readN(s, 39);
    expect(reply.toString()).toBe('HTTP/1.1 200 Connection established\r\n\r\n');
    expect((await readN(s, 11)).toString()).toBe('early bytes');
    s.end('late'); // our FIN: the echo server ends after echoing
    let rest = '';
    await new Promise<void>((resolve) => {
      s.on('data', (d: Buffer) => (rest += d.toString()));
      s.on('end', () => resolve());
      s.resume();
    });
    expect(rest).toBe('late');
    s.destroy();
  });

  it('removes hop-by-hop fields, rewrites to origin-form and sets Host from the URI', async () => {
    const s = await connectRaw(stack.socksPort);
    s.write(
      `GET http://localhost:${web.port}/hop HTTP/1.1\r\nHost: wrong.example\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\n` +
        'Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nTE: trailers\r\nX-End: kept\r\n\r\n',
    );
    const res = await readResponse(s);
    s.destroy();
    expect(res.head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(res.head).toMatch(/\r\nConnection: keep-alive(\r\n|$)/i);
    const seen = web.seen.find((x) => x.url === '/hop') as Seen;
    expect(seen.headers.host).toBe(`localhost:${web.port}`);
    expect(seen.headers['x-end']).toBe('kept');
    for (const h of ['x-hop', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te']) expect(seen.headers[h]).toBeUndefined();
    expect(seen.headers.connection).toBe('close');
  });

  it('keeps the app connection alive across requests to different hosts, pipelined too', async () => {
    const s = await connectRaw(stack.socksPort);
    s.write(`GET http://localhost:${web.port}/one HTTP/1.1\r\nHost: x\r\n\r\n`);
    const r1 = await readResponse(s);
    expect(JSON.parse(r1.body.toString()).url).toBe('/one');
    // Two pipelined requests, to another host and back, in one write.
    s.write(`GET http://127.0.0.1:${web2.port}/two HTTP/1.1\r\nHost: x\r\n\r\nGET http://localhost:${web.port}/chunked HTTP/1.1\r\nHost: x\r\n\r\n`);
    const r2 = await readResponse(s);
    expect(JSON.parse(r2.body.toString()).url).toBe('/two');
    expect(web2.seen.some((x) => x.url === '/two')).toBe(true);
    // The chunked response is relayed as framed; the connection stays usable after it.
    const chunkedHead = (await readN(s, 1)).toString() + '';
    expect(chunkedHead).toBe('H');
    s.write(`GET http://localhost:${web.port}/three HTTP/1.0\r\n\r\n`);
    let rest = Buffer.alloc(0);
    await new Promise<void>((resolve) => {
      s.on('data', (d: Buffer) => (rest = Buffer.concat([rest, d])));
      s.on('end', () => resolve());
      s.resume();
    });
    const text = rest.toString('latin1');
    expect(text).toMatch(/transfer-encoding: chunked/i);
    expect(text).toContain('part one;');
    expect(text).toContain('part two');
    expect(text).toContain('0\r\n\r\nHTTP/1.1 200 OK');
    expect(text).toContain('"/three"');
    expect(text).toMatch(/Connection: close\r\n/); // HTTP/1.0 without keep-alive: closed after
    s.destroy();
  });

  it('streams request bodies with Content-Length and chunked (curl --data-binary)', async () => {
    const file = path.join(dir, 'body.bin');
    const data = deterministicBytes(3 * 1024 * 1024 + 7, 'upload');
    fs.writeFileSync(file, data);
    for (const extra of [[], ['-H', 'Transfer-Encoding: chunked']]) {
      const r = await curl(['-x', `http://127.0.0.1:${stack.socksPort}`, '--data-binary', `@${file}`, ...extra, `http://localhost:${web.port}/upload`]);
      const got = JSON.parse(r.stdout);
      expect(got).toEqual({ url: '/upload', sha: sha256(data), len: data.length });
    }
  });

  it('a slow reader of a large plain HTTP response does not make the client buffer it', async () => {
    const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${stack.client.pid}/status`, 'utf8'))?.[1]) * 1024;
    const size = 64 * 1024 * 1024;
    const before = rss();
    const s = await connectRaw(stack.socksPort);
    s.write(`GET http://localhost:${web.port}/zeros/${size} HTTP/1.1\r\nHost: x\r\n\r\n`);
    s.pause();
    await new Promise((r) => setTimeout(r, 1_500)); // nothing read: the stream's window fills and stops
    const during = rss();
    let got = 0;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`slow read stalled at ${got}`)), 30_000);
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= size) {
          clearTimeout(t);
          resolve();
        }
      });
      s.resume();
    });
    s.destroy();
    expect(got).toBeGreaterThan(size); // head + body
    expect(during - before).toBeLessThan(24 * 1024 * 1024); // unbounded, it grows by most of the 64 MiB (measured: ≈ 11 MB bounded, ≈ 42 MB without pausing the stream)
  });

  it('serves the PAC file at /proxy.pac', async () => {
    const r = await curl(['-D', '-', `http://127.0.0.1:${stack.socksPort}/proxy.pac`]);
    expect(r.stdout).toMatch(/content-type: application\/x-ns-proxy-autoconfig/i);
    expect(r.stdout).toContain(`function FindProxyForURL(url, host) {\n  return "PROXY 127.0.0.1:${stack.socksPort}";\n}`);
  });

  it('answers a refused destination with 502 (plain HTTP, also in the optimistic default) and a malformed or oversize head with 400/431', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const r = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${stack.socksPort}`, `http://127.0.0.1:${deadPort}/`]);
    expect(r.stdout).toBe('502');
    // HTTP CONNECT: 200 at once, then a reset by default; 502 with --exact-replies (open-replies.test.ts).

    const bad = await connectRaw(stack.socksPort);
    bad.write('GET http://x/ HTTP/1.1\r\nBad Header: 1\r\n\r\n');
    expect((await readResponse(bad)).head).toMatch(/^HTTP\/1\.1 400 /);
    bad.destroy();
    const big = await connectRaw(stack.socksPort);
    big.write(`GET http://x/ HTTP/1.1\r\nX: ${'a'.repeat(40 * 1024)}\r\n\r\n`);
    expect((await readResponse(big)).head).toMatch(/^HTTP\/1\.1 431 /);
    big.destroy();
  });

  it('serves a SOCKS5 and an HTTP client on the same port at the same time', async () => {
    const [a, b] = await Promise.all([
      curl(['--socks5-hostname', `127.0.0.1:${stack.socksPort}`, `http://localhost:${web.port}/by-socks`]),
      curl(['-x', `http://127.0.0.1:${stack.socksPort}`, `http://localhost:${web.port}/by-http`]),
    ]);
    expect(JSON.parse(a.stdout).url).toBe('/by-socks');
    expect(JSON.parse(b.stdout).url).toBe('/by-http');
  });
});

describe('HTTP proxy authentication (Proxy-Authorization: Basic)', () => {
  it('accepts the right credentials, plain and CONNECT', async () => {
    for (const extra of [[], ['-p']]) {
      const r = await curl([...extra, '-x', `http://127.0.0.1:${authed.port}`, '--proxy-user', 'alice:s3cret-pass', `http://localhost:${web.port}/authed`]);
      expect(JSON.parse(r.stdout).url).toBe('/authed');
    }
  });

  it('answers 407 with Proxy-Authenticate when credentials are missing or wrong', async () => {
    const none = await curl(['-D', '-', '-o', '/dev/null', '-x', `http://127.0.0.1:${authed.port}`, `http://localhost:${web.port}/x`]);
    expect(none.stdout).toMatch(/^HTTP\/1\.1 407 /);
    expect(none.stdout).toContain('Proxy-Authenticate: Basic realm="proxy"');
    for (const cred of ['alice:wrong', 'bob:s3cret-pass', 'alice:', 'alice:s3cret-passX']) {
      const r = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${authed.port}`, '--proxy-user', cred, `http://localhost:${web.port}/x`]);
      expect(r.stdout).toBe('407');
    }
    const c = await curl(['-p', '-o', '/dev/null', '-w', '%{http_connect}', '-x', `http://127.0.0.1:${authed.port}`, '--proxy-user', 'alice:nope', `http://localhost:${web.port}/x`]);
    expect(c.stdout).toBe('407');
    expect(web.seen.some((x) => x.url === '/x')).toBe(false);
  });

  it('still needs SOCKS5 credentials on the same mixed port', async () => {
    const bad = await curl(['--socks5-hostname', `127.0.0.1:${authed.port}`, `http://localhost:${web.port}/s`]);
    expect(bad.code).not.toBe(0);
    const ok = await curl(['--socks5-hostname', `127.0.0.1:${authed.port}`, '--proxy-user', 'alice:s3cret-pass', `http://localhost:${web.port}/s`]);
    expect(JSON.parse(ok.stdout).url).toBe('/s');
  });
});

describe('bridge policy refusal', () => {
  it('maps NOT_ALLOWED to 403: plain HTTP in the optimistic default, CONNECT with --exact-replies', async () => {
    const { port: bport } = await startBridge(path.join(stack.dir, 'bridge.json'), []);
    const [{ port }, { port: exactPort }] = await Promise.all([
      startClient(withPort(stack.uri, bport)),
      startClient(withPort(stack.uri, bport), ['--exact-replies']),
    ]);
    const r = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${port}`, `http://127.0.0.1:${web.port}/forbidden`]);
    expect(r.stdout).toBe('403');
    for (const p of [port, exactPort]) {
      const plain = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${p}`, `http://127.0.0.1:${web.port}/forbidden`]);
      expect(plain.stdout).toBe('403');
    }
    const c = await curl(['-p', '-o', '/dev/null', '-w', '%{http_connect}', '-x', `http://127.0.0.1:${exactPort}`, `http://127.0.0.1:${web.port}/forbidden`]);
    expect(c.stdout).toBe('403');
  });
});

describe('separate listeners, forwards and the WhatsApp entry point', () => {
  let client: Postern;
  let echo2: Local<net.Server>;
  const ports: Record<string, number> = {};

  beforeAll(async () => {
    echo2 = await echoServer('127.0.0.1');
    client = new Postern([
      'client', '--bridge', stack.uri, '--listen', '127.0.0.1:0', '--no-auth',
      '--socks', '127.0.0.1:0', '--http', '127.0.0.1:0',
      '--forward', `0=127.0.0.1:${echo.port}`,
      '--whatsapp', '--whatsapp-ports', 'chat-tls=0,chat=0,media=0,http=0',
      '--whatsapp-target', `chat=127.0.0.1:${echo.port},media=127.0.0.1:${echo2.port},http=127.0.0.1:${web.port}`,
    ]);
    await client.waitFor((l) => l.msg === 'listening' && l.name === 'whatsapp media', 20_000, 'all listeners');
    for (const l of client.lines.filter((x) => x.msg === 'listening')) ports[String(l.name ?? 'mixed')] = l.port as number;
  });

  afterAll(async () => {
    await client?.stop();
    await echo2?.close();
  });

  it('serves SOCKS5 only on --socks and HTTP only on --http', async () => {
    const s = await curl(['--socks5-hostname', `127.0.0.1:${ports.socks}`, `http://localhost:${web.port}/socks-only`]);
    expect(JSON.parse(s.stdout).url).toBe('/socks-only');
    const h = await curl(['-x', `http://127.0.0.1:${ports.http}`, `http://localhost:${web.port}/http-only`]);
    expect(JSON.parse(h.stdout).url).toBe('/http-only');
    const wrong = await curl(['-x', `http://127.0.0.1:${ports.socks}`, `http://localhost:${web.port}/nope`]);
    expect(wrong.code).not.toBe(0);
  });

  async function roundTrip(sock: net.Socket, bytes: Buffer): Promise<string> {
    const h = crypto.createHash('sha256');
    let got = 0;
    const done = new Promise<void>((resolve, reject) => {
      sock.on('data', (d: Buffer) => {
        h.update(d);
        got += d.length;
        if (got >= bytes.length) resolve();
      });
      sock.on('error', reject);
      setTimeout(() => reject(new Error(`timeout after ${got} bytes`)), 20_000);
    });
    sock.resume();
    sock.write(bytes);
    await done;
    sock.destroy();
    return h.digest('hex');
  }

  it('--forward: a connection to the local port reaches the fixed destination', async () => {
    const data = deterministicBytes(1024 * 1024, 'fwd');
    expect(await roundTrip(await connectRaw(ports.forward as number), data)).toBe(sha256(data));
  });

  it('WhatsApp: TLS to the chat-tls port and plain to the chat and media ports relay bytes intact', async () => {
    const data = deterministicBytes(512 * 1024, 'wa');
    const t = tls.connect({ host: '127.0.0.1', port: ports['whatsapp chat-tls'] as number, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      t.once('secureConnect', () => resolve());
      t.once('error', reject);
    });
    expect(t.getPeerCertificate().subject?.CN).toBe('localhost'); // our generated, self-signed certificate
    expect(await roundTrip(t as unknown as net.Socket, data)).toBe(sha256(data));
    expect(await roundTrip(await connectRaw(ports['whatsapp chat'] as number), data)).toBe(sha256(data));
    expect(await roundTrip(await connectRaw(ports['whatsapp media'] as number), data)).toBe(sha256(data));
    expect(echo2.server.listening).toBe(true);
  });

  it('WhatsApp: the http role relays to its own target', async () => {
    const s = await connectRaw(ports['whatsapp http'] as number);
    s.write('GET /wa-http HTTP/1.1\r\nHost: g.whatsapp.net\r\n\r\n');
    const r = await readResponse(s);
    s.destroy();
    expect(JSON.parse(r.body.toString()).url).toBe('/wa-http');
  });
});

describe('--lan (phone sharing)', () => {
  it('generates credentials, prints the tg:// link, and the printed credentials work', async () => {
    const p = new Postern(['client', '--bridge', stack.uri, '--lan', '--listen', '127.0.0.1:0']);
    const port = await p.listening('socks');
    await p.waitFor(() => /tg:\/\/socks\?/.test(p.stderr), 10_000, 'tg link');
    const m = /tg:\/\/socks\?server=([^&\s]+)&port=(\d+)&user=([^&\s]+)&pass=([^&\s]+)/.exec(p.stderr);
    expect(m).not.toBeNull();
    const [, , tgPort, user, pass] = m as RegExpExecArray;
    expect(Number(tgPort)).toBe(port);
    // Bound to loopback, no phone can reach it: no QR code or Wi-Fi payload, but why (test/integration/phones.test.ts).
    await p.waitFor(() => p.stderr.includes('No QR code and no address for phones'), 10_000, 'why no QR code');
    expect(p.stderr).not.toContain('Wi-Fi proxy: Manual');
    expect(p.stderr).toContain(`Username: ${decodeURIComponent(user as string)}`);
    // The listener needs them (it is never open) and accepts them, on both protocols.
    const open = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${port}`, `http://localhost:${web.port}/lan`]);
    expect(open.stdout).toBe('407');
    const cred = `${decodeURIComponent(user as string)}:${decodeURIComponent(pass as string)}`;
    const h = await curl(['-x', `http://127.0.0.1:${port}`, '--proxy-user', cred, `http://localhost:${web.port}/lan-http`]);
    expect(JSON.parse(h.stdout).url).toBe('/lan-http');
    const s = await curl(['--socks5-hostname', `127.0.0.1:${port}`, '--proxy-user', cred, `http://localhost:${web.port}/lan-socks`]);
    expect(JSON.parse(s.stdout).url).toBe('/lan-socks');
    // Secrets go to the terminal (stderr), never to the JSON log.
    expect(p.stdout).not.toContain(decodeURIComponent(pass as string));
    await p.stop();
  });

  it('refuses --lan with --insecure-open-proxy, and an open non-loopback listener without --lan', async () => {
    const a = await runPostern(['client', '--bridge', stack.uri, '--lan', '--listen', '127.0.0.1:0', '--insecure-open-proxy']);
    expect(a.code).toBe(78);
    expect(a.stderr).toContain('--lan never runs an open proxy');
    const b = await runPostern(['client', '--bridge', stack.uri, '--listen', '0.0.0.0:0', '--no-auth']);
    expect(b.code).toBe(78);
    expect(b.stderr).toContain('--no-auth is for loopback listeners only');
    const c = await runPostern(['client', '--bridge', stack.uri, '--lan', '--listen', '127.0.0.1:0', '--no-auth']);
    expect(c.code).toBe(78);
    expect(c.stderr).toContain('--no-auth is for loopback listeners only; --lan always asks for the username and password');
  });
});
