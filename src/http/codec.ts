/**
 * HTTP/1.1 message heads for the local proxy (RFC 9110, RFC 9112), pure: bytes in; a parsed head
 * and the bytes it used, "need more", or a typed error with the status to answer out. No sockets.
 *
 * Strict where leniency lets two parsers disagree (request smuggling): lines end in CRLF, no
 * obsolete line folding, no whitespace before the colon, Content-Length digits only and
 * consistent, Transfer-Encoding only when its last coding is `chunked`, never both. We re-emit
 * every head we forward from the parsed fields, so what goes out is exactly what we understood.
 */
import { targetFromHost, type Target } from '../core/address.js';

export type HttpParseResult<T> =
  | { readonly ok: true; readonly value: T; readonly used: number }
  | { readonly ok: false; readonly need: 'more' }
  | { readonly ok: false; readonly error: HttpParseError };

/** Why a head was refused, and the status the proxy answers with. Reasons are stable strings. */
export interface HttpParseError {
  readonly status: 400 | 431 | 501 | 505 | 502;
  readonly reason: string;
}

export type Header = readonly [name: string, value: string];

export interface RequestHead {
  readonly method: string;
  /** The request-target as sent (RFC 9112 §3.2). */
  readonly target: string;
  readonly version: '1.0' | '1.1';
  /** In order, names as sent (compare case-insensitively). */
  readonly headers: readonly Header[];
}

export interface ResponseHead {
  readonly version: '1.0' | '1.1';
  readonly status: number;
  readonly reason: string;
  readonly headers: readonly Header[];
}

/** How a message body is delimited (RFC 9112 §6.3). */
export type BodyFraming =
  | { readonly kind: 'none' }
  | { readonly kind: 'length'; readonly length: number }
  | { readonly kind: 'chunked' }
  /** Response only: the body ends when the server closes the connection. */
  | { readonly kind: 'close' };

const NEED_MORE = { ok: false, need: 'more' } as const;
const CRLFCRLF = Buffer.from('\r\n\r\n');

function err(status: HttpParseError['status'], reason: string): { ok: false; error: HttpParseError } {
  return { ok: false, error: { status, reason } };
}

// RFC 9110 §5.6.2 token characters.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field value: visible ASCII, obs-text, SP and HTAB (RFC 9110 §5.5); no CR, LF, NUL or other controls.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
// Request-target: visible ASCII only (no spaces, no controls, no obs-text).
const TARGET = /^[\x21-\x7e]+$/;

/** Splits the head into lines; error when it is too large or a line is not CRLF-terminated. */
function splitHead(buf: Uint8Array, maxBytes: number): HttpParseResult<string[]> {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const end = b.indexOf(CRLFCRLF);
  if (end < 0) {
    if (b.length > maxBytes) return err(431, 'head-too-large');
    return NEED_MORE;
  }
  const used = end + 4;
  if (used > maxBytes) return err(431, 'head-too-large');
  // latin1 keeps every byte as one char, so obs-text round-trips and checks stay byte-wise.
  const text = b.toString('latin1', 0, end);
  const lines = text.split('\r\n');
  for (const l of lines) if (l.includes('\n') || l.includes('\r')) return err(400, 'bare-cr-or-lf');
  return { ok: true, value: lines, used };
}

function parseHeaders(lines: readonly string[]): HttpParseResult<Header[]> {
  const headers: Header[] = [];
  for (const line of lines) {
    if (line.startsWith(' ') || line.startsWith('\t')) return err(400, 'obs-fold');
    const colon = line.indexOf(':');
    if (colon <= 0) return err(400, 'bad-header-line');
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return err(400, 'bad-header-name');
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) return err(400, 'bad-header-value');
    headers.push([name, value]);
  }
  return { ok: true, value: headers, used: 0 };
}

function parseVersion(v: string): '1.0' | '1.1' | null {
  if (v === 'HTTP/1.1') return '1.1';
  if (v === 'HTTP/1.0') return '1.0';
  return null;
}

/** Parses a request head (request line + fields + empty line), at most maxBytes long. */
export function parseRequestHead(buf: Uint8Array, maxBytes: number): HttpParseResult<RequestHead> {
  // Tolerate (and drop) empty lines before the request line (RFC 9112 §2.2) — but bounded by maxBytes.
  let skip = 0;
  while (skip + 1 < buf.length && buf[skip] === 0x0d && buf[skip + 1] === 0x0a) skip += 2;
  if (skip > 0) {
    const r = parseRequestHead(buf.subarray(skip), maxBytes - skip);
    return r.ok ? { ...r, used: r.used + skip } : r;
  }
  const split = splitHead(buf, maxBytes);
  if (!split.ok) {
    // Before the head is complete, refuse at once what cannot become a request line.
    if ('need' in split && buf.length > 0 && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/.test(String.fromCharCode(buf[0] as number))) {
      return err(400, 'bad-request-line');
    }
    return split;
  }
  const [requestLine, ...fieldLines] = split.value;
  const parts = (requestLine ?? '').split(' ');
  if (parts.length !== 3) return err(400, 'bad-request-line');
  const [method, target, versionText] = parts as [string, string, string];
  if (!TOKEN.test(method)) return err(400, 'bad-method');
  if (!TARGET.test(target)) return err(400, 'bad-target');
  if (!/^HTTP\/\d\.\d$/.test(versionText)) return err(400, 'bad-version');
  const version = parseVersion(versionText);
  if (version === null) return err(505, 'unsupported-version');
  const h = parseHeaders(fieldLines);
  if (!h.ok) return h;
  return { ok: true, value: { method, target, version, headers: h.value }, used: split.used };
}

/** Parses a response head (status line + fields + empty line). Errors are the upstream's: 502. */
export function parseResponseHead(buf: Uint8Array, maxBytes: number): HttpParseResult<ResponseHead> {
  const split = splitHead(buf, maxBytes);
  if (!split.ok) return 'need' in split ? split : err(502, `upstream-${split.error.reason}`);
  const [statusLine, ...fieldLines] = split.value;
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(statusLine ?? '');
  if (!m) return err(502, 'upstream-bad-status-line');
  const version = parseVersion(m[1] as string);
  if (version === null) return err(502, 'upstream-bad-version');
  const reason = m[3] ?? '';
  if (!FIELD_VALUE.test(reason)) return err(502, 'upstream-bad-status-line');
  const h = parseHeaders(fieldLines);
  if (!h.ok) return 'error' in h ? err(502, `upstream-${h.error.reason}`) : h;
  return { ok: true, value: { version, status: Number(m[2]), reason, headers: h.value }, used: split.used };
}

// ── Header helpers ──────────────────────────────────────────────────────────

/** All values of a field, in order (case-insensitive name). */
export function headerValues(headers: readonly Header[], name: string): string[] {
  const n = name.toLowerCase();
  return headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
}

/**
 * Whether a request names this machine's proxy port by a loopback name: exactly one Host field
 * (RFC 9112 §3.2) whose value is 127.0.0.1, [::1] or localhost (any case) with `port` — what a
 * browser on this machine sends for http://127.0.0.1:PORT/. Anything else (another name, a name that
 * merely resolves to 127.0.0.1 as in DNS rebinding, another port, a missing port unless 80) is not.
 */
export function isLoopbackHostField(headers: readonly Header[], port: number): boolean {
  const values = headerValues(headers, 'host');
  if (values.length !== 1) return false;
  const m = /^(127\.0\.0\.1|\[::1\]|localhost)(?::(\d{1,5}))?$/i.exec((values[0] as string).trim());
  if (m === null) return false;
  return m[2] === undefined ? port === 80 : Number(m[2]) === port && !m[2].startsWith('0');
}

/** Comma-separated list elements of every value of a field, lower-cased, empty ones dropped. */
export function headerTokens(headers: readonly Header[], name: string): string[] {
  return headerValues(headers, name)
    .flatMap((v) => v.split(','))
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t.length > 0);
}

/** Hop-by-hop fields (RFC 9110 §7.6.1) plus the proxy's own; never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'upgrade',
]);

/**
 * The fields to forward: without hop-by-hop fields and those the Connection field names.
 * Transfer-Encoding stays: bodies are passed through unchanged, chunked framing included.
 */
export function endToEndHeaders(headers: readonly Header[]): Header[] {
  const named = new Set(headerTokens(headers, 'connection'));
  named.delete('transfer-encoding'); // we relay the body as framed; the framing must stay
  named.delete('content-length');
  return headers.filter(([k]) => {
    const n = k.toLowerCase();
    return !HOP_BY_HOP.has(n) && !named.has(n);
  });
}

/** Whether the connection may carry another message after this one (RFC 9112 §9.3). */
export function wantsKeepAlive(version: '1.0' | '1.1', headers: readonly Header[]): boolean {
  const c = [...headerTokens(headers, 'connection'), ...headerTokens(headers, 'proxy-connection')];
  if (c.includes('close')) return false;
  return version === '1.1' || c.includes('keep-alive');
}

function contentLength(headers: readonly Header[]): HttpParseResult<number | null> {
  const values = headerValues(headers, 'content-length').flatMap((v) => v.split(',').map((x) => x.trim()));
  if (values.length === 0) return { ok: true, value: null, used: 0 };
  const first = values[0] as string;
  if (!/^\d{1,15}$/.test(first) || values.some((v) => v !== first)) return err(400, 'bad-content-length');
  return { ok: true, value: Number(first), used: 0 };
}

/** Body framing of a request (RFC 9112 §6.3): chunked, a length, or none. */
export function requestFraming(head: RequestHead): HttpParseResult<BodyFraming> {
  const te = headerTokens(head.headers, 'transfer-encoding');
  const cl = contentLength(head.headers);
  if (!cl.ok) return cl;
  if (te.length > 0) {
    if (cl.value !== null) return err(400, 'both-length-and-chunked');
    if (head.version === '1.0') return err(400, 'chunked-in-http-1.0');
    if (te[te.length - 1] !== 'chunked') return err(501, 'unsupported-transfer-coding');
    return { ok: true, value: { kind: 'chunked' }, used: 0 };
  }
  if (cl.value === null || cl.value === 0) return { ok: true, value: { kind: 'none' }, used: 0 };
  return { ok: true, value: { kind: 'length', length: cl.value }, used: 0 };
}

/** Body framing of a response to `method` (RFC 9112 §6.3). */
export function responseFraming(method: string, head: ResponseHead): HttpParseResult<BodyFraming> {
  const s = head.status;
  if (method === 'HEAD' || (s >= 100 && s < 200) || s === 204 || s === 304) return { ok: true, value: { kind: 'none' }, used: 0 };
  const te = headerTokens(head.headers, 'transfer-encoding');
  if (te.length > 0) {
    if (te[te.length - 1] === 'chunked') return { ok: true, value: { kind: 'chunked' }, used: 0 };
    return { ok: true, value: { kind: 'close' }, used: 0 };
  }
  const cl = contentLength(head.headers);
  if (!cl.ok) return err(502, 'upstream-bad-content-length');
  if (cl.value === null) return { ok: true, value: { kind: 'close' }, used: 0 };
  return { ok: true, value: cl.value === 0 ? { kind: 'none' } : { kind: 'length', length: cl.value }, used: 0 };
}

// ── Request targets ─────────────────────────────────────────────────────────

export type ProxyTarget =
  /** CONNECT host:port (RFC 9110 §9.3.6, authority-form). */
  | { readonly kind: 'connect'; readonly target: Target }
  /** absolute-form http://host[:port]/path: forward as `path` to host:port with Host `hostHeader`. */
  | { readonly kind: 'forward'; readonly target: Target; readonly path: string; readonly hostHeader: string }
  /** origin-form (/path): a request to the proxy itself. */
  | { readonly kind: 'local'; readonly path: string };

/** host[:port] → host and port; IPv6 in brackets. null when malformed. */
function parseAuthority(a: string, defaultPort: number | null): { host: string; port: number } | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]/@?#]+)(?::(\d{1,5}))?$/.exec(a);
  if (!m) return null;
  const host = m[1] as string;
  const port = m[2] !== undefined ? Number(m[2]) : defaultPort;
  if (port === null || !(port >= 1 && port <= 65535)) return null;
  if (host.startsWith('[')) {
    const t = targetFromHost(host, port);
    if (t.kind !== 'ipv6') return null;
  } else if (!/^[A-Za-z0-9._~!$&'()*+,;=%-]+$/.test(host) || Buffer.byteLength(host) > 255) {
    return null;
  }
  return { host, port };
}

/** What a request asks of the proxy: a tunnel, a forwarded request, or a local resource. */
export function classifyTarget(head: RequestHead): HttpParseResult<ProxyTarget> {
  const t = head.target;
  if (head.method === 'CONNECT') {
    const a = parseAuthority(t, null);
    if (a === null) return err(400, 'bad-connect-target');
    return { ok: true, value: { kind: 'connect', target: targetFromHost(a.host, a.port) }, used: 0 };
  }
  if (t.startsWith('/')) return { ok: true, value: { kind: 'local', path: t }, used: 0 };
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/.exec(t);
  if (!m) return err(400, 'bad-target');
  if ((m[1] as string).toLowerCase() !== 'http') return err(501, 'unsupported-scheme');
  const authority = m[2] as string;
  if (authority.includes('@')) return err(400, 'userinfo-in-target');
  const a = parseAuthority(authority, 80);
  if (a === null) return err(400, 'bad-target-authority');
  let path = m[3] as string;
  if (path === '') path = '/';
  else if (path.startsWith('?')) path = `/${path}`;
  return { ok: true, value: { kind: 'forward', target: targetFromHost(a.host, a.port), path, hostHeader: authority }, used: 0 };
}

/** Serializes a head: start line, fields, empty line. */
export function encodeHead(startLine: string, headers: readonly Header[]): Buffer {
  let s = `${startLine}\r\n`;
  for (const [k, v] of headers) s += `${k}: ${v}\r\n`;
  return Buffer.from(`${s}\r\n`, 'latin1');
}

const REASONS: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

/** A complete small response from the proxy itself, closing the connection unless told otherwise. */
export function simpleResponse(
  status: number,
  body: string,
  opts: { headers?: readonly Header[]; contentType?: string; keepAlive?: boolean; omitBody?: boolean } = {},
): Buffer {
  const b = Buffer.from(body, 'utf8');
  const head = encodeHead(`HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}`, [
    ['Content-Type', opts.contentType ?? 'text/plain; charset=utf-8'],
    ['Content-Length', String(b.length)],
    ['Connection', opts.keepAlive === true ? 'keep-alive' : 'close'],
    ...(opts.headers ?? []),
  ]);
  return opts.omitBody === true ? head : Buffer.concat([head, b]);
}

// ── Chunked framing (RFC 9112 §7.1) ─────────────────────────────────────────

/** Longest chunk-size line (with extensions) or trailer line we accept. */
export const CHUNK_LINE_MAX_BYTES = 4_096;
/** Largest total trailer section we pass through. */
export const CHUNK_TRAILER_MAX_BYTES = 16 * 1024;

type ChunkState = 'size' | 'data' | 'data-crlf' | 'trailer' | 'done';

/**
 * Follows chunked framing through a byte stream without changing it: `scan` says how many of the
 * given bytes belong to the body (the rest is the next message) and whether the body is complete.
 */
export class ChunkedScanner {
  #state: ChunkState = 'size';
  #line = '';
  #left = 0;
  #trailerBytes = 0;

  get done(): boolean {
    return this.#state === 'done';
  }

  /** Returns the bytes of `buf` that belong to the body, or an error reason. */
  scan(buf: Uint8Array): { used: number } | { error: string } {
    let i = 0;
    while (i < buf.length && this.#state !== 'done') {
      switch (this.#state) {
        case 'data': {
          const n = Math.min(this.#left, buf.length - i);
          i += n;
          this.#left -= n;
          if (this.#left === 0) this.#state = 'data-crlf';
          break;
        }
        case 'size':
        case 'trailer':
        case 'data-crlf': {
          const c = buf[i++] as number;
          this.#line += String.fromCharCode(c);
          if (this.#state === 'trailer' && ++this.#trailerBytes > CHUNK_TRAILER_MAX_BYTES) return { error: 'trailer-too-large' };
          if (this.#line.length > CHUNK_LINE_MAX_BYTES) return { error: 'chunk-line-too-long' };
          if (this.#state === 'data-crlf' && !'\r\n'.startsWith(this.#line)) return { error: 'missing-crlf-after-chunk' };
          if (c !== 0x0a) break;
          if (!this.#line.endsWith('\r\n')) return { error: 'bare-lf-in-chunked' };
          const line = this.#line.slice(0, -2);
          this.#line = '';
          if (this.#state === 'data-crlf') {
            if (line !== '') return { error: 'missing-crlf-after-chunk' };
            this.#state = 'size';
          } else if (this.#state === 'size') {
            const m = /^([0-9A-Fa-f]{1,12})[ \t]*(?:;.*)?$/.exec(line);
            if (!m) return { error: 'bad-chunk-size' };
            this.#left = parseInt(m[1] as string, 16);
            this.#state = this.#left === 0 ? 'trailer' : 'data';
          } else if (line === '') {
            this.#state = 'done';
          }
          break;
        }
      }
    }
    return { used: i };
  }
}
