/**
 * Where a daemon's CPU and memory go, phase by phase, from inside each daemon: a probe
 * (bench/gc-probe.cjs, loaded with --require) reports CPU time, garbage-collector time and count by
 * kind, RSS by mapping (node binary, brk heap, anonymous) and V8's heap spaces.
 *
 *   npx tsx bench/gc.ts [--size-mb 256] [--streams 1000] [--settle-ms 6000] [--sustain-rounds 8] [--bundle FILE]
 *
 * Phases: fresh daemons (after settling); a download then an upload of --size-mb each way through
 * one stream (CPU and GC per MiB moved); --sustain-rounds uploads of 128 MiB, one after another
 * (CPU per MiB and full collections per round: V8 counts the buffers a relay has not yet had swept
 * against the old generation's limit, so pacing that lets too many pile up shows as full
 * collections in every round once the first GiB has passed, src/core/young-gc.ts); --streams
 * streams opened, echoed and closed (CPU and GC per stream); --streams streams held open (RSS). The
 * environment is passed to both daemons (e.g. POSTERN_LOW_MEMORY=1). Figures from one run on a shared machine are noisy: compare builds or
 * settings by alternating runs.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { selfSignedCert } from './certs.js';
import { ROOT, startPair, useBundle } from './daemons.js';
import { openIdleStreams, socksConnector } from './measure.js';
import { startServers } from './server-host.js';
import { sleep } from './stats.js';
import { download, upload } from './throughput.js';

interface Snapshot {
  cpuMs: number;
  gc: Record<string, { count: number; ms: number }>;
  rssKiB: number;
  rss: { node: number; files: number; brk: number; anon: number };
  spaces: Record<string, { physicalKiB: number; usedKiB: number }>;
}

const { values } = parseArgs({
  options: {
    'size-mb': { type: 'string', default: '256' },
    streams: { type: 'string', default: '1000' },
    'settle-ms': { type: 'string', default: '6000' },
    'sustain-rounds': { type: 'string', default: '8' },
    bundle: { type: 'string' },
  },
});
const sizeMb = Number(values['size-mb']);
const streams = Number(values.streams);
const settleMs = Number(values['settle-ms']);
const sustainRounds = Number(values['sustain-rounds']);
const SUSTAIN_MB = 128;
const TRANSFER_TIMEOUT_MS = 300_000;
const OPEN_CONCURRENCY = 50;
const OPEN_DEADLINE_MS = 60_000;
const SNAPSHOT_WAIT_MS = 5_000;
if (values.bundle) useBundle(values.bundle);

const probeDir = mkdtempSync(path.join(os.tmpdir(), 'postern-gc-'));
process.env.POSTERN_GC_PROBE_DIR = probeDir;
const { key, cert } = selfSignedCert();
const servers = await startServers({ tlsKey: key, tlsCert: cert });
const pair = await startPair({ nodeFlags: ['--require', path.join(ROOT, 'bench', 'gc-probe.cjs')], logLevel: 'info', startTimeoutMs: 20_000 });
const roles = [
  ['client', pair.client.pid],
  ['bridge', pair.bridge.pid],
] as const;

async function snapshot(pid: number): Promise<Snapshot> {
  const file = path.join(probeDir, `${pid}.json`);
  rmSync(file, { force: true });
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + SNAPSHOT_WAIT_MS;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`no snapshot from pid ${pid} (is bench/gc-probe.cjs loaded?)`);
    await sleep(20);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
}
const snapshots = async (): Promise<Snapshot[]> => [await snapshot(pair.client.pid), await snapshot(pair.bridge.pid)];

const mib = (kib: number): string => (kib / 1024).toFixed(1);
function memoryRow(label: string, s: Snapshot[]): string {
  return roles
    .map(([name], i) => {
      const x = s[i] as Snapshot;
      const v8 = Object.values(x.spaces).reduce((a, b) => a + b.physicalKiB, 0);
      return `${label.padEnd(14)} ${name}: RSS ${mib(x.rssKiB)} MiB = node binary ${mib(x.rss.node)} + brk heap ${mib(x.rss.brk)} + anonymous ${mib(x.rss.anon)} (V8 heap ${mib(v8)}, young ${mib(x.spaces.new_space?.physicalKiB ?? 0)}) + other files ${mib(x.rss.files)}`;
    })
    .join('\n');
}
/** Collections of one kind between two snapshots of a daemon: how many, and how long they took. */
function gcDelta(x: Snapshot, y: Snapshot, kind: string): { count: number; ms: number } {
  return { count: (y.gc[kind]?.count ?? 0) - (x.gc[kind]?.count ?? 0), ms: (y.gc[kind]?.ms ?? 0) - (x.gc[kind]?.ms ?? 0) };
}
function costRow(label: string, a: Snapshot[], b: Snapshot[], per: number, unit: string, scale: number): string {
  return roles
    .map(([name], i) => {
      const x = a[i] as Snapshot;
      const y = b[i] as Snapshot;
      const gc = (k: string): { count: number; ms: number } => gcDelta(x, y, k);
      const minor = gc('minor');
      const major = gc('major');
      const allGc = Object.keys(y.gc).reduce((t, k) => t + gc(k).ms, 0);
      return `${label.padEnd(14)} ${name}: CPU ${(((y.cpuMs - x.cpuMs) / per) * scale).toFixed(2)} ${unit}, of which GC ${((allGc / per) * scale).toFixed(2)}; minor GCs ${minor.count} (${minor.ms.toFixed(0)} ms), major ${major.count} (${major.ms.toFixed(0)} ms)`;
    })
    .join('\n');
}

const out: string[] = [`bench/gc.ts — ${new Date().toISOString()}, node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}${values.bundle ? `, bundle ${values.bundle}` : ''}`];
try {
  await sleep(settleMs);
  out.push(memoryRow('fresh', await snapshots()));
  const bulk = socksConnector(pair.socksPort, servers.ports.trafficTcpPort, true);
  const s0 = await snapshots();
  await download(await bulk(), sizeMb * 1048576, TRANSFER_TIMEOUT_MS);
  await upload(await bulk(), sizeMb * 1048576, TRANSFER_TIMEOUT_MS);
  const s1 = await snapshots();
  out.push(costRow(`${sizeMb} MiB each way`, s0, s1, 2 * sizeMb, 'ms/MiB', 1));
  await sleep(settleMs);
  out.push(memoryRow('after transfer', await snapshots()));
  if (sustainRounds > 0) {
    const perRound = roles.map(() => ({ cpu: [] as string[], majors: [] as number[] }));
    for (let r = 0; r < sustainRounds; r++) {
      const a = await snapshots();
      await upload(await bulk(), SUSTAIN_MB * 1048576, TRANSFER_TIMEOUT_MS);
      const b = await snapshots();
      for (const [i, p] of perRound.entries()) {
        const x = a[i] as Snapshot;
        const y = b[i] as Snapshot;
        p.cpu.push(((y.cpuMs - x.cpuMs) / SUSTAIN_MB).toFixed(2));
        p.majors.push(gcDelta(x, y, 'major').count);
      }
    }
    for (const [i, [name]] of roles.entries()) {
      const p = perRound[i] as { cpu: string[]; majors: number[] };
      out.push(`${`${sustainRounds} × ${SUSTAIN_MB} MiB up`.padEnd(14)} ${name}: CPU ms/MiB by round [${p.cpu.join(', ')}], full collections by round [${p.majors.join(', ')}]`);
    }
  }
  const echo = socksConnector(pair.socksPort, servers.ports.echoPort, true);
  const s2 = await snapshots();
  for (const s of await openIdleStreams(echo, streams, OPEN_CONCURRENCY, OPEN_DEADLINE_MS)) s.destroy();
  await sleep(1000);
  const s3 = await snapshots();
  out.push(costRow(`${streams} streams`, s2, s3, streams, 'µs/stream', 1000));
  const held = await openIdleStreams(echo, streams, OPEN_CONCURRENCY, OPEN_DEADLINE_MS);
  await sleep(settleMs);
  out.push(memoryRow(`${held.length} idle`, await snapshots()));
  for (const s of held) s.destroy();
} finally {
  await pair.stop();
  await servers.close();
  rmSync(probeDir, { recursive: true, force: true });
}
process.stdout.write(`${out.join('\n')}\n`);
process.exit(0);
