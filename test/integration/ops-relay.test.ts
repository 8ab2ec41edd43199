/**
 * A relay at home (issue 16 item 5, README "A relay at home", protocol.md §1 connect): a real nginx
 * stream proxy built from configs/nginx/relay-stream.conf forwards plain TCP to a TLS bridge; the
 * share link from `postern users share --connect` dials the relay and keeps the bridge's name and pin.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { relayFromTemplate, startNginx, type Nginx } from '../helpers/nginx.js';
import { curl, doctor, run } from '../helpers/ops.js';
import { runPostern, stopAll, tempDir } from '../helpers/proc.js';
import { deterministicBytes, httpServer, sha256, type Local } from '../helpers/servers.js';
import { startBridge, startClient } from '../helpers/stack.js';
import { parseShareUri } from '../../src/transport/uri.js';

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

describe('a relay at home (nginx stream in front of a bridge)', () => {
  it('carries curl and passes doctor through nginx stream, dialling the relay while TLS checks the bridge', async () => {
    // The bridge's public name does not resolve (.invalid): only the relay address can be dialled.
    const dir = tempDir();
    const made = await runPostern(['init', '--dir', dir, '--host', 'bridge.invalid', '--port', '443']);
    expect(made.code, made.stderr).toBe(0);
    const config = path.join(dir, 'bridge.json');
    const { port: bridgePort } = await startBridge(config);

    const ndir = tempDir('postern-relay-');
    nginx = await startNginx(ndir, (port) => relayFromTemplate({ port, target: bridgePort, dir: ndir }), 'stream');

    const share = await run(['users', 'share', 'user1', '--config', config, '--connect', `127.0.0.1:${nginx.port}`]);
    expect(share.code, share.stderr).toBe(0);
    const uri = share.stdout.trim();
    const info = parseShareUri(uri);
    expect(info.host).toBe('bridge.invalid');
    expect(info.port).toBe(443);
    expect(info.connect).toEqual({ host: '127.0.0.1', port: nginx.port });
    expect(info.pin).toBeDefined();

    const { client, port: socks } = await startClient(uri);
    await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
    const n = 3 * 1024 * 1024;
    const body = await curl(['--socks5-hostname', `127.0.0.1:${socks}`, '-o', path.join(ndir, 'got.bin'), `http://127.0.0.1:${web.port}/bytes/${n}`]);
    expect(body.code, body.stderr).toBe(0);
    expect(sha256(fs.readFileSync(path.join(ndir, 'got.bin')))).toBe(sha256(deterministicBytes(n)));

    const d = await doctor(uri, ['--target', `127.0.0.1:${web.port}`]);
    expect(d.report.failedStep, JSON.stringify(d.report.steps)).toBe(null);
    const step = (name: string) => d.report.steps.find((s) => s.step === name)?.detail;
    expect(step('uri')).toBe(`bridge bridge.invalid:443 through the relay 127.0.0.1:${nginx.port}, pinned certificate`);
    expect(step('tcp')).toBe(`connected to relay port ${nginx.port}`);
    expect(step('tls')).toMatch(/certificate matches the pin/);
    expect(d.report.uri).toContain(`connect=127.0.0.1:${nginx.port}`);
    expect(d.report.uri).not.toContain(info.secret.toString('base64url'));

    // With the relay gone, doctor says so, and names the relay rather than the bridge.
    const relayPort = nginx.port;
    await nginx.stop();
    nginx = undefined;
    const down = await doctor(uri);
    expect(down.report.failedStep).toBe('tcp');
    const tcp = down.report.steps.find((s) => s.step === 'tcp');
    expect(tcp?.detail).toBe(`connection refused on relay port ${relayPort}`);
    expect(tcp?.hint).toMatch(/the relay named in the link \(connect=\) is not running/);
  }, 60_000);
});
