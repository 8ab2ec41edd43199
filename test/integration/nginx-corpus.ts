/**
 * The probe corpus of the nginx comparison (nginx-compare.test.ts), as data: what a censor's
 * prober may send to a suspected bridge. `{secret}` is replaced by the bridge's secret path. A
 * probe with `exception` is a documented difference (docs/protocol.md §2.2) and is not compared.
 */

export interface HttpProbe {
  name: string;
  /** Bytes (latin1 strings or Buffers) and pauses in ms, in order. */
  send: Array<string | Buffer | number>;
  /** Plain TCP to the TLS port instead of TLS. */
  plain?: boolean;
  exception?: string;
}

export interface TlsProbe {
  name: string;
  /** `openssl s_client` options. */
  args: string[];
  exception?: string;
}

const H = 'Host: decoy.example\r\n';
const get = (p: string, extra = ''): string => `GET ${p} HTTP/1.1\r\n${H}${extra}\r\n`;
const close = 'Connection: close\r\n';
const ws = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';

export const HTTP_PROBES: HttpProbe[] = [
  { name: 'GET /', send: [get('/')] },
  { name: 'GET /index.html', send: [get('/index.html', close)] },
  { name: 'GET a css file', send: [get('/style.css', close)] },
  { name: 'GET a binary file', send: [get('/data.bin', close)] },
  { name: 'GET a missing page (404.html)', send: [get('/wp-login.php', close)] },
  { name: 'GET a folder without slash (301)', send: [get('/docs', close)] },
  { name: 'GET a folder without slash, no Host, HTTP/1.0', send: ['GET /docs HTTP/1.0\r\n\r\n'] },
  { name: 'GET a folder index', send: [get('/docs/', close)] },
  { name: 'GET a folder without index (403)', send: [get('/empty/', close)] },
  { name: 'GET with a query', send: [get('/?q=1&x=%41', close)] },
  { name: 'GET percent-encoded path', send: [get('/%69ndex.html', close)] },
  { name: 'GET bad percent escape', send: [get('/%zz', close)] },
  { name: 'GET %00 in path', send: [get('/a%00b', close)] },
  { name: 'GET %FF in path', send: [get('/%FF', close)] },
  { name: 'path traversal', send: [get('/../../etc/passwd', close)] },
  { name: 'dot segments inside the root', send: [get('/docs/../index.html', close)] },
  { name: 'double slashes', send: [get('//docs//index.html', close)] },
  { name: 'HEAD /', send: [`HEAD / HTTP/1.1\r\n${H}${close}\r\n`] },
  { name: 'HEAD a missing page', send: [`HEAD /nope HTTP/1.1\r\n${H}${close}\r\n`] },
  { name: 'POST / with a body', send: [`POST / HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`] },
  { name: 'POST with a body, then GET (pipelined)', send: [`POST / HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello${get('/style.css', close)}`] },
  { name: 'POST chunked, then GET (pipelined)', send: [`POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n${get('/style.css', close)}`] },
  { name: 'POST with a slow body, then GET', send: [`POST / HTTP/1.1\r\n${H}Content-Length: 10\r\n\r\nhello`, 300, 'world', 100, get('/style.css', close)] },
  { name: 'POST a missing page', send: [`POST /nope HTTP/1.1\r\n${H}Content-Length: 5\r\n${close}\r\nhello`] },
  { name: 'POST chunked', send: [`POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`] },
  { name: 'POST too large (Content-Length 2 MB)', send: [`POST / HTTP/1.1\r\n${H}Content-Length: 2000000\r\n\r\n`] },
  { name: 'PUT /', send: [`PUT / HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`] },
  { name: 'DELETE /index.html', send: [`DELETE /index.html HTTP/1.1\r\n${H}\r\n`] },
  { name: 'OPTIONS /', send: [`OPTIONS / HTTP/1.1\r\n${H}\r\n`] },
  { name: 'OPTIONS *', send: [`OPTIONS * HTTP/1.1\r\n${H}\r\n`] },
  { name: 'TRACE /', send: [`TRACE / HTTP/1.1\r\n${H}\r\n`] },
  { name: 'unknown method', send: [`FOO / HTTP/1.1\r\n${H}\r\n`] },
  { name: 'lower-case method', send: [`get / HTTP/1.1\r\n${H}\r\n`] },
  { name: 'CONNECT', send: ['CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n'] },
  { name: 'absolute-form target', send: [`GET https://decoy.example/ HTTP/1.1\r\n${H}${close}\r\n`] },
  { name: 'absolute-form folder redirect', send: [`GET http://Other.Example./docs HTTP/1.1\r\n${H}${close}\r\n`] },
  { name: 'absolute-form with a bad host', send: [`GET http://a..b/ HTTP/1.1\r\n${H}\r\n`] },
  { name: 'HTTP/1.0 GET', send: ['GET / HTTP/1.0\r\n\r\n'] },
  { name: 'HTTP/1.0 keep-alive', send: ['GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'] },
  { name: 'HTTP/1.1 Connection: close', send: [get('/', close)] },
  { name: 'HTTP/0.9 GET /', send: ['GET /\r\n'] },
  { name: 'HTTP/0.9 POST /', send: ['POST /\r\n'] },
  { name: 'HTTP/2.0 request line', send: [`GET / HTTP/2.0\r\n${H}\r\n`] },
  { name: 'HTTP/1.2 request line', send: [`GET / HTTP/1.2\r\n${H}\r\n`] },
  { name: 'HTTP/3 request line', send: [`GET / HTTP/3\r\n${H}\r\n`] },
  { name: 'lower-case http version', send: [`GET / http/1.1\r\n${H}\r\n`] },
  { name: 'HTTP/2 preface', send: ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'] },
  { name: 'URI of 10 KB', send: [get(`/${'a'.repeat(10_000)}`)] },
  { name: 'URI of 7 KB', send: [get(`/${'a'.repeat(7_000)}`, close)] },
  { name: 'one header of 9 KB', send: [get('/', `X-Pad: ${'a'.repeat(9_000)}\r\n`)] },
  { name: 'one header of 7 KB', send: [get('/', `X-Pad: ${'a'.repeat(7_000)}\r\n${close}`)] },
  { name: '20 headers of 1 KB', send: [get('/', `${Array.from({ length: 20 }, (_, i) => `X-H${i}: ${'b'.repeat(1_000)}\r\n`).join('')}${close}`)] },
  { name: '40 headers of 1 KB', send: [get('/', Array.from({ length: 40 }, (_, i) => `X-H${i}: ${'b'.repeat(1_000)}\r\n`).join(''))] },
  { name: 'header without colon', send: [get('/', `NoColonHere\r\n${close}`)] },
  { name: 'header name with a space', send: [get('/', `Bad Name: x\r\n${close}`)] },
  { name: 'header name with an underscore', send: [get('/', `X_Under: x\r\n${close}`)] },
  { name: 'header name with @', send: [get('/', `X@Y: z\r\n${close}`)] },
  { name: 'header starting with a space (folding)', send: [get('/', ` folded\r\n${close}`)] },
  { name: 'header value with NUL', send: [get('/', `X-A: a\0b\r\n${close}`)] },
  { name: 'duplicate Host', send: [`GET / HTTP/1.1\r\n${H}${H}\r\n`] },
  { name: 'empty Host', send: ['GET / HTTP/1.1\r\nHost:\r\n\r\n'] },
  { name: 'Host with a slash', send: ['GET / HTTP/1.1\r\nHost: a/b\r\n\r\n'] },
  { name: 'HTTP/1.1 without Host', send: ['GET / HTTP/1.1\r\n\r\n'] },
  { name: 'duplicate Content-Length', send: [`POST / HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 1\r\n\r\nx`] },
  { name: 'bad Content-Length', send: [`POST / HTTP/1.1\r\n${H}Content-Length: 1x\r\n\r\n`] },
  { name: 'Transfer-Encoding and Content-Length', send: [`POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n`] },
  { name: 'unknown Transfer-Encoding', send: [`POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`] },
  { name: 'Range: one range', send: [get('/data.bin', `Range: bytes=10-19\r\n${close}`)] },
  { name: 'Range: suffix', send: [get('/data.bin', `Range: bytes=-5\r\n${close}`)] },
  { name: 'Range: open end', send: [get('/data.bin', `Range: bytes=2990-\r\n${close}`)] },
  { name: 'Range: unsatisfiable', send: [get('/data.bin', `Range: bytes=5000-6000\r\n${close}`)] },
  { name: 'Range: malformed', send: [get('/data.bin', `Range: bytes=abc\r\n${close}`)] },
  { name: 'Range: not bytes', send: [get('/data.bin', `Range: items=1-2\r\n${close}`)] },
  { name: 'Range: reversed', send: [get('/data.bin', `Range: bytes=20-10\r\n${close}`)] },
  { name: 'Range: overlapping past the size', send: [get('/style.css', `Range: bytes=0-21,0-21\r\n${close}`)] },
  { name: 'Range on a 404', send: [get('/nope', `Range: bytes=0-1\r\n${close}`)] },
  { name: 'Range: two ranges', send: [get('/data.bin', `Range: bytes=0-4,10-14\r\n${close}`)] },
  { name: 'Range with a matching If-Range', send: [get('/data.bin', `Range: bytes=0-9\r\nIf-Range: Fri, 01 Mar 2024 12:00:00 GMT\r\n${close}`)] },
  { name: 'Range with a stale If-Range', send: [get('/data.bin', `Range: bytes=0-9\r\nIf-Range: "x"\r\n${close}`)] },
  { name: 'If-Modified-Since equal', send: [get('/style.css', `If-Modified-Since: Fri, 01 Mar 2024 12:00:00 GMT\r\n${close}`)] },
  { name: 'If-Modified-Since other', send: [get('/style.css', `If-Modified-Since: Fri, 01 Mar 2024 12:00:01 GMT\r\n${close}`)] },
  { name: 'If-None-Match *', send: [get('/style.css', `If-None-Match: *\r\n${close}`)] },
  { name: 'If-Match mismatch', send: [get('/style.css', `If-Match: "nope"\r\n${close}`)] },
  { name: 'If-Unmodified-Since in the past', send: [get('/style.css', `If-Unmodified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n${close}`)] },
  { name: 'Upgrade: websocket to /', send: [`GET / HTTP/1.1\r\n${H}${ws}\r\n`] },
  { name: 'Upgrade: websocket to the secret path, no token', send: [`GET {secret} HTTP/1.1\r\n${H}${ws}\r\n`] },
  { name: 'Upgrade to the secret path, bad token', send: [`GET {secret} HTTP/1.1\r\n${H}${ws}Authorization: Bearer ${'A'.repeat(87)}\r\n\r\n`] },
  { name: 'Upgrade: h2c', send: [`GET / HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`] },
  { name: 'MSIE User-Agent on a missing page', send: [get('/nope', `User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)\r\n${close}`)] },
  { name: 'MSIE User-Agent on a 405', send: [`DELETE / HTTP/1.1\r\n${H}User-Agent: Mozilla/4.0 (compatible; MSIE 8.0)\r\n${close}\r\n`] },
  { name: 'Chrome User-Agent on a 403', send: [get('/empty/', `User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n${close}`)] },
  { name: 'Firefox User-Agent on a 403', send: [get('/empty/', `User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n${close}`)] },
  { name: 'Chrome User-Agent, then a duplicate Host', send: [`GET / HTTP/1.1\r\n${H}User-Agent: Chrome/1\r\n${H}\r\n`] },
  { name: 'MSIE 6 POST keep-alive', send: [`POST / HTTP/1.1\r\n${H}User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)\r\nContent-Length: 1\r\n\r\nx`] },
  { name: 'GET the secret path', send: [get('{secret}', close)] },
  { name: 'Expect: 100-continue', send: [`POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nExpect: 100-continue\r\n\r\n`, 200, 'hello'] },
  { name: 'pipelined requests', send: [get('/') + get('/style.css') + get('/nope', close)] },
  { name: 'keep-alive sequence with pauses', send: [get('/'), 300, get('/style.css'), 300, get('/nope', close)] },
  { name: 'GET then garbage on the same connection', send: [`${get('/')}BLAH\r\n\r\n`] },
  { name: 'request trickled a byte at a time', send: [...get('/style.css', close)].flatMap((ch) => [ch, 2]) },
  { name: 'leading empty lines', send: [`\r\n\r\n${get('/', close)}`] },
  { name: 'LF-only line ends', send: ['GET / HTTP/1.1\nHost: decoy.example\nConnection: close\n\n'] },
  { name: 'several spaces in the request line', send: [`GET   /   HTTP/1.1\r\n${H}${close}\r\n`] },
  { name: 'tab in the request line', send: [`GET\t/ HTTP/1.1\r\n${H}\r\n`] },
  { name: 'control byte in the URI', send: [`GET /\x01 HTTP/1.1\r\n${H}\r\n`] },
  { name: 'binary garbage', send: [Buffer.from([0, 1, 2, 0xff, 0x10, 0x0d, 0x0a, 0x0d, 0x0a])] },
  { name: 'half a request line, then silence', send: ['GET / HT'] },
  { name: 'half a header, then silence', send: [`GET / HTTP/1.1\r\n${H}X-A: b`] },
  { name: 'TLS handshake, then nothing', send: [] },
  { name: 'plain HTTP on the TLS port', plain: true, send: [get('/')] },
  { name: 'plain garbage on the TLS port', plain: true, send: ['HELLO\r\n\r\n'] },
  { name: 'plain HTTP/1.1 without Host on the TLS port', plain: true, send: ['GET / HTTP/1.1\r\n\r\n'] },
  { name: 'TCP connect, then nothing', plain: true, send: [] },
  {
    name: 'Accept-Encoding: gzip',
    send: [get('/', `Accept-Encoding: gzip\r\n${close}`)],
    exception: "Debian's gzip on: nginx compresses text/html with its own zlib settings; the decoy sends it uncompressed",
  },
];

export const TLS_PROBES: TlsProbe[] = [
  { name: 'default ClientHello', args: [] },
  { name: 'TLS 1.3 only', args: ['-tls1_3'] },
  { name: 'TLS 1.2 only', args: ['-tls1_2'] },
  { name: 'TLS 1.2, CAMELLIA only', args: ['-tls1_2', '-cipher', 'CAMELLIA'] },
  { name: 'TLS 1.2, AES128-SHA only (no forward secrecy)', args: ['-tls1_2', '-cipher', 'AES128-SHA'] },
  { name: 'TLS 1.2, ChaCha20 only', args: ['-tls1_2', '-cipher', 'ECDHE-RSA-CHACHA20-POLY1305'] },
  { name: 'TLS 1.2, 3DES only', args: ['-tls1_2', '-cipher', 'DES-CBC3-SHA@SECLEVEL=0'] },
  { name: 'TLS 1.1', args: ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'] },
  { name: 'TLS 1.0', args: ['-tls1', '-cipher', 'DEFAULT@SECLEVEL=0'] },
  { name: 'ALPN h2 and http/1.1', args: ['-alpn', 'h2,http/1.1'] },
  { name: 'ALPN h2 only', args: ['-alpn', 'h2'] },
  { name: 'TLS 1.3, CHACHA20 suite only', args: ['-tls1_3', '-ciphersuites', 'TLS_CHACHA20_POLY1305_SHA256'] },
];
