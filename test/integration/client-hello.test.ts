/**
 * The client's ClientHello against curl's (issue 13 item 3, protocol.md §2.4): a raw TCP listener on
 * loopback records the first TLS records that `postern client`, `postern doctor` and the machine's
 * curl (7.88.1 with OpenSSL 3 on Debian 12) send, the pure parser reads them, and the fields are
 * compared one by one. Where Node cannot match, the exact difference is asserted.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { CLIENT_HELLO_MAX_BYTES, EXT, decodeClientHello, hex16, type ClientHello } from '../helpers/client-hello.js';
import { curl, doctor } from '../helpers/ops.js';
import { Postern, stopAll } from '../helpers/proc.js';
import { init, startBridge } from '../helpers/stack.js';
import { generateSelfSigned } from '../../src/transport/self-signed.js';
import { formatShareUri, parseShareUri } from '../../src/transport/uri.js';

/** What one capture may hold: the largest ClientHello plus the headers of the records it may span. */
const CAPTURE_MAX_BYTES = CLIENT_HELLO_MAX_BYTES + 1_024;
const CAPTURE_TIMEOUT_MS = 15_000;

interface Capture {
  port: number;
  /** The next connection's ClientHello (the connection is then closed without an answer). */
  next(): Promise<ClientHello>;
  close(): Promise<void>;
}

/**
 * A raw TCP listener that reads each connection's first flight and parses it. Without `onward` it
 * then hangs up; with it, the connection (its bytes so far put back) goes on to `onward`, which
 * completes the handshake — so that a client can come back and resume.
 */
async function captureListener(onward?: (sock: net.Socket, head: Buffer) => void): Promise<Capture> {
  const got: Array<ClientHello | Error> = [];
  const waiters: Array<() => void> = [];
  const sockets = new Set<net.Socket>();
  const push = (v: ClientHello | Error): void => {
    got.push(v);
    for (const w of waiters.splice(0)) w();
  };
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    const parts: Buffer[] = [];
    let size = 0;
    let done = false;
    s.on('data', (d: Buffer) => {
      if (done) return;
      parts.push(d);
      size += d.length;
      try {
        const r = decodeClientHello(Buffer.concat(parts));
        if (r.status === 'ok') {
          done = true;
          push(r.hello);
          if (onward === undefined) s.destroy();
          else {
            s.removeAllListeners('data');
            s.pause();
            onward(s, Buffer.concat(parts));
          }
        } else if (size > CAPTURE_MAX_BYTES) {
          throw new Error(`no whole ClientHello in ${size} bytes`);
        }
      } catch (err) {
        done = true;
        push(err as Error);
        s.destroy();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    async next() {
      const deadline = Date.now() + CAPTURE_TIMEOUT_MS;
      while (got.length === 0) {
        if (Date.now() > deadline) throw new Error('no ClientHello captured in time');
        await new Promise<void>((r) => {
          const t = setTimeout(r, 200);
          waiters.push(() => (clearTimeout(t), r()));
        });
      }
      const v = got.shift() as ClientHello | Error;
      if (v instanceof Error) throw v;
      return v;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

let capture: Capture | undefined;
afterEach(async () => {
  await capture?.close();
  capture = undefined;
  await stopAll();
});

const NAME = 'hello.example';
const SECRET = Buffer.alloc(32, 7).toString('base64url');
const PIN = Buffer.alloc(32, 1).toString('base64url');

/** A link to NAME whose TCP goes to the capture listener (connect=), pinned so no CA is involved. */
const linkTo = (port: number): string => `postern://${SECRET}@${NAME}:443/p?pin=${PIN}&connect=127.0.0.1:${port}`;

async function curlHello(c: Capture): Promise<ClientHello> {
  const r = curl(['-k', '--resolve', `${NAME}:${c.port}:127.0.0.1`, `https://${NAME}:${c.port}/`], 10);
  const hello = await c.next();
  await r; // fails: the listener hangs up
  return hello;
}

async function clientHello(c: Capture): Promise<ClientHello> {
  const client = new Postern(['client', '--bridge', linkTo(c.port), '--listen', '127.0.0.1:0', '--no-auth']);
  const hello = await c.next();
  await client.stop();
  return hello;
}

/** The fields compared, in a form whose failures read well. Random, session id and key bytes vary by design. */
function fields(h: ClientHello) {
  const list = (xs: number[] | undefined) => xs?.map(hex16);
  return {
    recordVersion: hex16(h.recordVersion),
    legacyVersion: hex16(h.legacyVersion),
    sessionIdBytes: h.sessionId.length,
    cipherSuites: list(h.cipherSuites),
    compressionMethods: h.compressionMethods,
    extensionTypes: h.extensionTypes,
    serverName: h.serverName,
    supportedGroups: list(h.supportedGroups),
    ecPointFormats: h.ecPointFormats,
    signatureAlgorithms: list(h.signatureAlgorithms),
    signatureAlgorithmsCert: list(h.signatureAlgorithmsCert),
    alpn: h.alpn,
    supportedVersions: list(h.supportedVersions),
    pskKeyExchangeModes: h.pskKeyExchangeModes,
    keyShares: h.keyShares,
    paddingBytes: h.paddingBytes,
    /** The hello's encoded size (what the padding extension evens out). */
    helloBytes: 4 + 2 + 32 + 1 + h.sessionId.length + 2 + 2 * h.cipherSuites.length + 1 + h.compressionMethods.length + 2 + [...h.extensions.values()].reduce((n, d) => n + 4 + d.length, 0),
  };
}

describe('the ClientHello (protocol.md §2.4)', () => {
  it('is the reference curl: 7.88.1 with OpenSSL 3', () => {
    const v = execFileSync('curl', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '';
    expect(v, 'the comparison was made against Debian 12\'s curl; another curl may send another hello').toMatch(/^curl 7\.88\.1 .*OpenSSL\/3\.0\./);
  });

  it("postern client sends curl's ClientHello field by field; only post_handshake_auth is missing (Node cannot send it)", async () => {
    capture = await captureListener();
    const ref = fields(await curlHello(capture));
    const ours = fields(await clientHello(capture));

    // Equal, field by field.
    for (const k of ['recordVersion', 'legacyVersion', 'sessionIdBytes', 'cipherSuites', 'compressionMethods', 'serverName', 'supportedGroups', 'ecPointFormats', 'signatureAlgorithms', 'signatureAlgorithmsCert', 'alpn', 'supportedVersions', 'pskKeyExchangeModes', 'keyShares', 'helloBytes'] as const) {
      expect(ours[k], k).toEqual(ref[k]);
    }
    // The values themselves, as measured (so that a change on either side is seen here first).
    expect(ours.alpn).toEqual(['h2', 'http/1.1']);
    expect(ours.serverName).toBe(NAME);
    expect(ours.cipherSuites).toHaveLength(31);
    expect(ours.supportedVersions).toEqual(['0x0304', '0x0303', '0x0302', '0x0301']);
    expect(ours.keyShares).toEqual([{ group: 0x1d, keyBytes: 32 }]);
    expect(ours.helloBytes).toBe(512); // padded (RFC 7685), as OpenSSL pads a 256–511-byte hello

    // Extensions in the same order (OpenSSL 3.0 does not permute them), except the one Node
    // cannot enable: post_handshake_auth (curl calls SSL_set_post_handshake_auth; Node has no
    // option for it). The padding grows by those 4 bytes, so the hello's size stays the same.
    expect(ref.extensionTypes).toContain(EXT.post_handshake_auth);
    expect(ours.extensionTypes).toEqual(ref.extensionTypes.filter((t) => t !== EXT.post_handshake_auth));
    expect(ours.paddingBytes).toBe((ref.paddingBytes ?? 0) + 4);
    expect(ours.extensionTypes).not.toContain(EXT.session_ticket);
  }, 60_000);

  it('postern doctor sends the same ClientHello as postern client', async () => {
    capture = await captureListener();
    const fromClient = fields(await clientHello(capture));
    const d = doctor(linkTo(capture.port));
    const fromDoctor = fields(await capture.next());
    expect((await d).report.failedStep).toBe('tls'); // the listener hangs up
    expect(fromDoctor).toEqual(fromClient);
  }, 60_000);

  it("a reconnect resumes with curl's resumed ClientHello: pre_shared_key last, the rest as the first hello", async () => {
    // curl: two requests to a TLS server that closes after each answer; the second connection resumes.
    const { keyPem, certPem } = generateSelfSigned({ commonName: NAME, altNames: [NAME] });
    const server = tls.createServer({ key: keyPem, cert: certPem, ALPNProtocols: ['http/1.1'] }, (s) => {
      s.on('error', () => undefined);
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'));
    });
    capture = await captureListener((sock, head) => {
      sock.unshift(head);
      server.emit('connection', sock);
    });
    const url = `https://${NAME}:${capture.port}/`;
    const twice = curl(['-k', '--resolve', `${NAME}:${capture.port}:127.0.0.1`, url, url], 10);
    const curlFirst = fields(await capture.next());
    const curlAgain = fields(await capture.next());
    expect((await twice).stdout).toBe('okok');
    await capture.close();

    // postern: a bridge behind a relay that records; the relay's cut makes the client come back.
    const { config, uri } = await init();
    const { port: bridgePort } = await startBridge(config);
    const toBridge = new Set<net.Socket>();
    capture = await captureListener((sock, head) => {
      const up = net.connect({ host: '127.0.0.1', port: bridgePort }, () => {
        up.write(head);
        sock.pipe(up).pipe(sock);
        sock.resume();
      });
      toBridge.add(up);
      const end = (): void => {
        sock.destroy();
        up.destroy();
      };
      up.on('error', end).on('close', end);
      sock.on('error', end).on('close', end);
    });
    const relayed = formatShareUri({ ...parseShareUri(uri), host: NAME, port: 443, connect: { host: '127.0.0.1', port: capture.port } });
    const client = new Postern(['client', '--bridge', relayed, '--listen', '127.0.0.1:0', '--no-auth']);
    const ourFirst = fields(await capture.next());
    await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
    for (const s of toBridge) s.destroy(); // cut: the client resumes on a new connection
    const ourAgain = fields(await capture.next());
    await client.waitFor((l) => l.msg === 'tunnel to bridge up' && l.resumed === true, 15_000, 'tunnel resumed');

    for (const [ref, ours] of [
      [curlFirst, ourFirst],
      [curlAgain, ourAgain],
    ] as const) {
      expect(ours.extensionTypes).toEqual(ref.extensionTypes.filter((t) => t !== EXT.post_handshake_auth));
      for (const k of ['cipherSuites', 'supportedGroups', 'signatureAlgorithms', 'alpn', 'supportedVersions', 'pskKeyExchangeModes', 'keyShares', 'ecPointFormats'] as const) {
        expect(ours[k], k).toEqual(ref[k]);
      }
    }
    // The resumed hellos offer the session: pre_shared_key is the last extension (RFC 8446 §4.2.11).
    expect(curlAgain.extensionTypes.at(-1)).toBe(EXT.pre_shared_key);
    expect(ourAgain.extensionTypes.at(-1)).toBe(EXT.pre_shared_key);
    expect(curlFirst.extensionTypes).not.toContain(EXT.pre_shared_key);
    expect(ourFirst.extensionTypes).not.toContain(EXT.pre_shared_key);
  }, 90_000);
});
