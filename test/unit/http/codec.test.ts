import { describe, expect, it } from 'vitest';
import {
  ChunkedScanner,
  classifyTarget,
  endToEndHeaders,
  isLoopbackHostField,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
  responseFraming,
  wantsKeepAlive,
  type RequestHead,
} from '../../../src/http/codec.js';
import { pacFile } from '../../../src/http/server.js';

const MAX = 32 * 1024;
const b = (s: string) => Buffer.from(s, 'latin1');

function head(s: string): RequestHead {
  const r = parseRequestHead(b(s), MAX);
  if (!r.ok) throw new Error(`did not parse: ${JSON.stringify(r)}`);
  return r.value;
}

describe('parseRequestHead (RFC 9112 §3, §5)', () => {
  it('parses an absolute-form GET and reports the bytes used', () => {
    const text = 'GET http://example.com/a?b=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\nBODY';
    const r = parseRequestHead(b(text), MAX);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.used).toBe(text.length - 4);
    expect(r.value).toEqual({
      method: 'GET',
      target: 'http://example.com/a?b=1',
      version: '1.1',
      headers: [
        ['Host', 'example.com'],
        ['Accept', '*/*'],
      ],
    });
  });

  it('trims optional whitespace around field values', () => {
    expect(head('GET / HTTP/1.0\r\nX:  \t v \t\r\n\r\n').headers).toEqual([['X', 'v']]);
  });

  it('skips empty lines before the request line (RFC 9112 §2.2)', () => {
    const r = parseRequestHead(b('\r\n\r\nGET / HTTP/1.1\r\n\r\n'), MAX);
    expect(r.ok && r.used).toBe(22);
  });

  it.each([
    ['GET / HTTP/1.1\r\nHost: a\r\n'],
    ['GET / HTTP/1.1\r\n'],
    ['GET'],
    [''],
  ])('needs more for an incomplete head %j', (s) => {
    expect(parseRequestHead(b(s), MAX)).toEqual({ ok: false, need: 'more' });
  });

  it.each([
    ['GET  / HTTP/1.1\r\n\r\n', 400, 'bad-request-line'],
    ['GET / HTTP/1.1 x\r\n\r\n', 400, 'bad-request-line'],
    ['G(T / HTTP/1.1\r\n\r\n', 400, 'bad-method'],
    ['GET /a\x01 HTTP/1.1\r\n\r\n', 400, 'bad-target'],
    ['GET / HTTP/2.0\r\n\r\n', 505, 'unsupported-version'],
    ['GET / HTTP/1\r\n\r\n', 400, 'bad-version'],
    ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 505, 'unsupported-version'],
    ['GET / HTTP/1.1\r\nHost : a\r\n\r\n', 400, 'bad-header-name'],
    ['GET / HTTP/1.1\r\nNoColon\r\n\r\n', 400, 'bad-header-line'],
    ['GET / HTTP/1.1\r\n: v\r\n\r\n', 400, 'bad-header-line'],
    ['GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n', 400, 'obs-fold'],
    ['GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n', 400, 'bad-header-value'],
    ['GET / HTTP/1.1\nA: b\r\n\r\n', 400, 'bare-cr-or-lf'],
    ['GET / HTTP/1.1\r\nA: b\rc\r\n\r\n', 400, 'bare-cr-or-lf'],
    ['\x16\x03\x01\x00', 400, 'bad-request-line'],
  ])('refuses %j with %i %s', (s, status, reason) => {
    expect(parseRequestHead(b(s), MAX)).toEqual({ ok: false, error: { status, reason } });
  });

  it('answers 431 for a head larger than the limit, complete or not', () => {
    const big = `GET / HTTP/1.1\r\nX: ${'a'.repeat(5000)}\r\n\r\n`;
    expect(parseRequestHead(b(big), 4096)).toEqual({ ok: false, error: { status: 431, reason: 'head-too-large' } });
    expect(parseRequestHead(b(big.slice(0, 4500)), 4096)).toEqual({ ok: false, error: { status: 431, reason: 'head-too-large' } });
  });

  it('gives the same result at every split point (need more, then the head)', () => {
    const text = 'POST http://h:8080/x HTTP/1.1\r\nHost: h:8080\r\nContent-Length: 3\r\n\r\n';
    for (let i = 0; i < text.length; i++) expect(parseRequestHead(b(text.slice(0, i)), MAX)).toEqual({ ok: false, need: 'more' });
    expect(parseRequestHead(b(text), MAX).ok).toBe(true);
  });
});

describe('classifyTarget (RFC 9112 §3.2)', () => {
  it.each([
    ['CONNECT example.com:443 HTTP/1.1', { kind: 'connect', target: { kind: 'domain', host: 'example.com', port: 443 } }],
    ['CONNECT 10.0.0.1:22 HTTP/1.1', { kind: 'connect', target: { kind: 'ipv4', host: '10.0.0.1', port: 22 } }],
    ['CONNECT [::1]:8443 HTTP/1.1', { kind: 'connect', target: { kind: 'ipv6', host: '::1', port: 8443 } }],
    ['GET http://example.com HTTP/1.1', { kind: 'forward', target: { kind: 'domain', host: 'example.com', port: 80 }, path: '/', hostHeader: 'example.com' }],
    ['GET http://example.com?q HTTP/1.1', { kind: 'forward', target: { kind: 'domain', host: 'example.com', port: 80 }, path: '/?q', hostHeader: 'example.com' }],
    ['GET HTTP://a.b:81/p/q?r=1 HTTP/1.1', { kind: 'forward', target: { kind: 'domain', host: 'a.b', port: 81 }, path: '/p/q?r=1', hostHeader: 'a.b:81' }],
    ['GET http://[::1]:8080/x HTTP/1.1', { kind: 'forward', target: { kind: 'ipv6', host: '::1', port: 8080 }, path: '/x', hostHeader: '[::1]:8080' }],
    ['GET /proxy.pac HTTP/1.1', { kind: 'local', path: '/proxy.pac' }],
  ])('%s', (line, want) => {
    const r = classifyTarget(head(`${line}\r\n\r\n`));
    expect(r).toEqual({ ok: true, value: want, used: 0 });
  });

  it.each([
    ['CONNECT example.com HTTP/1.1', 400, 'bad-connect-target'],
    ['CONNECT example.com:0 HTTP/1.1', 400, 'bad-connect-target'],
    ['CONNECT example.com:70000 HTTP/1.1', 400, 'bad-connect-target'],
    ['CONNECT [zz]:1 HTTP/1.1', 400, 'bad-connect-target'],
    ['GET https://example.com/ HTTP/1.1', 501, 'unsupported-scheme'],
    ['GET ftp://example.com/ HTTP/1.1', 501, 'unsupported-scheme'],
    ['GET http://user:pw@example.com/ HTTP/1.1', 400, 'userinfo-in-target'],
    ['GET http:///x HTTP/1.1', 400, 'bad-target-authority'],
    ['GET * HTTP/1.1', 400, 'bad-target'],
  ])('refuses %s with %i', (line, status, reason) => {
    expect(classifyTarget(head(`${line}\r\n\r\n`))).toEqual({ ok: false, error: { status, reason } });
  });
});

describe('hop-by-hop fields (RFC 9110 §7.6.1)', () => {
  it('removes Connection, the fields it names, Proxy-* and the other hop-by-hop fields', () => {
    const h = head(
      'GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nProxy-Connection: keep-alive\r\n' +
        'Proxy-Authorization: Basic eDp5\r\nTE: trailers\r\nUpgrade: h2c\r\nAccept: */*\r\nTransfer-Encoding: chunked\r\n\r\n',
    );
    expect(endToEndHeaders(h.headers)).toEqual([
      ['Host', 'a'],
      ['Accept', '*/*'],
      ['Transfer-Encoding', 'chunked'],
    ]);
  });

  it.each([
    ['1.1', '', true],
    ['1.1', 'Connection: close\r\n', false],
    ['1.1', 'Proxy-Connection: close\r\n', false],
    ['1.0', '', false],
    ['1.0', 'Connection: keep-alive\r\n', true],
    ['1.0', 'Proxy-Connection: Keep-Alive\r\n', true],
  ])('keep-alive for HTTP/%s with %j is %s', (v, extra, want) => {
    const h = head(`GET / HTTP/${v}\r\n${extra}\r\n`);
    expect(wantsKeepAlive(h.version, h.headers)).toBe(want);
  });
});

describe('body framing (RFC 9112 §6.3)', () => {
  it.each([
    ['', { kind: 'none' }],
    ['Content-Length: 0\r\n', { kind: 'none' }],
    ['Content-Length: 12\r\n', { kind: 'length', length: 12 }],
    ['Content-Length: 12, 12\r\n', { kind: 'length', length: 12 }],
    ['Transfer-Encoding: chunked\r\n', { kind: 'chunked' }],
    ['Transfer-Encoding: gzip, chunked\r\n', { kind: 'chunked' }],
  ])('request with %j', (extra, want) => {
    expect(requestFraming(head(`POST http://a/ HTTP/1.1\r\n${extra}\r\n`))).toEqual({ ok: true, value: want, used: 0 });
  });

  it.each([
    ['Content-Length: 1\r\nContent-Length: 2\r\n', 400, 'bad-content-length'],
    ['Content-Length: -1\r\n', 400, 'bad-content-length'],
    ['Content-Length: 0x10\r\n', 400, 'bad-content-length'],
    ['Content-Length: 3\r\nTransfer-Encoding: chunked\r\n', 400, 'both-length-and-chunked'],
    ['Transfer-Encoding: chunked, gzip\r\n', 501, 'unsupported-transfer-coding'],
  ])('refuses a request with %j', (extra, status, reason) => {
    expect(requestFraming(head(`POST http://a/ HTTP/1.1\r\n${extra}\r\n`))).toEqual({ ok: false, error: { status, reason } });
  });

  it.each([
    ['GET', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', { kind: 'length', length: 5 }],
    ['HEAD', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', { kind: 'none' }],
    ['GET', 'HTTP/1.1 204 No Content\r\n\r\n', { kind: 'none' }],
    ['GET', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n', { kind: 'none' }],
    ['GET', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', { kind: 'chunked' }],
    ['GET', 'HTTP/1.0 200 OK\r\n\r\n', { kind: 'close' }],
    ['GET', 'HTTP/1.1 200\r\n\r\n', { kind: 'close' }],
  ])('response to %s: %j', (method, text, want) => {
    const r = parseResponseHead(b(text), MAX);
    if (!r.ok) throw new Error('no parse');
    expect(responseFraming(method, r.value)).toEqual({ ok: true, value: want, used: 0 });
  });

  it('refuses a malformed status line as the upstream’s fault (502)', () => {
    expect(parseResponseHead(b('HTTP/1.1 2000 OK\r\n\r\n'), MAX)).toEqual({ ok: false, error: { status: 502, reason: 'upstream-bad-status-line' } });
    expect(parseResponseHead(b('ICY 200 OK\r\n\r\n'), MAX)).toEqual({ ok: false, error: { status: 502, reason: 'upstream-bad-status-line' } });
  });
});

describe('ChunkedScanner (RFC 9112 §7.1)', () => {
  const body = '4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n';

  it('finds the end of a chunked body, byte by byte and whole', () => {
    const whole = new ChunkedScanner();
    expect(whole.scan(b(`${body}NEXT`))).toEqual({ used: body.length });
    expect(whole.done).toBe(true);
    const bytewise = new ChunkedScanner();
    let used = 0;
    for (let i = 0; i < body.length; i++) used += (bytewise.scan(b(body[i] as string)) as { used: number }).used;
    expect(used).toBe(body.length);
    expect(bytewise.done).toBe(true);
  });

  it.each([
    ['zz\r\n', 'bad-chunk-size'],
    ['4\r\nWikiXX', 'missing-crlf-after-chunk'],
    ['4\nWiki', 'bare-lf-in-chunked'],
    [`${'1'.repeat(13)}\r\n`, 'bad-chunk-size'],
  ])('refuses %j', (s, error) => {
    expect(new ChunkedScanner().scan(b(s))).toEqual({ error });
  });

  it('bounds a chunk-size line', () => {
    expect(new ChunkedScanner().scan(b(`1;${'x'.repeat(5000)}`))).toEqual({ error: 'chunk-line-too-long' });
  });
});

describe('pacFile', () => {
  it('names the proxy with PROXY only and never DIRECT', () => {
    expect(pacFile('192.168.1.5', 1080)).toBe('function FindProxyForURL(url, host) {\n  return "PROXY 192.168.1.5:1080";\n}\n');
    expect(pacFile('::1', 8080)).toContain('"PROXY [::1]:8080"');
    expect(pacFile('127.0.0.1', 1)).not.toContain('DIRECT');
  });
});

describe('isLoopbackHostField: the status page answers only a loopback Host with its own port (DNS rebinding)', () => {
  it.each([
    [['127.0.0.1:1080'], 1080, true],
    [['localhost:1080'], 1080, true],
    [['LocalHost:1080'], 1080, true],
    [['[::1]:1080'], 1080, true],
    [['127.0.0.1:1081'], 1080, false], // another port
    [['127.0.0.1'], 1080, false], // no port: means 80
    [['127.0.0.1'], 80, true],
    [['127.0.0.1:01080'], 1080, false],
    [['attacker.example:1080'], 1080, false], // a rebound name
    [['attacker.example'], 1080, false],
    [['127.0.0.2:1080'], 1080, false],
    [['localhost.:1080'], 1080, false],
    [['localhost.attacker.example:1080'], 1080, false],
    [['::1:1080'], 1080, false],
    [['127.0.0.1:1080', '127.0.0.1:1080'], 1080, false], // two Host fields
    [[], 1080, false],
  ] as const)('Host %j on port %i → %s', (values, port, ok) => {
    expect(isLoopbackHostField(values.map((v) => ['Host', v] as [string, string]), port)).toBe(ok);
  });
});
