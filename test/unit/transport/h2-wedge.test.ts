/**
 * The hang of HTTP/2 over TLS on a TCP connection reset while it writes (src/transport/h2/wedge.ts):
 * the decision as a table, then the real thing on loopback — Node's HTTP/2 session alone never
 * notices, and an H2FrameTransport with the check reports the cut within a few checks.
 */
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TransportClose } from '../../../src/mux/transport.js';
import { H2FrameTransport } from '../../../src/transport/h2/frame-transport.js';
import { isWedged, wedgeCheck, type WedgeSample } from '../../../src/transport/h2/wedge.js';
import { generateSelfSigned } from '../../../src/transport/self-signed.js';

const s = (tlsPending: number, tcpQueued: number, tcpWritten: number): WedgeSample => ({ tlsPending, tcpQueued, tcpWritten });

describe('isWedged', () => {
  it.each([
    ['TLS holds bytes, TCP queues none and wrote nothing between the checks', s(120, 0, 5000), s(120, 0, 5000), true],
    ['TLS took more while TCP stood still', s(53, 0, 5000), s(29_825, 0, 5000), true],
    ['TCP wrote between the checks (a write finished at once; the next is under way)', s(120, 0, 5000), s(120, 0, 5120), false],
    ['TCP has bytes queued (the kernel buffer is full: backpressure, not a hang)', s(16_000, 4096, 5000), s(16_000, 4096, 5000), false],
    ['TLS holds nothing (idle)', s(0, 0, 5000), s(0, 0, 5000), false],
    ['TLS held bytes at one check only', s(0, 0, 5000), s(120, 0, 5000), false],
  ])('%s', (_what, prev, now, wedged) => {
    expect(isWedged(prev, now)).toBe(wedged);
  });
});

describe('HTTP/2 over TLS, TCP reset by the peer while the client writes', () => {
  let cert: { keyPem: string; certPem: string };
  let server: net.Server;
  let port = 0;
  const open = new Set<net.Socket>();

  beforeAll(async () => {
    cert = generateSelfSigned({ commonName: '127.0.0.1', altNames: ['127.0.0.1'] });
    // The bridge's way: a TLSSocket on the accepted TCP socket, HTTP/2 on it, large windows; the
    // TCP connection is reset (RST) once 256 KiB of the request body arrived.
    server = net.createServer((raw) => {
      open.add(raw);
      raw.on('error', () => undefined);
      const t = new tls.TLSSocket(raw, { isServer: true, key: cert.keyPem, cert: cert.certPem, ALPNProtocols: ['h2'] });
      t.on('error', () => undefined);
      const h2 = http2.createServer({ settings: { initialWindowSize: 4 << 20 } });
      h2.on('session', (session) => {
        session.on('error', () => undefined);
        session.setLocalWindowSize(16 << 20);
      });
      h2.on('stream', (stream) => {
        stream.on('error', () => undefined);
        stream.respond({ ':status': 200 });
        let got = 0;
        stream.on('data', (d: Buffer) => {
          got += d.length;
          if (got >= 256 * 1024 && !raw.destroyed) raw.resetAndDestroy();
        });
      });
      t.once('secure', () => {
        (t as tls.TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
        h2.emit('connection', t);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });
  afterEach(() => {
    for (const sock of open) sock.destroy();
    open.clear();
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  /** A client HTTP/2 session over TLS with one POST stream, the TCP and TLS sockets under it. */
  async function connect(): Promise<{ raw: net.Socket; sock: tls.TLSSocket; session: http2.ClientHttp2Session; stream: http2.ClientHttp2Stream }> {
    const raw = net.connect({ host: '127.0.0.1', port });
    open.add(raw);
    raw.on('error', () => undefined);
    await new Promise((r) => raw.once('connect', r));
    const sock = tls.connect({ socket: raw, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    sock.on('error', () => undefined);
    await new Promise((r) => sock.once('secureConnect', r));
    const session = http2.connect('https://127.0.0.1', { createConnection: () => sock, settings: { initialWindowSize: 4 << 20 } });
    session.on('error', () => undefined);
    const stream = session.request({ ':method': 'POST', ':path': '/' }, { endStream: false });
    stream.on('error', () => undefined);
    return { raw, sock, session, stream };
  }

  it("Node's HTTP/2 session alone does not notice: it neither closes nor writes (the bug the check is for)", async () => {
    const { raw, sock, session, stream } = await connect();
    const chunk = Buffer.alloc(64 * 1024, 7);
    let stop = false;
    const pump = (): void => {
      while (!stop && stream.write(chunk));
      if (!stop) stream.once('drain', pump);
    };
    pump();
    const closed = await new Promise<boolean>((r) => {
      session.once('close', () => r(true));
      setTimeout(() => r(false), 1_500);
    });
    stop = true;
    // If this fails, Node now reports the broken connection itself and wedge.ts may go.
    expect(closed).toBe(false);
    const check = wedgeCheck(sock, raw);
    expect(check).not.toBeNull();
    // The state wedge.ts looks for: TLS holds encrypted bytes, TCP has none queued and writes nothing.
    expect(check?.()).toBe(false); // the first sample
    await new Promise((r) => setTimeout(r, 20));
    expect(check?.()).toBe(true);
    session.destroy();
  });

  it('an H2FrameTransport with the check reports the cut within a few checks', async () => {
    const { raw, sock, session, stream } = await connect();
    const check = wedgeCheck(sock, raw);
    expect(check).not.toBeNull();
    const transport = new H2FrameTransport(stream, {
      maxMessageBytes: 256 * 1024,
      closeTimeoutMs: 1_000,
      wire: raw,
      wedge: { check: check as () => boolean, everyMs: 20 },
      onFinish: () => session.destroy(),
    });
    const closed = new Promise<TransportClose>((r) => transport.onClose(r));
    transport.onMessage(() => undefined);
    const message = Buffer.alloc(64 * 1024, 9);
    let stop = false;
    const pump = (): void => {
      for (let i = 0; i < 8 && !stop; i++) transport.send(message);
      if (!stop) setTimeout(pump, 1);
    };
    pump();
    void closed.then(() => (stop = true));
    const t0 = performance.now();
    const info = await Promise.race([closed, new Promise<null>((r) => setTimeout(() => r(null), 1_500))]);
    stop = true;
    expect(info).not.toBeNull();
    expect(info?.cut).toBe(true);
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(sock.destroyed).toBe(true);
  });
});
