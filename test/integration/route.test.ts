/**
 * Route rules (issue 15), end to end with the built binary on loopback: an app → `postern client`
 * with rules → either the tunnel (`postern bridge`, whose admin /metrics counts streams) or a
 * direct connection from the client, or a refusal.
 *
 * Names: the bridge knows `*.invalid` names from its `hosts` table; the client knows the direct
 * names only from $POSTERN_TEST_HOSTS (its test hook for local lookups), so nothing here ever
 * queries real DNS. The client's 'route counters' line (SIGUSR2) counts its local lookups: a name
 * sent through the tunnel must not add one.
 */
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rewriteConfig } from '../helpers/bridge-config.js';
import { getText, sample } from '../helpers/metrics.js';
import { curl, run } from '../helpers/ops.js';
import { Postern, stopAll, tempDir } from '../helpers/proc.js';
import { echoServer, httpServer, udpEchoServer, type Local, type LocalUdp } from '../helpers/servers.js';
import { connectRaw, domainRequest, readN, socksConnect } from '../helpers/socks.js';
import { init, startBridge, withPort } from '../helpers/stack.js';

const TUNNEL_NAME = 'echo.tunnel.invalid';
const DIRECT_NAME = 'echo.direct.test';
const BLOCKED_NAME = 'x.blocked.test';
const HOSTS = JSON.stringify({ [DIRECT_NAME]: ['127.0.0.1'] });

let echo: Local<net.Server>;
let web: Local<http.Server>;
let udpEcho: LocalUdp;
let bridge: Postern;
let client: Postern;
let lanClient: Postern;
let uri: string;
let socksPort: number;
let lanPort: number;
let adminPort: number;
let dir: string;
let configFile: string;

const rules = [
  { name: 'direct names', match: { suffix: ['direct.test'] }, action: 'direct' },
  { name: 'blocked names', match: { suffix: ['blocked.test'] }, action: 'block' },
  { name: 'smtp', match: { port: [25] }, action: 'block' },
];

beforeAll(async () => {
  [echo, web, udpEcho] = await Promise.all([echoServer('127.0.0.1'), httpServer('127.0.0.1'), udpEchoServer('127.0.0.1')]);
  const i = await init();
  rewriteConfig(i.config, (c) => {
    c.hosts = { [TUNNEL_NAME]: ['127.0.0.1'] };
    c.admin = { listen: '127.0.0.1:0' };
  });
  const b = await startBridge(i.config, ['--allow-private']);
  bridge = b.bridge;
  adminPort = (await bridge.waitFor((l) => l.msg === 'listening' && l.role === 'admin', 10_000, 'admin listening')).port as number;
  uri = withPort(i.uri, b.port);
  dir = tempDir();
  configFile = path.join(dir, 'client.json');
  fs.writeFileSync(configFile, JSON.stringify({ bridges: [uri], listen: '127.0.0.1:0', route: { rules, default: 'tunnel' } }));
  client = new Postern(['client', '--config', configFile, '--no-auth'], { POSTERN_TEST_HOSTS: HOSTS });
  socksPort = await client.listening('socks');
  // A LAN listener (non-loopback address, so a password): direct routes may not reach loopback.
  lanClient = new Postern(['client', '--config', configFile, '--listen', '0.0.0.0:0', '--user', 'u', '--pass', 'p'], { POSTERN_TEST_HOSTS: HOSTS });
  lanPort = await lanClient.listening('socks');
  await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
});

afterAll(async () => {
  await stopAll();
  await Promise.all([echo?.close(), web?.close(), udpEcho?.close()]);
});

const get = getText;
async function bridgeStreams(): Promise<number> {
  const m = await get(adminPort, '/metrics');
  return sample(m, 'postern_streams_total') + sample(m, 'postern_udp_associations_total');
}
async function bridgeUdpUp(): Promise<number> {
  return sample(await get(adminPort, '/metrics'), 'postern_udp_datagrams_total', '{direction="up"}');
}

interface Counters {
  tunnel: { connections: number; datagrams: number; bytesUp: number; bytesDown: number };
  direct: { connections: number; datagrams: number; bytesUp: number; bytesDown: number };
  block: { connections: number; datagrams: number; bytesUp: number; bytesDown: number };
  lookups: number;
}
/** The client's counters, asked for with SIGUSR2. */
async function counters(p: Postern = client): Promise<Counters> {
  const seen = p.lines.length;
  p.child.kill('SIGUSR2');
  const line = await p.waitFor((l) => l.msg === 'route counters' && p.lines.indexOf(l) >= seen, 5_000, 'route counters');
  return line.route as Counters;
}

async function echoOnce(port: number, name: string, n = 4096, auth?: [string, string]): Promise<number> {
  let s: net.Socket;
  let reply: number;
  if (auth) {
    s = await connectRaw(port);
    const [u, pw] = auth;
    s.write(Buffer.from([5, 1, 2]));
    await readN(s, 2);
    s.write(Buffer.concat([Buffer.from([1, u.length]), Buffer.from(u), Buffer.from([pw.length]), Buffer.from(pw)]));
    await readN(s, 2);
    s.write(domainRequest(name, echo.port));
    reply = (await readN(s, 10))[1]!;
  } else {
    ({ socket: s, reply } = await socksConnect(port, domainRequest(name, echo.port)));
  }
  if (reply === 0) {
    const data = Buffer.alloc(n, 7);
    s.write(data);
    expect((await readN(s, n)).equals(data)).toBe(true);
  }
  s.destroy();
  return reply;
}

describe('TCP: SOCKS5 and HTTP', () => {
  it('a direct destination is reached without any tunnel stream; a tunnel one goes through the bridge with no local lookup', async () => {
    const s0 = await bridgeStreams();
    const c0 = await counters();
    expect(await echoOnce(socksPort, DIRECT_NAME)).toBe(0);
    const web1 = await curl(['-x', `http://127.0.0.1:${socksPort}`, `http://${DIRECT_NAME}:${web.port}/page`]);
    expect(web1.stdout).toContain('hello through postern');
    expect(await bridgeStreams()).toBe(s0); // the bridge saw nothing
    const c1 = await counters();
    expect(c1.direct.connections - c0.direct.connections).toBe(2);
    expect(c1.direct.bytesUp - c0.direct.bytesUp).toBeGreaterThanOrEqual(4096);
    expect(c1.lookups - c0.lookups).toBe(2); // direct names are looked up locally, as any app would

    expect(await echoOnce(socksPort, TUNNEL_NAME)).toBe(0);
    const web2 = await curl(['-x', `http://127.0.0.1:${socksPort}`, `http://${TUNNEL_NAME}:${web.port}/page`]);
    expect(web2.stdout).toContain('hello through postern');
    expect(await bridgeStreams()).toBe(s0 + 2);
    const c2 = await counters();
    expect(c2.lookups).toBe(c1.lookups); // no local DNS query for names sent through the tunnel
    expect(c2.tunnel.connections - c1.tunnel.connections).toBe(2);
    expect(c2.tunnel.bytesDown - c1.tunnel.bytesDown).toBeGreaterThanOrEqual(4096);
  });

  it('block gets SOCKS reply 02 and HTTP 403, by name and by port, without a lookup or a stream', async () => {
    const s0 = await bridgeStreams();
    const c0 = await counters();
    expect(await echoOnce(socksPort, BLOCKED_NAME)).toBe(2);
    const r = await socksConnect(socksPort, domainRequest(TUNNEL_NAME, 25));
    expect(r.reply).toBe(2);
    r.socket.destroy();
    const h = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${socksPort}`, `http://${BLOCKED_NAME}:${web.port}/`]);
    expect(h.stdout).toBe('403');
    expect(await bridgeStreams()).toBe(s0);
    const c1 = await counters();
    expect(c1.block.connections - c0.block.connections).toBe(3);
    expect(c1.lookups).toBe(c0.lookups);
  });

  it('a direct route from a LAN listener does not reach loopback (02), unless --allow-lan-private', async () => {
    expect(await echoOnce(lanPort, DIRECT_NAME, 16, ['u', 'p'])).toBe(2);
    const open = new Postern(['client', '--config', configFile, '--listen', '0.0.0.0:0', '--user', 'u', '--pass', 'p', '--allow-lan-private'], { POSTERN_TEST_HOSTS: HOSTS });
    const port = await open.listening('socks');
    expect(await echoOnce(port, DIRECT_NAME, 16, ['u', 'p'])).toBe(0);
    await open.stop();
  });
});

describe('UDP ASSOCIATE: the same rules per datagram', () => {
  function header(name: string, port: number): Buffer {
    return Buffer.concat([Buffer.from([0, 0, 0, 3, name.length]), Buffer.from(name), Buffer.from([port >> 8, port & 0xff])]);
  }

  it('direct datagrams skip the bridge, tunnel ones go through it, blocked ones are dropped', async () => {
    const control = await connectRaw(socksPort);
    control.on('error', () => undefined);
    control.write(Buffer.from([5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
    expect([...(await readN(control, 2))]).toEqual([5, 0]);
    const rep = await readN(control, 10);
    expect(rep[1]).toBe(0);
    const relayPort = rep.readUInt16BE(8);
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const replies: Buffer[] = [];
    sock.on('message', (m) => replies.push(m));
    const waitReplies = async (n: number) => {
      for (let i = 0; i < 100 && replies.length < n; i++) await new Promise((r) => setTimeout(r, 50));
      return replies.length;
    };
    try {
      const up0 = await bridgeUdpUp();
      const c0 = await counters();
      sock.send(Buffer.concat([header(DIRECT_NAME, udpEcho.port), Buffer.from('direct-1')]), relayPort, '127.0.0.1');
      expect(await waitReplies(1)).toBe(1);
      expect(replies[0]!.subarray(10).toString()).toBe('direct-1');
      expect([...replies[0]!.subarray(3, 8)]).toEqual([1, 127, 0, 0, 1]); // the source, as an IPv4 address
      expect(await bridgeUdpUp()).toBe(up0);

      sock.send(Buffer.concat([header(BLOCKED_NAME, udpEcho.port), Buffer.from('blocked')]), relayPort, '127.0.0.1');
      sock.send(Buffer.concat([header(TUNNEL_NAME, udpEcho.port), Buffer.from('tunnel-1')]), relayPort, '127.0.0.1');
      expect(await waitReplies(2)).toBe(2);
      expect(replies[1]!.subarray(-8).toString()).toBe('tunnel-1');
      expect(await bridgeUdpUp()).toBe(up0 + 1);
      await new Promise((r) => setTimeout(r, 200));
      expect(replies.length).toBe(2); // nothing came back for the blocked one
      const c1 = await counters();
      expect(c1.direct.datagrams - c0.direct.datagrams).toBe(1);
      expect(c1.tunnel.datagrams - c0.tunnel.datagrams).toBe(1);
      expect(c1.block.datagrams - c0.block.datagrams).toBe(1);
      expect(c1.lookups - c0.lookups).toBe(1); // the direct name only
    } finally {
      sock.close();
      control.destroy();
    }
  });
});

describe('rule errors, --explain and the PAC file', () => {
  it('a list file error names the file and line; a config rule error names the rule', async () => {
    const list = path.join(dir, 'blocked.txt');
    fs.writeFileSync(list, '# list\nexample.org\n10.0.0.0/33\n');
    const r = await run(['client', '--bridge', uri, '--listen', '127.0.0.1:0', '--route', 'blocked-only', '--route-file', list]);
    expect(r.code).toBe(78); // EX_CONFIG
    expect(r.stderr).toContain(`${list}:3: not an IP address or CIDR: "10.0.0.0/33"`);
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ bridges: [uri], route: { rules: [rules[0], { name: 'oops', match: { cidr: ['300.1.1.1/8'] }, action: 'direct' }] } }));
    const r2 = await run(['client', '--config', bad]);
    expect(r2.code).toBe(78);
    expect(r2.stderr).toContain(`${bad}: route.rules[1] ("oops"): match.cidr[0]: not an IP address or CIDR`);
  });

  it('--explain and the served PAC file agree with the rules (table)', async () => {
    const table: [host: string, action: string, rule: string, pac: string][] = [
      ['www.direct.test:443', 'direct', 'rule 1 "direct names"', 'DIRECT'],
      ['DIRECT.TEST:80', 'direct', 'rule 1 "direct names"', 'DIRECT'],
      ['x.blocked.test:443', 'block', 'rule 2 "blocked names"', 'PROXY'],
      ['mail.example.org:25', 'block', 'rule 3 "smtp"', 'PROXY'],
      ['example.org:443', 'tunnel', 'default', 'PROXY'],
      ['directxtest:443', 'tunnel', 'default', 'PROXY'],
      ['198.51.100.7:443', 'tunnel', 'default', 'PROXY'],
    ];
    const r = await run(['client', '--config', configFile, ...table.flatMap(([h]) => ['--explain', h])], { POSTERN_TEST_HOSTS: HOSTS });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(table.map(([h, action, rule]) => `${h} → ${action} by ${rule}`));
    const ctx = vm.createContext({});
    vm.runInContext(await get(socksPort, '/proxy.pac'), ctx);
    const pac = ctx as { FindProxyForURL(u: string, h: string): string };
    for (const [hp, , , want] of table) {
      const host = hp.slice(0, hp.lastIndexOf(':'));
      // The PAC cannot see ports: a port rule ends what it decides, and the proxy decides the rest.
      expect([hp, pac.FindProxyForURL(`https://${hp}/`, host).split(' ')[0]]).toEqual([hp, want]);
    }
  });
});
