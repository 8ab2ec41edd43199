/**
 * A prober without the secret tries many requests against the real bridge binary and against
 * `postern decoy` (the same config served alone) and must get the same bytes (Date aside), and the
 * same close behaviour at the same time — docs/protocol.md §2. Also the client's clock-skew report
 * (§3): a skewed client is told E_CLOCK_SKEW, a prober with a recorded token sees only the decoy.
 */
import fs from 'node:fs';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PosternError } from '../../src/core/errors.js';
import { defaultLimits } from '../../src/core/limits.js';
import { silentLogger } from '../../src/log/logger.js';
import { SESSION_ID_BYTES, makeToken } from '../../src/transport/auth.js';
import { dialBridge } from '../../src/transport/registry.js';
import { parseShareUri } from '../../src/transport/uri.js';
import { runProbe as runHttpProbe, type ProbeOutcome } from '../helpers/http-probe.js';
import { Postern, stopAll } from '../helpers/proc.js';
import { init, withPort } from '../helpers/stack.js';

/** Small timeouts so that the close behaviour is seen quickly (protocol.md §2 gives the defaults). */
const LIMITS = { HANDSHAKE_TIMEOUT_MS: 1_500, HTTP_KEEPALIVE_TIMEOUT_MS: 1_000, HTTP_CLOSE_LINGER_MS: 300 };
/** A probe is cut (recorded as still open) after this. */
const PROBE_MAX_MS = 4_000;
/** Two close times are in the same class when this close. */
const TIMING_SLACK_MS = 450;

type Outcome = ProbeOutcome;

type Step = string | Buffer | { waitMs: number };

interface Probe {
  name: string;
  /** TLS (default) or raw TCP on the same port. */
  transport?: 'tls' | 'tcp';
  steps: (ctx: Ctx) => Step[];
}

interface Ctx {
  path: string;
  secret: Buffer;
  replayed: string;
}

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const upgrade = (path: string, extra: Record<string, string> = {}, version = '1.1'): string => {
  const h: Record<string, string> = {
    Host: 'bridge.example',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': WS_KEY,
    'Sec-WebSocket-Version': '13',
    ...extra,
  };
  return `GET ${path} HTTP/${version}\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
};
const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: bridge.example\r\n${extra}\r\n`;
const bearer = (t: string): Record<string, string> => ({ Authorization: `Bearer ${t}` });

/** The prober's table: every request a censor might try, none of them a valid upgrade. */
const PROBES: Probe[] = [
  { name: 'GET / (keep-alive, then idle)', steps: () => [get('/')] },
  { name: 'GET /index.html', steps: () => [get('/index.html')] },
  { name: 'GET a missing page', steps: () => [get('/wp-login.php')] },
  { name: 'GET /secret-path, no token', steps: (c) => [get(c.path)] },
  { name: 'GET /secret-path with a bad token, no upgrade', steps: (c) => [get(c.path, `Authorization: Bearer ${'A'.repeat(87)}\r\n`)] },
  { name: 'upgrade /secret-path without a token', steps: (c) => [upgrade(c.path)] },
  { name: 'upgrade /secret-path, malformed token', steps: (c) => [upgrade(c.path, bearer('not-a-token'))] },
  { name: 'upgrade /secret-path, token of another secret', steps: (c) => [upgrade(c.path, bearer(makeToken(Buffer.alloc(32, 7), c.path, Date.now())))] },
  { name: 'upgrade /secret-path, replayed valid token', steps: (c) => [upgrade(c.path, bearer(c.replayed))] },
  { name: 'upgrade /secret-path, expired token (valid MAC)', steps: (c) => [upgrade(c.path, bearer(makeToken(c.secret, c.path, Date.now() - 10 * 60_000)))] },
  { name: 'upgrade /secret-path, future token (valid MAC)', steps: (c) => [upgrade(c.path, bearer(makeToken(c.secret, c.path, Date.now() + 10 * 60_000)))] },
  { name: 'upgrade to a wrong path with a valid-MAC token', steps: (c) => [upgrade('/ws', bearer(makeToken(c.secret, '/ws', Date.now())))] },
  { name: 'upgrade with Sec-WebSocket-Version 8', steps: (c) => [upgrade(c.path, { 'Sec-WebSocket-Version': '8' })] },
  { name: 'upgrade with a subprotocol', steps: (c) => [upgrade(c.path, { 'Sec-WebSocket-Protocol': 'chat' })] },
  { name: 'upgrade over HTTP/1.0', steps: (c) => [upgrade(c.path, {}, '1.0')] },
  { name: 'HTTP/1.0 GET /secret-path', steps: (c) => [`GET ${c.path} HTTP/1.0\r\n\r\n`] },
  { name: 'HEAD /', steps: () => [`HEAD / HTTP/1.1\r\nHost: bridge.example\r\n\r\n`] },
  { name: 'HEAD /secret-path', steps: (c) => [`HEAD ${c.path} HTTP/1.1\r\nHost: bridge.example\r\n\r\n`] },
  { name: 'POST / with a body', steps: () => ['POST / HTTP/1.1\r\nHost: bridge.example\r\nContent-Length: 5\r\n\r\nhello'] },
  { name: 'POST /secret-path with Expect: 100-continue', steps: (c) => [`POST ${c.path} HTTP/1.1\r\nHost: bridge.example\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`] },
  { name: 'OPTIONS *', steps: () => ['OPTIONS * HTTP/1.1\r\nHost: bridge.example\r\n\r\n'] },
  { name: 'CONNECT', steps: () => ['CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n'] },
  { name: 'HTTP/1.1 without Host', steps: () => ['GET / HTTP/1.1\r\n\r\n'] },
  { name: 'path traversal', steps: () => [get('/../../etc/passwd')] },
  { name: 'garbage bytes after the TLS handshake', steps: () => [Buffer.from('\x00\x01\x02\xff hello?\r\n\r\n', 'latin1')] },
  { name: 'oversize header', steps: () => [`GET / HTTP/1.1\r\nHost: bridge.example\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`] },
  { name: 'TLS handshake, then nothing', steps: () => [] },
  { name: 'half a request line, then silence', steps: () => ['GET / HT'] },
  {
    name: 'pipelined requests',
    steps: (c) => [get('/') + get(c.path) + upgrade(c.path, bearer(c.replayed))],
  },
  {
    name: 'keep-alive sequence with pauses',
    steps: (c) => [get('/'), { waitMs: 300 }, get(c.path), { waitMs: 300 }, get('/favicon.ico', 'Connection: close\r\n')],
  },
  { name: 'GET then garbage on the same connection', steps: () => [get('/') + 'BLAH\r\n\r\n'] },
  { name: 'plain HTTP on the TLS port', transport: 'tcp', steps: () => [get('/')] },
  { name: 'TCP connect, then nothing', transport: 'tcp', steps: () => [] },
];

function runProbe(port: number, probe: Probe, ctx: Ctx): Promise<Outcome> {
  const steps = probe.steps(ctx).map((s) => (typeof s === 'object' && !Buffer.isBuffer(s) ? s.waitMs : s));
  return runHttpProbe(port, steps, { maxMs: PROBE_MAX_MS, servername: 'bridge.example', ...(probe.transport === 'tcp' ? { plain: true } : {}) });
}

/** Date aside, and a redirect's port, which is each listener's own (nginx's absolute redirect). */
const normalise = (b: Buffer): string =>
  b
    .toString('latin1')
    .replace(/\r\nDate: [^\r]*\r\n/g, '\r\nDate: <date>\r\n')
    .replace(/(\r\nLocation: https?:\/\/[^/:\r]+):\d+/g, '$1:<port>');

interface Pair {
  bridge: Postern;
  decoy: Postern;
  bridgePort: number;
  decoyPort: number;
  uri: string;
  ctx: Ctx;
}

/** `postern init`, then the bridge and `postern decoy` on the same config (with `decoy` when given). */
async function startPair(decoyConfig?: (dir: string) => object): Promise<Pair> {
  const made = await init();
  const cfg = JSON.parse(fs.readFileSync(made.config, 'utf8')) as { path: string; users: Array<{ secret: string }>; limits?: object; decoy?: object };
  cfg.limits = LIMITS;
  if (decoyConfig) cfg.decoy = decoyConfig(made.dir);
  fs.writeFileSync(made.config, JSON.stringify(cfg, null, 2));
  const bridge = new Postern(['bridge', '--config', made.config, '--listen', '127.0.0.1:0', '--http2', '--log-level', 'debug']);
  const decoy = new Postern(['decoy', '--config', made.config, '--listen', '127.0.0.1:0', '--http2']);
  const bridgePort = await bridge.listening('bridge');
  const decoyPort = (await decoy.waitFor((l) => l.msg === 'listening' && l.role === 'decoy', 15_000, 'decoy listening')).port as number;
  const secret = Buffer.from(cfg.users[0]!.secret, 'base64url');
  // A token a censor recorded: it was used once by a real client (101), then replayed.
  const replayed = makeToken(secret, cfg.path, Date.now());
  const ctx = { path: cfg.path, secret, replayed };
  const first = await runProbe(bridgePort, { name: 'real client', steps: () => [upgrade(cfg.path, bearer(replayed))] }, ctx);
  expect(first.bytes.toString('latin1')).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
  return { bridge, decoy, bridgePort, decoyPort, uri: withPort(made.uri, bridgePort), ctx };
}

/** Runs every probe against both, side by side, and asserts they are indistinguishable. */
async function compare(pair: Pair, probes: Probe[]): Promise<Array<{ probe: Probe; b: Outcome; d: Outcome }>> {
  const results: Array<{ probe: Probe; b: Outcome; d: Outcome }> = [];
  // In batches, bridge and decoy side by side, so that timing compares like with like.
  for (let i = 0; i < probes.length; i += 12) {
    const batch = probes.slice(i, i + 12);
    results.push(
      ...(await Promise.all(
        batch.map(async (probe) => {
          const [b, d] = await Promise.all([runProbe(pair.bridgePort, probe, pair.ctx), runProbe(pair.decoyPort, probe, pair.ctx)]);
          return { probe, b, d };
        }),
      )),
    );
  }
  for (const { probe, b, d } of results) {
    expect(normalise(b.bytes), probe.name).toBe(normalise(d.bytes));
    expect(b.end, `${probe.name}: end`).toBe(d.end);
    expect(Math.abs(b.ms - d.ms), `${probe.name}: close time ${Math.round(b.ms)} vs ${Math.round(d.ms)} ms`).toBeLessThan(TIMING_SLACK_MS);
  }
  return results;
}

let pair: Pair;
let uri: string;

beforeAll(async () => {
  pair = await startPair();
  uri = pair.uri;
}, 30_000);

afterAll(stopAll);

describe('a prober sees the decoy and nothing else (protocol.md §2)', () => {
  it(`gets byte-identical answers, closes and timings from the bridge and from the decoy alone (${PROBES.length} probes)`, async () => {
    expect(PROBES.length).toBeGreaterThanOrEqual(15);
    const results = await compare(pair, PROBES);
    const { bridge } = pair;

    // The answers are the decoy's: a few spot checks that the table tests what it says.
    const by = (name: string): Outcome => results.find((r) => r.probe.name === name)!.b;
    const text = (name: string): string => by(name).bytes.toString('latin1');
    expect(text('GET / (keep-alive, then idle)')).toMatch(/^HTTP\/1\.1 200 OK\r\nServer: nginx\/1\.22\.1\r\n[^]*Connection: keep-alive\r\n/);
    expect(by('GET / (keep-alive, then idle)').ms).toBeGreaterThan(LIMITS.HTTP_KEEPALIVE_TIMEOUT_MS - 100);
    for (const n of ['GET /secret-path, no token', 'upgrade /secret-path, replayed valid token', 'upgrade /secret-path, expired token (valid MAC)']) {
      expect(text(n), n).toMatch(/^HTTP\/1\.1 404 Not Found\r\n/);
      expect(text(n), n).not.toMatch(/skew|clock|postern/i);
    }
    expect(text('garbage bytes after the TLS handshake')).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[^]*Connection: close\r\n/);
    expect(text('oversize header')).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[^]*Request Header Or Cookie Too Large/);
    expect(text('pipelined requests').match(/^HTTP\/1\.1 /gm)).toHaveLength(3);
    expect(text('keep-alive sequence with pauses').match(/^HTTP\/1\.1 /gm)).toHaveLength(3);
    expect(text('GET then garbage on the same connection')).toMatch(/^HTTP\/1\.1 200 OK[^]*HTTP\/1\.1 400 Bad Request/);
    const silent = by('TLS handshake, then nothing');
    expect(silent.bytes).toHaveLength(0);
    // One timer from accept covers the handshake and the head (nginx), so the handshake time comes off.
    expect(silent.ms).toBeGreaterThan(LIMITS.HANDSHAKE_TIMEOUT_MS - 500);
    expect(silent.ms).toBeLessThan(LIMITS.HANDSHAKE_TIMEOUT_MS + 1_000);
    expect(by('TCP connect, then nothing').ms).toBeGreaterThan(LIMITS.HANDSHAKE_TIMEOUT_MS - 100);
    // The bridge logged why it refused, the decoy never saw a bridge.
    expect(bridge.lines.some((l) => l.msg === 'upgrade refused' && l.reason === 'replay')).toBe(true);
    expect(bridge.lines.some((l) => l.msg === 'upgrade refused' && l.reason === 'skew')).toBe(true);
  }, 60_000);
});

/** One HTTP/2 request over TLS (ALPN h2): status, headers in order (date aside) and body; 'none' when refused. */
function h2Request(port: number, headers: http2.OutgoingHttpHeaders, body: Buffer | null): Promise<string> {
  return new Promise((resolve) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, servername: 'bridge.example', ALPNProtocols: ['h2'] });
    const done = (r: string): void => {
      clearTimeout(timer);
      session.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done('timeout'), 5_000);
    session.on('error', (e) => done(`session error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    const req = session.request({ ':scheme': 'https', ':authority': 'bridge.example', ...headers }, { endStream: body === null });
    req.on('error', (e) => done(`stream error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    let head = '';
    const parts: Buffer[] = [];
    req.on('response', (h) => {
      head = Object.entries(h)
        .map(([k, v]) => `${k}: ${k === 'date' ? '<date>' : String(v)}`)
        .join('\n');
      // A session (200 to the secret path) never ends by itself: its head is the whole answer.
      if (h[':status'] === 200 && h['postern-padding'] !== undefined) done(head);
    });
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => done(`${head}\n\n${Buffer.concat(parts).toString('latin1')}`));
    if (body !== null) req.end(body);
  });
}

describe('over HTTP/2 a prober sees the decoy and nothing else (protocol.md §12.7)', () => {
  it('gets the same status, headers and body from the bridge and from the decoy alone, for every refused session request', async () => {
    const { path: secretPath, secret, replayed } = pair.ctx;
    const token = (p = secretPath, bound?: string) => `Bearer ${makeToken(secret, p, Date.now(), undefined, bound)}`;
    const sid = Buffer.alloc(SESSION_ID_BYTES, 3).toString('base64url');
    const probes: Array<[string, () => http2.OutgoingHttpHeaders, Buffer | null]> = [
      ['GET /', () => ({ ':method': 'GET', ':path': '/' }), null],
      ['HEAD /', () => ({ ':method': 'HEAD', ':path': '/' }), null],
      ['GET a missing page', () => ({ ':method': 'GET', ':path': '/no-such-page' }), null],
      ['GET a missing page as Chrome', () => ({ ':method': 'GET', ':path': '/no-such-page', 'user-agent': 'Mozilla/5.0 Chrome/120.0' }), null],
      ['POST / with a body', () => ({ ':method': 'POST', ':path': '/' }), Buffer.from('x')],
      ['OPTIONS *-like', () => ({ ':method': 'OPTIONS', ':path': '/' }), null],
      ['POST the secret path, no token', () => ({ ':method': 'POST', ':path': secretPath }), Buffer.from('x')],
      ['POST the secret path, a bad token', () => ({ ':method': 'POST', ':path': secretPath, authorization: `Bearer ${'A'.repeat(87)}` }), Buffer.from('x')],
      ['POST the secret path, a replayed token', () => ({ ':method': 'POST', ':path': secretPath, authorization: `Bearer ${replayed}` }), Buffer.from('x')],
      ['POST the secret path, another scheme', () => ({ ':method': 'POST', ':path': secretPath, authorization: 'Basic dXNlcjpwYXNz' }), Buffer.from('x')],
      ['GET the secret path with a valid token (wrong method)', () => ({ ':method': 'GET', ':path': secretPath, authorization: token() }), null],
      ['POST the secret path with a valid token and no body', () => ({ ':method': 'POST', ':path': secretPath, authorization: token() }), null],
      ['POST another path with a valid token for it', () => ({ ':method': 'POST', ':path': '/other', authorization: token('/other') }), Buffer.from('x')],
      ['POST the secret path, token not bound to the session header', () => ({ ':method': 'POST', ':path': secretPath, authorization: token(), 'postern-session': sid }), Buffer.from('x')],
      ['POST the secret path, a malformed session id', () => ({ ':method': 'POST', ':path': secretPath, authorization: token(secretPath, 'bad'), 'postern-session': 'bad' }), Buffer.from('x')],
      ['POST the secret path, a resume proof without a session', () => ({ ':method': 'POST', ':path': secretPath, authorization: token(), 'postern-resume': 'A'.repeat(43) }), Buffer.from('x')],
    ];
    for (const [name, headers, body] of probes) {
      const [b, d] = await Promise.all([h2Request(pair.bridgePort, headers(), body), h2Request(pair.decoyPort, headers(), body)]);
      expect(b, name).toBe(d);
      expect(b, name).toMatch(/^:status: [1-5]\d\d\n/);
    }
    // The same request with a fresh valid token opens a session at the bridge: the probes could tell.
    const open = await h2Request(pair.bridgePort, { ':method': 'POST', ':path': secretPath, authorization: token() }, Buffer.alloc(0));
    expect(open).toMatch(/^:status: 200\n/);
  });
});

describe('a static-folder decoy is served the same way by the bridge and alone', () => {
  it('gives identical answers for its files, folders, custom 404 and the refusal probes', async () => {
    const p = await startPair((dir) => {
      const www = `${dir}/www`;
      fs.mkdirSync(`${www}/docs`, { recursive: true });
      fs.mkdirSync(`${www}/empty`, { recursive: true });
      fs.writeFileSync(`${www}/index.html`, '<h1>my blog</h1>');
      fs.writeFileSync(`${www}/404.html`, '<h1>lost?</h1>');
      fs.writeFileSync(`${www}/docs/index.html`, '<h1>docs</h1>');
      fs.writeFileSync(`${www}/style.css`, 'body{}');
      return { type: 'static', root: 'www' };
    });
    const extra: Probe[] = [
      { name: 'static: a file', steps: () => [get('/style.css', 'Connection: close\r\n')] },
      { name: 'static: folder without slash', steps: () => [get('/docs', 'Connection: close\r\n')] },
      { name: 'static: folder without index', steps: () => [get('/empty/', 'Connection: close\r\n')] },
      { name: 'static: missing page', steps: () => [get('/nope', 'Connection: close\r\n')] },
    ];
    // The decoy-specific probes plus those that reach the refusal paths (the full table runs above).
    const refusals = new Set([
      'GET /secret-path, no token',
      'upgrade /secret-path, replayed valid token',
      'upgrade /secret-path, expired token (valid MAC)',
      'upgrade over HTTP/1.0',
      'HEAD /secret-path',
      'POST / with a body',
      'garbage bytes after the TLS handshake',
      'pipelined requests',
    ]);
    const results = await compare(p, [...extra, ...PROBES.filter((x) => refusals.has(x.name))]);
    const text = (name: string): string => results.find((r) => r.probe.name === name)!.b.bytes.toString('latin1');
    expect(text('static: a file')).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*Content-Type: text\/css\r\n[^]*body\{\}$/);
    expect(text('static: folder without slash')).toMatch(/^HTTP\/1\.1 301 Moved Permanently\r\n[^]*Location: https:\/\/bridge\.example:\d+\/docs\/\r\n/);
    expect(text('static: folder without index')).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(text('static: missing page')).toMatch(/^HTTP\/1\.1 404 Not Found\r\n[^]*<h1>lost\?<\/h1>$/);
    expect(text('upgrade /secret-path, replayed valid token')).toMatch(/^HTTP\/1\.1 404 Not Found\r\n[^]*Connection: keep-alive\r\n[^]*<h1>lost\?<\/h1>$/);
    await p.bridge.stop();
    await p.decoy.stop();
  }, 60_000);
});

describe('clock skew is the client’s own finding, from the bridge’s Date (protocol.md §3)', () => {
  const limits = defaultLimits();
  const logger = silentLogger();

  it('a client whose clock is 10 minutes ahead gets E_CLOCK_SKEW naming the difference', async () => {
    const err = await dialBridge(parseShareUri(uri), { limits, logger, now: () => Date.now() + 10 * 60_000 }).then(
      (t) => {
        t.terminate();
        throw new Error('dial succeeded');
      },
      (e: unknown) => e as PosternError,
    );
    expect(err).toBeInstanceOf(PosternError);
    expect(err.code).toBe('E_CLOCK_SKEW');
    expect(err.message).toMatch(/clock skew: bridge time differs by (599|600|601) s \(this computer is ahead/);
  });

  it('a client whose clock is behind gets E_CLOCK_SKEW; a right clock with a wrong secret gets E_AUTH_REJECTED', async () => {
    const behind = await dialBridge(parseShareUri(uri), { limits, logger, now: () => Date.now() - 5 * 60_000 }).catch((e: unknown) => e as PosternError);
    expect((behind as PosternError).code).toBe('E_CLOCK_SKEW');
    expect((behind as PosternError).message).toMatch(/this computer is behind/);
    const wrong = { ...parseShareUri(uri), secret: Buffer.alloc(32, 9) };
    const rejected = await dialBridge(wrong, { limits, logger }).catch((e: unknown) => e as PosternError);
    expect((rejected as PosternError).code).toBe('E_AUTH_REJECTED');
  });

  it('a client with a right clock connects (the check gives no false alarm)', async () => {
    const t = await dialBridge(parseShareUri(uri), { limits, logger });
    t.terminate();
  });
});
