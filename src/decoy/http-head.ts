/**
 * A request-head parser that accepts and refuses exactly what nginx 1.22 does with its default
 * settings (docs/protocol.md §2.2): the request-line and header-line grammar, HTTP/0.9, the
 * absolute form, `HTTP/2.0` → 505, ignore_invalid_headers on, underscores_in_headers off,
 * client_header_buffer_size 1k and large_client_header_buffers 4 8k (a request line that does
 * not fit → 414, a header line that does not fit or a head that needs a fifth buffer → 400
 * "Request Header Or Cookie Too Large"), a duplicate or invalid Host and duplicate unique headers
 * → 400 at the line that repeats them, and the checks nginx makes once the head is complete.
 *
 * Pure and incremental: feed() takes bytes as they arrive and returns "more", a request (with the
 * number of bytes its head used), or an error (status, page title, whether nginx would answer with
 * HTTP/0.9, i.e. body only). Errors are reported at the byte where nginx reports them, so a prober
 * sees an answer after the same bytes. Written from nginx's documented behaviour and its parser's
 * rules; no code of nginx is used.
 */

/** nginx's header buffers (client_header_buffer_size, large_client_header_buffers). */
export const NGINX_HEADER_BUFFER_BYTES = 1024;
export const NGINX_LARGE_HEADER_BUFFER_BYTES = 8 * 1024;
export const NGINX_LARGE_HEADER_BUFFERS_COUNT = 4;
/** The most bytes a head can occupy before the parser has decided (one small + four large buffers). */
export const NGINX_MAX_HEAD_BYTES = NGINX_HEADER_BUFFER_BYTES + NGINX_LARGE_HEADER_BUFFERS_COUNT * NGINX_LARGE_HEADER_BUFFER_BYTES;

export interface ParsedHead {
  readonly method: string;
  /** The request target as sent (origin or absolute form). */
  readonly target: string;
  /** The path and query of the target (absolute form: what follows the authority; '/' when empty). */
  readonly url: string;
  /** '0.9', '1.0', '1.1' (minor versions above 1 of HTTP/1 are kept as sent, e.g. '1.2'). */
  readonly httpVersion: string;
  readonly major: number;
  readonly minor: number;
  /** Valid header lines in order, names as sent. Invalid ones nginx ignores are left out. */
  readonly rawHeaders: ReadonlyArray<readonly [string, string]>;
  /** Lower-case name → first value (Node's IncomingHttpHeaders shape; nginx uses the first too). */
  readonly headers: Readonly<Record<string, string>>;
  /** The host named in an absolute-form target, if any (nginx prefers it to Host). */
  readonly targetHost: string | null;
}

export type HeadError = {
  readonly kind: 'error';
  /** The status nginx answers (its page may say more, e.g. 400 "Request Header Or Cookie Too Large"). */
  readonly status: 400 | 405 | 414 | 501 | 505;
  readonly detail?: string;
  /** nginx answers an HTTP/0.9 request line with the body alone (no status line, no headers). */
  readonly http09: boolean;
  /** The method, when the request line got that far (a HEAD gets no body). */
  readonly method: string | null;
  /** The first User-Agent, when a line before the error gave one (nginx pads its page for some browsers). */
  readonly userAgent?: string;
};

export type HeadResult = { readonly kind: 'more' } | { readonly kind: 'request'; readonly head: ParsedHead; readonly used: number } | HeadError;

const TOO_LARGE = 'Request Header Or Cookie Too Large';

/** Headers nginx refuses to see twice (ngx_http_process_unique_header_line). */
const UNIQUE = new Set([
  'if-modified-since',
  'if-unmodified-since',
  'if-match',
  'if-none-match',
  'content-length',
  'content-range',
  'if-range',
  'transfer-encoding',
  'expect',
  'authorization',
]);

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;

const isUpper = (c: number): boolean => c >= 0x41 && c <= 0x5a;
const isAlpha = (c: number): boolean => ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a);
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
/** A character nginx folds into a header name (letters, digits, '-'). */
const isNameChar = (c: number): boolean => isAlpha(c) || isDigit(c) || c === 0x2d;

/** nginx's check of a Host value (ngx_http_validate_host): no empty host, "..", '/', '\', controls or spaces. */
export function validHost(host: string): boolean {
  let dot = -2;
  let hostLen = host.length;
  let state: 'usual' | 'literal' | 'rest' = 'usual';
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c === 0x2e) {
      if (dot === i - 1) return false;
      dot = i;
    } else if (c === 0x3a) {
      if (state === 'usual') {
        hostLen = i;
        state = 'rest';
      }
    } else if (c === 0x5b) {
      if (i === 0) state = 'literal';
    } else if (c === 0x5d) {
      if (state === 'literal') {
        hostLen = i + 1;
        state = 'rest';
      }
    } else if (c === 0x2f || c <= 0x20 || c === 0x7f) {
      return false;
    }
  }
  if (dot === hostLen - 1) hostLen--;
  return hostLen > 0;
}

type LineState =
  | 'start'
  | 'method'
  | 'spaces_before_uri'
  | 'schema'
  | 'schema_slash'
  | 'schema_slash_slash'
  | 'host_start'
  | 'host'
  | 'host_ip_literal'
  | 'port'
  | 'uri'
  | 'http_09'
  | 'proto'
  | 'first_major'
  | 'major'
  | 'first_minor'
  | 'minor'
  | 'spaces_after_digit'
  | 'almost_done';

type HeaderState = 'start' | 'name' | 'space_before_value' | 'value' | 'space_after_value' | 'almost_done' | 'header_almost_done';

/**
 * One request head, parsed as bytes arrive. `data` is everything received since the request
 * began (the caller appends; the parser keeps its place). Bounded: it decides by
 * NGINX_MAX_HEAD_BYTES at the latest.
 */
export class HeadParser {
  private pos = 0;
  private phase: 'line' | 'headers' = 'line';
  private ls: LineState = 'start';
  private hs: HeaderState = 'start';
  /** The header buffer nginx would be filling: [regionStart, regionEnd) in stream offsets. */
  private regionEnd = NGINX_HEADER_BUFFER_BYTES;
  private largeUsed = 0;
  private lineStart = 0;
  private methodEnd = 0;
  private uriStart = -1;
  private uriEnd = -1;
  private hostStart = -1;
  private hostEnd = -1;
  private protoAt = -1;
  private major = 1;
  private minor = 0;
  private http09 = false;
  private nameEnd = 0;
  private valueStart = 0;
  private valueEnd = 0;
  private invalidName = false;
  private readonly rawHeaders: Array<[string, string]> = [];
  private readonly headers: Record<string, string> = {};
  private method: string | null = null;

  private feed(data: Buffer): HeadResult {
    while (this.pos < data.length) {
      if (this.pos === this.regionEnd) {
        const full = this.bufferFull();
        if (full !== null) return full;
      }
      const r = this.phase === 'line' ? this.lineByte(data, data[this.pos]!) : this.headerByte(data, data[this.pos]!);
      this.pos++;
      if (r !== null) return r;
    }
    if (this.pos === this.regionEnd) {
      const full = this.bufferFull();
      if (full !== null) return full;
    }
    return { kind: 'more' };
  }

  private error(status: HeadError['status'], detail?: string): HeadError {
    const ua = this.headers['user-agent'];
    return { kind: 'error', status, ...(detail !== undefined ? { detail } : {}), http09: false, method: this.method, ...(ua !== undefined ? { userAgent: ua } : {}) };
  }

  /** nginx's buffer ran full with the head incomplete: move to a large buffer, or refuse. */
  private bufferFull(): HeadError | null {
    const inLine = this.phase === 'line';
    const between = inLine ? this.ls === 'start' : this.hs === 'start';
    if (inLine && between) {
      // Only CR/LF so far: nginx reuses its buffer from the start.
      this.regionEnd = this.pos + (this.largeUsed === 0 ? NGINX_HEADER_BUFFER_BYTES : NGINX_LARGE_HEADER_BUFFER_BYTES);
      return null;
    }
    if (!between && this.pos - this.lineStart >= NGINX_LARGE_HEADER_BUFFER_BYTES) return inLine ? this.error(414) : this.error(400, TOO_LARGE);
    if (this.largeUsed >= NGINX_LARGE_HEADER_BUFFERS_COUNT) return inLine ? this.error(414) : this.error(400, TOO_LARGE);
    this.largeUsed++;
    this.regionEnd = (between ? this.pos : this.lineStart) + NGINX_LARGE_HEADER_BUFFER_BYTES;
    return null;
  }

  private lineByte(data: Buffer, c: number): HeadResult | null {
    switch (this.ls) {
      case 'start':
        this.lineStart = this.pos;
        if (c === CR || c === LF) return null;
        if (!isUpper(c) && c !== 0x5f && c !== 0x2d) return this.error(400);
        this.ls = 'method';
        return null;
      case 'method':
        if (c === SP) {
          this.methodEnd = this.pos;
          this.method = data.toString('latin1', this.lineStart, this.pos);
          this.ls = 'spaces_before_uri';
          return null;
        }
        if (!isUpper(c) && c !== 0x5f && c !== 0x2d) return this.error(400);
        return null;
      case 'spaces_before_uri':
        if (c === 0x2f) {
          this.uriStart = this.pos;
          this.ls = 'uri';
          return null;
        }
        if (isAlpha(c)) {
          this.ls = 'schema';
          return null;
        }
        return c === SP ? null : this.error(400);
      case 'schema':
        if (isAlpha(c) || isDigit(c) || c === 0x2b || c === 0x2d || c === 0x2e) return null;
        if (c !== 0x3a) return this.error(400);
        this.ls = 'schema_slash';
        return null;
      case 'schema_slash':
      case 'schema_slash_slash':
        if (c !== 0x2f) return this.error(400);
        this.ls = this.ls === 'schema_slash' ? 'schema_slash_slash' : 'host_start';
        return null;
      case 'host_start':
        this.hostStart = this.pos;
        if (c === 0x5b) {
          this.ls = 'host_ip_literal';
          return null;
        }
        this.ls = 'host';
        return this.hostByte(c);
      case 'host':
        return this.hostByte(c);
      case 'host_ip_literal':
        if (isAlpha(c) || isDigit(c) || ':-._~!$&\'()*+,;='.includes(String.fromCharCode(c))) return null;
        if (c !== 0x5d) return this.error(400);
        this.ls = 'host';
        this.hostEnd = this.pos + 1;
        return null;
      case 'port':
        if (isDigit(c)) return null;
        return this.afterAuthority(c, true);
      case 'uri':
        if (c === SP) {
          this.uriEnd = this.pos;
          this.ls = 'http_09';
          return null;
        }
        if (c === CR || c === LF) {
          this.uriEnd = this.pos;
          return this.endOf09(c);
        }
        if (c < 0x20 || c === 0x7f) return this.error(400);
        return null;
      case 'http_09':
        if (c === SP) return null;
        if (c === CR || c === LF) return this.endOf09(c);
        if (c !== 0x48) return this.error(400);
        this.protoAt = this.pos;
        this.ls = 'proto';
        return null;
      case 'proto': {
        const want = 'HTTP/'.charCodeAt(this.pos - this.protoAt);
        if (c !== want) return this.error(400);
        if (this.pos - this.protoAt === 4) this.ls = 'first_major';
        return null;
      }
      case 'first_major':
        if (c < 0x31 || c > 0x39) return this.error(400);
        this.major = c - 0x30;
        if (this.major > 1) return this.error(505);
        this.ls = 'major';
        return null;
      case 'major':
        if (c === 0x2e) {
          this.ls = 'first_minor';
          return null;
        }
        if (!isDigit(c)) return this.error(400);
        this.major = this.major * 10 + (c - 0x30);
        return this.major > 1 ? this.error(505) : null;
      case 'first_minor':
        if (!isDigit(c)) return this.error(400);
        this.minor = c - 0x30;
        this.ls = 'minor';
        return null;
      case 'minor':
        if (c === CR) {
          this.ls = 'almost_done';
          return null;
        }
        if (c === LF) return this.lineDone(data);
        if (c === SP) {
          this.ls = 'spaces_after_digit';
          return null;
        }
        if (!isDigit(c) || this.minor > 99) return this.error(400);
        this.minor = this.minor * 10 + (c - 0x30);
        return null;
      case 'spaces_after_digit':
        if (c === SP) return null;
        if (c === CR) {
          this.ls = 'almost_done';
          return null;
        }
        return c === LF ? this.lineDone(data) : this.error(400);
      case 'almost_done':
        return c === LF ? this.lineDone(data) : this.error(400);
    }
  }

  private hostByte(c: number): HeadResult | null {
    if (this.ls === 'host' && this.hostEnd === -1 && (isAlpha(c) || isDigit(c) || c === 0x2e || c === 0x2d)) return null;
    if (this.hostEnd === -1) this.hostEnd = this.pos;
    return this.afterAuthority(c, false);
  }

  /** After the host (and port) of an absolute-form target. */
  private afterAuthority(c: number, inPort: boolean): HeadResult | null {
    if (c === 0x3a && !inPort) {
      this.ls = 'port';
      return null;
    }
    if (c === 0x2f || c === 0x3f) {
      this.uriStart = this.pos;
      this.ls = 'uri';
      return null;
    }
    if (c === SP) {
      this.uriStart = -2; // an empty path: '/'
      this.ls = 'http_09';
      return null;
    }
    return this.error(400);
  }

  private endOf09(c: number): HeadResult | null {
    this.http09 = true;
    this.major = 0;
    this.minor = 9;
    if (c === CR) {
      this.ls = 'almost_done';
      return null;
    }
    return this.lineDone(null);
  }

  private lineDone(_data: Buffer | null): HeadResult | null {
    if (this.hostStart >= 0 && !validHost(this.dataRef!.toString('latin1', this.hostStart, this.hostEnd))) {
      return { kind: 'error', status: 400, http09: this.http09, method: this.method };
    }
    if (this.http09) {
      if (this.method !== 'GET') return { kind: 'error', status: 400, http09: true, method: this.method };
      return this.finish(this.pos + 1);
    }
    this.phase = 'headers';
    this.hs = 'start';
    return null;
  }

  private headerByte(data: Buffer, c: number): HeadResult | null {
    switch (this.hs) {
      case 'start':
        this.lineStart = this.pos;
        this.invalidName = false;
        if (c === CR) {
          this.hs = 'header_almost_done';
          return null;
        }
        if (c === LF) return this.finish(this.pos + 1);
        this.hs = 'name';
        if (isNameChar(c)) return null;
        if (c === 0x5f) {
          this.invalidName = true;
          return null;
        }
        if (c <= 0x20 || c === 0x7f || c === 0x3a) return this.error(400);
        this.invalidName = true;
        return null;
      case 'name':
        if (isNameChar(c)) return null;
        if (c === 0x5f) {
          this.invalidName = true;
          return null;
        }
        if (c === 0x3a) {
          this.nameEnd = this.pos;
          this.hs = 'space_before_value';
          return null;
        }
        if (c === CR || c === LF) {
          this.nameEnd = this.pos;
          this.valueStart = this.valueEnd = this.pos;
          return c === CR ? this.to('almost_done') : this.headerDone(data);
        }
        if (c <= 0x20 || c === 0x7f) return this.error(400);
        this.invalidName = true;
        return null;
      case 'space_before_value':
        if (c === SP) return null;
        if (c === CR || c === LF) {
          this.valueStart = this.valueEnd = this.pos;
          return c === CR ? this.to('almost_done') : this.headerDone(data);
        }
        if (c === 0) return this.error(400);
        this.valueStart = this.pos;
        this.valueEnd = -1;
        this.hs = 'value';
        return null;
      case 'value':
        if (c === SP) {
          this.valueEnd = this.pos;
          this.hs = 'space_after_value';
          return null;
        }
        if (c === CR || c === LF) {
          this.valueEnd = this.pos;
          return c === CR ? this.to('almost_done') : this.headerDone(data);
        }
        return c === 0 ? this.error(400) : null;
      case 'space_after_value':
        if (c === SP) return null;
        if (c === CR) return this.to('almost_done');
        if (c === LF) return this.headerDone(data);
        if (c === 0) return this.error(400);
        this.hs = 'value';
        return null;
      case 'almost_done':
        if (c === LF) return this.headerDone(data);
        return c === CR ? null : this.error(400);
      case 'header_almost_done':
        return c === LF ? this.finish(this.pos + 1) : this.error(400);
    }
  }

  private to(s: HeaderState): null {
    this.hs = s;
    return null;
  }

  /** One header line is complete: keep it (or ignore it as nginx does), check Host and unique headers. */
  private headerDone(data: Buffer): HeadResult | null {
    this.hs = 'start';
    if (this.invalidName) return null;
    const name = data.toString('latin1', this.lineStart, this.nameEnd);
    const value = data.toString('latin1', this.valueStart, this.valueEnd);
    const lower = name.toLowerCase();
    if (lower === 'host') {
      if (this.headers.host !== undefined || !validHost(value)) return this.error(400);
    } else if (UNIQUE.has(lower) && this.headers[lower] !== undefined) {
      return this.error(400);
    }
    this.rawHeaders.push([name, value]);
    if (this.headers[lower] === undefined) this.headers[lower] = value;
    return null;
  }

  private finish(used: number): HeadResult {
    return { kind: 'request', head: this.build(), used };
  }

  private dataRef: Buffer | null = null;

  private build(): ParsedHead {
    const data = this.dataRef!;
    const end = this.uriEnd;
    let url: string;
    let ts = this.methodEnd + 1;
    while (data[ts] === SP) ts++; // nginx allows several spaces before the target
    const target = data.toString('latin1', ts, end);
    if (this.uriStart === -2) url = '/';
    else url = data.toString('latin1', this.uriStart, end);
    if (url.startsWith('?')) url = `/${url}`;
    const targetHost = this.hostStart >= 0 ? data.toString('latin1', this.hostStart, this.hostEnd) : null;
    const version = this.http09 ? '0.9' : `${this.major}.${this.minor}`;
    return {
      method: this.method!,
      target,
      url,
      httpVersion: version,
      major: this.major,
      minor: this.minor,
      rawHeaders: this.rawHeaders,
      headers: this.headers,
      targetHost,
    };
  }

  /** Continues parsing `data`: every byte of this request received so far (the caller appends). */
  parse(data: Buffer): HeadResult {
    this.dataRef = data;
    return this.feed(data);
  }
}

/**
 * The checks nginx makes once a head is complete (ngx_http_process_request_header), in its order:
 * HTTP/1.1 without Host, a Content-Length that is not a number, Transfer-Encoding on HTTP/1.0, with
 * a Content-Length, or other than chunked (501), CONNECT and TRACE (405). Null when none applies.
 */
export function headProblem(h: ParsedHead): HeadError | null {
  const err = (status: HeadError['status']): HeadError => ({ kind: 'error', status, http09: false, method: h.method });
  if (h.headers.host === undefined && h.major * 1000 + h.minor > 1000) return err(400);
  const cl = h.headers['content-length'];
  if (cl !== undefined && !/^[0-9]{1,18}$/.test(cl)) return err(400);
  const te = h.headers['transfer-encoding'];
  if (te !== undefined) {
    if (h.major * 1000 + h.minor < 1001) return err(400);
    if (te.toLowerCase() !== 'chunked') return err(501);
    if (cl !== undefined) return err(400);
  }
  if (h.method === 'CONNECT' || h.method === 'TRACE') return err(405);
  return null;
}

/** nginx's keep-alive decision (ngx_http_handler): Connection "close" wins, then "keep-alive", else HTTP/1.1. */
export function wantsKeepAlive(h: ParsedHead): boolean {
  let type: 'close' | 'keep-alive' | null = null;
  for (const [k, v] of h.rawHeaders) {
    if (k.toLowerCase() !== 'connection') continue;
    const lv = v.toLowerCase();
    if (lv.includes('close')) type = 'close';
    else if (lv.includes('keep-alive')) type = 'keep-alive';
  }
  if (type === 'close') return false;
  if (type === 'keep-alive') return true;
  return h.major * 1000 + h.minor > 1000;
}

/** Largest chunk size line accepted (nginx refuses sizes over its off_t; 16 hex digits). */
const CHUNK_SIZE_MAX_DIGITS = 15;

/**
 * A request body as it arrives: a fixed length or chunked (RFC 9112 §7.1, extensions and trailers
 * skipped). Pure: push() takes bytes and returns the body bytes in them, whether the body is
 * complete, and the bytes after it (the next request); an error means nginx's 400.
 */
export class BodyReader {
  private left: number;
  private state: 'size' | 'ext' | 'size_lf' | 'data' | 'data_cr' | 'data_lf' | 'trailer' | 'trailer_line' | 'done' = 'size';
  private digits = 0;

  constructor(private readonly mode: { length: number } | 'chunked') {
    this.left = mode === 'chunked' ? 0 : mode.length;
    if (mode !== 'chunked' && this.left === 0) this.state = 'done';
  }

  get done(): boolean {
    return this.state === 'done';
  }

  push(b: Buffer): { data: Buffer[]; done: boolean; rest: Buffer } | { error: true } {
    const data: Buffer[] = [];
    if (this.mode !== 'chunked') {
      const n = Math.min(this.left, b.length);
      if (n > 0) data.push(b.subarray(0, n));
      this.left -= n;
      if (this.left === 0) this.state = 'done';
      return { data, done: this.done, rest: b.subarray(n) };
    }
    let i = 0;
    while (i < b.length && this.state !== 'done') {
      const c = b[i]!;
      switch (this.state) {
        case 'size': {
          const v = isDigit(c) ? c - 0x30 : (c | 0x20) >= 0x61 && (c | 0x20) <= 0x66 ? (c | 0x20) - 0x57 : -1;
          if (v >= 0) {
            if (++this.digits > CHUNK_SIZE_MAX_DIGITS) return { error: true };
            this.left = this.left * 16 + v;
          } else if (this.digits === 0) return { error: true };
          else if (c === CR) this.state = 'size_lf';
          else if (c === LF) this.state = this.left === 0 ? 'trailer' : 'data';
          else if (c === 0x3b || c === SP || c === 0x09) this.state = 'ext';
          else return { error: true };
          i++;
          break;
        }
        case 'ext':
          if (c === CR) this.state = 'size_lf';
          else if (c === LF) this.state = this.left === 0 ? 'trailer' : 'data';
          i++;
          break;
        case 'size_lf':
          if (c !== LF) return { error: true };
          this.state = this.left === 0 ? 'trailer' : 'data';
          i++;
          break;
        case 'data': {
          const n = Math.min(this.left, b.length - i);
          data.push(b.subarray(i, i + n));
          this.left -= n;
          i += n;
          if (this.left === 0) this.state = 'data_cr';
          break;
        }
        case 'data_cr':
          if (c === CR) this.state = 'data_lf';
          else if (c === LF) this.resetSize();
          else return { error: true };
          i++;
          break;
        case 'data_lf':
          if (c !== LF) return { error: true };
          this.resetSize();
          i++;
          break;
        case 'trailer':
          // An empty line ends the body; any other line is a trailer field, skipped.
          if (c === LF) this.state = 'done';
          else if (c !== CR) this.state = 'trailer_line';
          i++;
          break;
        case 'trailer_line':
          if (c === LF) this.state = 'trailer';
          i++;
          break;
      }
    }
    return { data, done: this.done, rest: b.subarray(i) };
  }

  private resetSize(): void {
    this.state = 'size';
    this.digits = 0;
    this.left = 0;
  }
}

/**
 * nginx's User-Agent classes (ngx_http_process_user_agent, first User-Agent only): MSIE ("MSIE "
 * with at least 3 more characters), MSIE 6 or older (keep-alive off after a POST), Chrome
 * ("Chrome/" in a non-MSIE, non-Opera, non-"Gecko/" agent). Opera is neither.
 */
export function userAgentClass(ua: string | undefined): { msie: boolean; msie6: boolean; chrome: boolean } {
  if (ua === undefined) return { msie: false, msie6: false, chrome: false };
  let msie = false;
  let msie6 = false;
  const at = ua.indexOf('MSIE ');
  if (at !== -1 && at + 7 < ua.length) {
    msie = true;
    if (ua[at + 6] === '.') {
      const major = ua[at + 5];
      if (major === '4' || major === '5') msie6 = true;
      else if (major === '6' && !ua.slice(at + 8).includes('SV1')) msie6 = true;
    }
  }
  if (ua.includes('Opera')) return { msie: false, msie6: false, chrome: false };
  const chrome = !msie && !ua.includes('Gecko/') && ua.includes('Chrome/');
  return { msie, msie6, chrome };
}
