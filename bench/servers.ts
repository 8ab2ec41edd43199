/**
 * Worker-thread entry: the traffic servers (TCP and TLS source/sink) and the echo server, all on
 * 127.0.0.1 port 0. They run on their own thread so that the TLS pair uses two event loops (one per
 * end, as a real tunnel does) and so that the generator never competes with the bench's client side.
 */
import net from 'node:net';
import tls from 'node:tls';
import { parentPort, workerData } from 'node:worker_threads';
import {
  OP_DOWNLOAD,
  OP_UPLOAD,
  REQUEST_BYTES,
  UPLOAD_ACK,
  patternChunk,
  type FromWorker,
  type ServerConfig,
  type ToWorker,
} from './wire.js';

const port = parentPort;
if (!port) throw new Error('bench/servers.ts must run as a worker thread');
const config = workerData as ServerConfig;
const chunk = patternChunk();
const ack = Buffer.from([UPLOAD_ACK]);
const post = (m: FromWorker): void => port.postMessage(m);

const trafficSockets = new Set<net.Socket>();
const echoSockets = new Set<net.Socket>();

/** Sends `remaining` bytes from the shared chunk, honouring write()'s return value, then ends. */
function source(sock: net.Socket, remaining: number): void {
  const pump = (): void => {
    while (remaining > 0) {
      const n = Math.min(remaining, chunk.length);
      remaining -= n;
      const ok = sock.write(n === chunk.length ? chunk : chunk.subarray(0, n));
      if (!ok) {
        if (remaining > 0) sock.once('drain', pump);
        else sock.end();
        return;
      }
    }
    sock.end();
  };
  pump();
}

function onTraffic(sock: net.Socket): void {
  trafficSockets.add(sock);
  sock.setNoDelay(true);
  sock.on('close', () => trafficSockets.delete(sock));
  sock.on('error', () => sock.destroy());
  const header = Buffer.alloc(REQUEST_BYTES);
  let have = 0;
  let op = 0;
  let sinkLeft = 0;
  const onData = (data: Buffer): void => {
    let off = 0;
    if (have < REQUEST_BYTES) {
      const take = Math.min(REQUEST_BYTES - have, data.length);
      data.copy(header, have, 0, take);
      have += take;
      off = take;
      if (have < REQUEST_BYTES) return;
      op = header[0] as number;
      const size = Number(header.readBigUInt64BE(1));
      if (op === OP_DOWNLOAD) {
        sock.off('data', onData);
        sock.resume(); // discard anything else the client sends
        source(sock, size);
        return;
      }
      if (op !== OP_UPLOAD) {
        sock.destroy();
        return;
      }
      sinkLeft = size;
      if (sinkLeft === 0) sock.end(ack);
    }
    if (op === OP_UPLOAD && sinkLeft > 0) {
      sinkLeft -= data.length - off;
      if (sinkLeft <= 0) sock.end(ack);
    }
  };
  sock.on('data', onData);
}

function onEcho(sock: net.Socket): void {
  echoSockets.add(sock);
  sock.setNoDelay(true);
  sock.on('close', () => echoSockets.delete(sock));
  sock.on('error', () => sock.destroy());
  sock.on('data', (d) => {
    if (!sock.write(d)) sock.pause();
  });
  sock.on('drain', () => sock.resume());
  sock.on('end', () => sock.end());
}

const trafficTcp = net.createServer({ noDelay: true }, onTraffic);
const trafficTls = tls.createServer({ key: config.tlsKey, cert: config.tlsCert }, (s) => onTraffic(s));
const echo = net.createServer({ noDelay: true }, onEcho);

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, backlog: 2048 }, () => resolve((server.address() as net.AddressInfo).port));
  });
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'stats') {
    post({ type: 'stats', id: m.id, echoOpen: echoSockets.size, trafficOpen: trafficSockets.size });
  } else if (m.type === 'close') {
    for (const s of [...trafficSockets, ...echoSockets]) s.destroy();
    trafficTcp.close();
    trafficTls.close();
    echo.close();
    post({ type: 'closed' });
    port.close();
  }
});

Promise.all([listen(trafficTcp), listen(trafficTls), listen(echo)]).then(
  ([trafficTcpPort, trafficTlsPort, echoPort]) => post({ type: 'ready', trafficTcpPort, trafficTlsPort, echoPort }),
  (err: Error) => post({ type: 'error', message: err.message }),
);
