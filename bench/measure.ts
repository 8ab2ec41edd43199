/** Connection makers for the three paths, the new-stream latency probe and the idle-stream holder. */
import net from 'node:net';
import tls from 'node:tls';
import { socksConnect } from './socks5.js';
import { withTimeout } from './stats.js';

export type Connector = () => Promise<net.Socket>;

const CONNECT_TIMEOUT_MS = 10_000;

export function directConnector(port: number): Connector {
  return () =>
    withTimeout(
      new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => {
          s.off('error', reject);
          resolve(s);
        });
        s.once('error', reject);
      }),
      CONNECT_TIMEOUT_MS,
      'direct connect',
    );
}

export function tlsConnector(port: number, ca: string): Connector {
  return () =>
    withTimeout(
      new Promise<net.Socket>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca }, () => {
          s.off('error', reject);
          s.setNoDelay(true);
          resolve(s);
        });
        s.once('error', reject);
      }),
      CONNECT_TIMEOUT_MS,
      'TLS connect',
    );
}

export function socksConnector(socksPort: number, targetPort: number, pipeline: boolean): Connector {
  return () => socksConnect(socksPort, '127.0.0.1', targetPort, { pipeline, timeoutMs: CONNECT_TIMEOUT_MS });
}

const ONE = Buffer.from([0x2a]);

/** Waits for the first byte on a connected, paused socket after writing one. */
function echoOneByte(sock: net.Socket, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no echo within ${timeoutMs} ms`)), timeoutMs);
    const done = (err?: Error): void => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('error', done);
      sock.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onData = (): void => done();
    const onClose = (): void => done(new Error('closed before the echo'));
    sock.on('data', onData);
    sock.on('error', done);
    sock.on('close', onClose);
    sock.write(ONE);
    sock.resume();
  });
}

/**
 * One sample: microseconds from starting the connection to receiving the echoed first byte.
 * The socket is closed (FIN) afterwards; the next sample starts once it is destroyed.
 */
export async function connectEchoMicros(connect: Connector): Promise<number> {
  const t0 = process.hrtime.bigint();
  const sock = await connect();
  try {
    await echoOneByte(sock, CONNECT_TIMEOUT_MS);
    return Number(process.hrtime.bigint() - t0) / 1e3;
  } finally {
    sock.destroy();
  }
}

/** Opens `count` streams (at most `concurrency` handshakes at once), each echoing one byte, and keeps them open. */
export async function openIdleStreams(connect: Connector, count: number, concurrency: number, deadlineMs: number): Promise<net.Socket[]> {
  const open: net.Socket[] = [];
  const deadline = Date.now() + deadlineMs;
  let next = 0;
  let failure: Error | null = null;
  const worker = async (): Promise<void> => {
    while (next < count && !failure) {
      next++;
      if (Date.now() > deadline) {
        failure = new Error(`opening ${count} idle streams took longer than ${deadlineMs} ms (${open.length} open)`);
        return;
      }
      try {
        const s = await connect();
        open.push(s);
        await echoOneByte(s, CONNECT_TIMEOUT_MS);
        s.on('error', () => undefined); // an idle stream that fails is counted by the server-side check
      } catch (err) {
        failure = new Error(`idle stream #${open.length + 1}: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  if (failure) {
    for (const s of open) s.destroy();
    throw failure;
  }
  return open;
}
