import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

/** Local target servers for end-to-end tests; all listen on loopback, port 0. */
export interface Local<T extends net.Server> {
  server: T;
  port: number;
  close(): Promise<void>;
}

async function listen<T extends net.Server>(server: T, host: string): Promise<Local<T>> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Echoes every byte back and half-closes when the client does. */
export function echoServer(host = '127.0.0.1'): Promise<Local<net.Server>> {
  return listen(
    net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      s.pipe(s);
    }),
    host,
  );
}

/** An HTTP server answering GET /page with a fixed body, and /bytes/N with N deterministic bytes. */
export function httpServer(host = '127.0.0.1'): Promise<Local<http.Server>> {
  return listen(
    http.createServer((req, res) => {
      const m = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
      if (m) {
        const n = Number(m[1]);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
        res.end(deterministicBytes(n));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<html><body><h1 id="hello">hello through postern</h1><p>${req.url}</p></body></html>`);
    }),
    host,
  );
}

export function deterministicBytes(n: number, seed = 'postern'): Buffer {
  const out = Buffer.allocUnsafe(n);
  let block = crypto.createHash('sha256').update(seed).digest();
  for (let off = 0; off < n; off += 32) {
    block.copy(out, off, 0, Math.min(32, n - off));
    block = crypto.createHash('sha256').update(block).digest();
  }
  return out;
}

export function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}
