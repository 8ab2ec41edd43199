/**
 * The admin listener: GET /metrics (Prometheus text exposition) and GET /healthz ("ok"), on its
 * own address — loopback unless the operator explicitly allows otherwise, never the public port.
 */
import http from 'node:http';
import type net from 'node:net';
import { PosternError } from '../core/errors.js';
import type { Logger } from '../log/logger.js';
import { EXPOSITION_CONTENT_TYPE, type Registry } from './metrics.js';

export interface AdminOptions {
  readonly host: string;
  readonly port: number;
  readonly registry: Registry;
  readonly logger: Logger;
}

export interface AdminServer {
  listen(): Promise<{ host: string; port: number }>;
  close(): Promise<void>;
}

export function createAdminServer(opts: AdminOptions): AdminServer {
  const log = opts.logger.child({ component: 'admin' });
  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 10_000, maxHeaderSize: 8 * 1024 }, (req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain; charset=utf-8', 'method not allowed\n');
    if (url === '/metrics') {
      let body: string;
      try {
        body = opts.registry.render();
      } catch (err) {
        log.error({ err: (err as Error).message }, 'metrics render failed');
        return send(500, 'text/plain; charset=utf-8', 'error\n');
      }
      return send(200, EXPOSITION_CONTENT_TYPE, body);
    }
    if (url === '/healthz') return send(200, 'text/plain; charset=utf-8', 'ok\n');
    return send(404, 'text/plain; charset=utf-8', 'not found\n');
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return {
    listen() {
      return new Promise((resolve, reject) => {
        const onError = (err: NodeJS.ErrnoException) =>
          reject(new PosternError('E_CONFIG', `admin: cannot listen on ${opts.host}:${opts.port} (${err.code ?? err.message})`, { cause: err }));
        server.once('error', onError);
        server.listen({ host: opts.host, port: opts.port }, () => {
          server.removeListener('error', onError);
          server.on('error', (err) => log.error({ err: err.message }, 'admin listener error'));
          const a = server.address() as net.AddressInfo;
          resolve({ host: a.address, port: a.port });
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
