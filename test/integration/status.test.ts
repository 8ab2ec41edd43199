/**
 * What a running client shows its user, with the built binary and real clients: the status page on
 * the proxy port (curl for the Host checks and what is kept back; headless Chromium for a
 * screenshot and the page's text), the live status line on a pseudo-terminal (Python's pty), the
 * one-time `postern doctor` hint after repeated failed dials, and the Russian texts (status line,
 * page, hint, demo banner). Chromium runs with ../shared/TESTING.md's flags and no proxy; the phone
 * set-up runs in a network namespace of its own whose only non-loopback address sits on a veth pair
 * inside it, so the --lan listener on 0.0.0.0 is reachable from nowhere.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../helpers/ops.js';
import { BIN, Postern, runPostern, stopAll, tempDir } from '../helpers/proc.js';
import { init, startBridge, withPort } from '../helpers/stack.js';

const exec = promisify(execFile);
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
const RUN_TIMEOUT_MS = 45_000;
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-extensions',
  '--disable-default-apps',
  '--no-default-browser-check',
  '--disable-dev-shm-usage',
  '--no-pings',
  '--no-proxy-server',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1 , EXCLUDE ::1 , EXCLUDE [::1]',
];

const dirs: string[] = [];
let uri: string;

/** Runs Chromium once (bounded, killed by PID); returns what it printed. */
function chromium(args: string[], netns?: string): Promise<{ stdout: string; stderr: string }> {
  const dataDir = tempDir('postern-chromium-');
  dirs.push(dataDir);
  const argv = [...CHROMIUM_FLAGS, `--user-data-dir=${dataDir}`, ...args];
  const child = netns === undefined ? spawn(CHROMIUM as string, argv, { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn('ip', ['netns', 'exec', netns, CHROMIUM as string, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      try {
        process.kill(child.pid as number, 'SIGKILL');
      } catch {
        // already gone
      }
    }, RUN_TIMEOUT_MS);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve({ stdout, stderr });
    });
  });
}

/** Width and height from a PNG's IHDR chunk (after the 8-byte signature). */
function pngSize(file: string): { width: number; height: number } {
  const b = fs.readFileSync(file);
  expect(b.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
  expect(b.subarray(12, 16).toString('latin1')).toBe('IHDR');
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

interface Started {
  p: Postern;
  port: number;
  user: string;
  pass: string;
}

/** A client with credentials on (the default), its printed username and password, tunnel up. */
async function client(extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const p = new Postern(['client', '--bridge', uri, '--listen', '127.0.0.1:0', ...extra], { XDG_CONFIG_HOME: tempDir('postern-xdg-'), ...env });
  const port = await p.listening('socks');
  await p.waitFor(() => /Password: \S+\n/.test(p.stderr), 10_000, 'printed credentials');
  await p.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
  return { p, port, user: /Username: (\S+)/.exec(p.stderr)?.[1] as string, pass: /Password: (\S+)/.exec(p.stderr)?.[1] as string };
}

/** A GET to the proxy port itself with this Host field (and more curl arguments); the whole answer. */
async function get(port: number, host: string, pathname = '/', more: string[] = []): Promise<{ status: number; head: string; body: string }> {
  const r = await curl(['-i', '-H', `Host: ${host}`, ...more, `http://127.0.0.1:${port}${pathname}`]);
  const cut = r.stdout.indexOf('\r\n\r\n');
  const head = r.stdout.slice(0, cut);
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), head, body: r.stdout.slice(cut + 4) };
}

beforeAll(async () => {
  const { config, uri: initUri } = await init();
  const { port } = await startBridge(config);
  uri = withPort(initUri, port);
});

afterAll(async () => {
  await stopAll();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('the status page on the proxy port', () => {
  let c: Started;
  beforeAll(async () => {
    c = await client();
  });

  it('the start-up lines say where the page is', () => {
    expect(c.p.stderr).toContain(`Status page: http://127.0.0.1:${c.port}/`);
  });

  it('answers a loopback Host with the status, no CORS header and no password', async () => {
    for (const host of [`127.0.0.1:${c.port}`, `localhost:${c.port}`]) {
      const r = await get(c.port, host);
      expect(r.status, host).toBe(200);
      expect(r.body).toContain('<title>Postern status</title>');
      expect(r.body).toContain('<strong class="up">up</strong>');
      expect(r.body).toContain(`<code>${c.user}</code>`);
      expect(r.body).not.toContain(c.pass);
      expect(r.head).not.toMatch(/^access-control-/im);
      expect(r.head).toMatch(/^Content-Security-Policy: default-src 'none'; style-src 'nonce-/m);
      expect(r.head).toMatch(/^X-Frame-Options: DENY/m);
    }
    const json = await get(c.port, `127.0.0.1:${c.port}`, '/status.json');
    expect(JSON.parse(json.body)).toMatchObject({ tunnel: 'up', bridge: null, failedDials: 0 });
  });

  it('a rebound or foreign Host gets the answer any other local path gets (404), as before', async () => {
    const before = await get(c.port, `127.0.0.1:${c.port}`, '/no-such-page');
    expect(before.status).toBe(404);
    for (const host of ['attacker.example', `attacker.example:${c.port}`, `127.0.0.1:${c.port + 1}`, '127.0.0.1', `127.0.0.2:${c.port}`]) {
      for (const p of ['/', '/reveal', '/status.json']) {
        const r = await get(c.port, host, p);
        expect(r.status, `${host} ${p}`).toBe(404);
        expect(r.body).toBe(before.body);
        expect(r.body).not.toContain(c.user);
      }
    }
  });

  it('/reveal asks for the proxy credentials (401), refuses wrong ones, shows the password with the right ones', async () => {
    const host = `127.0.0.1:${c.port}`;
    const asked = await get(c.port, host, '/reveal');
    expect(asked.status).toBe(401);
    expect(asked.head).toMatch(/^WWW-Authenticate: Basic realm="proxy"/m);
    expect(asked.body).not.toContain(c.pass);
    const wrong = await get(c.port, host, '/reveal', ['-u', `${c.user}:not-the-password`]);
    expect(wrong.status).toBe(401);
    expect(wrong.body).not.toContain(c.pass);
    const shown = await get(c.port, host, '/reveal', ['-u', `${c.user}:${c.pass}`]);
    expect(shown.status).toBe(200);
    expect(shown.body).toContain(`<code id="password">${c.pass}</code>`);
    expect(shown.body).toContain('user1'); // the bridge's label
    expect(shown.head).not.toMatch(/^access-control-/im);
  });

  it('speaks Russian to a browser that asks for it', async () => {
    const r = await get(c.port, `127.0.0.1:${c.port}`, '/', ['-H', 'Accept-Language: ru-RU,ru;q=0.9']);
    expect(r.body).toContain('<html lang="ru">');
    expect(r.body).toContain('Postern: состояние');
    expect(r.body).toContain('работает');
  });

  it.skipIf(CHROMIUM === undefined)('headless Chromium: a screenshot of the page, and its text', async () => {
    const shot = path.join(tempDir('postern-shot-'), 'status.png');
    dirs.push(path.dirname(shot));
    const url = `http://127.0.0.1:${c.port}/`;
    const { stderr } = await chromium(['--window-size=1000,1200', `--screenshot=${shot}`, url]);
    expect(fs.existsSync(shot), stderr).toBe(true);
    expect(pngSize(shot)).toEqual({ width: 1000, height: 1200 });
    expect(fs.statSync(shot).size).toBeGreaterThan(10_000); // text and tables, not a blank page
    const { stdout: dom } = await chromium(['--dump-dom', url]);
    expect(dom).toContain('Postern status');
    expect(dom).toContain('<strong class="up">up</strong>');
    expect(dom).not.toContain(c.pass);
    // The user's action: the credentials, here in the URL (a person types them into the browser's dialog).
    const { stdout: revealed } = await chromium(['--dump-dom', `http://${c.user}:${c.pass}@127.0.0.1:${c.port}/reveal`]);
    expect(revealed).toContain(`<code id="password">${c.pass}</code>`);
  });
});

/** The client under a pseudo-terminal 120 columns wide for `seconds`; everything it wrote there. */
async function onTerminal(args: string[], env: NodeJS.ProcessEnv, seconds: number): Promise<string> {
  const py = [
    'import os, pty, sys, time, select, signal, struct, fcntl, termios',
    'pid, fd = pty.fork()',
    'if pid == 0:',
    '    os.execvp(sys.argv[1], sys.argv[1:])',
    "fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 120, 0, 0))",
    "out = b''",
    `end = time.time() + ${seconds}`,
    'while time.time() < end:',
    '    r, _, _ = select.select([fd], [], [], 0.2)',
    '    if r:',
    '        try: out += os.read(fd, 65536)',
    '        except OSError: break',
    'os.kill(pid, signal.SIGKILL)',
    'os.waitpid(pid, 0)',
    "sys.stdout.write(out.decode('utf-8', 'replace'))",
  ].join('\n');
  const r = await exec('/usr/bin/python3', ['-c', py, process.execPath, BIN, ...args], {
    env: { ...process.env, XDG_CONFIG_HOME: tempDir('postern-xdg-'), XDG_STATE_HOME: tempDir('postern-state-'), TERM: 'xterm', ...env },
    timeout: (seconds + 15) * 1000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return r.stdout;
}

describe('the live status line on a terminal', () => {
  it('shows the tunnel up and the bridge, redrawn in place; in Russian with LANG=ru_RU.UTF-8', async () => {
    const [en, ru] = await Promise.all([
      onTerminal(['client', '--bridge', uri, '--listen', '127.0.0.1:0', '--no-auth'], { LANG: 'en_US.UTF-8', NO_COLOR: '1' }, 5),
      onTerminal(['client', '--bridge', uri, '--listen', '127.0.0.1:0', '--no-auth'], { LANG: 'ru_RU.UTF-8', NO_COLOR: '1' }, 5),
    ]);
    expect(en).toMatch(/\r\x1b\[2Ktunnel up \| bridge user1 \| RTT \d+ ms \| streams 0 \| ↑ \d+ B ↓ \d+ B/);
    expect(ru).toMatch(/\r\x1b\[2Kтуннель: работает \| мост user1 \| задержка \d+ мс \| соединений 0/);
    expect(ru).toContain('Страница состояния: http://127.0.0.1:');
    // Log records (pretty, on the same terminal) are printed with the line cleared first.
    expect(en).toMatch(/\r\x1b\[2K\[[\d:.]+\] INFO: tunnel to bridge up/);
  }, 40_000);

  it('is not drawn with --no-status, nor when stderr is not a terminal', async () => {
    const out = await onTerminal(['client', '--bridge', uri, '--listen', '127.0.0.1:0', '--no-auth', '--no-status'], { NO_COLOR: '1' }, 3);
    expect(out).toContain('tunnel to bridge up');
    expect(out).not.toContain('tunnel up |');
    const piped = new Postern(['client', '--bridge', uri, '--listen', '127.0.0.1:0', '--no-auth']);
    await piped.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
    await new Promise((r) => setTimeout(r, 1_500));
    await piped.stop();
    expect(piped.stderr).not.toContain('\x1b[2K');
    expect(piped.stderr).not.toContain('tunnel up |');
  }, 40_000);
});

describe('after repeated failed dials', () => {
  it('says once to run postern doctor, with the command for the link source; the command works', async () => {
    // A bridge that is not there: a port that was free a moment ago.
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    const dead = withPort(uri, (s.address() as net.AddressInfo).port);
    await new Promise<void>((r) => s.close(() => r()));
    const file = path.join(tempDir('postern-link-'), 'bridge.txt');
    dirs.push(path.dirname(file));
    fs.writeFileSync(file, `# my bridge\n${dead}\n`, { mode: 0o600 });
    const xdg = { XDG_CONFIG_HOME: tempDir('postern-xdg-') };
    const en = new Postern(['client', '--bridge-file', file, '--listen', '127.0.0.1:0', '--no-auth'], { ...xdg, LANG: 'en_US.UTF-8' });
    const ru = new Postern(['client', '--bridge', dead, '--listen', '127.0.0.1:0', '--no-auth'], { ...xdg, LANG: 'ru_RU.UTF-8' });
    const failures = (p: Postern) => p.lines.filter((l) => l.msg.startsWith('cannot connect to bridge')).length;
    // The hint comes at the 5th failure (DOCTOR_HINT_AFTER_FAILED_DIALS_COUNT); wait for a 6th, then count.
    await Promise.all([en, ru].map((p) => p.waitFor(() => failures(p) >= 6, 30_000, 'six failed dials')));
    const hint = `postern: connecting to the bridge failed 5 times in a row; to find out why, run: postern doctor --bridge-file ${file}`;
    expect(en.stderr.split(hint).length - 1).toBe(1);
    expect(en.stderr.match(/postern doctor/g)?.length).toBe(1);
    expect(ru.stderr).toContain("postern: подключиться к мосту не удалось 5 раз подряд; чтобы узнать почему, выполните: postern doctor '<ссылка, переданная в --bridge>'");
    expect(ru.stderr.match(/postern doctor/g)?.length).toBe(1);
    expect(ru.stderr).not.toContain(dead); // the link is a secret: never echoed
    await Promise.all([en.stop(), ru.stop()]);
    const doctor = await runPostern(['doctor', '--bridge-file', file], 30_000);
    expect(doctor.code).toBe(1);
    expect(doctor.stdout).toMatch(/\[FAIL\] TCP connect/);
  }, 60_000);
});

describe('the demo in Russian', () => {
  it('prints its banner in Russian when the locale is Russian', async () => {
    const p = new Postern(['demo', '--listen', '127.0.0.1:0', '--no-auth'], { LANG: 'ru_RU.UTF-8' });
    await p.waitFor(() => p.stderr.includes('Ctrl-C'), 15_000, 'demo banner');
    const port = Number(/Страница состояния: http:\/\/127\.0\.0\.1:(\d+)\//.exec(p.stderr)?.[1]);
    const page = await get(port, `127.0.0.1:${port}`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('Postern: состояние');
    await p.stop();
    expect(p.stderr).toContain('Демо Postern запущено: мост и клиент на этом компьютере');
    expect(p.stderr).toContain('Прокси (SOCKS5 и HTTP):');
    expect(p.stderr).toContain('Остановить: Ctrl-C.');
    expect(p.stderr).not.toContain('Postern demo is running');
  });
});

const CAN_NETNS = CHROMIUM !== undefined && process.getuid?.() === 0 && fs.existsSync('/usr/sbin/ip');

describe.skipIf(!CAN_NETNS)('the phone set-up on the page (isolated network namespace, --lan)', () => {
  const ns = `postern-status-${process.pid}`;
  const children: ChildProcess[] = [];
  let out = '';
  let err = '';

  beforeAll(async () => {
    execFileSync('ip', ['netns', 'add', ns]);
    const inNs = (...args: string[]) => execFileSync('ip', ['netns', 'exec', ns, ...args]);
    inNs('ip', 'link', 'set', 'lo', 'up');
    // A "Wi-Fi" address for the phone links: on a veth pair whose two ends both stay in here.
    inNs('ip', 'link', 'add', 'wifi0', 'type', 'veth', 'peer', 'name', 'wifi1');
    inNs('ip', 'addr', 'add', '192.0.2.10/24', 'dev', 'wifi0');
    inNs('ip', 'link', 'set', 'wifi0', 'up');
    inNs('ip', 'link', 'set', 'wifi1', 'up');
    const { uri: u, config } = await init();
    const run = (args: string[]) => {
      const c = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, XDG_CONFIG_HOME: tempDir('postern-xdg-'), XDG_STATE_HOME: tempDir('postern-state-') },
      });
      children.push(c);
      return c;
    };
    const bridge = run(['bridge', '--config', config, '--listen', '127.0.0.1:0']);
    let bout = '';
    bridge.stdout?.setEncoding('utf8').on('data', (d: string) => (bout += d));
    for (let i = 0; i < 150 && !/"role":"bridge".*?"port":\d+/.test(bout); i++) await new Promise((r) => setTimeout(r, 100));
    const bport = Number(/"role":"bridge".*?"port":(\d+)/.exec(bout)?.[1]);
    const c = run(['client', '--bridge', withPort(u, bport), '--lan', '--listen', '0.0.0.0:0']);
    c.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    for (let i = 0; i < 150 && !(out.includes('tunnel to bridge up') && /Password: \S+\n/.test(err)); i++) await new Promise((r) => setTimeout(r, 100));
  });

  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.pid !== undefined) c.kill('SIGKILL');
    try {
      execFileSync('ip', ['netns', 'del', ns]);
    } catch {
      // already gone
    }
  });

  it('shows the tunnel up, the phone address and, after the credentials, the two QR codes', async () => {
    const port = Number(/"role":"socks".*?"port":(\d+)/.exec(out)?.[1]);
    const user = /Username: (\S+)/.exec(err)?.[1] as string;
    const pass = /Password: (\S+)/.exec(err)?.[1] as string;
    expect(port, `${out.slice(-2000)}\n${err}`).toBeGreaterThan(0);
    const open = await chromium(['--dump-dom', `http://127.0.0.1:${port}/`], ns);
    expect(open.stdout, open.stderr).toContain('<strong class="up">up</strong>');
    expect(open.stdout).toContain(`Proxy for phones (SOCKS5 and HTTP): 192.0.2.10:${port}`);
    expect(open.stdout).not.toContain('<svg');
    expect(open.stdout).not.toContain(pass);
    // A device on the network gets the 404 even when it names the port by a loopback Host.
    const fromLan = execFileSync('ip', ['netns', 'exec', ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', '--interface', '192.0.2.10', '-H', `Host: 127.0.0.1:${port}`, `http://192.0.2.10:${port}/`], { encoding: 'utf8' });
    expect(fromLan).toBe('404');
    const fromHere = execFileSync('ip', ['netns', 'exec', ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', `http://127.0.0.1:${port}/`], { encoding: 'utf8' });
    expect(fromHere).toBe('200');
    const url = `http://${user}:${pass}@127.0.0.1:${port}/reveal`;
    const { stdout: dom } = await chromium(['--dump-dom', url], ns);
    expect(dom.match(/<svg /g)?.length).toBe(2);
    expect(dom).toContain(`tg://socks?server=192.0.2.10&amp;port=${port}&amp;user=${user}&amp;pass=${pass}`);
    const shot = path.join(tempDir('postern-shot-'), 'phones.png');
    dirs.push(path.dirname(shot));
    await chromium(['--window-size=1000,1600', `--screenshot=${shot}`, url], ns);
    expect(pngSize(shot)).toEqual({ width: 1000, height: 1600 });
    expect(fs.statSync(shot).size).toBeGreaterThan(20_000);
  }, 120_000);
});
