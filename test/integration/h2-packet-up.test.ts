/**
 * The HTTP/2 transport's packet-up mode (protocol.md §12.3) with the built binary: direct (TLS,
 * ALPN h2), and behind a real nginx that buffers request bodies, where stream-one cannot work.
 */
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FaultyRelay } from '../helpers/faulty-relay.js';
import { packetSiteFromTemplate, startNginx, type Nginx } from '../helpers/nginx.js';
import { curl, doctor, run } from '../helpers/ops.js';
import { Postern, stopAll, tempDir } from '../helpers/proc.js';
import http2 from 'node:http2';
import { makeToken } from '../../src/transport/auth.js';
import { generateSelfSigned } from '../../src/transport/self-signed.js';
import { encodePad } from '../../src/transport/h2/codec.js';
import { newPacketKey, packetBinding } from '../../src/transport/h2/packet.js';
import { parseShareUri } from '../../src/transport/uri.js';
import { echoTransfer, seededBytes, sha256 } from '../helpers/resilience.js';
import { echoServer, httpServer, type Local } from '../helpers/servers.js';
import { init, startBridge, startClient, withPort, withTransport } from '../helpers/stack.js';

let web: Local<import('node:http').Server>;
let echo: Local<net.Server>;
let nginx: Nginx | undefined;
let relay: FaultyRelay | undefined;
beforeAll(async () => {
  web = await httpServer();
  echo = await echoServer();
});
afterEach(async () => {
  await relay?.close();
  relay = undefined;
  await nginx?.stop();
  nginx = undefined;
  await stopAll();
});
afterAll(async () => {
  await web?.close();
  await echo?.close();
});

/** curl through the SOCKS port gets the page, and 16 MiB (seeded by `seed`) echoes back intact. */
async function carriesCurlAnd16MiB(socks: number, seed: number): Promise<void> {
  const got = await curl(['--socks5-hostname', `127.0.0.1:${socks}`, `http://127.0.0.1:${web.port}/page`]);
  expect(got.stdout).toContain('hello through postern');
  const big = seededBytes(16 * 1024 * 1024, seed);
  const r = await echoTransfer(socks, echo.port, big);
  expect(r.ended).toBe('end');
  expect(r.hash).toBe(sha256(big));
}

/** Adds mode=packet-up to an h2 link. */
function packetUp(uri: string): string {
  const u = new URL(uri);
  u.searchParams.set('mode', 'packet-up');
  return u.toString();
}

describe('transport=h2 mode=packet-up, direct', () => {
  it('carries curl through SOCKS5 and 16 MiB both ways, the upstream as numbered POSTs', async () => {
    const { uri: initUri, config } = await init();
    const { bridge, port } = await startBridge(config, ['--allow-private', '--log-level', 'debug'], 'h2');
    const uri = packetUp(withTransport(withPort(initUri, port), 'h2'));
    const { client, port: socks } = await startClient(uri, ['--log-level', 'debug']);
    await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
    expect(client.lines.some((l) => l.msg === 'bridge session open' && l.transport === 'h2' && l.mode === 'packet-up')).toBe(true);
    expect(bridge.lines.some((l) => l.msg === 'h2 session accepted')).toBe(true);

    await carriesCurlAnd16MiB(socks, 7);
    expect(bridge.child.exitCode).toBeNull();
  }, 120_000);
});

/** One HTTP/2 request on `session`: status and body. */
function request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = session.request(headers, { endStream: body === undefined });
    let status = 0;
    const parts: Buffer[] = [];
    r.once('response', (h) => (status = Number(h[':status'])));
    r.on('data', (d: Buffer) => parts.push(d));
    r.once('end', () => resolve({ status, body: Buffer.concat(parts).toString('latin1') }));
    r.once('error', reject);
    if (body !== undefined) r.end(body);
  });
}

describe('transport=h2 mode=packet-up, the bridge on the wire', () => {
  it('answers POSTs in sequence order, holds one ahead of a gap, and gives the decoy to a duplicate, an out-of-window number and an unknown key', async () => {
    const { uri: initUri, config } = await init();
    const { port } = await startBridge(config, ['--allow-private'], 'h2');
    const info = parseShareUri(withPort(initUri, port));
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    try {
      const key = newPacketKey();
      const base = { ':scheme': 'https', ':authority': `127.0.0.1:${port}`, ':path': info.path };
      const token = makeToken(info.secret, info.path, Date.now(), undefined, packetBinding(undefined, key));
      // The downstream: 200 at once, its body open (not awaited).
      const down = session.request({ ':method': 'GET', ...base, authorization: `Bearer ${token}`, 'postern-packet': key }, { endStream: true });
      const downStatus = await new Promise<number>((r) => down.once('response', (h) => r(Number(h[':status']))));
      expect(downStatus).toBe(200);
      const post = (seq: number, k = key, body = encodePad(10)) =>
        request(session, { ':method': 'POST', ...base, 'content-length': String(body.length), 'postern-packet': k, 'postern-seq': String(seq) }, body);
      const decoy = await request(session, { ':method': 'POST', ...base, 'content-length': '14' }, encodePad(10));
      expect(decoy.status).toBe(404);

      expect((await post(0)).status).toBe(200);
      // Ahead of a gap: held, answered only once 1 arrives.
      let twoDone = false;
      const two = post(2).then((r) => ((twoDone = true), r));
      await new Promise((r) => setTimeout(r, 300));
      expect(twoDone).toBe(false);
      expect((await post(1)).status).toBe(200);
      expect((await two).status).toBe(200);
      // Refusals: the decoy's answer, byte for byte.
      for (const refused of [await post(0), await post(2), await post(3 + 8), await post(3, newPacketKey())]) {
        expect(refused).toEqual(decoy);
      }
      // A downstream GET with a token made for another key is refused the same way.
      const other = newPacketKey();
      const wrong = await request(session, { ':method': 'GET', ...base, authorization: `Bearer ${makeToken(info.secret, info.path, Date.now(), undefined, packetBinding(undefined, key))}`, 'postern-packet': other });
      const plainGet = await request(session, { ':method': 'GET', ...base });
      expect(wrong).toEqual(plainGet);
      // The session still takes the next number.
      expect((await post(3)).status).toBe(200);
      down.destroy();
    } finally {
      session.destroy();
    }
  }, 60_000);
});

describe('transport=h2 mode=packet-up, resumed across connections', () => {
  it('resumes the session (§9) while a relay resets every connection after 16–24 KB', async () => {
    const { uri: initUri, config } = await init();
    const { port } = await startBridge(config, ['--allow-private'], 'h2');
    relay = new FaultyRelay({ target: port, seed: 23 });
    const relayPort = await relay.listen();
    // No budget: this is about resuming after cuts; a learned budget would move before most of them.
    const { client, port: socks } = await startClient(packetUp(withTransport(withPort(initUri, relayPort), 'h2')), ['--conn-budget', 'off']);
    await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
    relay.cutRange = [16 * 1024, 24 * 1024];
    relay.cutAll();
    const data = seededBytes(256 * 1024, 5);
    const r = await echoTransfer(socks, echo.port, data);
    expect(r.ended).toBe('end');
    expect(r.hash).toBe(sha256(data));
    expect(relay.cuts).toBeGreaterThan(10);
    expect(client.lines.filter((l) => l.msg === 'tunnel to bridge up' && l.resumed === true).length).toBeGreaterThan(10);
  }, 90_000);
});

describe('transport=h2 mode=packet-up behind nginx that buffers request bodies (configs/nginx/postern-packet.conf)', () => {
  it('stream-one never gets through; packet-up carries curl and 16 MiB both ways; the decoy answers everyone else', async () => {
    const { config } = await init();
    const bridge = new Postern(['bridge', '--plain', '--http2', '--config', config, '--listen', '127.0.0.1:0', '--allow-private', '--log-level', 'debug']);
    const bport = await bridge.listening('bridge');
    const dir = tempDir('postern-nginx-');
    const { keyPem, certPem } = generateSelfSigned({ commonName: '127.0.0.1', altNames: ['127.0.0.1'] });
    const certFile = path.join(dir, 'fullchain.pem');
    const keyFile = path.join(dir, 'privkey.pem');
    fs.writeFileSync(certFile, certPem);
    fs.writeFileSync(keyFile, keyPem, { mode: 0o600 });
    const decoyRoot = path.join(dir, 'www');
    fs.mkdirSync(decoyRoot);
    fs.writeFileSync(path.join(decoyRoot, 'index.html'), '<html><body>A quiet personal homepage.</body></html>\n');
    const secretPath = (JSON.parse(fs.readFileSync(config, 'utf8')) as { path: string }).path;
    nginx = await startNginx(dir, (port) => packetSiteFromTemplate({ port, certFile, keyFile, secretPath, upstreams: [bport], decoyRoot }));
    const share = await run(['users', 'share', 'user1', '--config', config, '--cert', certFile]);
    expect(share.code, share.stderr).toBe(0);
    const streamOne = withTransport(withPort(share.stdout.trim(), nginx.port), 'h2');

    // stream-one: nginx waits for a request body that never ends, so the session never opens.
    const d = await doctor(streamOne, ['--target', `127.0.0.1:${web.port}`]);
    expect(d.code).not.toBe(0);
    expect(d.report.failedStep).not.toBe(null);
    expect(bridge.lines.some((l) => l.msg === 'h2 session accepted')).toBe(false);

    const { client, port: socks } = await startClient(packetUp(streamOne), ['--log-level', 'debug']);
    await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
    expect(client.lines.some((l) => l.msg === 'bridge session open' && l.mode === 'packet-up')).toBe(true);
    await carriesCurlAnd16MiB(socks, 11);

    // Everyone else — a GET or POST on the secret path with a made-up key or sequence number
    // included — gets nginx's own 404.
    const body = (x: { stdout: string }) => x.stdout.split('\r\n\r\n').slice(1).join('\r\n\r\n');
    const base = `https://127.0.0.1:${nginx.port}`;
    const other = await curl(['-k', '-i', '--http2', `${base}/no-such-page`]);
    const probes = [
      await curl(['-k', '-i', '--http2', '-H', `Postern-Packet: ${'A'.repeat(22)}`, `${base}${secretPath}`]),
      await curl(['-k', '-i', '--http2', '-H', `Authorization: Bearer ${'A'.repeat(87)}`, '-H', `Postern-Packet: ${'A'.repeat(22)}`, `${base}${secretPath}`]),
      await curl(['-k', '-i', '--http2', '-X', 'POST', '-H', `Postern-Packet: ${'A'.repeat(22)}`, '-H', 'Postern-Seq: 0', '--data-binary', 'x', `${base}${secretPath}`]),
    ];
    expect(other.stdout).toMatch(/^HTTP\/2 404/);
    for (const p of probes) {
      expect(p.stdout).toMatch(/^HTTP\/2 404/);
      expect(body(p)).toBe(body(other));
    }
    expect(bridge.child.exitCode).toBeNull();
  }, 120_000);
});
