import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import https from 'node:https';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { doctor, run } from '../helpers/ops.js';
import { stopAll, type Postern } from '../helpers/proc.js';
import { httpServer, type Local } from '../helpers/servers.js';
import { init, startBridge, withPort, withTransport } from '../helpers/stack.js';
import { generateSecret } from '../../src/transport/auth.js';
import { spkiSha256 } from '../../src/transport/certs.js';
import { generateSelfSigned } from '../../src/transport/self-signed.js';

let web: Local<import('node:http').Server>;
let bridge: Postern;
let uri: string;
beforeAll(async () => {
  web = await httpServer();
  const i = await init();
  const b = await startBridge(i.config);
  bridge = b.bridge;
  uri = withPort(i.uri, b.port);
});
afterEach(async () => {
  // The shared bridge lives for the whole file; other processes end after each test.
  if (bridge.child.exitCode !== null) throw new Error('bridge died');
});
afterAll(async () => {
  await stopAll();
  await web?.close();
});

const local = () => ['--target', `127.0.0.1:${web.port}`, '--download', `http://127.0.0.1:${web.port}/bytes/${2 * 1024 * 1024}`];

function withSecret(u: string, secret: string): string {
  const url = new URL(u);
  url.username = secret;
  return url.toString();
}

describe('postern doctor', () => {
  it('passes every step against a healthy bridge, with timings, and never prints the secret, path or pin', async () => {
    const { code, report, stdout } = await doctor(uri, local());
    expect(code).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.steps.map((s) => [s.step, s.status])).toEqual([
      ['uri', 'ok'],
      ['dns', 'ok'],
      ['tcp', 'ok'],
      ['tls', 'ok'],
      ['auth', 'ok'],
      ['stream', 'ok'],
      ['throughput', 'ok'],
    ]);
    for (const s of report.steps) expect(typeof s.ms).toBe('number');
    const auth = report.steps.find((s) => s.step === 'auth')!;
    expect(auth.detail).toMatch(/^authenticated over transport ws; ping [\d.]+ ms$/);
    expect(auth.data?.transport).toBe('ws');
    const tp = report.steps.find((s) => s.step === 'throughput')!;
    expect(tp.data?.first16KiBMs).toBeTypeOf('number');
    expect(tp.data?.first1MiBMs).toBeTypeOf('number');
    const u = new URL(uri);
    for (const secret of [u.username, u.pathname.slice(1), u.searchParams.get('pin')!]) expect(stdout).not.toContain(secret);
    expect(report.uri).toBe(`postern://[redacted]@127.0.0.1:${u.port}/[redacted]?pin=[redacted]`);

    // Plain lines (not a terminal): one per step, each with its timing.
    const text = await run(['doctor', uri, ...local()]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^\[ ok \] TLS and pin +\d+ ms {2}TLSv1\.3, ALPN http\/1\.1, certificate matches the pin$/m);
    expect(text.stdout).toContain('all checks passed');
  });

  it('names "uri" and the field for a transport it does not know', async () => {
    const { code, report } = await doctor(uri.replace('?', '?transport=quic&'), local());
    expect(code).toBe(1);
    expect(report.failedStep).toBe('uri');
    expect(report.steps.find((s) => s.step === 'uri')!.detail).toMatch(/transport must be one of ws, h2 \(got "quic"\)/);
  });

  it('names "auth" for a wrong secret: bridge answered 404', async () => {
    const { code, report, stderr } = await doctor(withSecret(uri, generateSecret().toString('base64url')), local());
    expect(code).toBe(1);
    expect(report.failedStep).toBe('auth');
    expect(report.steps.find((s) => s.step === 'auth')!.detail).toBe('bridge answered 404: wrong secret or path, or not a Postern bridge');
    expect(stderr).toBe('');
  });

  it('names "auth" with clock skew when this computer\'s clock is 10 minutes behind', async () => {
    // Only the doctor process's Date.now is moved back (tokens are stamped with it); TLS keeps real time.
    const env = { NODE_OPTIONS: '--import=data:text/javascript,const%20d=Date.now;Date.now=()=>d()-600000;' };
    const { code, report } = await doctor(uri, local(), env);
    expect(code).toBe(1);
    expect(report.failedStep).toBe('auth');
    const detail = report.steps.find((s) => s.step === 'auth')!.detail;
    expect(detail).toMatch(/^clock skew: the bridge refused the token because this device's clock is off \(by \d+ s\)$/);
    // The bridge's Date header has a resolution of 1 s.
    expect(Math.abs(Number(/by (\d+) s/.exec(detail)![1]) - 600)).toBeLessThanOrEqual(2);
  });

  it('names "tls" for a wrong pin', async () => {
    const other = generateSelfSigned({ commonName: 'x', altNames: ['x'] });
    const url = new URL(uri);
    url.searchParams.set('pin', spkiSha256(other.certPem).toString('base64url'));
    const { code, report } = await doctor(url.toString(), local());
    expect(code).toBe(1);
    expect(report.failedStep).toBe('tls');
    expect(report.steps.find((s) => s.step === 'tls')!.detail).toBe('certificate does not match the pin in the link');
  });

  it('names "tls" for an h2 link to a bridge that serves no HTTP/2, with the fix; the ALPN chosen is in the TLS line', async () => {
    const { code, report } = await doctor(withTransport(uri, 'h2'), local());
    expect(code).toBe(1);
    expect(report.failedStep).toBe('tls');
    const tls = report.steps.find((s) => s.step === 'tls')!;
    expect(tls.detail).toBe("the server chose ALPN http/1.1, on which the link's transport=h2 cannot run");
    expect(tls.hint).toContain('--http2');
    const ok = await doctor(uri, local());
    expect(ok.report.steps.find((s) => s.step === 'tls')!.data).toEqual({ tls: 'TLSv1.3', alpn: 'http/1.1' });
  });

  it('names the transport, the mode and the ALPN over HTTP/2: stream-one, packet-up, and a default link that follows the bridge to h2', async () => {
    const i = await init();
    const h2 = await startBridge(i.config, undefined, 'h2');
    const h2Uri = withPort(i.uri, h2.port);
    const packet = new URL(withTransport(h2Uri, 'h2'));
    packet.searchParams.set('mode', 'packet-up');
    const cases: Array<[string, string, Record<string, string>]> = [
      [withTransport(h2Uri, 'h2'), 'h2 (stream-one)', { transport: 'h2', mode: 'stream-one' }],
      [packet.toString(), 'h2 (packet-up)', { transport: 'h2', mode: 'packet-up' }],
      // No transport in the link: the default follows the bridge's ALPN choice (registry.ts chooseDialer).
      [h2Uri, 'h2 (stream-one)', { transport: 'h2', mode: 'stream-one' }],
    ];
    for (const [link, shown, data] of cases) {
      const { code, report } = await doctor(link, local());
      expect(code, link).toBe(0);
      const tls = report.steps.find((s) => s.step === 'tls')!;
      expect(tls.detail).toBe('TLSv1.3, ALPN h2, certificate matches the pin');
      const auth = report.steps.find((s) => s.step === 'auth')!;
      expect(auth.detail).toMatch(new RegExp(`^authenticated over transport ${shown.replace(/[()]/g, '\\$&')}; ping [\\d.]+ ms$`));
      expect(auth.data).toMatchObject(data);
      expect(report.steps.find((s) => s.step === 'throughput')!.status).toBe('ok');
    }
  });

  it('names "tcp" for a closed port, in text mode with what to do on stdout and the failed step on stderr', async () => {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const r = await run(['doctor', withPort(uri, port)]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^\[FAIL\] TCP connect +\d+ ms {2}connection refused on port \d+$/m);
    expect(r.stdout).toContain('what to do: nothing listens there');
    expect(r.stderr.trim()).toBe(`postern doctor: failed at "TCP connect": connection refused on port ${port}`);
  });

  it('names "auth" for a plain web server: not a Postern bridge', async () => {
    const { keyPem, certPem } = generateSelfSigned({ commonName: '127.0.0.1', altNames: ['127.0.0.1'] });
    const server = https.createServer({ key: keyPem, cert: certPem }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>welcome</html>');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = new URL(withPort(uri, (server.address() as net.AddressInfo).port));
      url.searchParams.set('pin', spkiSha256(certPem).toString('base64url'));
      const { code, report } = await doctor(url.toString(), local());
      expect(code).toBe(1);
      expect(report.failedStep).toBe('auth');
      expect(report.steps.find((s) => s.step === 'auth')!.detail).toBe('not a Postern bridge: the server answered 200 to the upgrade');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('names "uri" for a broken link, and README quotes every failure hint', async () => {
    const { code, report } = await doctor('postern://nothing-here');
    expect(code).toBe(1);
    expect(report.failedStep).toBe('uri');
    const readme = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const { HINTS } = await import('../../src/doctor/doctor.js');
    for (const hint of Object.values(HINTS)) expect(readme, hint).toContain(hint);
    for (const msg of ['bridge answered 404: wrong secret or path, or not a Postern bridge', 'certificate does not match the pin in the link', 'not a Postern bridge: the server answered', 'connection refused on port', 'clock skew']) {
      expect(readme, msg).toContain(msg);
    }
  });

  it('speaks Russian when the locale is Russian (steps, results, hints); --json stays English', async () => {
    const ru = await run(['doctor', uri, ...local()], { LANG: 'ru_RU.UTF-8', LC_ALL: '', LC_MESSAGES: '' });
    expect(ru.code).toBe(0);
    expect(ru.stdout).toContain('TLS и отпечаток');
    expect(ru.stdout).toContain('сертификат совпадает с отпечатком');
    expect(ru.stdout).toContain('все проверки пройдены');
    const bad = await run(['doctor', withSecret(uri, generateSecret().toString('base64url'))], { LANG: 'ru_RU.UTF-8', LC_ALL: '', LC_MESSAGES: '' });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('что делать: попросите у владельца моста новую ссылку');
    expect(bad.stderr).toContain('не пройден шаг «вход на мост»');
    const json = await doctor(uri, local(), { LANG: 'ru_RU.UTF-8' });
    expect(json.report.steps[0]!.detail).toMatch(/^bridge 127\.0\.0\.1:\d+, pinned certificate$/);
  });

  it('takes its link from --config, then $POSTERN_BRIDGE, then the default client config file', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-doctor-'));
    const env = { XDG_CONFIG_HOME: home, POSTERN_BRIDGE: '', POSTERN_CONFIG: '', LANG: 'C' };
    const none = await run(['doctor'], env);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain(`no share link: pass one (postern doctor 'postern://…'), or --config FILE, or set $POSTERN_BRIDGE, or put "bridges" in ${home}/postern/client.json`);
    const target = ['--target', `127.0.0.1:${web.port}`];
    const fromEnv = await run(['doctor', '--json', ...target], { ...env, POSTERN_BRIDGE: uri });
    expect(JSON.parse(fromEnv.stdout).ok).toBe(true);
    fs.mkdirSync(path.join(home, 'postern'));
    fs.writeFileSync(path.join(home, 'postern/client.json'), JSON.stringify({ bridges: [uri] }));
    const fromDefault = await run(['doctor', '--json', ...target], env);
    expect(JSON.parse(fromDefault.stdout).ok).toBe(true);
    const other = path.join(home, 'other.json');
    fs.writeFileSync(other, JSON.stringify({ bridges: [withSecret(uri, generateSecret().toString('base64url'))] }));
    const fromFlag = await run(['doctor', '--json', ...target, '--config', other], { ...env, POSTERN_BRIDGE: uri });
    expect(JSON.parse(fromFlag.stdout).failedStep).toBe('auth'); // --config wins over the environment
  });
});
