/**
 * Route matcher benchmark: `npm run bench:route`. Pure CPU, no network.
 *
 *   1. load: a list file of 500,000 domains and 20,000 CIDRs (IPv4 and IPv6) parsed and compiled
 *      into a router (target < 2 s);
 *   2. match: names (hits at several depths, misses) and IP literals against that router, as
 *      ns per decision — against a router with a 1,000-domain / 100-CIDR list for comparison
 *      (cost independent of list size);
 *   3. the IP-to-country table (@ip-location-db/geo-whois-asn-country): load time and lookups.
 *
 * Prints a table and writes bench/results/route.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { targetFromHost, type Target } from '../src/core/address.js';
import { loadCountryTable } from '../src/route/country.js';
import { parseRouteList } from '../src/route/list-file.js';
import { ipKey } from '../src/route/ranges.js';
import { Router } from '../src/route/rules.js';
import { prng } from '../test/helpers/faulty-relay.js';

const DOMAINS = 500_000;
const CIDRS = 20_000;
const TARGET_LOAD_MS = 2_000;

function listText(domains: number, cidrs: number, seed: number): { text: string; names: string[]; ips: string[] } {
  const r = prng(seed);
  const word = () => Math.floor(r() * 36 ** 6).toString(36);
  const tlds = ['com', 'net', 'org', 'ru', 'io', 'info'];
  const names: string[] = [];
  const lines: string[] = ['# generated'];
  for (let i = 0; i < domains; i++) {
    const n = `${word()}${i}.${tlds[i % tlds.length]}`;
    names.push(n);
    lines.push(i % 3 === 0 ? `*.${n}` : n);
  }
  const ips: string[] = [];
  for (let i = 0; i < cidrs; i++) {
    if (i % 4 === 3) {
      const a = Math.floor(r() * 0xffff).toString(16);
      lines.push(`2a0${i % 10}:${a}::/32`);
      ips.push(`2a0${i % 10}:${a}::1`);
    } else {
      const ip = [1 + Math.floor(r() * 222), Math.floor(r() * 256), Math.floor(r() * 256), 0].join('.');
      lines.push(`${ip}/24`);
      ips.push(ip.replace(/\.0$/, '.77'));
    }
  }
  return { text: lines.join('\n'), names, ips };
}

function build(text: string): Router {
  const matches = parseRouteList(text, 'bench.lst');
  return Router.compile(
    matches.map((match) => ({ match, action: 'tunnel' as const })),
    'direct',
    (i) => `bench[${i}]`,
  );
}

function nsPer(router: Router, targets: readonly Target[], rounds: number): number {
  let sink = 0;
  // CPU time of this process (the machine is shared; wall time counts other processes' turns).
  const t0 = process.cpuUsage();
  for (let k = 0; k < rounds; k++) {
    for (const t of targets) {
      const d = router.byName(t);
      if (d !== 'lookup' && d.action === 'tunnel') sink++;
    }
  }
  const used = process.cpuUsage(t0);
  const ns = ((used.user + used.system) * 1000) / (rounds * targets.length);
  if (sink < 0) console.log(sink);
  return ns;
}

function main(): void {
  const big = listText(DOMAINS, CIDRS, 1);
  const small = listText(1_000, 100, 2);
  global.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  // Wall time and this process's CPU time: on a shared machine the CPU time is the steadier figure.
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const router = build(big.text);
  const loadMs = performance.now() - t0;
  const cpu1 = process.cpuUsage(cpu0);
  const loadCpuMs = (cpu1.user + cpu1.system) / 1000;
  const heapMiB = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
  const smallRouter = build(small.text);

  const r = prng(3);
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)]!;
  const mk = (names: string[], ips: string[]) => ({
    hitExact: Array.from({ length: 2000 }, () => targetFromHost(pick(names), 443)),
    hitDeep: Array.from({ length: 2000 }, () => targetFromHost(`a.b.c.${pick(names)}`, 443)),
    miss: Array.from({ length: 2000 }, (_, i) => targetFromHost(`www.nothere${i}.example.com`, 443)),
    ipHit: Array.from({ length: 2000 }, () => targetFromHost(pick(ips), 443)),
    ipMiss: Array.from({ length: 2000 }, (_, i) => targetFromHost(`240.0.${i >> 8}.${i & 255}`, 443)),
  });
  const bigT = mk(big.names, big.ips);
  const smallT = mk(small.names, small.ips);
  // Check the decisions before timing them: hits must hit.
  for (const t of [...bigT.hitExact.slice(0, 100), ...bigT.ipHit.slice(0, 100)]) {
    const d = router.byName(t);
    if (d === 'lookup' || d.action !== 'tunnel') throw new Error(`expected a hit for ${t.host}`);
  }
  const rows: Record<string, { big: number; small: number }> = {};
  for (const k of Object.keys(bigT) as (keyof typeof bigT)[]) {
    nsPer(router, bigT[k], 20); // warm
    nsPer(smallRouter, smallT[k], 20);
    rows[k] = { big: nsPer(router, bigT[k], 100), small: nsPer(smallRouter, smallT[k], 100) };
  }

  let country: { loadMs: number; loadCpuMs: number; ranges: number; nsPerLookup: number; sample: Record<string, string | undefined> } | null = null;
  try {
    const cc0 = process.cpuUsage();
    const c0 = performance.now();
    const table = loadCountryTable();
    const cMs = performance.now() - c0;
    const cc1 = process.cpuUsage(cc0);
    const cCpuMs = (cc1.user + cc1.system) / 1000;
    const keys = Array.from({ length: 5000 }, () => ipKey([1 + Math.floor(r() * 222), Math.floor(r() * 256), Math.floor(r() * 256), 1].join('.'))!);
    let n = 0;
    const l0 = process.cpuUsage();
    for (let k = 0; k < 20; k++) for (const key of keys) if (table.get(key) === 'RU') n++;
    const lu = process.cpuUsage(l0);
    const ns = ((lu.user + lu.system) * 1000) / (20 * keys.length);
    country = { loadMs: cMs, loadCpuMs: cCpuMs, ranges: table.size, nsPerLookup: ns, sample: { '77.88.8.8': table.get(ipKey('77.88.8.8')!), '8.8.8.8': table.get(ipKey('8.8.8.8')!), '2a02:6b8::1': table.get(ipKey('2a02:6b8::1')!) } };
    if (n < 0) console.log(n);
  } catch (err) {
    console.error(`country table: ${(err as Error).message}`);
  }

  const fmt = (n: number) => n.toFixed(0).padStart(8);
  console.log(
    `route list: ${DOMAINS} domains + ${CIDRS} CIDRs → load ${loadMs.toFixed(0)} ms wall, ${loadCpuMs.toFixed(0)} ms CPU (target < ${TARGET_LOAD_MS}) ${loadMs < TARGET_LOAD_MS ? 'OK' : loadCpuMs < TARGET_LOAD_MS ? 'OK in CPU time (machine busy)' : 'MISSED'}, heap +${heapMiB.toFixed(0)} MiB; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores`,
  );
  console.log('ns (CPU) per decision   500k list   1k list');
  for (const [k, v] of Object.entries(rows)) console.log(`${k.padEnd(23)}${fmt(v.big)}  ${fmt(v.small)}`);
  if (country) console.log(`country table: ${country.ranges} ranges, load ${country.loadMs.toFixed(0)} ms wall / ${country.loadCpuMs.toFixed(0)} ms CPU, ${country.nsPerLookup.toFixed(0)} ns per lookup; ${JSON.stringify(country.sample)}`);
  const out = path.join(path.dirname(new URL(import.meta.url).pathname), 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'route.json'), `${JSON.stringify({ domains: DOMAINS, cidrs: CIDRS, loadMs, loadCpuMs, loadAverage: os.loadavg()[0], heapMiB, nsPerDecision: rows, country, node: process.version }, null, 2)}\n`);
}

main();
