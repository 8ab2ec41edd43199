/**
 * Headless Chromium (Debian's `chromium`) loading a local page through the client: as a SOCKS5
 * proxy, as an HTTP proxy, and through the PAC file the client serves. Flags as
 * ../shared/TESTING.md prescribes, so that Chromium's own background requests never leave the
 * machine; every run is bounded and its process killed by PID.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, stopAll, tempDir } from '../helpers/proc.js';
import net from 'node:net';
import type { Local } from '../helpers/servers.js';
import { TRANSPORTS, init, startStack, withPort, type Stack } from '../helpers/stack.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
const RUN_TIMEOUT_MS = 45_000; // one Chromium run takes 4–8 s here, up to ≈ 18 s on a loaded machine

const BASE_FLAGS = [
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
  '--proxy-bypass-list=<-loopback>;*:80;*:443;*:5228;*.com;*.net;*.org;*.io;*.dev;*.app;*.goog;*.google',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1 , EXCLUDE ::1 , EXCLUDE [::1]',
];

const dirs: string[] = [];

/** Runs chromium --dump-dom on url with the given proxy flags; returns the DOM it printed. */
function dumpDom(proxyFlags: string[], url: string, netns?: string): Promise<{ dom: string; stderr: string }> {
  const dataDir = tempDir('postern-chromium-');
  dirs.push(dataDir);
  const args = [...BASE_FLAGS, `--user-data-dir=${dataDir}`, ...proxyFlags, '--dump-dom', url];
  // `ip netns exec` execs the command (no fork), so the PID we hold is Chromium's.
  const child = netns === undefined ? spawn(CHROMIUM as string, args, { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn('ip', ['netns', 'exec', netns, CHROMIUM as string, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let dom = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (dom += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      // Its helper processes exit when the browser process they belong to is gone.
      try {
        process.kill(child.pid as number, 'SIGKILL');
      } catch {
        // already gone
      }
    }, RUN_TIMEOUT_MS);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve({ dom, stderr });
    });
  });
}

let web: Local<http.Server>;
/** The Connection field each path arrived with: our HTTP proxy sends `close` upstream, Chromium direct sends `keep-alive`. */
const connectionField = new Map<string, string | undefined>();

beforeAll(async () => {
  const server = http.createServer((req, res) => {
    connectionField.set(req.url ?? '', req.headers.connection);
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<html><body><h1>hello through postern</h1><p>${req.url}</p></body></html>`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  web = { server, port: (server.address() as net.AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
});

afterAll(async () => {
  await stopAll();
  await web?.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe.skipIf(CHROMIUM === undefined)('headless Chromium: the flags keep it on the proxy', () => {
  it('goes through the proxy with these flags: a dead proxy port means no page (control)', async () => {
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', () => r()));
    const port = (dead.address() as net.AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const { dom } = await dumpDom([`--proxy-server=socks5://127.0.0.1:${port}`], `http://localhost:${web.port}/control`);
    expect(dom).not.toContain('hello through postern');
    expect(connectionField.has('/control')).toBe(false);
  });
});

describe.skipIf(CHROMIUM === undefined).each(TRANSPORTS)('headless Chromium through the client, tunnel over transport=%s', (transport) => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ transport });
  });

  it('loads a local page through socks5://', async () => {
    const page = `/via-socks5-${transport}`;
    const { dom, stderr } = await dumpDom([`--proxy-server=socks5://127.0.0.1:${stack.socksPort}`], `http://localhost:${web.port}${page}`);
    expect(dom, stderr).toContain('hello through postern');
    expect(dom).toContain(page);
  });

  it('loads a local page through http:// (absolute-form GET)', async () => {
    const page = `/via-http-${transport}`;
    const { dom, stderr } = await dumpDom([`--proxy-server=http://127.0.0.1:${stack.socksPort}`], `http://localhost:${web.port}${page}`);
    expect(dom, stderr).toContain('hello through postern');
    expect(dom).toContain(page);
    expect(connectionField.get(page)).toBe('close'); // rewritten by our proxy
  });
});

/**
 * With a PAC file, Chromium ignores --proxy-bypass-list: it bypasses loopback names and addresses
 * (its implicit rules) and sends its own background requests (update.googleapis.com,
 * accounts.google.com…) to the proxy the PAC names — through our tunnel they would make the bridge
 * reach the Internet. So this test runs the bridge, the client, the page and Chromium in a network
 * namespace of its own, holding only `lo` with 127.0.0.1 and 100.64.0.1 (shared address space,
 * RFC 6598, which the bridge's --allow-private opens; not loopback to Chromium, so it consults the
 * PAC): nothing can leave it, whatever the code does. Needs root and iproute2 (CI has both).
 */
const CAN_NETNS = CHROMIUM !== undefined && process.getuid?.() === 0 && fs.existsSync('/usr/sbin/ip');

describe.skipIf(!CAN_NETNS)('headless Chromium through the PAC file (isolated network namespace)', () => {
  const ns = `postern-pac-${process.pid}`;
  const children: ChildProcess[] = [];
  const inNs = (cmd: string, args: string[]) => {
    const c = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(c);
    let out = '';
    let err = '';
    c.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.stderr?.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-2000)));
    return {
      child: c,
      output: () => out,
      waitFor: async (re: RegExp, what: string): Promise<RegExpExecArray> => {
        for (let i = 0; i < 150; i++) {
          const m = re.exec(out);
          if (m) return m;
          if (c.exitCode !== null) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`no ${what}: ${out.slice(-2000)} ${err}`);
      },
    };
  };
  let web: ReturnType<typeof inNs>;
  let client: ReturnType<typeof inNs>;
  let clientPort = 0;
  let webPort = 0;

  beforeAll(async () => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    execFileSync('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', '100.64.0.1/32', 'dev', 'lo']);
    const { uri, config } = await init();
    const bridge = inNs(process.execPath, [BIN, 'bridge', '--config', config, '--listen', '127.0.0.1:0', '--allow-private']);
    const bport = Number((await bridge.waitFor(/"role":"bridge".*?"port":(\d+)/, 'bridge port'))[1]);
    client = inNs(process.execPath, [BIN, 'client', '--bridge', withPort(uri, bport), '--listen', '127.0.0.1:0', '--no-auth', '--log-level', 'debug']);
    clientPort = Number((await client.waitFor(/"role":"socks".*?"port":(\d+)/, 'client port'))[1]);
    // The page: reports the Connection field it got (our proxy sends `close` upstream; Chromium direct, keep-alive).
    const script =
      "const s=require('http').createServer((q,r)=>{console.log('SEEN '+q.url+' '+q.headers.connection);" +
      "r.writeHead(200,{'content-type':'text/html'});r.end('<html><body><h1>hello through the pac</h1></body></html>')});" +
      "s.listen(0,'100.64.0.1',()=>console.log('PORT '+s.address().port))";
    web = inNs(process.execPath, ['-e', script]);
    webPort = Number((await web.waitFor(/PORT (\d+)/, 'web port'))[1]);
  });

  afterAll(() => {
    for (const c of children) if (c.exitCode === null && c.pid !== undefined) c.kill('SIGKILL');
    try {
      execFileSync('ip', ['netns', 'del', ns]);
    } catch {
      // already gone
    }
  });

  it('fetches /proxy.pac from the client and loads the page through the HTTP proxy it names', async () => {
    const { dom, stderr } = await dumpDom([`--proxy-pac-url=http://127.0.0.1:${clientPort}/proxy.pac`], `http://100.64.0.1:${webPort}/via-pac`, ns);
    expect(dom, `${dom.slice(0, 3000)}\n${client.output().slice(-3000)}\n${web.output()}`).toContain('hello through the pac');
    expect(web.output()).toContain('SEEN /via-pac close');
    expect(client.output()).toContain('"why":"served pac"');
  });
});
