/**
 * The decoy website of docs/protocol.md §2: what the bridge's public port is to anyone without a
 * credential. A decoy turns a parsed request into a response (status, ordered headers, body);
 * the listener writes it. Every refusal of the bridge is answered by the decoy, so that "bridge
 * with a wrong secret" and "the decoy served alone" give the same bytes (Date aside).
 *
 * Responses follow nginx's shapes: `Server: nginx/1.22.1`, header order Server, Date, Content-Type,
 * Content-Length, Last-Modified, Connection, ETag, and nginx's built-in error pages.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

/** The Server header and error-page signature: nginx 1.22 as Debian ships it (server_tokens on). */
export const NGINX_SERVER = 'nginx/1.22.1';

export interface DecoyRequest {
  readonly method: string;
  /** The request target as sent. */
  readonly url: string;
  readonly httpVersion: string;
  readonly headers: IncomingHttpHeaders;
  /** Every valid header line in order, names as sent (the web front passes them; absent in older callers). */
  readonly rawHeaders?: ReadonlyArray<readonly [string, string]>;
  /** The request body when the request has one and the decoy may read it (proxy); else null. */
  readonly body: Readable | null;
  /** Where the request arrived (for absolute redirects, as nginx's absolute_redirect builds them). */
  readonly local?: { readonly address: string; readonly port: number; readonly tls: boolean };
  /** The host of an absolute-form target, which nginx prefers to Host. */
  readonly targetHost?: string | null;
  /** Aborts when the client's connection is gone (the proxy then drops its upstream request). */
  readonly signal?: AbortSignal;
}

export interface DecoyResponse {
  readonly status: number;
  readonly reason: string;
  /** In order, `Connection` included. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** null: no body (HEAD, 304). A Readable is streamed with backpressure. */
  readonly body: Buffer | Readable | null;
  /** One of nginx's built-in error pages (the web front pads it for MSIE and Chrome, as nginx does). */
  readonly builtinPage?: boolean;
}

/** nginx's msie_padding: appended to its built-in 4xx/5xx pages for MSIE and Chrome user agents. */
export const MSIE_PADDING = Buffer.from('<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n'.repeat(6), 'latin1');

/**
 * Adds nginx's msie_padding to a built-in error page (status ≥ 400) when the client is MSIE or
 * Chrome by nginx's User-Agent test; other answers are returned as they are.
 */
export function padForBrowser(r: DecoyResponse, ua: { msie: boolean; chrome: boolean }): DecoyResponse {
  if (r.builtinPage !== true || r.status < 400 || !(ua.msie || ua.chrome)) return r;
  const headers = r.headers.map(([k, v]): readonly [string, string] =>
    k === 'Content-Length' ? [k, String(Number(v) + MSIE_PADDING.length)] : [k, v],
  );
  return { ...r, headers, body: Buffer.isBuffer(r.body) ? Buffer.concat([r.body, MSIE_PADDING]) : r.body };
}

export interface Decoy {
  /**
   * Answers one request. `keepAlive` says whether the connection stays open after it (the
   * listener decides; the decoy puts it into `Connection`). Never rejects: failures become pages.
   */
  handle(req: DecoyRequest, keepAlive: boolean): Promise<DecoyResponse>;
  /** Releases upstream connections (proxy). */
  close(): void;
}

/** nginx's reason phrases where they differ from Node's, plus the common ones. */
const REASONS: Readonly<Record<number, string>> = {
  200: 'OK',
  206: 'Partial Content',
  301: 'Moved Permanently',
  304: 'Not Modified',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Not Allowed',
  408: 'Request Time-out',
  412: 'Precondition Failed',
  413: 'Request Entity Too Large',
  414: 'Request-URI Too Large',
  416: 'Requested Range Not Satisfiable',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Temporarily Unavailable',
  504: 'Gateway Time-out',
  505: 'HTTP Version Not Supported',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Unknown';
}

/**
 * nginx's built-in error page body for `status`; with `detail` (its 400 variants: "Request Header
 * Or Cookie Too Large", "The plain HTTP request was sent to HTTPS port") the title names the
 * detail, the heading the status, and a line of its own the detail.
 */
export function errorPageBody(status: number, detail?: string): Buffer {
  const line = `${status} ${reasonPhrase(status)}`;
  return Buffer.from(
    '<html>\r\n' +
      `<head><title>${detail !== undefined ? `${status} ${detail}` : line}</title></head>\r\n` +
      '<body>\r\n' +
      `<center><h1>${line}</h1></center>\r\n` +
      (detail !== undefined ? `<center>${detail}</center>\r\n` : '') +
      `<hr><center>${NGINX_SERVER}</center>\r\n` +
      '</body>\r\n' +
      '</html>\r\n',
    'latin1',
  );
}

/** IMF-fixdate (RFC 9110 §5.6.7), as nginx sends in Date and Last-Modified. */
export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

/** nginx's ETag for a static file: "<mtime seconds hex>-<size hex>". */
export function etagFor(mtimeMs: number, size: number): string {
  return `"${Math.floor(mtimeMs / 1000).toString(16)}-${size.toString(16)}"`;
}

/**
 * One of nginx's error pages: Server, Date, Content-Type, Content-Length[, Location], Connection[,
 * extra]. (nginx puts Location before Connection and the rest of its headers after.)
 */
export function errorPage(
  status: number,
  opts: {
    keepAlive: boolean;
    head: boolean;
    now?: number;
    /** nginx's detail line of a 400 variant (see errorPageBody). */
    detail?: string;
    location?: string;
    extra?: ReadonlyArray<readonly [string, string]>;
  },
): DecoyResponse {
  const body = errorPageBody(status, opts.detail);
  return {
    status,
    reason: reasonPhrase(status),
    headers: [
      ['Server', NGINX_SERVER],
      ['Date', httpDate(opts.now ?? Date.now())],
      ['Content-Type', 'text/html'],
      ['Content-Length', String(body.length)],
      ...(opts.location !== undefined ? ([['Location', opts.location]] as const) : []),
      ['Connection', opts.keepAlive ? 'keep-alive' : 'close'],
      ...(opts.extra ?? []),
    ],
    body: opts.head ? null : body,
    builtinPage: true,
  };
}

/** Serialises a response head: status line and headers, as the web front writes it. */
export function serializeHead(r: DecoyResponse): Buffer {
  let s = `HTTP/1.1 ${r.status} ${r.reason}\r\n`;
  for (const [k, v] of r.headers) s += `${k}: ${v}\r\n`;
  return Buffer.from(`${s}\r\n`, 'latin1');
}

/**
 * The path of a request target (origin form, as the web front passes it) without query,
 * percent-decoded byte by byte (latin1, as nginx compares bytes); null when an escape is malformed
 * or decodes to NUL (nginx answers those 400).
 */
export function decodeTargetPath(url: string): string | null {
  if (!url.startsWith('/')) return null;
  const q = url.indexOf('?');
  const raw = q === -1 ? url : url.slice(0, q);
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    if (ch !== '%') {
      out += ch;
      continue;
    }
    const hex = raw.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
    const code = parseInt(hex, 16);
    if (code === 0) return null;
    out += String.fromCharCode(code);
    i += 2;
  }
  return out;
}

/**
 * Resolves `.` and `..` segments and merges slashes like nginx; null when the path climbs above
 * the root (nginx answers 400).
 */
export function normalizePath(p: string): string | null {
  const out: string[] = [];
  const segs = p.split('/');
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]!;
    if (s === '' || s === '.') continue;
    if (s === '..') {
      if (out.length === 0) return null;
      out.pop();
      continue;
    }
    out.push(s);
  }
  const trailing = p.endsWith('/') || p.endsWith('/.') || p.endsWith('/..');
  const joined = `/${out.join('/')}`;
  return trailing && joined !== '/' ? `${joined}/` : joined;
}


/**
 * nginx's absolute redirect (absolute_redirect on, server_name_in_redirect off, port_in_redirect
 * on): scheme of the listener, the request's host (absolute-form target, else Host without port,
 * lower-cased, trailing dot dropped; else the local address), the listener's port unless default.
 */
export function redirectLocation(req: DecoyRequest, path: string): string {
  const local = req.local ?? { address: '127.0.0.1', port: 80, tls: false };
  const hostHeader = req.headers.host;
  const raw = req.targetHost ?? (typeof hostHeader === 'string' ? hostHeader : null);
  let host: string;
  if (raw === null || raw === '') host = local.address.includes(':') ? `[${local.address}]` : local.address;
  else {
    host = raw.startsWith('[') ? raw.slice(0, raw.indexOf(']') + 1) : raw.split(':')[0]!;
    host = host.toLowerCase().replace(/\.$/, '');
  }
  const defaultPort = local.tls ? 443 : 80;
  return `${local.tls ? 'https' : 'http'}://${host}${local.port === defaultPort ? '' : `:${local.port}`}${path}`;
}
