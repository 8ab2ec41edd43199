import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startNginx, siteFromTemplate, type Nginx } from '../helpers/nginx.js';
import { curl, doctor, run } from '../helpers/ops.js';
import { Postern, stopAll, tempDir } from '../helpers/proc.js';
import { httpServer, type Local } from '../helpers/servers.js';
import { init, startClient, withPort } from '../helpers/stack.js';
import { generateSelfSigned } from '../../src/transport/certs.js';

let web: Local<import('node:http').Server>;
let nginx: Nginx | undefined;
beforeAll(async () => {
  web = await httpServer();
});
afterEach(async () => {
  await nginx?.stop();
  nginx = undefined;
  await stopAll();
});
afterAll(async () => {
  await web?.close();
});

async function plainBridge(config: string): Promise<{ bridge: Postern; port: number }> {
  const bridge = new Postern(['bridge', '--plain', '--config', config, '--listen', '127.0.0.1:0', '--allow-private']);
  const port = await bridge.listening('bridge');
  const up = await bridge.waitFor((l) => l.msg === 'listening' && l.role === 'bridge', 1_000);
  expect(up.tls).toBe(false);
  return { bridge, port };
}

/** nginx from configs/nginx/postern.conf in front of the given bridge ports; its own self-signed certificate. */
async function nginxFront(config: string, upstreams: number[]): Promise<{ nginx: Nginx; certFile: string }> {
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
  const n = await startNginx(dir, (port) => siteFromTemplate({ port, certFile, keyFile, secretPath, upstreams, decoyRoot }));
  return { nginx: n, certFile };
}

describe('behind nginx (configs/nginx/postern.conf)', () => {
  it('tunnels through a real nginx that terminates TLS in front of postern bridge --plain, and serves the decoy for everything else', async () => {
    const { config } = await init();
    const { port: bport } = await plainBridge(config);
    const front = await nginxFront(config, [bport]);
    nginx = front.nginx;
    // The link points at nginx, pinned to nginx's certificate.
    const share = await run(['users', 'share', 'user1', '--config', config, '--cert', front.certFile]);
    expect(share.code, share.stderr).toBe(0);
    const uri = withPort(share.stdout.trim(), nginx.port);

    const { port: socks } = await startClient(uri);
    const got = await curl(['--socks5-hostname', `127.0.0.1:${socks}`, `http://127.0.0.1:${web.port}/page`]);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toContain('hello through postern');
    const big = await curl(['--socks5-hostname', `127.0.0.1:${socks}`, '-o', '/dev/null', '-w', '%{size_download}', `http://127.0.0.1:${web.port}/bytes/${4 * 1024 * 1024}`]);
    expect(big.stdout).toBe(String(4 * 1024 * 1024));

    // Everyone else sees the website; the secret path without a valid token gets nginx's own 404.
    const home = await curl(['-k', `https://127.0.0.1:${nginx.port}/`]);
    expect(home.stdout).toContain('A quiet personal homepage.');
    const secretPath = new URL(uri).pathname;
    const other = await curl(['-k', '-i', `https://127.0.0.1:${nginx.port}/no-such-page`]);
    const probe = await curl(['-k', '-i', `https://127.0.0.1:${nginx.port}${secretPath}`]);
    const probeWs = await curl(['-k', '-i', '-H', 'Connection: Upgrade', '-H', 'Upgrade: websocket', '-H', 'Sec-WebSocket-Version: 13', '-H', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', `https://127.0.0.1:${nginx.port}${secretPath}`]);
    const body = (r: { stdout: string }) => r.stdout.split('\r\n\r\n').slice(1).join('\r\n\r\n');
    expect(other.stdout).toMatch(/^HTTP\/1\.1 404/);
    expect(probe.stdout).toMatch(/^HTTP\/1\.1 404/);
    expect(probeWs.stdout).toMatch(/^HTTP\/1\.1 404/);
    expect(body(probe)).toBe(body(other));
    expect(body(probeWs)).toBe(body(other));

    // doctor agrees, through nginx.
    const d = await doctor(uri, ['--target', `127.0.0.1:${web.port}`, '--download', `http://127.0.0.1:${web.port}/bytes/${2 * 1024 * 1024}`]);
    expect(d.report.failedStep, JSON.stringify(d.report.steps)).toBe(null);
  });

  it('load-balances two stateless bridges sharing one users file: one killed, new connections still succeed', async () => {
    const { config } = await init();
    const a = await plainBridge(config);
    const b = await plainBridge(config);
    const front = await nginxFront(config, [a.port, b.port]);
    nginx = front.nginx;
    const share = await run(['users', 'share', 'user1', '--config', config, '--cert', front.certFile]);
    const { port: socks } = await startClient(withPort(share.stdout.trim(), nginx.port));
    const fetchPage = () => curl(['--max-time', '5', '--socks5-hostname', `127.0.0.1:${socks}`, `http://127.0.0.1:${web.port}/page`]);
    expect((await fetchPage()).stdout).toContain('hello through postern');

    // Kill whichever bridge holds the session (then the other one must take the next).
    const opened = (p: Postern) => p.lines.filter((l) => l.msg === 'session open').length;
    expect(opened(a.bridge) + opened(b.bridge)).toBe(1);
    const [holder, other] = opened(a.bridge) === 1 ? [a.bridge, b.bridge] : [b.bridge, a.bridge];
    await holder.stop('SIGKILL');
    let ok = 0;
    const deadline = Date.now() + 20_000;
    for (let i = 0; i < 40 && Date.now() < deadline && ok < 3; i++) {
      const r = await fetchPage();
      if (r.stdout.includes('hello through postern')) ok++;
      else await new Promise((res) => setTimeout(res, 250));
    }
    expect(ok).toBe(3);
    expect(opened(other)).toBeGreaterThanOrEqual(1);
  });
});
