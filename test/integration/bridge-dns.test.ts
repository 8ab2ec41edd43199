/**
 * Issue 10, finding 3: one user must not be able to stop name resolution for the others. The
 * built bridge resolves through a DNS server this test runs on loopback (dns.servers) that answers
 * some names and black-holes others, with a hosts file of the test's own (dns.hostsFile): the
 * machine's resolver is never used.
 *
 * User A floods lookups of black-holed names; user B's lookups of a hosts-file name and of a name
 * the test server answers succeed during the flood and right after; A alone is refused (SOCKS
 * 0x04, OPEN_RESULT 0x07) at once beyond its budget of pending lookups, and its hung lookups free
 * their slots at the lookup timeout.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { addUserToConfig, rewriteConfig, uriWithSecret } from '../helpers/bridge-config.js';
import { startTestDns, type TestDns } from '../helpers/dns-server.js';
import { stopAll } from '../helpers/proc.js';
import { echoServer, type Local } from '../helpers/servers.js';
import { domainRequest, readN, socksConnect } from '../helpers/socks.js';
import { init, startBridge, startClient, withPort } from '../helpers/stack.js';

let echo: Local<net.Server>;
let dns: TestDns;

beforeAll(async () => {
  echo = await echoServer('127.0.0.1');
  dns = await startTestDns({ 'answered.test': '127.0.0.1' }, (name) => name.endsWith('.hole.test'));
});
afterEach(async () => {
  await stopAll();
});
afterAll(async () => {
  await Promise.all([echo?.close(), dns?.close()]);
});

function get(port: number, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** A metric's value from the exposition text (0 when absent). */
function metric(text: string, sample: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? 0 : Number(line.slice(sample.length + 1));
}

/** A SOCKS CONNECT to name:echo through `port`; resolves with the reply code and the time it took. */
async function connectName(port: number, name: string): Promise<{ reply: number; ms: number; socket: net.Socket }> {
  const t0 = performance.now();
  const r = await socksConnect(port, domainRequest(name, echo.port));
  return { reply: r.reply, ms: performance.now() - t0, socket: r.socket };
}

/** B's echo through a name: connect, say something, hear it back. */
async function echoVia(port: number, name: string): Promise<number> {
  const r = await connectName(port, name);
  if (r.reply === 0) {
    r.socket.write('hi');
    expect((await readN(r.socket, 2, 5_000)).toString()).toBe('hi');
  }
  r.socket.destroy();
  return r.reply;
}

describe('DNS at the bridge, per user (issue 10, finding 3)', () => {
  it('keeps user B resolving (hosts file and DNS) while user A floods a black-hole resolver; A alone is refused at its budget', async () => {
    const PENDING = 12;
    const FLOOD = 40;
    const TIMEOUT_MS = 3_000;
    const { uri: initUri, config, dir } = await init();
    const hostsFile = path.join(dir, 'hosts');
    fs.writeFileSync(hostsFile, '# test hosts file\n127.0.0.1\tinhosts.test alias.inhosts.test\n::1 inhosts6.test\n');
    rewriteConfig(config, (c) => {
      c.users[0].name = 'alice';
      c.dns = { servers: [dns.server], hostsFile };
      c.admin = { listen: '127.0.0.1:0' };
      c.limits = {
        EGRESS_DNS_TIMEOUT_MS: TIMEOUT_MS,
        EGRESS_DNS_MAX_CONCURRENT: 8,
        EGRESS_DNS_MAX_CONCURRENT_PER_USER: 4,
        EGRESS_DNS_MAX_PENDING_PER_USER: PENDING,
        LOG_SUMMARY_INTERVAL_MS: 1_000,
      };
    });
    const bobSecret = addUserToConfig(config, 'bob');
    const { bridge, port } = await startBridge(config);
    const admin = (await bridge.waitFor((l) => l.msg === 'listening' && l.role === 'admin', 10_000, 'admin listening')).port as number;
    const uri = withPort(initUri, port);
    // Exact replies: the DNS outcome is read from the SOCKS reply code (issue 12).
    const [a, b] = await Promise.all([startClient(uri, ['--exact-replies']), startClient(uriWithSecret(uri, bobSecret), ['--exact-replies'])]);
    await Promise.all([a.client, b.client].map((c) => c.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up')));

    // Before: both resolve.
    expect(await echoVia(b.port, 'inhosts.test')).toBe(0);
    expect(await echoVia(b.port, 'answered.test')).toBe(0);

    // A floods: FLOOD lookups of names the server never answers, all at once.
    const flood = Array.from({ length: FLOOD }, (_, i) => connectName(a.port, `n${i}.hole.test`));
    // Let the flood reach the bridge (the refusals beyond A's budget come back at once).
    const deadline = Date.now() + 5_000;
    let m = await get(admin, '/metrics');
    while (metric(m, 'postern_dns_lookups_refused_total{reason="user_budget"}') < FLOOD - PENDING && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      m = await get(admin, '/metrics');
    }
    expect(metric(m, 'postern_dns_user_lookups_pending{user="alice"}')).toBe(PENDING);
    expect(metric(m, 'postern_dns_limit{limit="EGRESS_DNS_MAX_PENDING_PER_USER"}')).toBe(PENDING);

    // During the flood (A's pending lookups still hung): B resolves a hosts-file name and a name
    // the server answers, each at once — not after A's lookups time out.
    let settled = 0;
    for (const f of flood) void f.then(() => settled++);
    for (const name of ['inhosts.test', 'alias.inhosts.test', 'answered.test']) {
      const t0 = performance.now();
      expect(await echoVia(b.port, name)).toBe(0);
      expect(performance.now() - t0).toBeLessThan(TIMEOUT_MS / 4);
    }
    expect(settled).toBe(FLOOD - PENDING);

    const results = await Promise.all(flood);
    for (const r of results) r.socket.destroy();
    // Every one of A's streams failed as DNS_FAILURE (SOCKS 0x04): PENDING at the timeout, the rest at once.
    expect(results.every((r) => r.reply === 4)).toBe(true);
    const fast = results.filter((r) => r.ms < TIMEOUT_MS / 2).length;
    expect(fast).toBe(FLOOD - PENDING);
    expect(results.filter((r) => r.ms >= TIMEOUT_MS * 0.9).length).toBe(PENDING);

    // Right after: the hung lookups freed their slots at their timeout, B still resolves and so does A.
    expect(await echoVia(b.port, 'answered.test')).toBe(0);
    expect(await echoVia(b.port, 'inhosts.test')).toBe(0);
    expect(await echoVia(a.port, 'answered.test')).toBe(0);
    m = await get(admin, '/metrics');
    expect(metric(m, 'postern_dns_user_lookups_pending{user="alice"}')).toBe(0);
    expect(metric(m, 'postern_dns_lookups{state="running"}')).toBe(0);
    expect(metric(m, 'postern_dns_lookups_refused_total{reason="user_budget"}')).toBe(FLOOD - PENDING);
    expect(metric(m, 'postern_dns_lookups_total{result="aborted"}')).toBe(PENDING);
    // B's hosts names never reached the DNS server; A's queries were bounded by its share.
    expect(dns.queries.get('inhosts.test')).toBeUndefined();
    expect(dns.queries.get('alias.inhosts.test')).toBeUndefined();
    expect([...dns.queries.keys()].filter((n) => n.endsWith('.hole.test')).length).toBeLessThanOrEqual(PENDING);
    // A's refused streams: one info summary per interval with counts by code, no line per stream.
    let summed = 0;
    for (let i = 0; i < 50 && summed < FLOOD; i++) {
      await new Promise((r) => setTimeout(r, 100));
      summed = bridge.lines.filter((l) => l.msg === 'streams refused').reduce((n, l) => n + ((l.byCode as Record<string, number>).E_DNS ?? 0), 0);
    }
    expect(summed).toBe(FLOOD);
    const summaries = bridge.lines.filter((l) => l.msg === 'streams refused');
    expect(summaries.every((l) => l.level === 30)).toBe(true);
    expect(summaries.length).toBeLessThanOrEqual(3);
    expect(bridge.lines.filter((l) => l.msg === 'stream refused')).toHaveLength(0);
    // No destination in the logs (privacy by default).
    expect(bridge.stdout).not.toContain('hole.test');
    expect(bridge.stdout).not.toContain('inhosts.test');
  }, 40_000);

  it('re-reads the hosts file when it changes', async () => {
    const { uri: initUri, config, dir } = await init();
    const hostsFile = path.join(dir, 'hosts');
    fs.writeFileSync(hostsFile, '127.0.0.1 first.test\n');
    rewriteConfig(config, (c) => {
      c.dns = { servers: [dns.server], hostsFile };
      c.limits = { HOSTS_FILE_RECHECK_MS: 100, EGRESS_DNS_TIMEOUT_MS: 1_000 };
    });
    const { bridge, port } = await startBridge(config);
    const { client, port: socks } = await startClient(withPort(initUri, port), ['--exact-replies']);
    await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
    expect(await echoVia(socks, 'first.test')).toBe(0);
    expect(await echoVia(socks, 'second.test')).toBe(4); // NXDOMAIN from the test server
    fs.writeFileSync(hostsFile, '127.0.0.1 first.test second.test\n# grown by one name\n');
    await new Promise((r) => setTimeout(r, 300));
    expect(await echoVia(socks, 'second.test')).toBe(0);
    expect(bridge.lines.some((l) => l.msg === 'hosts file re-read')).toBe(true);
  }, 30_000);
});
