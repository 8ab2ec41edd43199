/**
 * The built-in decoy: a one-page site served like nginx serves a folder holding only an
 * index.html — `/` and `/index.html` give the page, everything else nginx's 404.
 */
import { decodeTargetPath, errorPage, normalizePath, type Decoy, type DecoyRequest, type DecoyResponse } from './decoy.js';
import { entityResponse, type Entity } from './entity.js';

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
  const mtimeMs = Math.floor(opts.siteTimeMs / 1000) * 1000;
  const index: Entity = {
    size: INDEX.length,
    mtimeMs,
    contentType: 'text/html',
    open: (start, end) => INDEX.subarray(start, end + 1),
    readSync: (start, end) => INDEX.subarray(start, end + 1),
    release: () => undefined,
  };

  return {
    handle(req: DecoyRequest, keepAlive: boolean): Promise<DecoyResponse> {
      const t = now();
      const head = req.method === 'HEAD';
      const decoded = decodeTargetPath(req.url);
      const p = decoded === null ? null : normalizePath(decoded);
      if (p === null) return Promise.resolve(errorPage(400, { keepAlive: false, head, now: t }));
      // nginx's static module: other methods than GET/HEAD/POST are refused before the file is looked up.
      if (req.method !== 'GET' && !head && req.method !== 'POST') return Promise.resolve(errorPage(405, { keepAlive, head, now: t }));
      if (p !== '/' && p !== '/index.html') return Promise.resolve(errorPage(404, { keepAlive, head, now: t }));
      if (req.method === 'POST') return Promise.resolve(errorPage(405, { keepAlive, head, now: t }));
      return Promise.resolve(entityResponse(index, req, keepAlive, t));
    },
    close: () => undefined,
  };
}
