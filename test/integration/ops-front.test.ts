/**
 * Behind a CDN or reverse proxy (issue 13 item 4, README "Behind a CDN or reverse proxy", protocol.md
 * §1 connect, sni, host): a real nginx plays a CDN edge that serves two names on one address. It
 * picks the certificate by the TLS server name and the site by the Host header, as CDNs do; only
 * the site `origin.example` passes the secret path on to `postern bridge --plain`, and only when
 * the TLS name was `front.example`. A link from `postern users share --connect --sni --host-header`
 * gets through; the same link without host= or with another sni= does not.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startNginx, type Nginx } from '../helpers/nginx.js';
import { curl, doctor, run } from '../helpers/ops.js';
import { Postern, runPostern, stopAll, tempDir } from '../helpers/proc.js';
import { httpServer, type Local } from '../helpers/servers.js';
import { startClient } from '../helpers/stack.js';
import { generateSelfSigned } from '../../src/transport/self-signed.js';
import { parseShareUri } from '../../src/transport/uri.js';

const FRONT = 'front.example';
const ORIGIN = 'origin.example';

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

/** The edge: FRONT (default server, 404 everywhere) and ORIGIN (the secret path to the bridge), each with its own certificate. */
function edgeSite(v: { port: number; dir: string; secretPath: string; bridgePort: number }): string {
  const pem = (name: string): { cert: string; key: string } => {
    const { keyPem, certPem } = generateSelfSigned({ commonName: name, altNames: [name] });
    const cert = path.join(v.dir, `${name}.crt`);
    const key = path.join(v.dir, `${name}.key`);
    if (!fs.existsSync(cert)) {
      fs.writeFileSync(cert, certPem);
      fs.writeFileSync(key, keyPem, { mode: 0o600 });
    }
    return { cert, key };
  };
  const front = pem(FRONT);
  const origin = pem(ORIGIN);
  return `
log_format edge '$ssl_server_name $host $request_uri $status';
server {
    listen 127.0.0.1:${v.port} ssl default_server;
    server_name ${FRONT};
    ssl_certificate ${front.cert};
    ssl_certificate_key ${front.key};
    access_log ${path.join(v.dir, 'edge.log')} edge;
    location / { return 404; }
}
server {
    listen 127.0.0.1:${v.port} ssl;
    server_name ${ORIGIN};
    ssl_certificate ${origin.cert};
    ssl_certificate_key ${origin.key};
    access_log ${path.join(v.dir, 'edge.log')} edge;
    location / { return 404; }
    location = ${v.secretPath} {
        if ($ssl_server_name != "${FRONT}") { return 421; }
        proxy_pass http://127.0.0.1:${v.bridgePort};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_set_header Host $host;
        proxy_read_timeout 1h;
        proxy_buffering off;
    }
}
`;
}

describe('behind a CDN or reverse proxy: connect=, sni= and host= apart', () => {
  it('reaches the bridge through an edge that routes by TLS name and Host, and fails without the right pair', async () => {
    const dir = tempDir();
    const made = await runPostern(['init', '--dir', dir, '--host', 'bridge.invalid', '--port', '443']);
    expect(made.code, made.stderr).toBe(0);
    const config = path.join(dir, 'bridge.json');
    const secretPath = (JSON.parse(fs.readFileSync(config, 'utf8')) as { path: string }).path;
    const bridge = new Postern(['bridge', '--plain', '--config', config, '--listen', '127.0.0.1:0', '--allow-private']);
    const bridgePort = await bridge.listening('bridge');

    const ndir = tempDir('postern-edge-');
    nginx = await startNginx(ndir, (port) => edgeSite({ port, dir: ndir, secretPath, bridgePort }));
    const edge = `127.0.0.1:${nginx.port}`;
    const share = async (...extra: string[]): Promise<string> => {
      const r = await run(['users', 'share', 'user1', '--config', config, '--cert', path.join(ndir, `${FRONT}.crt`), '--connect', edge, ...extra]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim();
    };

    const uri = await share('--sni', FRONT, '--host-header', ORIGIN);
    expect(parseShareUri(uri)).toMatchObject({ host: 'bridge.invalid', sni: FRONT, httpHost: ORIGIN, connect: { host: '127.0.0.1', port: nginx.port } });

    const { client, port: socks } = await startClient(uri);
    await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
    const got = await curl(['--socks5-hostname', `127.0.0.1:${socks}`, `http://127.0.0.1:${web.port}/page`]);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toContain('hello through postern');
    const ok = await doctor(uri, ['--target', `127.0.0.1:${web.port}`]);
    expect(ok.report.failedStep, JSON.stringify(ok.report.steps)).toBe(null);
    expect(ok.report.steps.find((s) => s.step === 'uri')?.detail).toBe(`bridge bridge.invalid:443 through the relay ${edge}, pinned certificate, TLS name ${FRONT}, Host ${ORIGIN}`);
    // The edge saw the TLS name and the Host the link named, and upgraded (nginx logs an upgraded
    // request when it ends: the client's tunnel ends with the client).
    await client.stop();
    const log = async (want: string): Promise<string[]> => {
      let lines: string[] = [];
      for (let i = 0; i < 50 && !lines.includes(want); i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 100));
        lines = fs.readFileSync(path.join(ndir, 'edge.log'), 'utf8').trim().split('\n');
      }
      return lines;
    };
    expect(await log(`${FRONT} ${ORIGIN} ${secretPath} 101`)).toContain(`${FRONT} ${ORIGIN} ${secretPath} 101`);

    // Without host=, the Host is the TLS name: the edge's FRONT site has no such path.
    const noHost = await doctor(await share('--sni', FRONT));
    expect(noHost.report.failedStep).toBe('auth');
    expect(await log(`${FRONT} ${FRONT} ${secretPath} 404`)).toContain(`${FRONT} ${FRONT} ${secretPath} 404`);
    // With the origin as TLS name, the edge shows the origin's certificate: not the pinned one.
    const originSni = await doctor(await share('--sni', ORIGIN, '--host-header', ORIGIN));
    expect(originSni.report.failedStep).toBe('tls');
    expect(originSni.report.steps.find((s) => s.step === 'tls')?.detail).toMatch(/does not match the pin/);
  }, 90_000);
});
