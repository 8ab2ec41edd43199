import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { validateBridgeConfig } from '../../../src/config/bridge.js';
import { defaultLimits } from '../../../src/core/limits.js';
import {
  contentTypeFor,
  createBuiltinDecoy,
  createProxyDecoy,
  createStaticDecoy,
  normalizePath,
  type Decoy,
  type DecoyRequest,
  type DecoyResponse,
} from '../../../src/decoy/index.js';
import { silentLogger } from '../../../src/log/logger.js';
import { createDecoyListener } from '../../../src/transport/listener.js';

const NOW = Date.UTC(2026, 0, 2, 3, 4, 5);
const now = (): number => NOW;
const limits = defaultLimits();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-decoy-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function req(method: string, url: string, headers: Record<string, string> = {}): DecoyRequest {
  return { method, url, httpVersion: '1.1', headers: { host: 'site.example', ...headers }, body: null };
}

async function bodyOf(r: DecoyResponse): Promise<string> {
  if (r.body === null) return '';
  if (Buffer.isBuffer(r.body)) return r.body.toString('latin1');
  const chunks: Buffer[] = [];
  for await (const c of r.body as Readable) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('latin1');
}
const header = (r: DecoyResponse, name: string): string | undefined => r.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];

describe('path handling', () => {
  it.each([
    ['/', '/'],
    ['/a/b', '/a/b'],
    ['/a//b/', '/a/b/'],
    ['/a/./b', '/a/b'],
    ['/a/../b', '/b'],
    ['/a/..', '/'],
    ['/..', null],
    ['/a/../../etc/passwd', null],
  ])('normalizes %s to %s (nginx: above the root is 400)', (input, out) => {
    expect(normalizePath(input)).toBe(out);
  });

  it.each([
    ['index.html', 'text/html'],
    ['a.CSS', 'text/css'],
    ['app.js', 'application/javascript'],
    ['logo.png', 'image/png'],
    ['font.woff2', 'font/woff2'],
    ['data.bin', 'application/octet-stream'],
    ['README', 'application/octet-stream'],
  ])('gives %s the content type %s', (f, t) => {
    expect(contentTypeFor(f)).toBe(t);
  });
});

describe('built-in decoy', () => {
  const d = createBuiltinDecoy({ siteTimeMs: Date.UTC(2025, 5, 1), now });

  it('serves / and /index.html with nginx headers in nginx order, 404 elsewhere', async () => {
    const r = await d.handle(req('GET', '/'), true);
    expect(r.status).toBe(200);
    expect(r.headers.map(([k]) => k)).toEqual(['Server', 'Date', 'Content-Type', 'Content-Length', 'Last-Modified', 'Connection', 'ETag', 'Accept-Ranges']);
    expect(header(r, 'Server')).toBe('nginx/1.22.1');
    expect(header(r, 'Connection')).toBe('keep-alive');
    expect(header(r, 'Last-Modified')).toBe('Sun, 01 Jun 2025 00:00:00 GMT');
    expect(Number(header(r, 'Content-Length'))).toBe((await bodyOf(r)).length);
    expect((await d.handle(req('GET', '/index.html?x=1'), true)).status).toBe(200);
    const nf = await d.handle(req('GET', '/secret'), false);
    expect([nf.status, nf.reason, header(nf, 'Connection')]).toEqual([404, 'Not Found', 'close']);
    expect(await bodyOf(nf)).toContain('<center><h1>404 Not Found</h1></center>');
  });

  it('answers HEAD without a body, POST / with 405, If-Modified-Since with 304, a bad escape with 400', async () => {
    const head = await d.handle(req('HEAD', '/'), true);
    expect(head.body).toBeNull();
    expect(header(head, 'Content-Length')).not.toBe('0');
    expect((await d.handle(req('POST', '/'), true)).status).toBe(405);
    const ims = await d.handle(req('GET', '/', { 'if-modified-since': 'Sun, 01 Jun 2025 00:00:00 GMT' }), true);
    expect([ims.status, ims.body]).toEqual([304, null]);
    // The same instant in RFC 850 form: nginx compares times, not strings.
    expect((await d.handle(req('GET', '/', { 'if-modified-since': 'Sunday, 01-Jun-25 00:00:00 GMT' }), true)).status).toBe(304);
    expect((await d.handle(req('GET', '/', { 'if-none-match': '*' }), true)).status).toBe(304);
    expect((await d.handle(req('GET', '/%zz'), true)).status).toBe(400);
  });
});

describe('static decoy', () => {
  const root = path.join(dir, 'site');
  fs.mkdirSync(path.join(root, 'docs'), { recursive: true });
  fs.mkdirSync(path.join(root, 'empty'), { recursive: true });
  fs.writeFileSync(path.join(root, 'index.html'), '<h1>home</h1>');
  fs.writeFileSync(path.join(root, '404.html'), '<h1>custom 404</h1>');
  fs.writeFileSync(path.join(root, 'docs', 'index.html'), '<h1>docs</h1>');
  fs.writeFileSync(path.join(root, 'style.css'), 'body{}');
  fs.writeFileSync(path.join(dir, 'outside.txt'), 'secret outside the root');
  fs.symlinkSync(path.join(dir, 'outside.txt'), path.join(root, 'escape.txt'));
  const d = createStaticDecoy({ root, now });

  it('serves files with their content type, index.html for folders, a 301 to add the slash', async () => {
    const css = await d.handle(req('GET', '/style.css'), true);
    expect([css.status, header(css, 'Content-Type'), await bodyOf(css)]).toEqual([200, 'text/css', 'body{}']);
    expect(header(css, 'ETag')).toMatch(/^"[0-9a-f]+-6"$/);
    expect(await bodyOf(await d.handle(req('GET', '/'), true))).toBe('<h1>home</h1>');
    expect(await bodyOf(await d.handle(req('GET', '/docs/'), true))).toBe('<h1>docs</h1>');
    const redirect = await d.handle(req('GET', '/docs'), true);
    // nginx's absolute redirect: scheme and port of the listener, host from Host.
    expect([redirect.status, header(redirect, 'Location')]).toEqual([301, 'http://site.example/docs/']);
    const tlsRedirect = await d.handle({ ...req('GET', '/docs'), local: { address: '127.0.0.1', port: 8443, tls: true } }, true);
    expect(header(tlsRedirect, 'Location')).toBe('https://site.example:8443/docs/');
  });

  it('lists no folder (403), serves its 404.html for a missing page, 405 for POST on a file', async () => {
    expect((await d.handle(req('GET', '/empty/'), true)).status).toBe(403);
    const nf = await d.handle(req('GET', '/nope'), true);
    expect([nf.status, await bodyOf(nf)]).toEqual([404, '<h1>custom 404</h1>']);
    expect((await d.handle(req('POST', '/style.css'), true)).status).toBe(405);
    expect((await d.handle(req('POST', '/nope'), true)).status).toBe(404);
  });

  it('never reads outside the root: .. above it is 400, %2e%2e too, a symlink out of it is 404', async () => {
    expect((await d.handle(req('GET', '/../outside.txt'), true)).status).toBe(400);
    expect((await d.handle(req('GET', '/%2e%2e/outside.txt'), true)).status).toBe(400);
    expect((await d.handle(req('GET', '/docs/%2e%2e/%2e%2e/outside.txt'), true)).status).toBe(400);
    const sym = await d.handle(req('GET', '/escape.txt'), true);
    expect(sym.status).toBe(404);
    expect(await bodyOf(sym)).not.toContain('secret outside');
  });

  it('answers HEAD with the GET head and no body, and If-Modified-Since with 304', async () => {
    const g = await d.handle(req('GET', '/style.css'), true);
    await bodyOf(g);
    const h = await d.handle(req('HEAD', '/style.css'), true);
    expect(h.body).toBeNull();
    expect(h.headers.filter(([k]) => k !== 'Date')).toEqual(g.headers.filter(([k]) => k !== 'Date'));
    const ims = await d.handle(req('GET', '/style.css', { 'if-modified-since': header(g, 'Last-Modified')! }), true);
    expect(ims.status).toBe(304);
  });

  it('answers Range like nginx: 206 with Content-Range, 416 when unsatisfiable or reversed, the whole file when ranges overlap past its size', async () => {
    const one = await d.handle(req('GET', '/style.css', { range: 'bytes=1-3' }), true);
    expect([one.status, header(one, 'Content-Range'), header(one, 'Content-Length'), await bodyOf(one)]).toEqual([206, 'bytes 1-3/6', '3', 'ody']);
    const suffix = await d.handle(req('GET', '/style.css', { range: 'bytes=-2' }), true);
    expect([suffix.status, await bodyOf(suffix)]).toEqual([206, '{}']);
    const no = await d.handle(req('GET', '/style.css', { range: 'bytes=10-20' }), true);
    expect([no.status, header(no, 'Content-Range')]).toEqual([416, 'bytes */6']);
    await bodyOf(no);
    const reversed = await d.handle(req('GET', '/style.css', { range: 'bytes=2-1' }), true);
    expect(reversed.status).toBe(416);
    await bodyOf(reversed);
    const overlap = await d.handle(req('GET', '/style.css', { range: 'bytes=0-5,0-5' }), true);
    expect([overlap.status, header(overlap, 'Accept-Ranges')]).toEqual([200, 'bytes']);
    await bodyOf(overlap);
    const multi = await d.handle(req('GET', '/style.css', { range: 'bytes=0-0,5-5' }), true);
    expect(header(multi, 'Content-Type')).toMatch(/^multipart\/byteranges; boundary=\d{20}$/);
    expect(await bodyOf(multi)).toMatch(/Content-Range: bytes 0-0\/6\r\n\r\nb\r\n[^]*Content-Range: bytes 5-5\/6\r\n\r\n\}\r\n--\d{20}--\r\n$/);
  });

  it('refuses a root that is not a folder (E_CONFIG)', () => {
    expect(() => createStaticDecoy({ root: path.join(root, 'style.css') })).toThrow(/decoy.root/);
  });
});

/** Serves `decoy` alone over plain HTTP on loopback; returns the port. */
async function serve(decoy: Decoy): Promise<number> {
  const l = createDecoyListener({ host: '127.0.0.1', port: 0, tls: null, decoy, limits, logger: silentLogger() });
  const { port } = await l.listen();
  cleanups.push(() => l.close());
  return port;
}

function exchange(port: number, request: string | Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(request));
    const t = setTimeout(() => s.destroy(), 5_000);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => {
      clearTimeout(t);
      resolve(Buffer.concat(chunks));
    });
  });
}

describe('proxy decoy', () => {
  async function upstream(handler: http.RequestListener): Promise<string> {
    const srv = http.createServer(handler);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => srv.close(r)));
    cleanups.push(() => srv.closeAllConnections());
    return `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
  }

  it('relays status, headers and a streamed body; passes the request body; forwards no client address', async () => {
    let seen: http.IncomingHttpHeaders = {};
    let body = '';
    const up = await upstream((rq, rs) => {
      seen = rq.headers;
      rq.setEncoding('latin1');
      rq.on('data', (d: string) => (body += d));
      rq.on('end', () => {
        rs.writeHead(418, 'Teapot', { 'X-Up': '1', Server: 'upstream/1' });
        rs.write('a'.repeat(100_000));
        rs.end('end');
      });
    });
    const port = await serve(createProxyDecoy({ upstream: up, limits, now }));
    const res = (await exchange(port, 'POST /p?q=1 HTTP/1.1\r\nHost: site.example\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello')).toString('latin1');
    expect(res).toMatch(/^HTTP\/1\.1 418 Teapot\r\n/);
    expect(res).toMatch(/\r\nX-Up: 1\r\n/);
    expect(res).toMatch(/\r\nServer: upstream\/1\r\n/);
    expect(res.endsWith('a'.repeat(1000) + 'end') || res.includes('end\r\n0\r\n\r\n')).toBe(true);
    expect(body).toBe('hello');
    expect(seen.host).toBe('site.example');
    expect(seen['x-forwarded-for']).toBeUndefined();
  });

  it('answers 502 when the upstream is down, 413 for a body over DECOY_MAX_BODY_BYTES', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const port = await serve(createProxyDecoy({ upstream: `http://127.0.0.1:${deadPort}`, limits, now }));
    expect((await exchange(port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n')).toString('latin1')).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n[^]*<center>nginx\/1\.22\.1<\/center>/);
    const big = `POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${limits.DECOY_MAX_BODY_BYTES + 1}\r\n\r\n`;
    expect((await exchange(port, big)).toString('latin1')).toMatch(/^HTTP\/1\.1 413 Request Entity Too Large\r\n/);
  });

  it('refuses an upstream that is not http://HOST:PORT', () => {
    expect(() => createProxyDecoy({ upstream: 'https://x:1', limits })).toThrow(/only http/);
    expect(() => createProxyDecoy({ upstream: 'http://x:1/path', limits })).toThrow(/HOST:PORT/);
  });
});

describe('decoy config', () => {
  const base = {
    listen: '127.0.0.1:8443',
    path: '/abc',
    publicHost: 'localhost',
    tls: null,
    users: [{ name: 'alice', secret: Buffer.alloc(32, 7).toString('base64url') }],
  };
  it('defaults to the built-in site; resolves a static root next to the config; checks the proxy URL', () => {
    expect(validateBridgeConfig(base, path.join(dir, 'x.json')).decoy.type).toBe('builtin');
    fs.mkdirSync(path.join(dir, 'www'), { recursive: true });
    expect(validateBridgeConfig({ ...base, decoy: { type: 'static', root: 'www' } }, path.join(dir, 'x.json')).decoy).toEqual({ type: 'static', root: path.join(dir, 'www') });
    expect(() => validateBridgeConfig({ ...base, decoy: { type: 'static', root: 'missing' } }, path.join(dir, 'x.json'))).toThrow(/decoy.root/);
    expect(validateBridgeConfig({ ...base, decoy: { type: 'proxy', upstream: 'http://127.0.0.1:8080' } }, 'x.json').decoy.type).toBe('proxy');
    expect(() => validateBridgeConfig({ ...base, decoy: { type: 'proxy', upstream: 'ftp://x' } }, 'x.json')).toThrow(/decoy.upstream/);
    expect(() => validateBridgeConfig({ ...base, decoy: { type: 'other' } }, 'x.json')).toThrow(/decoy/);
  });
});
