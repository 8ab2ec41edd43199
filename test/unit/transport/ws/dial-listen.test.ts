import net from 'node:net';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PosternError } from '../../../../src/core/errors.js';
import { defaultLimits } from '../../../../src/core/limits.js';
import { silentLogger } from '../../../../src/log/logger.js';
import type { FrameTransport } from '../../../../src/mux/transport.js';
import { generateSecret, makeToken, TokenVerifier } from '../../../../src/transport/auth.js';
import { spkiSha256 } from '../../../../src/transport/certs.js';
import { generateSelfSigned } from '../../../../src/transport/self-signed.js';
import { dialBridge } from '../../../../src/transport/registry.js';
import { nativeMaskingActive } from '../../../../src/transport/ws/dialer.js';
import { notFoundResponse } from '../../../../src/transport/listener.js';
import {
  captureLogger,
  closedPort,
  onCleanup,
  rawAnswer,
  rawExchange,
  startBridge,
  stopAll,
  track,
  within,
} from '../helpers.js';

let cert: { keyPem: string; certPem: string };
let pin: Buffer;
const logger = silentLogger();
const limits = defaultLimits();

beforeAll(() => {
  cert = generateSelfSigned({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
  pin = spkiSha256(cert.certPem);
});
afterEach(stopAll);

async function dialError(p: Promise<FrameTransport>): Promise<PosternError> {
  try {
    track(await p);
  } catch (err) {
    expect(err).toBeInstanceOf(PosternError);
    return err as PosternError;
  }
  throw new Error('dial succeeded');
}

function collect(t: FrameTransport, n: number): Promise<Buffer[]> {
  const got: Buffer[] = [];
  return within(
    new Promise((resolve) => {
      t.onMessage((m) => {
        got.push(m);
        if (got.length === n) resolve(got);
      });
    }),
    10_000,
    `${n} messages`,
  );
}

function numbered(i: number, size: number): Buffer {
  const b = Buffer.alloc(size, i & 0xff);
  b.writeUInt32BE(i, 0);
  return b;
}

/** A TLS server that records what each connection sent and optionally answers once headers end. */
async function captureServer(answer?: string) {
  const conns: Array<{ bytes: Buffer[]; closed: Promise<void> }> = [];
  let tcp = 0;
  const srv = tls.createServer({ key: cert.keyPem, cert: cert.certPem, ALPNProtocols: ['http/1.1'] }, (s) => {
    const c = { bytes: [] as Buffer[], closed: new Promise<void>((r) => s.once('close', () => r())) };
    conns.push(c);
    s.on('error', () => s.destroy());
    s.on('data', (d: Buffer) => {
      c.bytes.push(d);
      if (answer !== undefined && Buffer.concat(c.bytes).includes('\r\n\r\n')) s.end(answer);
    });
  });
  const rawClosed: Array<Promise<void>> = [];
  srv.on('connection', (s: net.Socket) => {
    tcp++;
    rawClosed.push(new Promise<void>((r) => s.once('close', () => r())));
  });
  srv.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  onCleanup(() => new Promise<void>((r) => srv.close(() => r())));
  const { port } = srv.address() as net.AddressInfo;
  return {
    port,
    conns,
    tcpCount: () => tcp,
    allClosed: () => within(Promise.all(rawClosed), 5_000, 'server sockets closing'),
  };
}

/** A TLS server that records each connection's SNI and Host header, then answers 404. */
async function sniHostServer(): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = [];
  const srv = tls.createServer({
    key: cert.keyPem,
    cert: cert.certPem,
    SNICallback: (name, cb) => {
      seen.push(name);
      cb(null, tls.createSecureContext({ key: cert.keyPem, cert: cert.certPem }));
    },
  });
  srv.on('secureConnection', (s) => {
    s.on('error', () => s.destroy());
    s.on('data', (d: Buffer) => {
      seen.push(/\r\nHost: ([^\r]*)/i.exec(d.toString('latin1'))?.[1] ?? '');
      s.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  onCleanup(() => new Promise<void>((r) => srv.close(() => r())));
  return { port: (srv.address() as net.AddressInfo).port, seen };
}

describe('dialBridge ↔ createBridgeListener over TLS (protocol.md §2)', () => {
  it('connects with the right secret and pin, and messages flow both ways in order', async () => {
    const b = await startBridge({ tls: cert, pin });
    const client = track(await dialBridge(b.info(), { limits, logger }));
    const { transport: server, user } = await b.nextSession();
    expect(user).toBe('alice');
    expect([...(client.peerFeatures ?? [])]).toEqual(['early-data', 'tally']); // the 101's Postern-Features (§2)

    const sizes = [4, 10, 1000, 65_546, 200_000, 256 * 1024];
    const n = 60;
    const atServer = collect(server, n);
    const atClient = collect(client, n);
    for (let i = 0; i < n; i++) client.send(numbered(i, sizes[i % sizes.length] as number));
    for (let i = 0; i < n; i++) server.send(numbered(1000 + i, sizes[(i + 3) % sizes.length] as number));
    const [s, c] = await Promise.all([atServer, atClient]);
    s.forEach((m, i) => expect(m.equals(numbered(i, sizes[i % sizes.length] as number))).toBe(true));
    c.forEach((m, i) => expect(m.equals(numbered(1000 + i, sizes[(i + 3) % sizes.length] as number))).toBe(true));
  });

  it('closes cleanly in both directions with the code given', async () => {
    const b = await startBridge({ tls: cert, pin });
    const client = track(await dialBridge(b.info(), { limits, logger }));
    const { transport: server } = await b.nextSession();
    // A transport reads nothing, close frames included, until someone listens for messages.
    server.onMessage(() => undefined);
    client.onMessage(() => undefined);
    const atServer = new Promise<{ code: number }>((r) => server.onClose(r));
    const atClient = new Promise<{ code: number }>((r) => client.onClose(r));
    client.close(1000, 'done');
    expect((await within(atServer, 5_000)).code).toBe(1000);
    expect((await within(atClient, 5_000)).code).toBe(1000);
    client.send(Buffer.from('ignored after close')); // must not throw
  });

  it('reports E_AUTH_REJECTED with the 404 for a wrong secret', async () => {
    const b = await startBridge({ tls: cert, pin });
    const err = await dialError(dialBridge(b.info({ secret: generateSecret() }), { limits, logger }));
    expect(err.code).toBe('E_AUTH_REJECTED');
    expect(err.message).toMatch(/bridge answered 404: wrong secret or path, or not a Postern bridge/);
    expect(b.sessions).toHaveLength(0);
  });

  it('reports E_AUTH_REJECTED for a wrong path', async () => {
    const b = await startBridge({ tls: cert, pin });
    const err = await dialError(dialBridge(b.info({ path: '/tunnel-8f3b' }), { limits, logger }));
    expect(err.code).toBe('E_AUTH_REJECTED');
    expect(err.message).toMatch(/404/);
  });

  it('reports E_PIN_MISMATCH with both pins for a wrong pin', async () => {
    const b = await startBridge({ tls: cert, pin });
    const wrong = Buffer.alloc(32, 0xab);
    const err = await dialError(dialBridge(b.info({ pin: wrong }), { limits, logger }));
    expect(err.code).toBe('E_PIN_MISMATCH');
    expect(err.message).toContain(`expected ${wrong.toString('base64url')} got ${pin.toString('base64url')}`);
  });

  it('sends no HTTP byte to a server whose pin does not match', async () => {
    const srv = await captureServer('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    const info = { secret: generateSecret(), host: '127.0.0.1', port: srv.port, path: '/p', pin: Buffer.alloc(32, 1), plain: false };
    const err = await dialError(dialBridge(info, { limits, logger }));
    expect(err.code).toBe('E_PIN_MISMATCH');
    await srv.allClosed();
    expect(srv.tcpCount()).toBe(1);
    expect(Buffer.concat(srv.conns.flatMap((c) => c.bytes))).toHaveLength(0);
  });

  it('sends the §2 upgrade request on the TLS connection it verified, and nothing else', async () => {
    const srv = await captureServer('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    const secret = generateSecret();
    const info = { secret, host: '127.0.0.1', port: srv.port, path: '/s/p', pin, plain: false };
    const err = await dialError(dialBridge(info, { limits, logger }));
    expect(err.code).toBe('E_AUTH_REJECTED');
    expect(srv.tcpCount()).toBe(1); // ws used the socket we handed it, no second connection
    const text = Buffer.concat(srv.conns[0]?.bytes ?? []).toString('latin1');
    const [requestLine, ...headerLines] = text.split('\r\n\r\n')[0]?.split('\r\n') ?? [];
    expect(requestLine).toBe('GET /s/p HTTP/1.1');
    const headers = new Map(headerLines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    expect(headers.get('host')).toBe(`127.0.0.1:${srv.port}`);
    expect(headers.get('upgrade')).toBe('websocket');
    expect(headers.get('connection')).toBe('Upgrade');
    expect(headers.get('sec-websocket-version')).toBe('13');
    expect(Buffer.from(headers.get('sec-websocket-key') ?? '', 'base64')).toHaveLength(16);
    expect(headers.has('sec-websocket-extensions')).toBe(false);
    expect(headers.has('sec-websocket-protocol')).toBe(false);
    const token = /^Bearer ([A-Za-z0-9_-]{87})$/.exec(headers.get('authorization') ?? '')?.[1];
    const v = new TokenVerifier([{ name: 'u', secret }], { windowMs: 120_000, replayCacheCount: 10 });
    expect(v.verify(token, '/s/p')).toMatchObject({ ok: true, user: 'u' });
  });

  it('uses the sni as TLS server name and Host header', async () => {
    const srv = await captureServer('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    // Observe the SNI through a second server with an SNICallback.
    const { port, seen: names } = await sniHostServer();
    const info = { secret: generateSecret(), host: '127.0.0.1', port, path: '/', pin, sni: 'cdn.example.com', plain: false };
    expect((await dialError(dialBridge(info, { limits, logger }))).code).toBe('E_AUTH_REJECTED');
    expect(names).toEqual(['cdn.example.com', `cdn.example.com:${port}`]);
    expect(srv.tcpCount()).toBe(0);
  });

  it('reports E_TLS for a self-signed certificate when no pin is given', async () => {
    const b = await startBridge({ tls: cert });
    const err = await dialError(dialBridge(b.info(), { limits, logger }));
    expect(err.code).toBe('E_TLS');
    expect(err.message).toMatch(/self.signed certificate/i);
    expect(b.sessions).toHaveLength(0);
  });

  it('verifies CA and host name without a pin: a trusted certificate connects, a wrong name is E_TLS', async () => {
    const b = await startBridge({ tls: cert });
    track(await dialBridge(b.info(), { limits, logger, ca: cert.certPem }));
    await b.nextSession();
    const err = await dialError(dialBridge(b.info({ sni: 'other.example' }), { limits, logger, ca: cert.certPem }));
    expect(err.code).toBe('E_TLS');
    expect(err.message).toMatch(/altnames|does not match/i);
  });

  it('reports E_DIAL with the errno for a closed port', async () => {
    const port = await closedPort();
    const err = await dialError(dialBridge({ secret: generateSecret(), host: '127.0.0.1', port, path: '/', pin, plain: false }, { limits, logger }));
    expect(err.code).toBe('E_DIAL');
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it('reports E_DIAL after DIAL_TIMEOUT_MS when the server never answers the TLS handshake', async () => {
    const silent = net.createServer((s) => onCleanup(() => void s.destroy()));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    onCleanup(() => new Promise<void>((r) => silent.close(() => r())));
    const port = (silent.address() as net.AddressInfo).port;
    const started = Date.now();
    const err = await dialError(
      dialBridge({ secret: generateSecret(), host: '127.0.0.1', port, path: '/', pin, plain: false }, { limits: defaultLimits({ DIAL_TIMEOUT_MS: 300 }), logger }),
    );
    expect(err.code).toBe('E_DIAL');
    expect(err.message).toMatch(/timed out after 300 ms \(TLS handshake\)/);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('stops dialing when the signal aborts', async () => {
    const b = await startBridge({ tls: cert, pin });
    const ac = new AbortController();
    ac.abort();
    expect((await dialError(dialBridge(b.info(), { limits, logger, signal: ac.signal }))).message).toMatch(/aborted/);
    const ac2 = new AbortController();
    const p = dialBridge(b.info(), { limits, logger, signal: ac2.signal });
    ac2.abort();
    const err = await dialError(p);
    expect(err.code).toBe('E_DIAL');
    expect(err.message).toMatch(/aborted/);
  });

  it('takes a new certificate for new connections after setTls', async () => {
    const b = await startBridge({ tls: cert, pin });
    const next = generateSelfSigned({ commonName: 'localhost', altNames: ['127.0.0.1'] });
    const nextPin = spkiSha256(next.certPem);
    b.listener.setTls(next.keyPem, next.certPem);
    expect((await dialError(dialBridge(b.info(), { limits, logger }))).code).toBe('E_PIN_MISMATCH');
    track(await dialBridge(b.info({ pin: nextPin }), { limits, logger }));
    await b.nextSession();
  });

  it('ends open sessions when the listener closes', async () => {
    const b = await startBridge({ tls: cert, pin });
    const client = track(await dialBridge(b.info(), { limits, logger }));
    await b.nextSession();
    const closed = new Promise((r) => client.onClose(r));
    await within(b.listener.close(), 5_000, 'listener close');
    await within(closed, 5_000, 'client close');
    expect((await dialError(dialBridge(b.info(), { limits, logger }))).code).toBe('E_DIAL');
  });

  it('drops the session when onSession throws', async () => {
    const b = await startBridge({
      tls: cert,
      pin,
      onSession: () => {
        throw new Error('boom');
      },
    });
    const client = track(await dialBridge(b.info(), { limits, logger }));
    await within(new Promise((r) => client.onClose(r)), 5_000, 'client close');
  });

  it('opens TCP to the relay named by connect (§1), keeping the bridge as TLS name, pin and Host', async () => {
    const b = await startBridge({ tls: cert, pin });
    const direct = b.info();
    // The bridge's own name does not resolve: only the relay address can have been dialled.
    const relayed = { ...direct, host: 'bridge.invalid', port: 443, connect: { host: '127.0.0.1', port: direct.port } };
    track(await dialBridge(relayed, { limits, logger }));
    expect((await b.nextSession()).user).toBe('alice');

    const { port, seen } = await sniHostServer();
    const info = { secret: generateSecret(), host: 'bridge.invalid', port: 8443, path: '/', pin, connect: { host: '127.0.0.1', port }, plain: false };
    expect((await dialError(dialBridge(info, { limits, logger }))).code).toBe('E_AUTH_REJECTED');
    expect(seen).toEqual(['bridge.invalid', 'bridge.invalid:8443']);
  });

  it('works over plain ws:// on loopback (plain=1)', async () => {
    const b = await startBridge({ tls: null });
    const client = track(await dialBridge(b.info(), { limits, logger }));
    const { transport: server } = await b.nextSession();
    const got = collect(server, 1);
    client.send(Buffer.from('hello'));
    expect((await got)[0]?.toString()).toBe('hello');
    const back = collect(client, 1);
    server.send(Buffer.from('world'));
    expect((await back)[0]?.toString()).toBe('world');
  });

  it('refuses plain=1 for a non-loopback host or relay without connecting', async () => {
    const err = await dialError(dialBridge({ secret: generateSecret(), host: '192.0.2.1', port: 80, path: '/', plain: true }, { limits, logger }));
    expect(err.code).toBe('E_BAD_URI');
    const viaRelay = { secret: generateSecret(), host: '127.0.0.1', port: 80, path: '/', connect: { host: '192.0.2.1', port: 80 }, plain: true };
    expect((await dialError(dialBridge(viaRelay, { limits, logger }))).code).toBe('E_BAD_URI');
  });

  it('reports whether native masking is active without throwing', () => {
    expect(typeof nativeMaskingActive()).toBe('boolean');
  });
});

// ── The one 404 ────────────────────────────────────────────────────────────────────────────────

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
function upgradeRequest(path: string, extra: Record<string, string> = {}, version = '1.1'): string {
  const headers: Record<string, string> = {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': WS_KEY,
    'Sec-WebSocket-Version': '13',
    ...extra,
  };
  return `GET ${path} HTTP/${version}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}
const withoutDate = (b: Buffer): string => b.toString('latin1').replace(/\r\nDate: [^\r]*\r\n/, '\r\nDate: *\r\n');
/** Date aside, and whether the connection is kept (nginx's rule by request, checked against nginx in nginx-compare.test.ts). */
const withoutDateOrConnection = (b: Buffer): string => withoutDate(b).replace(/\r\nConnection: (close|keep-alive)\r\n/, '\r\nConnection: *\r\n');

/** Sends a request and returns the response head; the connection stays with the server (a 101). */
function rawHead(port: number, request: string): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      let text = '';
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => s.write(request));
      onCleanup(() => void s.destroy());
      s.on('error', reject);
      s.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (text.includes('\r\n\r\n')) resolve(text.slice(0, text.indexOf('\r\n\r\n')));
      });
      s.on('close', () => resolve(text));
    }),
    5_000,
    'response head',
  );
}

const CLOSE = 'Connection: close\r\n';

describe('the bridge refuses everything else with the decoy’s 404 (protocol.md §2)', () => {
  it('answers GET /x like nginx: status, headers, and the default body', async () => {
    const b = await startBridge({ tls: cert });
    const res = await rawExchange(b.port, `GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n${CLOSE}\r\n`);
    const text = res.toString('latin1');
    expect(text).toMatch(
      /^HTTP\/1\.1 404 Not Found\r\nServer: nginx\/1\.22\.1\r\nDate: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT\r\nContent-Type: text\/html\r\nContent-Length: (\d+)\r\nConnection: close\r\n\r\n<html>/,
    );
    const body = text.slice(text.indexOf('\r\n\r\n') + 4);
    expect(Number(/Content-Length: (\d+)/.exec(text)?.[1])).toBe(Buffer.byteLength(body, 'latin1'));
    expect(res.equals(notFoundResponse(new Date(Date.parse(/Date: ([^\r]*)/.exec(text)?.[1] ?? '')), false))).toBe(true);
  });

  it('gives byte-identical answers (apart from Date) to GET /x, an upgrade to /x, and the secret path with a bad token', async () => {
    const b = await startBridge({ tls: cert });
    const good = makeToken(b.secret, b.path, Date.now());
    const reference = withoutDateOrConnection(await rawExchange(b.port, `GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n${CLOSE}\r\n`));
    const others = [
      upgradeRequest('/x', { Authorization: `Bearer ${makeToken(b.secret, '/x', Date.now())}` }),
      upgradeRequest(b.path, { Authorization: `Bearer ${makeToken(generateSecret(), b.path, Date.now())}` }),
      upgradeRequest(b.path, { Authorization: `Bearer ${good.slice(0, -1)}${good.endsWith('A') ? 'B' : 'A'}` }),
      upgradeRequest(b.path, { Authorization: `Bearer ${makeToken(b.secret, b.path, Date.now() - 10 * 60_000)}` }),
      upgradeRequest(b.path, { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }),
      upgradeRequest(b.path),
      upgradeRequest(`${b.path}?x=1`, { Authorization: `Bearer ${makeToken(b.secret, `${b.path}?x=1`, Date.now())}` }),
      upgradeRequest(b.path, { Authorization: `Bearer ${good}` }, '1.0'),
      upgradeRequest(b.path, { Authorization: `Bearer ${good}`, 'Sec-WebSocket-Protocol': 'chat' }),
      upgradeRequest(b.path, { Authorization: `Bearer ${good}`, 'Sec-WebSocket-Key': 'short' }),
      upgradeRequest(b.path, { Authorization: `Bearer ${good}`, Upgrade: 'h2c' }),
      `GET ${b.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${good}\r\n${CLOSE}\r\n`,
      `GET ${b.path} HTTP/1.0\r\n\r\n`,
      'POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc',
      'POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n',
    ];
    for (const req of others) {
      expect(withoutDateOrConnection(await rawAnswer(b.port, req)), req.split('\r\n')[0]).toBe(reference);
    }
    // The valid token was never consumed by the malformed upgrades above.
    expect(await rawHead(b.port, upgradeRequest(b.path, { Authorization: `Bearer ${good}` }))).toMatch(/^HTTP\/1\.1 101 /);
    // …and once used, it is refused like everything else.
    expect(withoutDateOrConnection(await rawAnswer(b.port, upgradeRequest(b.path, { Authorization: `Bearer ${good}` })))).toBe(reference);
  });

  it('answers HEAD with the same head and no body', async () => {
    const b = await startBridge({ tls: cert });
    const get = withoutDate(await rawExchange(b.port, `GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n${CLOSE}\r\n`));
    const head = withoutDate(await rawExchange(b.port, `HEAD /x HTTP/1.1\r\nHost: 127.0.0.1\r\n${CLOSE}\r\n`));
    expect(head).toBe(get.slice(0, get.indexOf('\r\n\r\n') + 4));
  });

  it('gives the same bytes over plain HTTP as over TLS', async () => {
    const t = await startBridge({ tls: cert });
    const p = await startBridge({ tls: null });
    const a = withoutDateOrConnection(await rawExchange(t.port, `GET /x HTTP/1.1\r\nHost: a\r\n${CLOSE}\r\n`));
    const c = withoutDateOrConnection(await rawAnswer(p.port, upgradeRequest('/x'), false));
    expect(c).toBe(a);
  });

  it('answers a header line over 8 KiB like nginx (400 "Request Header Or Cookie Too Large", close)', async () => {
    const b = await startBridge({ tls: cert });
    const res = await rawExchange(b.port, `GET /x HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(9 * 1024)}\r\n\r\n`);
    expect(res.toString('latin1')).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[^]*Connection: close\r\n\r\n[^]*400 Request Header Or Cookie Too Large/);
  });

  it('survives garbage and TLS errors from clients', async () => {
    const b = await startBridge({ tls: cert, pin });
    expect((await rawExchange(b.port, 'not http at all\r\n\r\n')).toString('latin1')).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    // A broken ClientHello gets OpenSSL's alert record (content type 21) and nothing else.
    const alert = await rawExchange(b.port, Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0, 0]), false);
    expect(alert[0]).toBe(21);
    expect(alert.toString('latin1')).not.toContain('HTTP');
    track(await dialBridge(b.info(), { limits, logger }));
    await b.nextSession();
  });

  it('logs refusals with their reason at debug, never the token or the client address', async () => {
    const { logger: captured, lines } = captureLogger('debug');
    const b = await startBridge({ tls: cert, pin, logger: captured });
    const token = makeToken(generateSecret(), b.path, Date.now());
    await rawAnswer(b.port, upgradeRequest(b.path, { Authorization: `Bearer ${token}` }));
    await rawAnswer(b.port, upgradeRequest('/elsewhere', { Authorization: `Bearer ${token}` }));
    track(await dialBridge(b.info(), { limits, logger }));
    await b.nextSession();
    const refusals = lines.map((l) => JSON.parse(l) as { level: number; msg: string; reason?: string }).filter((l) => l.msg === 'upgrade refused');
    expect(refusals.map((r) => [r.level, r.reason])).toEqual([
      [20, 'unknown_key'],
      [20, 'path'],
    ]);
    const all = lines.join('\n');
    expect(all).not.toContain(token);
    expect(all).not.toContain('127.0.0.1');
    expect(all).not.toContain(b.secret.toString('base64url'));
  });
});
