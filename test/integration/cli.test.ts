import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Postern, runPostern, stopAll } from '../helpers/proc.js';
import { echoServer, httpServer, type Local } from '../helpers/servers.js';
import { connectRaw, domainRequest, ipv4Request, ipv6Request, readN, socksConnect } from '../helpers/socks.js';
import { init, startBridge, startClient, withPort } from '../helpers/stack.js';
import { curl } from '../helpers/ops.js';

const exec = promisify(execFile);
const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

let web: Local<import('node:http').Server>;
let echo: Local<net.Server>;
beforeAll(async () => {
  [web, echo] = await Promise.all([httpServer(), echoServer()]);
});
afterEach(stopAll);
afterAll(async () => {
  await Promise.all([web?.close(), echo?.close()]);
});


async function replyFor(socksPort: number, request: Buffer): Promise<number> {
  const { socket, reply } = await socksConnect(socksPort, request);
  socket.destroy();
  return reply;
}

describe('postern command line', () => {
  it.each(['bridge', 'client', 'init', 'demo'])('prints --help and --version for "%s"', async (cmd) => {
    const help = await runPostern([cmd, '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain(`Usage: postern ${cmd}`);
    const version = await runPostern([cmd, '--version']);
    expect(version.stdout.trim()).toBe(pkg.version);
  });

  it('init writes a config, key and certificate with private modes, and refuses to overwrite', async () => {
    const { dir, uri } = await init();
    expect(uri).toMatch(/^postern:\/\/[A-Za-z0-9_-]{43}@127\.0\.0\.1:443\/[A-Za-z0-9_-]+\?pin=[A-Za-z0-9_-]{43}/);
    expect(fs.statSync(path.join(dir, 'bridge.json')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, 'key.pem')).mode & 0o777).toBe(0o600);
    const again = await runPostern(['init', '--dir', dir, '--host', '127.0.0.1']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already exists \(use --force/);
  });

  it('bridge exits non-zero with a one-line reason for a bad config, a used port and an unreadable certificate', async () => {
    const missing = await runPostern(['bridge', '--config', '/nonexistent/bridge.json']);
    expect(missing.code).toBe(78); // EX_CONFIG
    expect(missing.stderr.trim()).toBe('postern: E_CONFIG: invalid configuration: /nonexistent/bridge.json: cannot read config file (ENOENT)');

    const { config, dir } = await init();
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as net.AddressInfo).port;
    const inUse = await runPostern(['bridge', '--config', config, '--listen', `127.0.0.1:${port}`]);
    busy.close();
    expect(inUse.code).toBe(69); // EX_UNAVAILABLE
    expect(inUse.stderr).toContain(`E_ADDR_IN_USE: address already in use: cannot listen on 127.0.0.1:${port}: another program uses it`);
    expect(inUse.stderr.trim().split('\n')).toHaveLength(1);

    fs.rmSync(path.join(dir, 'cert.pem'));
    const noCert = await runPostern(['bridge', '--config', config]);
    expect(noCert.code).toBe(78);
    expect(noCert.stderr).toContain('tls.cert: cannot read');
  });

  it('bridge answers anything but an authenticated upgrade like a plain web server (its decoy site)', async () => {
    const { config } = await init();
    const { port } = await startBridge(config);
    const page = await exec('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', `https://127.0.0.1:${port}/`]);
    expect(page.stdout).toBe('200');
    const r = await exec('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', `https://127.0.0.1:${port}/missing`]);
    expect(r.stdout).toBe('404');
  });

  it('client refuses a wrong pin with a clear error and answers SOCKS with a failure', async () => {
    const a = await init();
    const b = await init();
    const { port } = await startBridge(a.config);
    // b's URI carries b's pin; dial a's bridge with a's secret but b's pin.
    const pin = new URL(b.uri).searchParams.get('pin') as string;
    const u = new URL(withPort(a.uri, port));
    u.searchParams.set('pin', pin);
    const { client, port: socksPort } = await startClient(u.toString());
    const line = await client.waitFor((l) => l.code === 'E_PIN_MISMATCH', 10_000, 'pin mismatch log');
    expect(line.msg).toMatch(/does not match the pinned key/);
    expect(await replyFor(socksPort, ipv4Request('127.0.0.1', echo.port))).toBe(0x01);
  });

  it('client refuses a wrong secret with a clear error naming the cause', async () => {
    const a = await init();
    const b = await init();
    const { port } = await startBridge(a.config);
    const u = new URL(withPort(a.uri, port));
    u.username = new URL(b.uri).username;
    const { client, port: socksPort } = await startClient(u.toString());
    const line = await client.waitFor((l) => l.code === 'E_AUTH_REJECTED', 10_000, 'auth rejected log');
    expect(line.msg).toMatch(/wrong secret or path/);
    expect(await replyFor(socksPort, ipv4Request('127.0.0.1', echo.port))).toBe(0x01);
  });

  it('a usage error prints one line and the command\'s usage, exit status 2 (not the whole help)', async () => {
    const r = await runPostern(['client', '--no-such-flag']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      "postern: unknown option '--no-such-flag'",
      'Usage: postern client [options]',
      '(run "postern client --help" for all options)',
    ]);
    const sub = await runPostern(['users', 'add']);
    expect(sub.code).toBe(2);
    expect(sub.stderr).toContain('Usage: postern users add [options] <name>');
    expect((await runPostern(['client', '--help'])).code).toBe(0);
  });

  it('init: an existing file exits 73 naming it; --public-port puts the published port in the link, not the listen port', async () => {
    const { dir } = await init();
    const again = await runPostern(['init', '--dir', dir, '--host', '127.0.0.1']);
    expect(again.code).toBe(73);
    expect(again.stderr).toMatch(/E_FILE_EXISTS: .*bridge\.json already exists \(use --force/);
    const out = fs.mkdtempSync(path.join(path.dirname(dir), 'pp-'));
    const r = await runPostern(['init', '--dir', out, '--host', 'bridge.example.org', '--port', '8443', '--public-port', '443']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/@bridge\.example\.org:443\//);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'bridge.json'), 'utf8')) as { listen: string; publicPort: number };
    expect(cfg.listen).toBe('0.0.0.0:8443');
    expect(cfg.publicPort).toBe(443);
    const bad = await runPostern(['init', '--dir', out, '--host', 'h', '--public-port', '70000', '--force']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--public-port: expected 1..65535, got "70000"');
  });

  it.runIf(process.getuid?.() === 0)('as an unprivileged user: a low port names both fixes (exit 77), an unreadable config names owner, mode and fix (exit 66)', async () => {
    const { config, dir } = await init();
    // Run as "nobody" through setpriv: the folder is readable, bridge.json (0600, root's) is not.
    fs.chmodSync(dir, 0o755);
    const asNobody = (args: string[]) =>
      exec('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, path.resolve('bin/postern'), ...args], { timeout: 20_000 }).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
    const denied = await asNobody(['bridge', '--config', config]);
    expect(denied.code).toBe(66);
    expect(denied.stderr).toMatch(new RegExp(`E_CONFIG_UNREADABLE: .*${config.replace(/[.]/g, '\\.')} \\(owner uid 0, mode 0600\\): permission denied for uid 65534; run Postern as the file's owner, or let uid 65534 read it \\(e\\.g\\. chown 65534 `));
    for (const f of ['bridge.json', 'key.pem', 'cert.pem']) fs.chmodSync(path.join(dir, f), 0o644);
    const low = await asNobody(['bridge', '--config', config, '--listen', '127.0.0.1:81']);
    expect(low.code).toBe(77);
    expect(low.stderr).toContain('E_LISTEN_DENIED: permission denied: cannot listen on 127.0.0.1:81: ports below 1024 need privileges');
    expect(low.stderr).toContain('cap_net_bind_service');
    expect(low.stderr).toContain('--listen 127.0.0.1:8443');
  });

  it('client refuses --no-auth on a non-loopback address (an open proxy)', async () => {
    const { uri } = await init();
    const r = await runPostern(['client', '--bridge', uri, '--listen', '0.0.0.0:0', '--no-auth']);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/--no-auth is for loopback listeners only, and 0\.0\.0\.0:0 is not loopback/);
  });

  it('client rejects a malformed share URI naming the problem', async () => {
    const r = await runPostern(['client', '--bridge', 'postern://short@127.0.0.1:443/x']);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/E_BAD_URI/);
  });

  it('client requires SOCKS username/password when given (RFC 1929)', async () => {
    const { config, uri } = await init();
    const { port } = await startBridge(config);
    const { port: socksPort } = await startClient(withPort(uri, port), ['--user', 'alice', '--pass', 's3cret']);
    const ok = await curl(['--socks5-hostname', `127.0.0.1:${socksPort}`, '--proxy-user', 'alice:s3cret', `http://localhost:${web.port}/auth`]);
    expect(ok.stdout).toContain('/auth');
    const bad = await curl(['--socks5-hostname', `127.0.0.1:${socksPort}`, '--proxy-user', 'alice:wrong', `http://localhost:${web.port}/auth`]);
    expect(bad.code).not.toBe(0);
    const none = await curl(['--socks5-hostname', `127.0.0.1:${socksPort}`, `http://localhost:${web.port}/auth`]);
    expect(none.code).not.toBe(0);
  });

  it('bridge without --allow-private refuses loopback forms with SOCKS reply 02 (--exact-replies)', async () => {
    const { config, uri } = await init();
    const { port } = await startBridge(config, []);
    const { client, port: socksPort } = await startClient(withPort(uri, port), ['--exact-replies']);
    await client.waitFor((l) => l.msg === 'tunnel to bridge up');
    const v6 = (s: string) => {
      const b = Buffer.alloc(16);
      if (s === '::1') b[15] = 1;
      else Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]).copy(b);
      return [...b];
    };
    expect(await replyFor(socksPort, ipv4Request('127.0.0.1', echo.port))).toBe(0x02);
    expect(await replyFor(socksPort, ipv4Request('127.0.0.2', echo.port))).toBe(0x02);
    expect(await replyFor(socksPort, ipv4Request('0.0.0.0', echo.port))).toBe(0x02);
    expect(await replyFor(socksPort, ipv6Request(v6('::1'), echo.port))).toBe(0x02);
    expect(await replyFor(socksPort, ipv6Request(v6('::ffff:127.0.0.1'), echo.port))).toBe(0x02);
    expect(await replyFor(socksPort, domainRequest('localhost', echo.port))).toBe(0x02);
    const r = await curl(['--socks5-hostname', `127.0.0.1:${socksPort}`, `http://localhost:${web.port}/`]);
    expect(r.code).not.toBe(0);
  });

  it.each([[{}], [{ POSTERN_LOW_MEMORY: '0' }]])('demo starts a bridge and a client on loopback and carries curl (env %j)', async (env) => {
    const demo = new Postern(['demo', '--listen', '127.0.0.1:0', '--allow-private'], env);
    const socksPort = await demo.listening('socks');
    await demo.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'demo tunnel');
    // The printed commands work as written (only the target swapped for a local one); without the
    // printed credentials the proxy refuses.
    await demo.waitFor(() => /curl --proxy http:\/\/\S+ https:\/\/example\.com\//.test(demo.stderr), 10_000, 'printed curl lines');
    for (const scheme of ['socks5h', 'http']) {
      const m = new RegExp(`curl --proxy (${scheme}://\\S+@127\\.0\\.0\\.1:${socksPort}) https://example\\.com/`).exec(demo.stderr);
      expect(m, demo.stderr).not.toBeNull();
      const r = await curl(['--proxy', (m as RegExpExecArray)[1] as string, `http://localhost:${web.port}/demo-${scheme}`]);
      expect(r.stdout, r.stderr).toContain(`/demo-${scheme}`);
    }
    const none = await curl(['--socks5-hostname', `127.0.0.1:${socksPort}`, `http://localhost:${web.port}/demo`]);
    expect(none.code).not.toBe(0);
    const exit = await demo.stop('SIGTERM');
    expect(exit.code).toBe(0);
  });

  it('exits 0 on SIGTERM (client and bridge)', async () => {
    const { config, uri } = await init();
    const { bridge, port } = await startBridge(config);
    const { client } = await startClient(withPort(uri, port));
    expect((await client.stop('SIGTERM')).code).toBe(0);
    expect((await bridge.stop('SIGTERM')).code).toBe(0);
  });

  it('a raw TCP client that sends nothing is timed out by the SOCKS handshake limit, not kept forever', async () => {
    const { config, uri } = await init();
    const { port } = await startBridge(config);
    const { port: socksPort } = await startClient(withPort(uri, port));
    const s = await connectRaw(socksPort);
    s.write(Buffer.from([5, 1, 0]));
    expect(await readN(s, 2)).toEqual(Buffer.from([5, 0]));
    // Never sends the request: the client must still answer other apps meanwhile.
    const r = await curl(['--socks5-hostname', `127.0.0.1:${socksPort}`, `http://localhost:${web.port}/other`]);
    expect(r.stdout).toContain('/other');
    s.destroy();
  });
});
