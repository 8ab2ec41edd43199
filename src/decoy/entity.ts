/**
 * How nginx's static module answers for a file it found (status 200): the not-modified filter
 * (If-Unmodified-Since / If-Match → 412, If-Modified-Since exact / If-None-Match → 304), then the
 * range filter (`Range: bytes=` → 206 with Content-Range, several ranges → multipart/byteranges,
 * unsatisfiable → 416, anything else → the whole file with `Accept-Ranges: bytes`). Pure apart from
 * the `open` callback that reads the bytes chosen.
 */
import type { Readable } from 'node:stream';
import { NGINX_SERVER, errorPage, etagFor, httpDate, type DecoyRequest, type DecoyResponse } from './decoy.js';

export interface Entity {
  readonly size: number;
  readonly mtimeMs: number;
  readonly contentType: string;
  /** The bytes [start, end] (inclusive) as a Buffer or a stream. */
  open(start: number, end: number): Buffer | Readable;
  /** The bytes [start, end] (inclusive), read at once (multipart answers, bounded by MULTIPART_MAX_BYTES). */
  readSync(start: number, end: number): Buffer;
  /** Called when no byte will be read (HEAD, 304, 412, 416). */
  release(): void;
}

/** nginx's max_ranges is unlimited by default; more ranges than this are answered whole (bounded work). */
const RANGES_MAX_COUNT = 64;

/** Several ranges are answered as multipart only up to this many bytes; above it, the whole file (bounded memory). */
const MULTIPART_MAX_BYTES = 1024 * 1024;

type Range = { start: number; end: number }; // end exclusive

/** nginx's Range parse (ngx_http_range_parse): ranges, 'unsatisfiable', or 'ignore' (serve whole). */
export function parseRange(value: string, size: number): Range[] | 'unsatisfiable' | 'ignore' {
  let p = 6; // after "bytes="
  const s = value;
  const ranges: Range[] = [];
  let total = 0;
  const at = (i: number): string => (i < s.length ? s[i]! : '\0');
  const digit = (c: string): boolean => c >= '0' && c <= '9';
  for (;;) {
    let start = 0;
    let end = 0;
    let suffix = false;
    while (at(p) === ' ') p++;
    let open = false;
    if (at(p) !== '-') {
      if (!digit(at(p))) return 'unsatisfiable';
      while (digit(at(p))) {
        start = start * 10 + Number(at(p++));
        if (start > Number.MAX_SAFE_INTEGER / 10) return 'unsatisfiable';
      }
      while (at(p) === ' ') p++;
      if (at(p++) !== '-') return 'unsatisfiable';
      while (at(p) === ' ') p++;
      if (at(p) === ',' || at(p) === '\0') {
        end = size;
        open = true;
      }
    } else {
      suffix = true;
      p++;
    }
    if (!open) {
      if (!digit(at(p))) return 'unsatisfiable';
      while (digit(at(p))) {
        end = end * 10 + Number(at(p++));
        if (end > Number.MAX_SAFE_INTEGER / 10) return 'unsatisfiable';
      }
      while (at(p) === ' ') p++;
      if (at(p) !== ',' && at(p) !== '\0') return 'unsatisfiable';
      if (suffix) {
        start = end < size ? size - end : 0;
        end = size - 1;
      }
      end = end >= size ? size : end + 1;
    }
    if (start < end) {
      ranges.push({ start, end });
      total += end - start;
      if (ranges.length > RANGES_MAX_COUNT) return 'ignore';
    } else if (start === 0) {
      return 'ignore';
    }
    if (at(p++) !== ',') break;
  }
  if (ranges.length === 0) return 'unsatisfiable';
  if (total > size) return 'ignore';
  return ranges;
}

const parseTime = (v: string): number => {
  const t = Date.parse(v);
  return Number.isNaN(t) ? -1 : Math.floor(t / 1000);
};

/** If-Match / If-None-Match against an ETag (ngx_http_test_if_match); `weak` strips W/ as nginx does for If-None-Match. */
function etagMatches(header: string, etag: string, weak: boolean): boolean {
  if (header === '*') return true;
  const want = weak && etag.startsWith('W/') ? etag.slice(2) : etag;
  for (let item of header.split(',')) {
    item = item.trim();
    if (weak && item.startsWith('W/')) item = item.slice(2);
    if (item === want) return true;
  }
  return false;
}

let boundaryCounter = Math.floor(Math.random() * 1e9);

/** The answer nginx's static module gives for `e` found at the request's path. */
export function entityResponse(e: Entity, req: DecoyRequest, keepAlive: boolean, now: number): DecoyResponse {
  const head = req.method === 'HEAD';
  const conn: [string, string] = ['Connection', keepAlive ? 'keep-alive' : 'close'];
  const mtime = Math.floor(e.mtimeMs / 1000);
  const lastModified = httpDate(mtime * 1000);
  const etag = etagFor(mtime * 1000, e.size);
  const h = (name: string): string | undefined => {
    const v = req.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const fail = (status: number): DecoyResponse => {
    e.release();
    return errorPage(status, { keepAlive, head, now });
  };

  const ius = h('if-unmodified-since');
  if (ius !== undefined && !(parseTime(ius) >= mtime)) return fail(412);
  const im = h('if-match');
  if (im !== undefined && !etagMatches(im, etag, false)) return fail(412);
  const ims = h('if-modified-since');
  const inm = h('if-none-match');
  if (ims !== undefined || inm !== undefined) {
    const modified = (ims !== undefined && parseTime(ims) !== mtime) || (inm !== undefined && !etagMatches(inm, etag, true));
    if (!modified) {
      e.release();
      return {
        status: 304,
        reason: 'Not Modified',
        headers: [['Server', NGINX_SERVER], ['Date', httpDate(now)], ['Last-Modified', lastModified], conn, ['ETag', etag]],
        body: null,
      };
    }
  }

  const base = (type: string, length: number): Array<[string, string]> => [
    ['Server', NGINX_SERVER],
    ['Date', httpDate(now)],
    ['Content-Type', type],
    ['Content-Length', String(length)],
    ['Last-Modified', lastModified],
    conn,
    ['ETag', etag],
  ];
  const range = h('range');
  let ranges: Range[] | 'unsatisfiable' | 'ignore' = 'ignore';
  if (range !== undefined && range.length >= 7 && range.slice(0, 6).toLowerCase() === 'bytes=') {
    const ifRange = h('if-range');
    const applies =
      ifRange === undefined || (ifRange.length >= 2 && ifRange.endsWith('"') ? ifRange === etag : parseTime(ifRange) === mtime);
    if (applies) ranges = parseRange(range, e.size);
  }
  if (ranges === 'unsatisfiable') {
    e.release();
    const page = errorPage(416, { keepAlive, head, now, extra: [['Content-Range', `bytes */${e.size}`]] });
    return page;
  }
  if (ranges !== 'ignore' && ranges.length > 1 && ranges.reduce((n, r) => n + r.end - r.start, 0) > MULTIPART_MAX_BYTES) ranges = 'ignore';
  if (ranges === 'ignore') {
    const body = head || e.size === 0 ? null : e.open(0, e.size - 1);
    if (body === null) e.release();
    return { status: 200, reason: 'OK', headers: [...base(e.contentType, e.size), ['Accept-Ranges', 'bytes']], body };
  }
  if (ranges.length === 1) {
    const r = ranges[0]!;
    const body = head ? null : e.open(r.start, r.end - 1);
    if (body === null) e.release();
    return {
      status: 206,
      reason: 'Partial Content',
      headers: [...base(e.contentType, r.end - r.start), ['Content-Range', `bytes ${r.start}-${r.end - 1}/${e.size}`]],
      body,
    };
  }
  // Several ranges: multipart/byteranges, nginx's layout (its boundary: a per-process counter, 20 digits).
  const boundary = String(++boundaryCounter).padStart(20, '0');
  const parts: Buffer[] = [];
  for (const r of ranges) {
    parts.push(Buffer.from(`\r\n--${boundary}\r\nContent-Type: ${e.contentType}\r\nContent-Range: bytes ${r.start}-${r.end - 1}/${e.size}\r\n\r\n`, 'latin1'));
    parts.push(head ? Buffer.alloc(r.end - r.start) : e.readSync(r.start, r.end - 1));
  }
  parts.push(Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1'));
  const body = Buffer.concat(parts);
  e.release();
  return {
    status: 206,
    reason: 'Partial Content',
    headers: base(`multipart/byteranges; boundary=${boundary}`, body.length),
    body: head ? null : body,
  };
}
