/**
 * The decoy website of docs/protocol.md §2: what the bridge's public port is to anyone without a
 * credential. A decoy turns a parsed request into a response (status, ordered headers, body);
 * the listener writes it. Every refusal of the bridge is answered by the decoy, so that "bridge
 * with a wrong secret" and "the decoy served alone" give the same bytes (Date aside).
 *
 * Responses follow nginx's shapes: `Server: nginx`, header order Server, Date, Content-Type,
 * Content-Length, Last-Modified, Connection, ETag, and nginx's built-in error pages.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

export interface DecoyRequest {
  readonly method: string;
  /** The request target as sent. */
  readonly url: string;
  readonly httpVersion: string;
  readonly headers: IncomingHttpHeaders;
  /** The request body when the request has one and the decoy may read it (proxy); else null. */
  readonly body: Readable | null;
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
}

/** Why the listener could not hand a request to the decoy (parse failures, nginx answers 400). */
export type DecoyErrorKind = 'bad_request' | 'header_too_large';

export interface Decoy {
  /**
   * Answers one request. `keepAlive` says whether the connection stays open after it (the
   * listener decides; the decoy puts it into `Connection`). Never rejects: failures become pages.
   */
  handle(req: DecoyRequest, keepAlive: boolean): Promise<DecoyResponse>;
  /** The answer to a request that could not be parsed; always `Connection: close`. */
  errorResponse(kind: DecoyErrorKind): DecoyResponse;
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
  413: 'Request Entity Too Large',
  414: 'Request-URI Too Large',
  416: 'Requested Range Not Satisfiable',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Temporarily Unavailable',
  504: 'Gateway Time-out',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Unknown';
}

/** nginx's built-in error page body (server_tokens off) for `title`. */
export function errorPageBody(title: string): Buffer {
  return Buffer.from(
    '<html>\r\n' +
      `<head><title>${title}</title></head>\r\n` +
      '<body>\r\n' +
      `<center><h1>${title}</h1></center>\r\n` +
      '<hr><center>nginx</center>\r\n' +
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

/** One of nginx's error pages: Server, Date, Content-Type, Content-Length, Connection[, extra]. */
export function errorPage(
  status: number,
  opts: { keepAlive: boolean; head: boolean; now?: number; title?: string; extra?: ReadonlyArray<readonly [string, string]> },
): DecoyResponse {
  const body = errorPageBody(opts.title ?? `${status} ${reasonPhrase(status)}`);
  return {
    status,
    reason: reasonPhrase(status),
    headers: [
      ['Server', 'nginx'],
      ['Date', httpDate(opts.now ?? Date.now())],
      ['Content-Type', 'text/html'],
      ['Content-Length', String(body.length)],
      ['Connection', opts.keepAlive ? 'keep-alive' : 'close'],
      ...(opts.extra ?? []),
    ],
    body: opts.head ? null : body,
  };
}

/** The 400 nginx sends for a request it cannot parse (and for too large headers). */
export function parseErrorResponse(kind: DecoyErrorKind, now = Date.now()): DecoyResponse {
  return errorPage(400, {
    keepAlive: false,
    head: false,
    now,
    ...(kind === 'header_too_large' ? { title: '400 Request Header Or Cookie Too Large' } : {}),
  });
}

/** Serialises a response head: status line and headers, as the listener writes it raw. */
export function serializeHead(r: DecoyResponse): Buffer {
  let s = `HTTP/1.1 ${r.status} ${r.reason}\r\n`;
  for (const [k, v] of r.headers) s += `${k}: ${v}\r\n`;
  return Buffer.from(`${s}\r\n`, 'latin1');
}

/**
 * The path of a request target without query, percent-decoded; null when it is not an
 * origin-form path or does not decode (nginx answers those 400).
 */
export function decodeTargetPath(url: string): string | null {
  if (!url.startsWith('/')) return null;
  const q = url.search(/[?#]/);
  const raw = q === -1 ? url : url.slice(0, q);
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return null;
  }
  if (decoded.includes('\0')) return null;
  return decoded;
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

/** nginx's answer to HTTP/1.1 without Host, or a target it cannot decode: 400, close. */
export function commonRefusal(req: DecoyRequest, now: number): DecoyResponse | null {
  if (req.httpVersion === '1.1' && req.headers.host === undefined) {
    return errorPage(400, { keepAlive: false, head: req.method === 'HEAD', now });
  }
  return null;
}
