/**
 * The client's TLS offer at work (protocol.md §2.4): what it negotiates with a real bridge, what it
 * refuses after the handshake, and the names it sends (sni= and host=, §1).
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PosternError } from '../../../src/core/errors.js';
import { defaultLimits } from '../../../src/core/limits.js';
import { silentLogger } from '../../../src/log/logger.js';
import { generateSecret } from '../../../src/transport/auth.js';
import { spkiSha256 } from '../../../src/transport/certs.js';
import { generateSelfSigned } from '../../../src/transport/self-signed.js';
import { forgetTlsSessions } from '../../../src/transport/dialer.js';
import { dialBridge } from '../../../src/transport/registry.js';
import { CLIENT_ALPN, tlsProtocolTooOld } from '../../../src/transport/tls-profile.js';
import type { BridgeInfo } from '../../../src/transport/uri.js';
import { captureLogger, onCleanup, startBridge, stopAll, track } from './helpers.js';

let cert: { keyPem: string; certPem: string };
let pin: Buffer;
const limits = defaultLimits();
const logger = silentLogger();

beforeAll(() => {
  cert = generateSelfSigned({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
  pin = spkiSha256(cert.certPem);
});
afterEach(async () => {
  forgetTlsSessions();
  await stopAll();
});

async function dialError(info: BridgeInfo): Promise<PosternError> {
  try {
    track(await dialBridge(info, { limits, logger }));
  } catch (err) {
    expect(err).toBeInstanceOf(PosternError);
    return err as PosternError;
  }
  throw new Error('dial succeeded');
}

/**
 * A TLS server with the given options that records, per connection, the SNI, the ALPN it chose,
 * and the application bytes it received (then answers a 404 to a request head).
 */
async function tlsServer(options: tls.TlsOptions): Promise<{ port: number; seen: Array<{ sni: string | false | null; alpn: string | false | null; bytes: Buffer[] }> }> {
  const seen: Array<{ sni: string | false | null; alpn: string | false | null; bytes: Buffer[] }> = [];
  const srv = tls.createServer({ key: cert.keyPem, cert: cert.certPem, ...options }, (s) => {
    const c = { sni: s.servername, alpn: s.alpnProtocol, bytes: [] as Buffer[] };
    seen.push(c);
    s.on('error', () => s.destroy());
    s.on('data', (d: Buffer) => {
      c.bytes.push(d);
      if (Buffer.concat(c.bytes).includes('\r\n\r\n')) s.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    });
  });
  srv.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  onCleanup(() => new Promise<void>((r) => srv.close(() => r())));
  return { port: (srv.address() as net.AddressInfo).port, seen };
}

describe('the client TLS profile (protocol.md §2.4)', () => {
  it('offers h2 and http/1.1; a bridge picks http/1.1 and TLS 1.3, and the next dial resumes the TLS session', async () => {
    expect(CLIENT_ALPN).toEqual(['h2', 'http/1.1']);
    const b = await startBridge({ tls: cert, pin });
    const { logger: log, lines } = captureLogger('debug');
    track(await dialBridge(b.info(), { limits, logger: log }));
    await b.nextSession();
    track(await dialBridge(b.info(), { limits, logger: log }));
    await b.nextSession();
    const verified = lines.map((l) => JSON.parse(l) as { msg: string; protocol?: string; alpn?: string; resumed?: boolean }).filter((l) => l.msg === 'bridge TLS verified');
    expect(verified.map((l) => [l.protocol, l.alpn, l.resumed])).toEqual([
      ['TLSv1.3', 'http/1.1', false],
      ['TLSv1.3', 'http/1.1', true], // TLS 1.3 tickets work without the TLS 1.2 session_ticket extension
    ]);
  });

  it('refuses a server that negotiates TLS 1.1, before sending it a byte', async () => {
    // TLS 1.1 is listed in the hello (as curl lists it) but never used: OpenSSL completes the
    // handshake with an RSA key-exchange suite, and the dialer refuses the result.
    const srv = await tlsServer({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'AES128-SHA@SECLEVEL=0' });
    const err = await dialError({ secret: generateSecret(), host: '127.0.0.1', port: srv.port, path: '/p', pin, plain: false });
    expect(err.code).toBe('E_TLS');
    expect(err.message).toMatch(/the bridge negotiated TLSv1\.1; Postern needs TLSv1\.2 or newer/);
    expect(srv.seen.flatMap((c) => c.bytes)).toEqual([]);
    expect(tlsProtocolTooOld('TLSv1')).toBe(true);
    expect(tlsProtocolTooOld(null)).toBe(true);
    expect(tlsProtocolTooOld('TLSv1.2')).toBe(false);
  });

  it('follows a front that chooses HTTP/2: a default link speaks HTTP/2 there (§12), never a WebSocket upgrade', async () => {
    const srv = await tlsServer({ ALPNProtocols: ['h2', 'http/1.1'] });
    await dialError({ secret: generateSecret(), host: '127.0.0.1', port: srv.port, path: '/p', pin, plain: false });
    const [c] = srv.seen;
    expect(c?.alpn).toBe('h2');
    const sent = Buffer.concat(c?.bytes ?? []).toString('latin1');
    expect(sent.startsWith('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')).toBe(true);
    expect(sent).not.toMatch(/Upgrade: websocket/i);
  });

  it('refuses, naming both protocols, a front that chooses HTTP/1.1 for a transport=h2 link, before sending a byte', async () => {
    const srv = await tlsServer({ ALPNProtocols: ['http/1.1'] });
    const err = await dialError({ secret: generateSecret(), host: '127.0.0.1', port: srv.port, path: '/p', pin, plain: false, transport: 'h2' });
    expect(err.code).toBe('E_TLS');
    expect(err.message).toMatch(/chose HTTP\/1\.1 \(ALPN http\/1\.1\); the HTTP\/2 transport needs HTTP\/2 there/);
    expect(srv.seen.flatMap((c) => c.bytes)).toEqual([]);
  });

  it('sends sni= as the server name and host= as the Host header, each apart, through connect= (§1)', async () => {
    const srv = await tlsServer({ ALPNProtocols: ['http/1.1'] });
    const info: BridgeInfo = {
      secret: generateSecret(),
      host: 'bridge.invalid',
      port: 443,
      path: '/p',
      pin,
      sni: 'front.example.net',
      httpHost: 'origin.example.org',
      connect: { host: '127.0.0.1', port: srv.port },
      plain: false,
    };
    expect((await dialError(info)).code).toBe('E_AUTH_REJECTED');
    const [c] = srv.seen;
    expect(c?.sni).toBe('front.example.net');
    expect(c?.alpn).toBe('http/1.1');
    const head = Buffer.concat(c?.bytes ?? []).toString('latin1');
    expect(head).toMatch(/^GET \/p HTTP\/1\.1\r\n/);
    expect(head.match(/\r\nHost: ([^\r]*)\r\n/gi)).toEqual(['\r\nHost: origin.example.org\r\n']);
  });
});
