/**
 * The reverse-proxy decoy: every request is passed to an upstream web server (usually a real
 * site on loopback) and its answer relayed, bodies streamed with backpressure both ways.
 * Bounded: upstream sockets (DECOY_PROXY_MAX_SOCKETS_COUNT), request bodies
 * (DECOY_MAX_BODY_BYTES → nginx's 413), upstream silence (DECOY_PROXY_TIMEOUT_MS → 504).
 * No client address is forwarded (no X-Forwarded-For): the upstream learns nothing of users.
 */
import http from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import { errorPage, type Decoy, type DecoyRequest, type DecoyResponse } from './decoy.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and those a proxy must not pass on. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export interface ProxyDecoyOptions {
  /** `http://host:port` of the upstream. */
  upstream: string;
  limits: Limits;
  now?: () => number;
}

/** Parses and checks an upstream URL: http, a host and port, no path, query, or credentials. */
export function parseUpstream(upstream: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(upstream);
  } catch {
    throw new PosternError('E_CONFIG', `decoy.upstream: not a URL: "${upstream}"`);
  }
  if (u.protocol !== 'http:') throw new PosternError('E_CONFIG', 'decoy.upstream: only http:// upstreams are supported');
  if (u.username !== '' || u.password !== '' || (u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '') {
    throw new PosternError('E_CONFIG', 'decoy.upstream: expected http://HOST:PORT with nothing after it');
  }
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port: u.port === '' ? 80 : Number(u.port) };
}

/** Counts bytes through; errors once more than `max` passed. */
class ByteLimit extends Transform {
  private seen = 0;
  constructor(private readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) cb(new Error('request body too large'));
    else cb(null, chunk);
  }
}

export function createProxyDecoy(opts: ProxyDecoyOptions): Decoy {
  const { limits } = opts;
  const now = opts.now ?? Date.now;
  const target = parseUpstream(opts.upstream);
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: limits.DECOY_PROXY_MAX_SOCKETS_COUNT,
    maxFreeSockets: 16,
    timeout: limits.DECOY_PROXY_TIMEOUT_MS,
  });

  function handle(req: DecoyRequest, keepAlive: boolean): Promise<DecoyResponse> {
    const head = req.method === 'HEAD';
    const length = Number(req.headers['content-length'] ?? '0');
    if (Number.isFinite(length) && length > limits.DECOY_MAX_BODY_BYTES) {
      return Promise.resolve(errorPage(413, { keepAlive: false, head, now: now() }));
    }
    return new Promise<DecoyResponse>((resolve) => {
      let answered = false;
      const answer = (r: DecoyResponse): void => {
        if (answered) return;
        answered = true;
        resolve(r);
      };
      const drop = new Set(HOP_BY_HOP);
      for (const t of String(req.headers.connection ?? '').split(',')) drop.add(t.trim().toLowerCase());
      // Every header line as sent, in order (repeated ones too), minus the hop-by-hop ones.
      const lines: ReadonlyArray<readonly [string, string]> =
        req.rawHeaders ?? Object.entries(req.headers).flatMap(([k, v]) => (v === undefined ? [] : (Array.isArray(v) ? v : [v]).map((x) => [k, x] as const)));
      const headers: string[] = [];
      for (const [k, v] of lines) if (!drop.has(k.toLowerCase())) headers.push(k, v);
      if (req.body !== null && req.headers['transfer-encoding'] !== undefined) headers.push('Transfer-Encoding', 'chunked');
      const up = http.request({
        agent,
        host: target.host,
        port: target.port,
        method: req.method,
        path: req.url,
        headers,
        timeout: limits.DECOY_PROXY_TIMEOUT_MS,
        setHost: false,
        ...(req.signal !== undefined ? { signal: req.signal } : {}),
      });
      let timedOut = false;
      up.on('timeout', () => {
        timedOut = true;
        up.destroy(new Error('upstream timeout'));
      });
      up.on('error', (err) => {
        if ((err as Error).message === 'request body too large') {
          answer(errorPage(413, { keepAlive: false, head, now: now() }));
          return;
        }
        answer(errorPage(timedOut ? 504 : 502, { keepAlive: false, head, now: now() }));
      });
      up.on('response', (res) => {
        const resDrop = new Set(HOP_BY_HOP);
        for (const t of String(res.headers.connection ?? '').split(',')) resDrop.add(t.trim().toLowerCase());
        const out: Array<[string, string]> = [];
        let connAt = -1;
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
          const k = res.rawHeaders[i]!;
          const lk = k.toLowerCase();
          if (lk === 'connection' && connAt === -1) connAt = out.length;
          if (resDrop.has(lk)) continue;
          out.push([k, res.rawHeaders[i + 1]!]);
        }
        const status = res.statusCode ?? 502;
        const bodyless = head || status === 204 || status === 304 || (status >= 100 && status < 200);
        const hasLength = res.headers['content-length'] !== undefined;
        // Without a length, a kept-alive connection needs chunked framing; a closing one ends the body by closing.
        const keep = keepAlive;
        const extra: Array<[string, string]> = [['Connection', keep ? 'keep-alive' : 'close']];
        if (keep && !hasLength && !bodyless) extra.unshift(['Transfer-Encoding', 'chunked']);
        out.splice(connAt === -1 ? out.length : connAt, 0, ...extra);
        if (bodyless) res.resume();
        answer({ status, reason: res.statusMessage ?? '', headers: out, body: bodyless ? null : res });
      });
      if (req.body === null) {
        up.end();
      } else {
        const limit = new ByteLimit(limits.DECOY_MAX_BODY_BYTES);
        limit.on('error', (err) => up.destroy(err));
        req.body.on('error', (err) => up.destroy(err));
        req.body.pipe(limit).pipe(up);
      }
    });
  }

  return {
    handle,
    close: () => agent.destroy(),
  };
}
