/**
 * The built-in decoy: a one-page site served like nginx serves a folder holding only an
 * index.html — `/` and `/index.html` give the page, everything else nginx's 404.
 */
import {
  commonRefusal,
  decodeTargetPath,
  errorPage,
  etagFor,
  httpDate,
  normalizePath,
  parseErrorResponse,
  type Decoy,
  type DecoyRequest,
  type DecoyResponse,
} from './decoy.js';

/** A plain placeholder page, the kind a freshly set-up server shows. */
const INDEX = Buffer.from(
  [
    '<!DOCTYPE html>',
    '<html>',
    '<head>',
    '<meta charset="utf-8">',
    '<title>Under construction</title>',
    '<style>body { max-width: 36em; margin: 4em auto; font-family: sans-serif; color: #333; }</style>',
    '</head>',
    '<body>',
    '<h1>Under construction</h1>',
    '<p>This site is being set up. Please check back later.</p>',
    '</body>',
    '</html>',
    '',
  ].join('\n'),
  'utf8',
);

export interface BuiltinDecoyOptions {
  /** The page's Last-Modified time (Unix ms), e.g. when the bridge was installed. */
  siteTimeMs: number;
  /** Clock (tests). */
  now?: () => number;
}

export function createBuiltinDecoy(opts: BuiltinDecoyOptions): Decoy {
  const now = opts.now ?? Date.now;
  const mtime = Math.floor(opts.siteTimeMs / 1000) * 1000;
  const lastModified = httpDate(mtime);
  const etag = etagFor(mtime, INDEX.length);

  return {
    handle(req: DecoyRequest, keepAlive: boolean): Promise<DecoyResponse> {
      const t = now();
      const head = req.method === 'HEAD';
      const refused = commonRefusal(req, t);
      if (refused !== null) return Promise.resolve(refused);
      const decoded = decodeTargetPath(req.url);
      const p = decoded === null ? null : normalizePath(decoded);
      if (p === null) return Promise.resolve(errorPage(400, { keepAlive: false, head, now: t }));
      if (p !== '/' && p !== '/index.html') return Promise.resolve(errorPage(404, { keepAlive, head, now: t }));
      if (req.method !== 'GET' && !head) return Promise.resolve(errorPage(405, { keepAlive, head, now: t }));
      const conn = keepAlive ? 'keep-alive' : 'close';
      const base: Array<[string, string]> = [
        ['Server', 'nginx'],
        ['Date', httpDate(t)],
        ['Content-Type', 'text/html'],
      ];
      if (req.headers['if-modified-since'] === lastModified) {
        return Promise.resolve({
          status: 304,
          reason: 'Not Modified',
          headers: [['Server', 'nginx'], ['Date', httpDate(t)], ['Last-Modified', lastModified], ['Connection', conn], ['ETag', etag]],
          body: null,
        });
      }
      return Promise.resolve({
        status: 200,
        reason: 'OK',
        headers: [...base, ['Content-Length', String(INDEX.length)], ['Last-Modified', lastModified], ['Connection', conn], ['ETag', etag]],
        body: head ? null : INDEX,
      });
    },
    errorResponse: (kind) => parseErrorResponse(kind, now()),
    close: () => undefined,
  };
}
