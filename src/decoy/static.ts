/**
 * The static-folder decoy: serves files under `root` like nginx's static module — content types
 * by extension, index.html for a folder, a 301 to add the slash to a folder path, 403 for a
 * folder without index.html (no listing), the folder's 404.html (when present) for a missing
 * page, 405 for other methods, validators and ranges as nginx (entity.ts). Nothing outside
 * `root` is ever read: `..` above the root is a 400, and a symlink leading out of it is a 404.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PosternError } from '../core/errors.js';
import { NGINX_SERVER, decodeTargetPath, errorPage, etagFor, httpDate, normalizePath, redirectLocation, type Decoy, type DecoyRequest, type DecoyResponse } from './decoy.js';
import { entityResponse } from './entity.js';

/** Content types by extension (lower case), as nginx's mime.types maps the common ones. */
const MIME: Readonly<Record<string, string>> = {
  html: 'text/html',
  htm: 'text/html',
  shtml: 'text/html',
  css: 'text/css',
  xml: 'text/xml',
  txt: 'text/plain',
  js: 'application/javascript',
  mjs: 'application/javascript',
  json: 'application/json',
  map: 'application/json',
  webmanifest: 'application/manifest+json',
  pdf: 'application/pdf',
  zip: 'application/zip',
  wasm: 'application/wasm',
  rss: 'application/rss+xml',
  atom: 'application/atom+xml',
  gif: 'image/gif',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  svg: 'image/svg+xml',
  svgz: 'image/svg+xml',
  webp: 'image/webp',
  avif: 'image/avif',
  ico: 'image/x-icon',
  woff: 'font/woff',
  woff2: 'font/woff2',
  ttf: 'font/ttf',
  otf: 'font/otf',
  mp3: 'audio/mpeg',
  ogg: 'audio/ogg',
  mp4: 'video/mp4',
  webm: 'video/webm',
};

export function contentTypeFor(file: string): string {
  const ext = path.extname(file).slice(1).toLowerCase();
  return MIME[ext] ?? 'application/octet-stream';
}

export interface StaticDecoyOptions {
  /** The site folder (absolute). */
  root: string;
  now?: () => number;
}

interface Found {
  fh: fs.promises.FileHandle;
  size: number;
  mtimeMs: number;
  file: string;
}

export function createStaticDecoy(opts: StaticDecoyOptions): Decoy {
  const now = opts.now ?? Date.now;
  let root: string;
  try {
    root = fs.realpathSync(opts.root);
    if (!fs.statSync(root).isDirectory()) throw new Error('not a folder');
  } catch (err) {
    throw new PosternError('E_CONFIG', `decoy.root: ${opts.root}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }

  const inside = (real: string): boolean => real === root || real.startsWith(root + path.sep);

  /** Opens a regular file under the root; null when missing, not a file, or leading outside. */
  async function openFile(rel: string): Promise<Found | null> {
    const abs = path.join(root, rel);
    let real: string;
    try {
      real = await fs.promises.realpath(abs);
    } catch {
      return null;
    }
    if (!inside(real)) return null;
    let fh: fs.promises.FileHandle | undefined;
    try {
      fh = await fs.promises.open(real, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0));
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        return null;
      }
      return { fh, size: st.size, mtimeMs: st.mtimeMs, file: real };
    } catch {
      await fh?.close().catch(() => undefined);
      return null;
    }
  }

  async function isDir(rel: string): Promise<boolean> {
    try {
      const real = await fs.promises.realpath(path.join(root, rel));
      return inside(real) && (await fs.promises.stat(real)).isDirectory();
    } catch {
      return false;
    }
  }

  function closeFd(f: Found): void {
    f.fh.close().catch(() => undefined);
  }

  /** A found file with status 200: validators, ranges (entity.ts). */
  function fileResponse(f: Found, req: DecoyRequest, keepAlive: boolean, t: number): DecoyResponse {
    return entityResponse(
      {
        size: f.size,
        mtimeMs: f.mtimeMs,
        contentType: contentTypeFor(f.file),
        open: (start, end) => f.fh.createReadStream({ start, end, autoClose: true, highWaterMark: 64 * 1024 }),
        readSync: (start, end) => {
          const b = Buffer.alloc(end - start + 1);
          const n = fs.readSync(f.fh.fd, b, 0, b.length, start);
          return b.subarray(0, n);
        },
        release: () => closeFd(f),
      },
      req,
      keepAlive,
      t,
    );
  }

  /** The folder's 404.html with status 404, as `error_page 404 /404.html` serves it (ETag, no Last-Modified, no ranges). */
  function notFoundPage(f: Found, req: DecoyRequest, keepAlive: boolean, t: number): DecoyResponse {
    const head = req.method === 'HEAD';
    const headers: Array<[string, string]> = [
      ['Server', NGINX_SERVER],
      ['Date', httpDate(t)],
      ['Content-Type', contentTypeFor(f.file)],
      ['Content-Length', String(f.size)],
      ['Connection', keepAlive ? 'keep-alive' : 'close'],
      ['ETag', etagFor(Math.floor(f.mtimeMs / 1000) * 1000, f.size)],
    ];
    let body: DecoyResponse['body'] = null;
    if (head || f.size === 0) closeFd(f);
    else body = f.fh.createReadStream({ start: 0, end: f.size - 1, autoClose: true, highWaterMark: 64 * 1024 });
    return { status: 404, reason: 'Not Found', headers, body };
  }

  async function notFound(req: DecoyRequest, keepAlive: boolean, t: number): Promise<DecoyResponse> {
    const page = await openFile('404.html');
    if (page === null) return errorPage(404, { keepAlive, head: req.method === 'HEAD', now: t });
    return notFoundPage(page, req, keepAlive, t);
  }

  async function handle(req: DecoyRequest, keepAlive: boolean): Promise<DecoyResponse> {
    const t = now();
    const head = req.method === 'HEAD';
    const decoded = decodeTargetPath(req.url);
    const p = decoded === null ? null : normalizePath(decoded);
    if (p === null) return errorPage(400, { keepAlive: false, head, now: t });
    // nginx's static and index modules refuse other methods than GET/HEAD/POST before any lookup;
    // POST reaches the file and is refused there (405), or gets the 404 of a missing one.
    if (req.method !== 'GET' && !head && req.method !== 'POST') return errorPage(405, { keepAlive, head, now: t });
    const post = req.method === 'POST';

    if (p.endsWith('/')) {
      const index = await openFile(`${p}index.html`);
      if (index !== null) {
        if (post) {
          closeFd(index);
          return errorPage(405, { keepAlive, head, now: t });
        }
        return fileResponse(index, req, keepAlive, t);
      }
      if (await isDir(p)) return errorPage(403, { keepAlive, head, now: t });
      return notFound(req, keepAlive, t);
    }
    const f = await openFile(p);
    if (f === null) {
      if (await isDir(p)) return errorPage(301, { keepAlive, head, now: t, location: redirectLocation(req, `${encodeURI(p)}/`) });
      return notFound(req, keepAlive, t);
    }
    if (post) {
      closeFd(f);
      return errorPage(405, { keepAlive, head, now: t });
    }
    return fileResponse(f, req, keepAlive, t);
  }

  return {
    handle: (req, keepAlive) =>
      handle(req, keepAlive).catch(() => errorPage(500, { keepAlive: false, head: req.method === 'HEAD', now: now() })),
    close: () => undefined,
  };
}
