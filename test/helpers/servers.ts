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

/** A UDP server on loopback, port 0 (see udpEchoServer). */
export interface LocalUdp {
  socket: import('node:dgram').Socket;
  port: number;
  /** Datagrams received in total. */
  received: number;
  /** Copies of the first SEEN_MAX_COUNT datagrams received (bounded), in arrival order. */
  seen: Buffer[];
  /** True when a datagram whose bytes contain `marker` arrived (among those kept in `seen`). */
  saw(marker: string | Buffer): boolean;
  close(): Promise<void>;
}

/** Datagrams a UDP test server keeps for inspection; later ones are only counted. */
const SEEN_MAX_COUNT = 10_000;

/** Echoes every datagram back to its sender (udp4 for an IPv4 host, udp6 for an IPv6 one). */
export async function udpEchoServer(host = '127.0.0.1'): Promise<LocalUdp> {
  const dgram = await import('node:dgram');
  const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  const local: LocalUdp = {
    socket,
    port: 0,
    received: 0,
    seen: [],
    saw: (marker) => local.seen.some((b) => b.includes(marker)),
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
  socket.on('error', () => undefined);
  socket.on('message', (msg, rinfo) => {
    local.received++;
    if (local.seen.length < SEEN_MAX_COUNT) local.seen.push(Buffer.from(msg));
    socket.send(msg, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  local.port = socket.address().port;
  return local;
}
