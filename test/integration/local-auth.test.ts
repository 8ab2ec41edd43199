/**
 * Issue 11: the local proxy is the user's alone. With the built binary: the default loopback
 * listener refuses apps without credentials, the printed credentials work with curl, ncat and
 * PySocks, survive a restart and are shared with --lan; --no-auth; WhatsApp entry points reach
 * only their fixed destinations; failed logins are slowed; secrets from files; and (issue 10
 * finding 7) the mixed, --http and --lan ports read a request head however it is split.
 * Every test uses its own XDG_CONFIG_HOME (a temp folder), never the user's.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../helpers/ops.js';
import { Postern, runPostern, stopAll, tempDir } from '../helpers/proc.js';
import { echoServer, httpServer, type Local } from '../helpers/servers.js';
import { connectRaw, readN } from '../helpers/socks.js';
import { init, startBridge, withPort } from '../helpers/stack.js';

const exec = promisify(execFile);

let uri: string;
let web: Local<http.Server>;
let echo: Local<net.Server>;
/** A server that must never see a connection (the WhatsApp test's "anything else"). */
let other: Local<net.Server>;
let otherConnections = 0;

beforeAll(async () => {
  [web, echo] = await Promise.all([httpServer(), echoServer()]);
  other = await echoServer();
  other.server.on('connection', () => otherConnections++);
  const { config, uri: initUri } = await init();
  const { port } = await startBridge(config);
  uri = withPort(initUri, port);
});

afterAll(async () => {
  await stopAll();
  await Promise.all([web?.close(), echo?.close(), other?.close()]);
});

interface Started {
  p: Postern;
  port: number;
  user: string;
  pass: string;
}

/** A client with the default (credentials on), its printed username and password. */
async function client(xdg: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const p = new Postern(['client', '--bridge', uri, '--listen', '127.0.0.1:0', ...extra], { XDG_CONFIG_HOME: xdg, ...env });
  const port = await p.listening('socks');
  await p.waitFor(() => /Password: \S+\n/.test(p.stderr), 10_000, 'printed credentials');
  const user = /Username: (\S+)/.exec(p.stderr)?.[1] as string;
  const pass = /Password: (\S+)/.exec(p.stderr)?.[1] as string;
  return { p, port, user, pass };
}

function greeting(port: number, bytes: number[]): Promise<Buffer> {
  return connectRaw(port).then(async (s) => {
    s.write(Buffer.from(bytes));
    const r = await readN(s, 2, 5_000);
    s.destroy();
    return r;
  });
}

describe('credentials by default on the loopback listener', () => {
  const xdg = tempDir('postern-xdg-');
  let first: Started;

  beforeAll(async () => {
    first = await client(xdg);
  });

  it('refuses a no-auth SOCKS greeting and an HTTP request without credentials, giving nothing away', async () => {
    expect([...(await greeting(first.port, [5, 1, 0]))]).toEqual([5, 0xff]);
    const r = await curl(['-D', '-', '-o', '/dev/null', '-x', `http://127.0.0.1:${first.port}`, `http://localhost:${web.port}/no-creds`]);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 407 /);
    expect(r.stdout).toContain('Proxy-Authenticate: Basic realm="proxy"');
    expect(r.stdout.toLowerCase()).not.toContain('postern');
  });

  it('stores them 0600 under $XDG_CONFIG_HOME/postern and prints the set-up and the migration lines', () => {
    const file = path.join(xdg, 'postern', 'local-proxy.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({ username: first.user, password: first.pass });
    const e = first.p.stderr;
    expect(e).toContain(`tg://socks?server=127.0.0.1&port=${first.port}&user=${first.user}&pass=${first.pass}`);
    expect(e).toContain(`curl --proxy socks5h://${first.user}:${first.pass}@127.0.0.1:${first.port} https://example.com/`);
    expect(e).toContain(`Browser:   HTTP proxy 127.0.0.1, port ${first.port}`);
    expect(e).toContain(`http://127.0.0.1:${first.port}/proxy.pac`);
    expect(e).toContain('New: the local proxy now asks every app for this username and password');
    expect(e).toContain(`Telegram: Settings → Data and Storage → Proxy → your proxy 127.0.0.1:${first.port} → Username: ${first.user}, Password: ${first.pass}`);
    // The password goes to the terminal only, never into the JSON log.
    expect(first.p.stdout).not.toContain(first.pass);
  });

  it('the printed curl commands work as written (SOCKS5 and HTTP, target swapped for a local one)', async () => {
    for (const scheme of ['socks5h', 'http']) {
      const line = new RegExp(`curl --proxy (${scheme}://\\S+) https://example.com/`).exec(first.p.stderr);
      expect(line, scheme).not.toBeNull();
      const r = await curl(['--proxy', (line as RegExpExecArray)[1] as string, `http://localhost:${web.port}/${scheme}`]);
      expect(r.stdout, r.stderr).toContain(`/${scheme}</p>`);
    }
    const wrong = await curl(['--proxy', `socks5h://${first.user}:nope@127.0.0.1:${first.port}`, `http://localhost:${web.port}/x`]);
    expect(wrong.code).not.toBe(0);
  });

  it('works with ncat and PySocks', async () => {
    const n = await exec('sh', [
      '-c',
      `printf 'GET /ncat HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' | timeout 15 ncat --proxy 127.0.0.1:${first.port} --proxy-type socks5 --proxy-auth ${first.user}:${first.pass} localhost ${web.port}`,
    ]);
    expect(n.stdout).toContain('/ncat</p>');
    const py = [
      'import socks, sys',
      's = socks.socksocket()',
      `s.set_proxy(socks.SOCKS5, "127.0.0.1", ${first.port}, rdns=True, username=sys.argv[1], password=sys.argv[2])`,
      's.settimeout(15)',
      `s.connect(("localhost", ${web.port}))`,
      's.sendall(b"GET /pysocks HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n")',
      'out = b""',
      'while True:',
      '    d = s.recv(65536)',
      '    if not d: break',
      '    out += d',
      'print(out.decode())',
    ].join('\n');
    const r = await exec('/usr/bin/python3', ['-c', py, first.user, first.pass], { timeout: 20_000 });
    expect(r.stdout).toContain('/pysocks</p>');
  });

  it('keeps the same credentials across a restart, without the migration lines', async () => {
    await first.p.stop();
    const again = await client(xdg);
    expect([again.user, again.pass]).toEqual([first.user, first.pass]);
    expect(again.p.stderr).not.toContain('New: the local proxy');
    const r = await curl(['--proxy', `socks5h://${again.user}:${again.pass}@127.0.0.1:${again.port}`, `http://localhost:${web.port}/again`]);
    expect(r.stdout).toContain('/again</p>');
    await again.p.stop();
  });

  it('--lan uses the same stored credentials, run after run', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 2; i++) {
      const lan = await client(xdg, ['--lan']);
      const tg = /tg:\/\/socks\?server=[^&\s]+&port=\d+&user=([^&\s]+)&pass=([^&\s]+)/.exec(lan.p.stderr);
      seen.push(`${tg?.[1]}:${tg?.[2]}`);
      expect(`${lan.user}:${lan.pass}`).toBe(`${first.user}:${first.pass}`);
      await lan.p.stop();
    }
    expect(seen).toEqual([`${first.user}:${first.pass}`, `${first.user}:${first.pass}`]);
  });

  it('--new-credentials replaces them', async () => {
    const fresh = await client(xdg, ['--new-credentials']);
    expect(fresh.pass).not.toBe(first.pass);
    await fresh.p.stop();
  });
});

describe('--no-auth', () => {
  it('restores the open loopback proxy, with a one-line warning, and never touches the store', async () => {
    const xdg = tempDir('postern-xdg-');
    const p = new Postern(['client', '--bridge', uri, '--listen', '127.0.0.1:0', '--no-auth'], { XDG_CONFIG_HOME: xdg });
    const port = await p.listening('socks');
    await p.waitFor(() => p.stderr.includes('warning: --no-auth'), 10_000, 'warning');
    expect(p.stderr.split('\n').filter((l) => l.includes('warning')).length).toBe(1);
    expect([...(await greeting(port, [5, 1, 0]))]).toEqual([5, 0]);
    const r = await curl(['-x', `http://127.0.0.1:${port}`, `http://localhost:${web.port}/open`]);
    expect(r.stdout).toContain('/open</p>');
    expect(fs.existsSync(path.join(xdg, 'postern', 'local-proxy.json'))).toBe(false);
    await p.stop();
  });

  it('is refused with --lan, a non-loopback listener, or with --user', async () => {
    const lan = await runPostern(['client', '--bridge', uri, '--lan', '--listen', '127.0.0.1:0', '--no-auth']);
    expect(lan.code).toBe(78);
    expect(lan.stderr).toContain('--no-auth is for loopback listeners only');
    const wide = await runPostern(['client', '--bridge', uri, '--listen', '127.0.0.1:0', '--http', '0.0.0.0:0', '--no-auth']);
    expect(wide.code).toBe(78);
    expect(wide.stderr).toContain('0.0.0.0:0 is not loopback');
    const both = await runPostern(['client', '--bridge', uri, '--listen', '127.0.0.1:0', '--no-auth', '--user', 'a', '--pass', 'b']);
    expect(both.code).toBe(78);
    expect(both.stderr).toContain('--no-auth conflicts');
  });
});

describe('forwards and WhatsApp entry points', () => {
  it('a WhatsApp port reaches its fixed destination only, whatever the app asks for', async () => {
    const xdg = tempDir('postern-xdg-');
    const p = new Postern(
      ['client', '--bridge', uri, '--listen', '127.0.0.1:0', '--whatsapp', '--whatsapp-ports', 'chat-tls=off,chat=0,media=off', '--whatsapp-target', `chat=127.0.0.1:${echo.port}`],
      { XDG_CONFIG_HOME: xdg },
    );
    const l = await p.waitFor((x) => x.msg === 'listening' && x.name === 'whatsapp chat', 15_000, 'whatsapp chat');
    await p.waitFor(() => p.stderr.includes("WhatsApp's servers only"), 10_000, 'listed');
    const before = otherConnections;
    // A SOCKS5 request and an HTTP CONNECT naming another server: both are just bytes to the fixed destination.
    const asks = [
      Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, other.port >> 8, other.port & 255]),
      Buffer.from(`CONNECT 127.0.0.1:${other.port} HTTP/1.1\r\nHost: 127.0.0.1:${other.port}\r\n\r\n`),
      Buffer.from(`GET http://127.0.0.1:${other.port}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`),
    ];
    for (const ask of asks) {
      const s = await connectRaw(l.port as number);
      s.write(ask);
      expect((await readN(s, ask.length, 10_000)).equals(ask)).toBe(true); // echoed by the fixed target
      s.destroy();
    }
    expect(otherConnections).toBe(before);
    await p.stop();
  });

  it('refuses a forward or WhatsApp port off loopback without --lan', async () => {
    const f = await runPostern(['client', '--bridge', uri, '--listen', '127.0.0.1:0', '--forward', `0.0.0.0:0=127.0.0.1:${echo.port}`]);
    expect(f.code).toBe(78);
    expect(f.stderr).toContain('forward on 0.0.0.0:0: a forward or WhatsApp port has no password');
    const w = await runPostern(['client', '--bridge', uri, '--listen', '0.0.0.0:0', '--whatsapp']);
    expect(w.code).toBe(78);
    expect(w.stderr).toContain('whatsapp chat on 0.0.0.0:5222');
  });
});

describe('failed logins', () => {
  it('are answered at once up to the free count, then slowly, while the right credentials still pass at once', async () => {
    const c = await client(tempDir('postern-xdg-'));
    const attempt = async (pass: string): Promise<{ status: number; ms: number }> => {
      const t = Date.now();
      const s = await connectRaw(c.port);
      const u = Buffer.from(c.user);
      const pw = Buffer.from(pass);
      s.write(Buffer.from([5, 1, 2, 1, u.length, ...u, pw.length, ...pw]));
      const r = await readN(s, 4, 10_000);
      s.destroy();
      return { status: r[3] as number, ms: Date.now() - t };
    };
    for (let i = 0; i < 10; i++) {
      const r = await attempt('wrong');
      expect(r.status).toBe(1);
      expect(r.ms).toBeLessThan(1_500);
    }
    const slowed = attempt('wrong');
    const right = await attempt(c.pass);
    expect(right.status).toBe(0);
    expect(right.ms).toBeLessThan(1_500);
    const s = await slowed;
    expect(s.status).toBe(1);
    expect(s.ms).toBeGreaterThanOrEqual(1_900); // LOCAL_AUTH_FAILURE_DELAY_MS
    await c.p.waitFor((l) => l.msg === 'repeated failed logins from one source; answers slowed', 5_000, 'throttle log');
    const line = c.p.lines.find((l) => l.msg === 'repeated failed logins from one source; answers slowed');
    expect(line?.failed).toBe(11);
    expect(JSON.stringify(line)).not.toContain('127.0.0.1');
    // The HTTP port shares the count: 9 wrong logins at once from the same (now slowed) source get
    // 8 slowed 407s and one 429 that was not checked at all.
    const wrongAuth = `Proxy-Authorization: Basic ${Buffer.from(`${c.user}:wrong`).toString('base64')}\r\n`;
    const ask = async (): Promise<{ status: string; ms: number }> => {
      const t = Date.now();
      const sock = await connectRaw(c.port);
      sock.write(`GET http://localhost:${web.port}/t HTTP/1.1\r\nHost: localhost\r\n${wrongAuth}\r\n`);
      const head = (await readN(sock, 12, 10_000)).toString('latin1');
      sock.destroy();
      return { status: head.slice(9, 12), ms: Date.now() - t };
    };
    const answers = await Promise.all(Array.from({ length: 9 }, ask));
    const slowed407 = answers.filter((x) => x.status === '407');
    expect(slowed407).toHaveLength(8);
    expect(Math.min(...slowed407.map((x) => x.ms))).toBeGreaterThanOrEqual(1_900);
    expect(answers.filter((x) => x.status === '429')).toHaveLength(1);
    await c.p.stop();
  });
});

describe('secrets from files and the environment', () => {
  it('--bridge-file and --pass-file keep the link and the password out of /proc/PID/cmdline', async () => {
    const dir = tempDir();
    const bf = path.join(dir, 'bridge.txt');
    const pf = path.join(dir, 'pass.txt');
    fs.writeFileSync(bf, `# my bridge\n${uri}\n`, { mode: 0o600 });
    fs.writeFileSync(pf, 'correct-horse-battery\n', { mode: 0o600 });
    const p = new Postern(['client', '--bridge-file', bf, '--listen', '127.0.0.1:0', '--user', 'me', '--pass-file', pf], { XDG_CONFIG_HOME: dir });
    const port = await p.listening('socks');
    const cmdline = fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8');
    expect(cmdline).not.toContain('correct-horse');
    expect(cmdline).not.toContain(new URL(uri).username);
    const r = await curl(['--proxy', `socks5h://me:correct-horse-battery@127.0.0.1:${port}`, `http://localhost:${web.port}/files`]);
    expect(r.stdout).toContain('/files</p>');
    await p.stop();
    const env = new Postern(['client', '--listen', '127.0.0.1:0'], { XDG_CONFIG_HOME: dir, POSTERN_BRIDGE: uri, POSTERN_USER: 'me', POSTERN_PASS: 'from-env' });
    const port2 = await env.listening('socks');
    const r2 = await curl(['--proxy', `http://me:from-env@127.0.0.1:${port2}`, `http://localhost:${web.port}/env`]);
    expect(r2.stdout).toContain('/env</p>');
    await env.stop();
  });
});

describe('a request head split at every byte (issue 10 finding 7)', () => {
  /** Sends `head` in two segments split at `at`, returns the first bytes of the answer. */
  async function splitAsk(port: number, head: Buffer, at: number): Promise<string> {
    const s = await connectRaw(port);
    s.setNoDelay(true);
    s.write(head.subarray(0, at));
    await new Promise((r) => setTimeout(r, 3));
    s.write(head.subarray(at));
    const got = await readN(s, 12, 3_000); // a stalled head would take 10 s and end in 408
    s.destroy();
    return got.toString('latin1');
  }

  it('CONNECT, absolute-form GET and a PAC request on the mixed, --http and --lan ports', async () => {
    const xdg = tempDir('postern-xdg-');
    const c = await client(xdg, ['--http', '127.0.0.1:0']);
    const httpPort = (await c.p.waitFor((l) => l.msg === 'listening' && l.role === 'http', 10_000, 'http port')).port as number;
    const lan = await client(xdg, ['--lan', '--listen', '127.0.0.1:0']);
    const auth = `Proxy-Authorization: Basic ${Buffer.from(`${c.user}:${c.pass}`).toString('base64')}\r\n`;
    const heads = [
      Buffer.from(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n${auth}\r\n`),
      Buffer.from(`GET http://localhost:${web.port}/split HTTP/1.1\r\nHost: localhost:${web.port}\r\n${auth}\r\n`),
      Buffer.from('GET /proxy.pac HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'),
    ];
    const cases: Array<[number, Buffer, number]> = [];
    for (const port of [c.port, httpPort, lan.port]) for (const h of heads) for (let at = 1; at < h.length; at++) cases.push([port, h, at]);
    const bad: string[] = [];
    for (let i = 0; i < cases.length; i += 16) {
      const batch = cases.slice(i, i + 16);
      const answers = await Promise.all(batch.map(([port, h, at]) => splitAsk(port, h, at).catch((e: Error) => `error: ${e.message}`)));
      answers.forEach((a, j) => {
        if (!a.startsWith('HTTP/1.1 200')) bad.push(`port ${batch[j]![0]} split ${batch[j]![2]} of ${batch[j]![1].toString('latin1').split(' ')[0]}: ${a}`);
      });
    }
    expect(bad).toEqual([]);
    expect(cases.length).toBeGreaterThan(600);
    await Promise.all([c.p.stop(), lan.p.stop()]);
  }, 120_000);
});

describe('the README and --help, as written', () => {
  it("the README's client start (link saved to a file, then --bridge-file) works with a fresh HOME", async () => {
    const readme = fs.readFileSync(path.resolve('README.md'), 'utf8');
    const block = /Save it in a file only you can read[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1] as string;
    const lines = block.trim().split('\n');
    expect(lines).toHaveLength(3);
    const home = tempDir('postern-home-');
    const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: '' };
    // The two set-up lines, run by a shell as written, with the real link in place of the example.
    const setup = lines.slice(0, 2).join('\n').replace("'postern://SECRET@bridge.example.org:443/PATH?pin=PIN#name'", `'${uri}'`);
    expect(setup).toContain(uri);
    await exec('sh', ['-c', setup], { env });
    const saved = path.join(home, '.config/postern/bridge.txt');
    expect(fs.statSync(saved).mode & 0o077).toBe(0);
    // The start line: `postern` is this build's binary; POSTERN_LISTEN only avoids port 1080.
    const start = lines[2] as string;
    expect(start.startsWith('postern client ')).toBe(true);
    const args = start.slice('postern '.length).split(/\s+/).map((a) => a.replace(/^~\//, `${home}/`));
    const p = new Postern(args, { HOME: home, XDG_CONFIG_HOME: '', POSTERN_LISTEN: '127.0.0.1:0' });
    const port = await p.listening('socks');
    await p.waitFor(() => /curl --proxy http:\/\/\S+ https/.test(p.stderr), 10_000, 'printed curl');
    const proxy = /curl --proxy (socks5h:\/\/\S+) https:\/\/example\.com\//.exec(p.stderr)?.[1] as string;
    expect(proxy).toContain(`@127.0.0.1:${port}`);
    const r = await curl(['--proxy', proxy, `http://localhost:${web.port}/readme`]);
    expect(r.stdout, r.stderr).toContain('/readme</p>');
    expect(fs.statSync(path.join(home, '.config/postern/local-proxy.json')).mode & 0o777).toBe(0o600);
    await p.stop();
  });

  it('client --help names the default credentials, --no-auth and the file options, with examples', async () => {
    const h = await runPostern(['client', '--help']);
    for (const s of ['--no-auth', '--pass-file', '--bridge-file', '--new-credentials', 'local-proxy.json', 'postern client --bridge-file ~/.config/postern/bridge.txt']) {
      expect(h.stdout).toContain(s);
    }
  });
});
