/**
 * The front's routing (front.ts): a TLS connection whose ALPN an acceptor claims goes to it whole;
 * HTTP/1.x requests are offered to the acceptors, and what none takes gets the decoy's answer,
 * byte for byte the answer of the decoy alone. The acceptors here are small test transports
 * implementing the Acceptor interface; the front, the TLS and the decoy are the real ones.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultLimits } from '../../../src/core/limits.js';
import { createBuiltinDecoy } from '../../../src/decoy/builtin.js';
import { silentLogger } from '../../../src/log/logger.js';
import { generateSelfSigned } from '../../../src/transport/self-signed.js';
import { createFront, frontAlpnProtocols } from '../../../src/transport/front.js';
import { createDecoyListener } from '../../../src/transport/listener.js';
import type { Acceptor, AcceptedConnection, FrontRequest } from '../../../src/transport/types.js';
import { onCleanup, stopAll, within } from './helpers.js';

const limits = defaultLimits();
const SITE_TIME_MS = Date.UTC(2026, 0, 2, 3, 4, 5);
let cert: { keyPem: string; certPem: string };

beforeAll(() => {
  cert = generateSelfSigned({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
});
afterEach(stopAll);

/** HTTP/2's connection preface (RFC 9113 §3.4), as a proxy speaking h2c to the bridge sends it. */
const H2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

/**
 * A test transport: takes whole connections for ALPN `postern-test` or starting with H2_PREFACE
 * (answering with the first bytes it reads), and HTTP/1.1 requests for /take (then an echo).
 */
function testAcceptor(log: string[]): Acceptor {
  const held = new Set<Duplex>();
  return {
    name: 'h2',
    alpn: ['postern-test'],
    plainPreface: Buffer.from(H2_PREFACE, 'latin1'),
    takeConnection(socket: Duplex, conn: AcceptedConnection): void {
      log.push(`connection tls=${conn.tls}`);
      held.add(socket);
      socket.once('data', (d: Buffer) => socket.end(`taken whole: ${d.toString('latin1')}`));
      socket.resume();
    },
    takeRequest(req: FrontRequest): boolean {
      if (req.head.url !== '/take') return false;
      log.push(`request ${req.head.method} ${req.head.url}`);
      held.add(req.socket);
      req.socket.write(`HTTP/1.1 299 Taken\r\n\r\nrest=${req.rest.toString('latin1')};`);
      req.socket.on('data', (d: Buffer) => req.socket.write(d)); // an echo from here on
      req.socket.resume();
      return true;
    },
    close(): void {
      for (const s of held) s.destroy();
    },
  };
}

async function start(acceptors: Acceptor[], withTls: boolean): Promise<number> {
  const decoy = createBuiltinDecoy({ siteTimeMs: SITE_TIME_MS });
  const front = createFront({ host: '127.0.0.1', port: 0, tls: withTls ? cert : null, decoy, acceptors, limits, logger: silentLogger() });
  const { port } = await front.listen();
  onCleanup(() => front.close());
  return port;
}

async function startDecoyAlone(withTls: boolean): Promise<number> {
  const decoy = createBuiltinDecoy({ siteTimeMs: SITE_TIME_MS });
  const l = createDecoyListener({ host: '127.0.0.1', port: 0, tls: withTls ? cert : null, decoy, limits, logger: silentLogger() });
  const { port } = await l.listen();
  onCleanup(() => l.close());
  return port;
}

/** Connects (TLS offering `alpn`, or plain), writes `data`, returns the ALPN chosen and every byte until the peer ends. */
function exchange(port: number, data: string, alpn: string[] | null): Promise<{ alpn: string | false | null; bytes: string }> {
  return within(
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s: net.Socket =
        alpn === null
          ? net.connect({ host: '127.0.0.1', port }, () => s.write(data))
          : tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: alpn }, () => s.write(data));
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('error', reject);
      s.on('end', () => s.end());
      s.on('close', () =>
        resolve({ alpn: alpn === null ? null : (s as tls.TLSSocket).alpnProtocol, bytes: Buffer.concat(chunks).toString('latin1') }),
      );
    }),
    10_000,
    'exchange',
  );
}

/** An answer with its Date header blanked (it moves with the clock). */
const undated = (s: string): string => s.replace(/\r\nDate: [^\r]*\r\n/g, '\r\nDate: -\r\n');

describe('frontAlpnProtocols', () => {
  it('offers each acceptor’s protocols first, then http/1.1, once each', () => {
    const a = (alpn: string[]): Acceptor => ({ name: 'h2', alpn, close: () => undefined });
    expect(frontAlpnProtocols([])).toEqual(['http/1.1']);
    expect(frontAlpnProtocols([a([])])).toEqual(['http/1.1']);
    expect(frontAlpnProtocols([a(['h2']), a(['h2', 'http/1.1'])])).toEqual(['h2', 'http/1.1']);
  });
});

describe('the front routes by ALPN and by request (front.ts)', () => {
  it('hands a TLS connection whose ALPN an acceptor claims to that acceptor, whole', async () => {
    const log: string[] = [];
    const port = await start([testAcceptor(log)], true);
    // The bridge's preference wins: it offers postern-test before http/1.1.
    const r = await exchange(port, 'hello', ['http/1.1', 'postern-test']);
    expect(r.alpn).toBe('postern-test');
    expect(r.bytes).toBe('taken whole: hello');
    expect(log).toEqual(['connection tls=true']);
  });

  it('serves HTTP/1.1 (the decoy) to a client offering only http/1.1, or no ALPN at all', async () => {
    const log: string[] = [];
    const port = await start([testAcceptor(log)], true);
    const alone = await startDecoyAlone(true);
    const req = 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
    for (const alpn of [['http/1.1'], []]) {
      const r = await exchange(port, req, alpn);
      expect(r.alpn).toBe(alpn.length === 0 ? false : 'http/1.1');
      expect(r.bytes).toMatch(/^HTTP\/1\.1 200 OK\r\nServer: nginx/);
      expect(undated(r.bytes)).toBe(undated((await exchange(alone, req, alpn)).bytes));
    }
    expect(log).toEqual([]);
  });

  for (const withTls of [true, false]) {
    it(`offers each parsed request to the acceptors; one taken gets the socket and the bytes after its head (${withTls ? 'TLS' : 'plain'})`, async () => {
      const log: string[] = [];
      const port = await start([testAcceptor(log)], withTls);
      const r = await new Promise<string>((resolve, reject) => {
        let got = '';
        const onConnect = (): void => {
          s.write('GET /take HTTP/1.1\r\nHost: x\r\n\r\nearly');
          setTimeout(() => s.write('later'), 50);
        };
        const s: net.Socket = withTls
          ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, onConnect)
          : net.connect({ host: '127.0.0.1', port }, onConnect);
        s.on('data', (d: Buffer) => {
          got += d.toString('latin1');
          if (got.endsWith('later')) {
            s.destroy();
            resolve(got);
          }
        });
        s.on('error', reject);
      });
      expect(r).toBe('HTTP/1.1 299 Taken\r\n\r\nrest=early;later');
      expect(log).toEqual(['request GET /take']);
    });
  }

  it('without TLS, hands a connection that starts with an acceptor’s preface to it, whole, even when the preface arrives in pieces', async () => {
    const log: string[] = [];
    const port = await start([testAcceptor(log)], false);
    const r = await within(
      new Promise<string>((resolve, reject) => {
        let got = '';
        const s = net.connect({ host: '127.0.0.1', port }, () => {
          s.write(H2_PREFACE.slice(0, 1));
          setTimeout(() => s.write(H2_PREFACE.slice(1, 7)), 30);
          setTimeout(() => s.write(H2_PREFACE.slice(7)), 60);
        });
        s.on('data', (d: Buffer) => (got += d.toString('latin1')));
        s.on('error', reject);
        s.on('close', () => resolve(got));
      }),
      10_000,
      'preface',
    );
    // The acceptor reads from the first byte: nothing was lost to the sniffing.
    expect(r.startsWith(`taken whole: ${H2_PREFACE.slice(0, 1)}`)).toBe(true);
    expect(log).toEqual(['connection tls=false']);
  });

  it('without TLS, serves HTTP/1.x that shares the preface’s first bytes, as the decoy alone does', async () => {
    const log: string[] = [];
    const port = await start([testAcceptor(log)], false);
    const alone = await startDecoyAlone(false);
    for (const req of ['POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'PRI * HTTP/1.1\r\nHost: x\r\n\r\n']) {
      const a = await exchange(port, req, null);
      expect(a.bytes).toMatch(/^HTTP\/1\.1 (405|400) /);
      expect(undated(a.bytes)).toBe(undated((await exchange(alone, req, null)).bytes));
    }
    expect(log).toEqual([]);
  });

  it('answers what no acceptor takes exactly as the decoy alone does, request after request on one connection', async () => {
    const port = await start([testAcceptor([])], false);
    const alone = await startDecoyAlone(false);
    const reqs =
      'GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n' +
      'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n' +
      'HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const a = await exchange(port, reqs, null);
    const b = await exchange(alone, reqs, null);
    expect(a.bytes.match(/^HTTP\/1\.1 \d+/gm)).toEqual(['HTTP/1.1 404', 'HTTP/1.1 200', 'HTTP/1.1 200']);
    expect(undated(a.bytes)).toBe(undated(b.bytes));
  });
});
