import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BodyReader, HeadParser, NGINX_MAX_HEAD_BYTES, headProblem, validHost, wantsKeepAlive, type HeadResult } from '../../../src/decoy/http-head.js';

/** Feeds `bytes` in pieces cut at `cuts`, as a connection would append them; the first decision wins. */
function parseSplit(bytes: Buffer, cuts: number[] = []): HeadResult {
  const p = new HeadParser();
  for (const cut of [...cuts, bytes.length]) {
    const r = p.parse(bytes.subarray(0, cut));
    if (r.kind !== 'more') return r;
  }
  return { kind: 'more' };
}
const parse = (s: string): HeadResult => parseSplit(Buffer.from(s, 'latin1'));
const summary = (r: HeadResult): string =>
  r.kind === 'more' ? 'more' : r.kind === 'error' ? `error ${r.status}${r.detail !== undefined ? ` ${r.detail}` : ''}${r.http09 ? ' 0.9' : ''}` : `ok ${r.head.method} ${r.head.url} ${r.head.httpVersion} used=${r.used}`;

const H = 'Host: a\r\n';

describe('request line (nginx 1.22 ngx_http_parse_request_line rules)', () => {
  it.each([
    ['GET / HTTP/1.1\r\nHost: a\r\n\r\n', 'ok GET / 1.1 used=27'],
    ['\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n', 'ok GET / 1.1 used=31'],
    ['GET / HTTP/1.1\nHost: a\n\n', 'ok GET / 1.1 used=24'],
    ['FOO_BAR-X / HTTP/1.1\r\n\r\n', 'ok FOO_BAR-X / 1.1 used=24'],
    ['get / HTTP/1.1\r\n', 'error 400'],
    ['GET\t/ HTTP/1.1\r\n', 'error 400'],
    ['OPTIONS * HTTP/1.1\r\n', 'error 400'],
    ['GET   /a?b=c   HTTP/1.1  \r\n\r\n', 'ok GET /a?b=c 1.1 used=29'],
    ['GET http://h.example HTTP/1.1\r\n\r\n', 'ok GET / 1.1 used=33'],
    ['GET http://h.example:8080/x?y HTTP/1.1\r\n\r\n', 'ok GET /x?y 1.1 used=42'],
    ['GET http://h.example?q HTTP/1.1\r\n\r\n', 'ok GET /?q 1.1 used=35'],
    ['GET http://[::1]:8/ HTTP/1.1\r\n\r\n', 'ok GET / 1.1 used=32'],
    ['GET http://a..b/ HTTP/1.1\r\n', 'error 400'],
    ['GET http:/x HTTP/1.1\r\n', 'error 400'],
    ['GET /\x01 HTTP/1.1\r\n', 'error 400'],
    ['GET /\r\n', 'ok GET / 0.9 used=7'],
    ['GET / \r\n', 'ok GET / 0.9 used=8'],
    ['POST /\r\n', 'error 400 0.9'],
    ['GET / HTTP/2.0\r\n', 'error 505'],
    ['GET / HTTP/3\r\n', 'error 505'],
    ['GET / HTTP/10.0\r\n', 'error 505'],
    ['GET / HTTP/0.9\r\n', 'error 400'],
    ['GET / HTTP/1.2\r\n\r\n', 'ok GET / 1.2 used=18'],
    ['GET / HTTP/1\r\n', 'error 400'],
    ['GET / http/1.1\r\n', 'error 400'],
    ['GET / HTTP/1.1x\r\n', 'error 400'],
    ['GET / HTTP/1.1\rX', 'error 400'],
    ['GET / HT', 'more'],
  ])('%j → %s', (input, want) => {
    expect(summary(parse(input))).toBe(want);
  });
});

describe('header lines (ignore_invalid_headers on, underscores_in_headers off)', () => {
  it('keeps valid headers in order with their names as sent; ignores names with _ or other printable characters', () => {
    const r = parse(`GET / HTTP/1.1\r\n${H}X_Under: 1\r\nX@Y: 2\r\nNoColon\r\nX-Ok:   spaced   value  \r\nX-Empty:\r\n\r\n`);
    expect(r.kind).toBe('request');
    if (r.kind !== 'request') return;
    expect(r.head.rawHeaders).toEqual([
      ['Host', 'a'],
      ['NoColon', ''],
      ['X-Ok', 'spaced   value'],
      ['X-Empty', ''],
    ]);
    expect(r.head.headers['x-ok']).toBe('spaced   value');
  });

  it.each([
    [`GET / HTTP/1.1\r\n${H}Bad Name: x\r\n\r\n`, 'error 400'],
    [`GET / HTTP/1.1\r\n${H} folded\r\n\r\n`, 'error 400'],
    [`GET / HTTP/1.1\r\n${H}:x\r\n\r\n`, 'error 400'],
    [`GET / HTTP/1.1\r\n${H}X: a\0b\r\n\r\n`, 'error 400'],
    [`GET / HTTP/1.1\r\n${H}${H}`, 'error 400'],
    ['GET / HTTP/1.1\r\nHost:\r\n', 'error 400'],
    ['GET / HTTP/1.1\r\nHost: a/b\r\n', 'error 400'],
    ['GET / HTTP/1.1\r\nHost: a..b\r\n', 'error 400'],
    ['GET / HTTP/1.1\r\nHost: a.\r\n\r\n', 'ok GET / 1.1 used=28'],
    [`GET / HTTP/1.1\r\n${H}Content-Length: 1\r\ncontent-length: 1\r\n`, 'error 400'],
    [`GET / HTTP/1.1\r\n${H}Authorization: a\r\nAuthorization: b\r\n`, 'error 400'],
    [`GET / HTTP/1.1\r\n${H}X-A: 1\r\nX-A: 2\r\n\r\n`, 'ok GET / 1.1 used=43'],
    [`GET / HTTP/1.1\r\n${H}\rX`, 'error 400'],
  ])('%j → %s', (input, want) => {
    expect(summary(parse(input))).toBe(want);
  });
});

describe('sizes: client_header_buffer_size 1k, large_client_header_buffers 4 8k', () => {
  it.each([
    [`GET /${'a'.repeat(8_000)} HTTP/1.1\r\n${H}\r\n`, 'request'],
    [`GET /${'a'.repeat(8_200)} HTTP/1.1\r\n${H}\r\n`, 'error 414'],
    [`GET /${'a'.repeat(10_000)} HTTP/1.1\r\n${H}\r\n`, 'error 414'],
    [`GET / HTTP/1.1\r\n${H}X-Pad: ${'a'.repeat(8_000)}\r\n\r\n`, 'request'],
    [`GET / HTTP/1.1\r\n${H}X-Pad: ${'a'.repeat(9_000)}\r\n\r\n`, 'error 400 Request Header Or Cookie Too Large'],
    [`GET / HTTP/1.1\r\n${H}${Array.from({ length: 20 }, (_, i) => `X-H${i}: ${'b'.repeat(1_000)}\r\n`).join('')}\r\n`, 'request'],
    [`GET / HTTP/1.1\r\n${H}${Array.from({ length: 40 }, (_, i) => `X-H${i}: ${'b'.repeat(1_000)}\r\n`).join('')}\r\n`, 'error 400 Request Header Or Cookie Too Large'],
    // Empty lines before the request reuse the first buffer, whatever their number.
    [`${'\r\n'.repeat(2_000)}GET / HTTP/1.1\r\n${H}\r\n`, 'request'],
  ])('%#: → %s', (input, want) => {
    const r = parse(input);
    expect(r.kind === 'request' ? 'request' : summary(r)).toBe(want);
  });

  it('decides within NGINX_MAX_HEAD_BYTES whatever is sent', () => {
    const endless = Buffer.from(`GET / HTTP/1.1\r\n${'X-A: b\r\n'.repeat(10_000)}`, 'latin1');
    const p = new HeadParser();
    let r: HeadResult = { kind: 'more' };
    for (let n = 1000; n <= endless.length && r.kind === 'more'; n += 1000) r = p.parse(endless.subarray(0, n));
    expect(summary(r)).toBe('error 400 Request Header Or Cookie Too Large');
  });
});

describe('split at every byte', () => {
  const samples = [
    `GET /a?b HTTP/1.1\r\n${H}X_Bad: 1\r\nConnection: keep-alive\r\n\r\nNEXT`,
    'GET http://h:1/p HTTP/1.0\r\n\r\n',
    'GET /\r\n',
    `GET / HTTP/2.0\r\n${H}\r\n`,
    `GET / HTTP/1.1\r\n${H}${H}\r\n`,
  ];
  it.each(samples)('%j gives the same result however it is cut', (s) => {
    const bytes = Buffer.from(s, 'latin1');
    const whole = summary(parseSplit(bytes));
    for (let i = 1; i < bytes.length; i++) expect(summary(parseSplit(bytes, [i])), `cut at ${i}`).toBe(whole);
    expect(summary(parseSplit(bytes, Array.from({ length: bytes.length - 1 }, (_, i) => i + 1)))).toBe(whole);
  });

  it('never throws and always decides within its bound on random bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2_000 }), fc.array(fc.nat(2_000), { maxLength: 5 }), (arr, cuts) => {
        const bytes = Buffer.from(arr);
        const r = parseSplit(bytes, cuts.filter((c) => c < bytes.length).sort((a, b) => a - b));
        if (r.kind === 'request') expect(r.used).toBeLessThanOrEqual(Math.min(bytes.length, NGINX_MAX_HEAD_BYTES));
      }),
      { numRuns: 300 },
    );
  });
});

describe('after the head (ngx_http_process_request_header) and keep-alive', () => {
  const head = (s: string) => {
    const r = parse(s);
    if (r.kind !== 'request') throw new Error(summary(r));
    return r.head;
  };
  it.each([
    ['GET / HTTP/1.1\r\n\r\n', 400],
    ['GET / HTTP/1.0\r\n\r\n', null],
    [`POST / HTTP/1.1\r\n${H}Content-Length: 1x\r\n\r\n`, 400],
    [`POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n`, 400],
    [`POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`, 501],
    [`POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n`, 400],
    [`TRACE / HTTP/1.1\r\n${H}\r\n`, 405],
    [`CONNECT a:1 HTTP/1.1\r\n${H}\r\n`, 400],
    [`CONNECT /a HTTP/1.1\r\n${H}\r\n`, 405],
    [`FOO / HTTP/1.1\r\n${H}\r\n`, null],
  ])('%j → %s', (s, want) => {
    const r = parse(s);
    if (r.kind === 'error') expect(r.status).toBe(want);
    else expect(r.kind === 'request' ? (headProblem(r.head)?.status ?? null) : r.kind).toBe(want);
  });

  it.each([
    [`GET / HTTP/1.1\r\n${H}\r\n`, true],
    [`GET / HTTP/1.1\r\n${H}Connection: Upgrade\r\n\r\n`, true],
    [`GET / HTTP/1.1\r\n${H}Connection: keep-alive, close\r\n\r\n`, false],
    ['GET / HTTP/1.0\r\n\r\n', false],
    ['GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n', true],
    [`GET / HTTP/1.1\r\n${H}Connection: close\r\nConnection: keep-alive\r\n\r\n`, true],
  ])('%j keeps alive: %s', (s, want) => {
    expect(wantsKeepAlive(head(s))).toBe(want);
  });

  it.each([
    ['a', true],
    ['a.b:80', true],
    ['[::1]:8', true],
    ['a.', true],
    ['', false],
    ['.', false],
    ['a..b', false],
    ['a/b', false],
    ['a b', false],
  ])('Host %j valid: %s', (h, want) => {
    expect(validHost(h)).toBe(want);
  });
});

describe('request bodies', () => {
  it('reads a fixed length and leaves what follows', () => {
    const b = new BodyReader({ length: 5 });
    const r = b.push(Buffer.from('helloGET'));
    expect(r).toEqual({ data: [Buffer.from('hello')], done: true, rest: Buffer.from('GET') });
  });

  it('decodes chunked bodies (extensions, trailers) split at every byte', () => {
    const wire = Buffer.from('5;x=y\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\nNEXT', 'latin1');
    for (let cut = 0; cut <= wire.length; cut++) {
      const b = new BodyReader('chunked');
      const out: Buffer[] = [];
      let rest = Buffer.alloc(0);
      for (const part of [wire.subarray(0, cut), wire.subarray(cut)]) {
        const r = b.push(part);
        if ('error' in r) throw new Error(`error at cut ${cut}`);
        out.push(...r.data);
        if (r.done) rest = Buffer.concat([rest, r.rest]);
      }
      expect(Buffer.concat(out).toString(), `cut ${cut}`).toBe('hello0123456789');
      expect(rest.toString()).toBe('NEXT');
    }
  });

  it.each(['x\r\n', '5\r\nhelloX', '\r\n', `${'f'.repeat(16)}\r\n`])('refuses the chunked body %j', (s) => {
    expect('error' in new BodyReader('chunked').push(Buffer.from(s))).toBe(true);
  });
});
