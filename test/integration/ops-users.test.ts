import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { curl, doctor, run } from '../helpers/ops.js';
import { stopAll, tempDir } from '../helpers/proc.js';
import { httpServer, type Local } from '../helpers/servers.js';
import { init, startBridge, startClient, withPort } from '../helpers/stack.js';
import { generateSelfSigned } from '../../src/transport/self-signed.js';
import forge from 'node-forge';

let web: Local<import('node:http').Server>;
beforeAll(async () => {
  web = await httpServer();
});
afterEach(stopAll);
afterAll(async () => {
  await web?.close();
});

/** A CA and a server certificate it signed (what Let's Encrypt gives an operator). */
function caIssued(host: string): { certPem: string; keyPem: string } {
  const ca = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const leaf = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = leaf.publicKey;
  cert.serialNumber = '0a';
  cert.validity.notBefore = new Date(Date.now() - 3_600_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject([{ name: 'commonName', value: host }]);
  cert.setIssuer([{ name: 'commonName', value: 'Test CA' }]);
  cert.setExtensions([{ name: 'subjectAltName', altNames: [{ type: 2, value: host }] }]);
  cert.sign(ca.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(leaf.privateKey) };
}

describe('postern init', () => {
  it('prints a QR code of the share URI on stderr with --qr, and secret files are 0600', async () => {
    const dir = tempDir();
    const r = await run(['init', '--dir', dir, '--host', '127.0.0.1', '--port', '443', '--qr']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^postern:\/\/[^\s]+#user1$/);
    expect(r.stderr).toMatch(/[\u2580\u2584\u2588]{20}/);
    expect(r.stdout).not.toMatch(/[\u2580\u2584\u2588]/);
    for (const f of ['bridge.json', 'key.pem']) expect(fs.statSync(path.join(dir, f)).mode & 0o777).toBe(0o600);
    // Not a terminal and no --qr: no QR code.
    const plain = await run(['init', '--dir', tempDir(), '--host', '127.0.0.1']);
    expect(plain.stderr).not.toMatch(/[\u2580\u2584\u2588]/);
  });

  it('uses an existing CA-issued certificate with --cert/--key: the URI has no pin and carries sni', async () => {
    const dir = tempDir();
    const { certPem, keyPem } = caIssued('bridge.example.org');
    fs.writeFileSync(path.join(dir, 'fullchain.pem'), certPem);
    fs.writeFileSync(path.join(dir, 'privkey.pem'), keyPem, { mode: 0o600 });
    const out = path.join(dir, 'etc');
    const r = await run(['init', '--dir', out, '--host', 'bridge.example.org', '--cert', path.join(dir, 'fullchain.pem'), '--key', path.join(dir, 'privkey.pem')]);
    expect(r.code, r.stderr).toBe(0);
    const uri = r.stdout.trim();
    expect(uri).not.toContain('pin=');
    expect(uri).toContain('sni=bridge.example.org');
    const config = JSON.parse(fs.readFileSync(path.join(out, 'bridge.json'), 'utf8')) as { tls: { cert: string; key: string } };
    expect(config.tls).toEqual({ cert: path.join(dir, 'fullchain.pem'), key: path.join(dir, 'privkey.pem') });
    expect(fs.existsSync(path.join(out, 'key.pem'))).toBe(false);

    // A key that is not the certificate's is refused.
    const other = generateSelfSigned({ commonName: 'x', altNames: ['x'] });
    fs.writeFileSync(path.join(dir, 'other.pem'), other.keyPem);
    const bad = await run(['init', '--dir', tempDir(), '--host', 'bridge.example.org', '--cert', path.join(dir, 'fullchain.pem'), '--key', path.join(dir, 'other.pem')]);
    expect(bad.code).toBe(78);
    expect(bad.stderr).toContain('is not the private key of --cert');
    expect(new X509Certificate(certPem).subject).toContain('bridge.example.org');
  });
});

describe('postern users', () => {
  it('init → users add bob → share bob → client with that link → curl through it; remove bob → refused after SIGHUP', async () => {
    const { config, uri: firstUri } = await init();
    const add = await run(['users', 'add', 'bob', '--config', config]);
    expect(add.code, add.stderr).toBe(0);
    expect(fs.statSync(config).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.dirname(config)).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const list = await run(['users', 'list', '--config', config]);
    expect(list.stdout.trim().split('\n')).toEqual(['user1', 'bob']);
    const dup = await run(['users', 'add', 'bob', '--config', config]);
    expect(dup.code).toBe(78);
    expect(dup.stderr).toContain('a user named "bob" already exists');
    const unknown = await run(['users', 'share', 'carol', '--config', config]);
    expect(unknown.code).toBe(78);
    expect(unknown.stderr).toContain('no user named "carol"');

    const share = await run(['users', 'share', 'bob', '--config', config]);
    expect(share.code).toBe(0);
    const bobUri = share.stdout.trim();
    expect(bobUri).toBe(add.stdout.trim());
    expect(bobUri).toMatch(/#bob$/);
    // Same bridge, same pin, another secret.
    expect(new URL(bobUri).search).toBe(new URL(firstUri).search);
    expect(new URL(bobUri).username).not.toBe(new URL(firstUri).username);

    const { bridge, port } = await startBridge(config);
    const { port: socks } = await startClient(withPort(bobUri, port));
    const got = await curl(['--socks5-hostname', `127.0.0.1:${socks}`, `http://127.0.0.1:${web.port}/page`]);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toContain('hello through postern');

    const rm = await run(['users', 'remove', 'bob', '--config', config, '--pid', String(bridge.pid)]);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stderr).toContain(`sent SIGHUP to ${bridge.pid}`);
    await bridge.waitFor((l) => l.msg === 'configuration reloaded', 10_000, 'reload');
    const refused = await doctor(withPort(bobUri, port), ['--target', `127.0.0.1:${web.port}`]);
    expect(refused.code).toBe(1);
    expect(refused.report.failedStep).toBe('auth');
    expect(refused.report.steps.find((s) => s.step === 'auth')?.detail).toContain('bridge answered 404: wrong secret or path');
    // The first user still gets in.
    const still = await doctor(withPort(firstUri, port), ['--target', `127.0.0.1:${web.port}`]);
    expect(still.report.failedStep).toBe(null);

    const last = await run(['users', 'remove', 'user1', '--config', config]);
    expect(last.code).toBe(78);
    expect(last.stderr).toContain('is the only user');
  });
});

describe('postern bridge --plain', () => {
  it('refuses a non-loopback listen address unless --insecure-plain-listen', async () => {
    const { config } = await init();
    const r = await run(['bridge', '--plain', '--config', config, '--listen', '0.0.0.0:0']);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('--plain: refusing to listen on 0.0.0.0 without TLS');
  });
});
