/**
 * Postern benchmark, loopback only: `npm run bench` (builds first), options after `--` (see --help).
 *
 *   1. single-stream throughput, download and upload: Postern (our SOCKS5 client → client daemon →
 *      wss → bridge daemon → TCP server) vs direct TCP to the same server vs a plain Node TLS pair
 *      vs the relay floor (bench/floor-relay.mjs: two Node processes that pipe() one TLS connection
 *      per stream, the least a Node tunnel does);
 *   2. new-stream latency on a warm tunnel: SOCKS CONNECT + first echoed byte vs a direct TCP
 *      connect + first echoed byte;
 *   3. RSS of both daemons at rest and with N idle streams open (fresh daemons);
 *   4. new stream over a slow path: a delay relay between client and bridge, time to first byte as
 *      a multiple of the tunnel RTT, default (optimistic) and --exact-replies side by side.
 *
 * Prints a table on stdout (progress on stderr) and writes JSON to bench/results/latest.json.
 * Exits 0 whether or not the targets are met; 1 only if the bench could not run.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LAUNCHER_NODE_FLAGS } from '../src/cli/launcher-flags.js';
import { selfSignedCert, type CertPair } from './certs.js';
import { ROOT, startFloorPair, startPair, useBundle, type Daemon, type FloorPair, type Pair } from './daemons.js';
import { connectEchoMicros, directConnector, openIdleStreams, socksConnector, tlsConnector, type Connector } from './measure.js';
import { USAGE, parseOptions, type BenchOptions } from './options.js';
import { readCpuMs, readMem, readSystemCpuMs, type MemSample } from './proc.js';
import { startServers, type ServerHost } from './server-host.js';
import { max, median, quantile, sleep } from './stats.js';
import { download, upload } from './throughput.js';
import { measureSlowPath, slowPathReport, type SlowCase } from './slowpath.js';

// ── targets (from the issue) ─────────────────────────────────────────────────────────────────
/** Issue 12: single-stream download and upload each at least half of the raw TLS pair (was 35 % in the first version). */
const TARGET_THROUGHPUT_VS_TLS = 0.5;
const TARGET_LATENCY_VS_DIRECT = 2.5;
const TARGET_RSS_PER_STREAM_KIB = 16;
/** Issue 12: RSS of each daemon, fresh and with the idle streams open (default mode), MiB. */
const TARGET_RSS_FRESH_MIB = 45;
const TARGET_RSS_IDLE_MIB = 80;
/** Bulk transfer each way before the RSS warm-up (at most; --size-mb if smaller). */
const RSS_BULK_MAX_BYTES = 64 * 1024 * 1024;

/** Longest wait for a quiet machine before one measurement (see waitQuiet). */
const QUIET_MAX_WAIT_MS = 30_000;
/** Latency samples per path between two quiet checks. */
const LATENCY_BLOCK = 50;

/** Handshakes in flight while opening idle streams. */
const IDLE_OPEN_CONCURRENCY = 50;
/** Upper bound for opening all idle streams. */
const IDLE_OPEN_DEADLINE_MS = 120_000;
/** How long closed streams may take to disappear at the far end. */
const CLOSE_CHECK_MS = 15_000;
const DAEMON_START_TIMEOUT_MS = 20_000;

type PathName = 'direct' | 'tls' | 'floor' | 'postern' | 'postern-h2';
type Direction = 'download' | 'upload';
const PATH_LABEL: Record<PathName, string> = {
  direct: 'direct TCP',
  tls: 'Node TLS pair',
  floor: 'Node TLS relay (floor)',
  postern: 'Postern (SOCKS→wss→bridge)',
  'postern-h2': 'Postern (SOCKS→h2→bridge)',
};
/** The HTTP/2 transport against WebSocket, side by side (issue 13): throughput ≥ 70 %, new-stream latency ≤ 110 %. */
const TARGET_H2_THROUGHPUT_VS_WS = 0.7;
const TARGET_H2_LATENCY_VS_WS = 1.1;

const log = (msg: string): void => {
  process.stderr.write(`[bench] ${msg}\n`);
};

interface CpuSnapshot {
  wall: bigint;
  system: { busyMs: number };
  bench: NodeJS.CpuUsage;
  /** CPU ms of the daemons in sidePids. */
  side: number;
  client?: number;
  bridge?: number;
}
/**
 * CPU use over an interval in % of one core: per process, and what every other process on the
 * machine used meanwhile (`others`; on a shared machine, anything well above zero means noise).
 */
interface CpuPct {
  bench: number;
  client?: number;
  bridge?: number;
  others: number;
}

function cpuSnapshot(pair: Pair | null): CpuSnapshot {
  return {
    wall: process.hrtime.bigint(),
    system: readSystemCpuMs(),
    bench: process.cpuUsage(),
    side: sideCpuMs(),
    ...(pair ? { client: readCpuMs(pair.client.pid), bridge: readCpuMs(pair.bridge.pid) } : {}),
  };
}

/**
 * Daemons the bench runs besides `pair` (the h2 pair, the floor relay): their CPU is the bench's
 * own doing, not other processes' noise. Read at both ends of an interval by cpuSnapshot.
 */
const sidePids = new Set<number>();
const sideCpuMs = (): number => {
  let ms = 0;
  for (const pid of sidePids) {
    try {
      ms += readCpuMs(pid);
    } catch {
      // exited meanwhile
    }
  }
  return ms;
};

function cpuSince(a: CpuSnapshot, pair: Pair | null): CpuPct {
  const b = cpuSnapshot(pair);
  const wallMs = Number(b.wall - a.wall) / 1e6;
  const d = process.cpuUsage(a.bench);
  const pct = (ms: number): number => Math.round((ms / wallMs) * 100);
  const out: CpuPct = { bench: pct((d.user + d.system) / 1000), others: 0 };
  let ours = (d.user + d.system) / 1000 + (b.side - a.side);
  if (pair && a.client !== undefined && a.bridge !== undefined) {
    out.client = pct((b.client as number) - a.client);
    out.bridge = pct((b.bridge as number) - a.bridge);
    ours += (b.client as number) - a.client + ((b.bridge as number) - a.bridge);
  }
  out.others = Math.max(0, pct(b.system.busyMs - a.system.busyMs - ours));
  return out;
}

/**
 * On a shared machine: waits (bounded) until the other processes have used less than
 * QUIET_OTHERS_PCT of one core over a QUIET_WINDOW_MS window. Returns what they used in the
 * last window; the caller records it. Never waits past the remaining budget.
 */
const QUIET_OTHERS_PCT = 25;
const QUIET_WINDOW_MS = 500;
let quietBudgetMs = 0;
let quietWaitedMs = 0;

async function waitQuiet(pair: Pair | null, maxMs: number): Promise<number> {
  const t0 = Date.now();
  const limit = Math.min(maxMs, quietBudgetMs - quietWaitedMs);
  let others = 0;
  for (;;) {
    const a = cpuSnapshot(pair);
    await sleep(QUIET_WINDOW_MS);
    others = cpuSince(a, pair).others;
    if (others < QUIET_OTHERS_PCT || Date.now() - t0 >= limit) break;
  }
  const waited = Date.now() - t0 - QUIET_WINDOW_MS;
  quietWaitedMs += Math.max(0, waited);
  if (others >= QUIET_OTHERS_PCT) log(`other processes busy (${others}% of one core); measuring anyway after waiting ${(waited / 1000).toFixed(1)} s`);
  else if (waited >= 1000) log(`waited ${(waited / 1000).toFixed(1)} s for other processes to quieten (now ${others}% of one core)`);
  return others;
}

// ── 1. throughput ────────────────────────────────────────────────────────────────────────────
interface Run {
  mbps: number;
  ms: number;
  cpu: CpuPct;
}
interface ThroughputCase {
  path: PathName;
  direction: Direction;
  runs: Run[];
  /** Median over runs, MB/s (10^6 bytes per second). */
  medianMBps: number;
  bestMBps: number;
}

async function measureThroughput(
  opts: BenchOptions,
  connectors: Partial<Record<PathName, Connector>>,
  pair: Pair | null,
): Promise<ThroughputCase[]> {
  const size = opts.sizeBytes;
  const timeoutMs = Math.max(60_000, Math.ceil(size / 20e6) * 1000); // never slower than 20 MB/s
  const paths = (Object.keys(connectors) as PathName[]).filter((p) => connectors[p]);
  const cases: ThroughputCase[] = [];
  const once = async (p: PathName, dir: Direction, bytes: number): Promise<Run> => {
    if (bytes === size) await waitQuiet(pair, QUIET_MAX_WAIT_MS);
    const sock = await (connectors[p] as Connector)();
    const before = cpuSnapshot(pair);
    const t = dir === 'download' ? await download(sock, bytes, timeoutMs) : await upload(sock, bytes, timeoutMs);
    return { mbps: t.mbps, ms: t.ms, cpu: cpuSince(before, pair) };
  };
  const warm = opts.warmupBytes ?? Math.min(size, 16 * 1024 * 1024);
  for (const dir of ['download', 'upload'] as Direction[]) {
    for (const p of paths) {
      log(`throughput warm-up: ${p} ${dir} ${(warm / 1048576).toFixed(0)} MiB`);
      await once(p, dir, warm);
    }
  }
  for (const dir of ['download', 'upload'] as Direction[]) {
    const byPath = new Map<PathName, Run[]>(paths.map((p) => [p, []]));
    // Interleave the paths so that drift in machine load spreads over all of them.
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const p of paths) {
        const r = await once(p, dir, size);
        byPath.get(p)!.push(r);
        const cpu = Object.entries(r.cpu).map(([k, v]) => `${k} ${v}%`).join(', ');
        log(`throughput ${dir} ${p} #${rep + 1}: ${r.mbps.toFixed(1)} MB/s in ${(r.ms / 1000).toFixed(2)} s (cpu ${cpu})`);
        await sleep(200);
      }
    }
    for (const p of paths) {
      const runs = byPath.get(p)!;
      cases.push({ path: p, direction: dir, runs, medianMBps: median(runs.map((r) => r.mbps)), bestMBps: max(runs.map((r) => r.mbps)) });
    }
  }
  return cases;
}

// ── 2. new-stream latency ────────────────────────────────────────────────────────────────────
interface LatencyResult {
  samples: number;
  warmup: number;
  socksMode: 'pipelined' | 'sequential';
  direct: { medianUs: number; p99Us: number; maxUs: number };
  postern: { medianUs: number; p99Us: number; maxUs: number };
  ratioMedian: number;
  ratioP99: number;
  cpu: { others: number };
}

async function measureLatency(opts: BenchOptions, echoPort: number, pair: Pair): Promise<LatencyResult> {
  const direct = directConnector(echoPort);
  let mode: 'pipelined' | 'sequential' = opts.pipeline ? 'pipelined' : 'sequential';
  let socks = socksConnector(pair.socksPort, echoPort, opts.pipeline);
  if (opts.pipeline) {
    try {
      await connectEchoMicros(socks);
    } catch (err) {
      log(`pipelined SOCKS greeting+CONNECT failed (${(err as Error).message}); falling back to sequential`);
      mode = 'sequential';
      socks = socksConnector(pair.socksPort, echoPort, false);
    }
  }
  log(`latency warm-up: ${opts.latencyWarmup} samples per path (SOCKS ${mode})`);
  for (let i = 0; i < opts.latencyWarmup; i++) {
    await connectEchoMicros(direct);
    await connectEchoMicros(socks);
  }
  const d: number[] = [];
  const p: number[] = [];
  // Blocks of LATENCY_BLOCK samples, each started on a quiet machine; `others` is their mean.
  const othersPerBlock: number[] = [];
  for (let i = 0; i < opts.latencySamples; ) {
    await waitQuiet(pair, QUIET_MAX_WAIT_MS);
    const before = cpuSnapshot(pair);
    for (const end = Math.min(opts.latencySamples, i + LATENCY_BLOCK); i < end; i++) {
      d.push(await connectEchoMicros(direct));
      p.push(await connectEchoMicros(socks));
    }
    othersPerBlock.push(cpuSince(before, pair).others);
  }
  const cpu = { others: Math.round(othersPerBlock.reduce((a, b) => a + b, 0) / othersPerBlock.length) };
  const summary = (xs: number[]) => ({ medianUs: median(xs), p99Us: quantile(xs, 0.99), maxUs: max(xs) });
  const ds = summary(d);
  const ps = summary(p);
  log(`latency: direct median ${ds.medianUs.toFixed(0)} µs, Postern median ${ps.medianUs.toFixed(0)} µs`);
  return {
    samples: opts.latencySamples,
    warmup: opts.latencyWarmup,
    socksMode: mode,
    direct: ds,
    postern: ps,
    ratioMedian: ps.medianUs / ds.medianUs,
    ratioP99: ps.p99Us / ds.p99Us,
    cpu,
  };
}

// ── 3. RSS with idle streams ─────────────────────────────────────────────────────────────────
interface Settled {
  /** Median of the last three 1 Hz samples, KiB. */
  rssKiB: number;
  anonKiB: number;
  samplesKiB: number[];
}
interface RssSide {
  /** Fresh daemon, tunnel up, nothing carried yet. */
  fresh: Settled;
  start: Settled;
  withStreams: Settled;
  afterClose: Settled;
  growthPerStreamKiB: number;
  anonGrowthPerStreamKiB: number;
}
interface RssResult {
  streams: number;
  /** Bytes moved each way through one stream before the warm-up (0: none). */
  bulkBytes: number;
  openMs: number;
  client: RssSide;
  bridge: RssSide;
  /** Connections still open at the echo server CLOSE_CHECK_MS after the bench closed all its streams. */
  leftOpenAfterClose: number;
  closeDrainMs: number;
  /**
   * The relay floor's processes beside Postern's: "fresh" after one stream (its TLS handshake)
   * and "at rest" after the same bulk transfer. No idle streams: it has no multiplexing.
   */
  floor: { client: { fresh: Settled; start: Settled }; bridge: { fresh: Settled; start: Settled } };
}

async function settle(pids: number[], ms: number): Promise<Settled[]> {
  const samples: MemSample[][] = pids.map(() => []);
  const rounds = Math.max(3, Math.round(ms / 1000));
  for (let i = 0; i < rounds; i++) {
    await sleep(1000);
    pids.forEach((pid, k) => samples[k]!.push(readMem(pid)));
  }
  return samples.map((s) => {
    const last = s.slice(-3);
    return {
      rssKiB: median(last.map((x) => x.rssKiB)),
      anonKiB: median(last.map((x) => x.anonKiB)),
      samplesKiB: s.map((x) => x.rssKiB),
    };
  });
}

async function measureRss(opts: BenchOptions, servers: ServerHost, nodeFlags: string[], tlsCert: CertPair): Promise<RssResult> {
  log('rss: starting a fresh client/bridge pair and the relay floor');
  const pair = await startPair({ nodeFlags, bridgeLimits: opts.bridgeLimits, logLevel: opts.logLevel, startTimeoutMs: DAEMON_START_TIMEOUT_MS });
  let floor: FloorPair | null = null;
  try {
    floor = await startFloorPair(tlsCert.key, tlsCert.cert, DAEMON_START_TIMEOUT_MS);
    const floorEcho = socksConnector(floor.socksPort, servers.ports.echoPort, opts.pipeline);
    await connectEchoMicros(floorEcho);
    const echoPort = servers.ports.echoPort;
    const connect = socksConnector(pair.socksPort, echoPort, opts.pipeline);
    const waitEchoOpen = async (want: (n: number) => boolean, ms: number): Promise<{ n: number; ms: number }> => {
      const t0 = Date.now();
      let n = (await servers.stats()).echoOpen;
      while (!want(n) && Date.now() - t0 < ms) {
        await sleep(100);
        n = (await servers.stats()).echoOpen;
      }
      return { n, ms: Date.now() - t0 };
    };
    const pids = [pair.client.pid, pair.bridge.pid];
    log(`rss: settling ${opts.settleMs} ms (fresh daemons)`);
    const [cf, bf, fcf, fbf] = await settle([...pids, floor.client.pid, floor.bridge.pid], opts.settleMs);
    // A bulk transfer each way first, as a real session has (V8's young generation grows under it).
    const bulkBytes = Math.min(opts.sizeBytes, RSS_BULK_MAX_BYTES);
    const bulk = socksConnector(pair.socksPort, servers.ports.trafficTcpPort, opts.pipeline);
    log(`rss: bulk transfer, ${(bulkBytes / 1048576).toFixed(0)} MiB each way`);
    await download(await bulk(), bulkBytes, 120_000);
    await upload(await bulk(), bulkBytes, 120_000);
    const floorBulk = socksConnector(floor.socksPort, servers.ports.trafficTcpPort, opts.pipeline);
    await download(await floorBulk(), bulkBytes, 120_000);
    await upload(await floorBulk(), bulkBytes, 120_000);
    // Warm-up: one full cycle of the same number of streams, opened, echoed and closed. The heap
    // (V8 grows its young generation under allocation pressure) and malloc arenas reach the size
    // the measured cycle needs, so the growth below is what the open streams hold, not one-off growth.
    log(`rss: warm-up (${opts.idleStreams} streams opened, echoed, closed)`);
    const warm = await openIdleStreams(connect, opts.idleStreams, IDLE_OPEN_CONCURRENCY, IDLE_OPEN_DEADLINE_MS);
    for (const s of warm) s.destroy();
    await waitEchoOpen((n) => n === 0, CLOSE_CHECK_MS);
    log(`rss: settling ${opts.settleMs} ms (baseline)`);
    const [c0, b0, fc0, fb0] = await settle([...pids, floor.client.pid, floor.bridge.pid], opts.settleMs);
    const how = await floor.stop();
    floor = null;
    log(`rss: floor relay stopped: client ${how.client}; bridge ${how.bridge}`);
    log(`rss: opening ${opts.idleStreams} idle streams`);
    const t0 = Date.now();
    const socks = await openIdleStreams(connect, opts.idleStreams, IDLE_OPEN_CONCURRENCY, IDLE_OPEN_DEADLINE_MS);
    const openMs = Date.now() - t0;
    const atServer = await waitEchoOpen((n) => n >= opts.idleStreams, 5_000);
    if (atServer.n < opts.idleStreams) throw new Error(`only ${atServer.n}/${opts.idleStreams} idle streams reached the echo server`);
    log(`rss: ${socks.length} open in ${openMs} ms; settling ${opts.settleMs} ms`);
    const [c1, b1] = await settle(pids, opts.settleMs);
    for (const s of socks) s.destroy();
    const drained = await waitEchoOpen((n) => n === 0, CLOSE_CHECK_MS);
    log(`rss: closed; ${drained.n} still open at the echo server after ${drained.ms} ms`);
    const [c2, b2] = await settle(pids, Math.min(opts.settleMs, 5_000));
    const side = (f: Settled, a: Settled, b: Settled, c: Settled): RssSide => ({
      fresh: f,
      start: a,
      withStreams: b,
      afterClose: c,
      growthPerStreamKiB: (b.rssKiB - a.rssKiB) / opts.idleStreams,
      anonGrowthPerStreamKiB: (b.anonKiB - a.anonKiB) / opts.idleStreams,
    });
    return {
      streams: opts.idleStreams,
      bulkBytes,
      openMs,
      client: side(cf!, c0!, c1!, c2!),
      bridge: side(bf!, b0!, b1!, b2!),
      leftOpenAfterClose: drained.n,
      closeDrainMs: drained.ms,
      floor: { client: { fresh: fcf!, start: fc0! }, bridge: { fresh: fbf!, start: fb0! } },
    };
  } finally {
    if (floor) await floor.stop();
    const how = await pair.stop();
    log(`rss pair stopped: client ${how.client}; bridge ${how.bridge}`);
  }
}

// ── report ───────────────────────────────────────────────────────────────────────────────────
interface Target {
  name: string;
  value: number;
  limit: string;
  pass: boolean;
}

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');

function gitCommit(): string | null {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head}+uncommitted src changes` : head;
  } catch {
    return null;
  }
}

function report(
  opts: BenchOptions,
  meta: Record<string, unknown>,
  tput: ThroughputCase[] | null,
  lat: LatencyResult | null,
  rss: RssResult | null,
  slow: SlowCase[] | null = null,
  latH2: LatencyResult | null = null,
): { text: string; targets: Target[] } {
  const out: string[] = [];
  const targets: Target[] = [];
  out.push(`Postern benchmark — ${meta.date}  node ${meta.node}, ${meta.cpus} × ${meta.cpuModel}, commit ${meta.commit ?? '?'}`);
  out.push(
    `daemons: node ${[...LAUNCHER_NODE_FLAGS, ''].join(' ')}${meta.bundle}, log level ${opts.logLevel}; they report native ws masking: client ${meta.clientNativeMasking ?? '?'}, bridge ${meta.bridgeNativeMasking ?? '?'}` +
      (meta.bundledBufferutil ? ' — but the bundle contains bufferutil, so ws in it masks in JS' : '') +
      (Object.keys(opts.bridgeLimits).length ? `; bridge limits ${JSON.stringify(opts.bridgeLimits)}` : ''),
  );
  if (tput) {
    const mib = opts.sizeBytes / 1048576;
    out.push('');
    out.push(`1. Single-stream throughput, ${mib} MiB per transfer, MB/s = 10^6 B/s, median of ${opts.reps} runs (best in brackets)`);
    out.push(`   ${pad('', 28)}${lpad('download', 20)}${lpad('upload', 20)}`);
    const get = (p: PathName, d: Direction) => tput.find((c) => c.path === p && c.direction === d);
    for (const p of ['direct', 'tls', 'floor', 'postern', 'postern-h2'] as PathName[]) {
      const dl = get(p, 'download');
      const ul = get(p, 'upload');
      if (!dl || !ul) continue;
      const cell = (c: ThroughputCase) => `${c.medianMBps.toFixed(1)} (${c.bestMBps.toFixed(1)})`;
      out.push(`   ${pad(PATH_LABEL[p], 28)}${lpad(cell(dl), 20)}${lpad(cell(ul), 20)}`);
    }
    const pd = get('postern', 'download');
    const pu = get('postern', 'upload');
    const td = get('tls', 'download');
    const tu = get('tls', 'upload');
    const dd = get('direct', 'download');
    const du = get('direct', 'upload');
    if (pd && pu && td && tu) {
      const rd = pd.medianMBps / td.medianMBps;
      const ru = pu.medianMBps / tu.medianMBps;
      out.push(`   ${pad('Postern / TLS pair', 28)}${lpad(pct(rd), 20)}${lpad(pct(ru), 20)}   target ≥ ${pct(TARGET_THROUGHPUT_VS_TLS)}: download ${verdict(rd >= TARGET_THROUGHPUT_VS_TLS)}, upload ${verdict(ru >= TARGET_THROUGHPUT_VS_TLS)}`);
      targets.push({ name: 'throughput download, Postern/TLS', value: rd, limit: `>= ${TARGET_THROUGHPUT_VS_TLS}`, pass: rd >= TARGET_THROUGHPUT_VS_TLS });
      targets.push({ name: 'throughput upload, Postern/TLS', value: ru, limit: `>= ${TARGET_THROUGHPUT_VS_TLS}`, pass: ru >= TARGET_THROUGHPUT_VS_TLS });
      if (dd && du) out.push(`   ${pad('Postern / direct', 28)}${lpad(pct(pd.medianMBps / dd.medianMBps), 20)}${lpad(pct(pu.medianMBps / du.medianMBps), 20)}`);
      const fd = get('floor', 'download');
      const fu = get('floor', 'upload');
      if (fd && fu) {
        out.push(`   ${pad('relay floor / TLS pair', 28)}${lpad(pct(fd.medianMBps / td.medianMBps), 20)}${lpad(pct(fu.medianMBps / tu.medianMBps), 20)}   (a bare Node relay: two processes, pipe(), one TLS connection per stream)`);
        out.push(`   ${pad('Postern / relay floor', 28)}${lpad(pct(pd.medianMBps / fd.medianMBps), 20)}${lpad(pct(pu.medianMBps / fu.medianMBps), 20)}`);
      }
      const cpuMed = (c: ThroughputCase, k: keyof CpuPct) => median(c.runs.map((r) => r.cpu[k] ?? Number.NaN)).toFixed(0);
      out.push(
        `   CPU during Postern runs (% of one core, median): download client ${cpuMed(pd, 'client')}%, bridge ${cpuMed(pd, 'bridge')}%, bench ${cpuMed(pd, 'bench')}%;` +
          ` upload client ${cpuMed(pu, 'client')}%, bridge ${cpuMed(pu, 'bridge')}%, bench ${cpuMed(pu, 'bench')}%`,
      );
    }
    const hd = get('postern-h2', 'download');
    const hu = get('postern-h2', 'upload');
    if (pd && pu && hd && hu) {
      const rd = hd.medianMBps / pd.medianMBps;
      const ru = hu.medianMBps / pu.medianMBps;
      const t = TARGET_H2_THROUGHPUT_VS_WS;
      out.push(`   ${pad('Postern h2 / ws', 28)}${lpad(pct(rd), 20)}${lpad(pct(ru), 20)}   target ≥ ${pct(t)}: download ${verdict(rd >= t)}, upload ${verdict(ru >= t)}`);
      targets.push({ name: 'throughput download, h2/ws', value: rd, limit: `>= ${t}`, pass: rd >= t });
      targets.push({ name: 'throughput upload, h2/ws', value: ru, limit: `>= ${t}`, pass: ru >= t });
    }
  }
  if (lat) {
    out.push('');
    out.push(`2. New stream on a warm tunnel: connect + first echoed byte, ${lat.samples} sequential samples per path after ${lat.warmup} warm-up (SOCKS ${lat.socksMode})`);
    out.push(`   ${pad('', 28)}${lpad('median µs', 12)}${lpad('p99 µs', 12)}${lpad('max µs', 12)}`);
    const row = (label: string, r: LatencyResult['direct']) =>
      `   ${pad(label, 28)}${lpad(r.medianUs.toFixed(0), 12)}${lpad(r.p99Us.toFixed(0), 12)}${lpad(r.maxUs.toFixed(0), 12)}`;
    out.push(row('direct TCP', lat.direct));
    out.push(row('Postern SOCKS CONNECT', lat.postern));
    const ok = lat.ratioMedian <= TARGET_LATENCY_VS_DIRECT;
    out.push(`   ${pad('Postern / direct', 28)}${lpad(`${lat.ratioMedian.toFixed(2)}×`, 12)}${lpad(`${lat.ratioP99.toFixed(2)}×`, 12)}   target median ≤ ${TARGET_LATENCY_VS_DIRECT}×: ${verdict(ok)}`);
    targets.push({ name: 'new-stream latency median, Postern/direct', value: lat.ratioMedian, limit: `<= ${TARGET_LATENCY_VS_DIRECT}`, pass: ok });
    if (latH2) {
      out.push(row('direct TCP (h2 run)', latH2.direct));
      out.push(row('Postern h2 SOCKS CONNECT', latH2.postern));
      // Each run's own direct samples absorb the load that run saw: compare Postern/direct ratios.
      const r = latH2.ratioMedian / lat.ratioMedian;
      const okH2 = r <= TARGET_H2_LATENCY_VS_WS;
      out.push(`   ${pad('h2 / ws (of Postern/direct)', 28)}${lpad(`${r.toFixed(2)}×`, 12)}${lpad(`${(latH2.ratioP99 / lat.ratioP99).toFixed(2)}×`, 12)}   target median ≤ ${TARGET_H2_LATENCY_VS_WS}×: ${verdict(okH2)}`);
      targets.push({ name: 'new-stream latency median, h2/ws', value: r, limit: `<= ${TARGET_H2_LATENCY_VS_WS}`, pass: okH2 });
    }
  }
  if (rss) {
    out.push('');
    out.push(`3. RSS (VmRSS, KiB; median of the last 3 of ${Math.max(3, Math.round(opts.settleMs / 1000))} samples at 1 Hz), ${rss.streams} idle streams (opened in ${rss.openMs} ms), fresh daemons;`);
    out.push(
      `   "fresh" is the daemons just started, tunnel up; then ${(rss.bulkBytes / 1048576).toFixed(0)} MiB each way through one stream, and "at rest" is after a warm-up cycle that opened, echoed and closed ${rss.streams} streams`,
    );
    out.push(`   ${pad('', 14)}${lpad('fresh', 10)}${lpad('at rest', 10)}${lpad(`${rss.streams} idle`, 12)}${lpad('KiB/stream', 12)}${lpad('(anon)', 9)}${lpad('after close', 13)}`);
    const mib = (kib: number): number => kib / 1024;
    for (const name of ['client', 'bridge'] as const) {
      const s = rss[name];
      const ok = s.growthPerStreamKiB <= TARGET_RSS_PER_STREAM_KIB;
      const okFresh = mib(s.fresh.rssKiB) <= TARGET_RSS_FRESH_MIB;
      const okIdle = mib(s.withStreams.rssKiB) <= TARGET_RSS_IDLE_MIB;
      out.push(
        `   ${pad(name, 14)}${lpad(String(s.fresh.rssKiB), 10)}${lpad(String(s.start.rssKiB), 10)}${lpad(String(s.withStreams.rssKiB), 12)}${lpad(s.growthPerStreamKiB.toFixed(1), 12)}` +
          `${lpad(s.anonGrowthPerStreamKiB.toFixed(1), 9)}${lpad(String(s.afterClose.rssKiB), 13)}   target ≤ ${TARGET_RSS_PER_STREAM_KIB} KiB/stream: ${verdict(ok)};` +
          ` fresh ${mib(s.fresh.rssKiB).toFixed(1)} MiB ≤ ${TARGET_RSS_FRESH_MIB}: ${verdict(okFresh)}; ${rss.streams} idle ${mib(s.withStreams.rssKiB).toFixed(1)} MiB ≤ ${TARGET_RSS_IDLE_MIB}: ${verdict(okIdle)}`,
      );
      targets.push({ name: `RSS growth per idle stream, ${name}`, value: s.growthPerStreamKiB, limit: `<= ${TARGET_RSS_PER_STREAM_KIB} KiB`, pass: ok });
      targets.push({ name: `RSS fresh, ${name}`, value: mib(s.fresh.rssKiB), limit: `<= ${TARGET_RSS_FRESH_MIB} MiB`, pass: okFresh });
      targets.push({ name: `RSS with ${rss.streams} idle streams, ${name}`, value: mib(s.withStreams.rssKiB), limit: `<= ${TARGET_RSS_IDLE_MIB} MiB`, pass: okIdle });
    }
    for (const name of ['client', 'bridge'] as const) {
      const f = rss.floor[name];
      out.push(`   ${pad(`floor ${name}`, 14)}${lpad(String(f.fresh.rssKiB), 10)}${lpad(String(f.start.rssKiB), 10)}`);
    }
    out.push(`   (the relay floor, bench/floor-relay.mjs, beside them: a bare Node TLS relay after one stream, then after the same bulk transfer)`);
    out.push(`   after the bench closed all streams: ${rss.leftOpenAfterClose} still open at the echo server after ${rss.closeDrainMs} ms`);
  }
  if (slow) {
    const r = slowPathReport(slow);
    out.push('');
    out.push(...r.lines);
    targets.push(...r.targets);
  }
  const noise: string[] = [];
  if (tput) {
    const o = tput.flatMap((c) => c.runs.map((r) => r.cpu.others));
    noise.push(`throughput runs median ${median(o).toFixed(0)}%, max ${max(o).toFixed(0)}%`);
  }
  if (lat) noise.push(`latency samples ${lat.cpu.others}%`);
  if (noise.length) {
    out.push('');
    out.push(`CPU used by other processes on this machine meanwhile (% of one core; high = noisy figures): ${noise.join('; ')}`);
    out.push(
      `load average at start ${meta.loadStart}, at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')};` +
        ` waited ${((meta.quietWaitedMs as number) / 1000).toFixed(0)} s in total for quiet (each measurement starts when others < ${QUIET_OTHERS_PCT}% or after ${QUIET_MAX_WAIT_MS / 1000} s)`,
    );
  }
  if (targets.length) {
    out.push('');
    out.push(`Targets: ${targets.filter((t) => t.pass).length}/${targets.length} PASS`);
  }
  return { text: out.join('\n'), targets };
}

// ── main ─────────────────────────────────────────────────────────────────────────────────────
async function main(): Promise<number> {
  let opts: BenchOptions | 'help';
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const o = opts;
  quietBudgetMs = o.quietBudgetMs;
  if (o.bundle) useBundle(o.bundle);
  const resultsDir = path.dirname(o.out);
  mkdirSync(resultsDir, { recursive: true });
  const profDir = path.join(ROOT, 'bench', 'results', `prof-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const nodeFlags = o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  const meta: Record<string, unknown> = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? '?',
    kernel: os.release(),
    commit: gitCommit(),
    bundle: o.bundle ? path.relative(ROOT, path.resolve(o.bundle)) : 'bin/postern',
    bridgeLimits: o.bridgeLimits,
    loadStart: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    options: { ...o, sections: [...o.sections] },
  };

  // STACK.md trap: a bundled bufferutil cannot find its binary and ws silently masks in JS.
  try {
    const bundleFile = o.bundle ? path.resolve(o.bundle) : path.join(ROOT, 'dist', 'postern.js');
    // The bundle has no comments (tsup.config.ts): what it contains is in its source map.
    const sources = (JSON.parse(readFileSync(`${bundleFile}.map`, 'utf8')) as { sources?: string[] }).sources ?? [];
    meta.bundledBufferutil = sources.some((s) => s.includes('node_modules/bufferutil/'));
    if (meta.bundledBufferutil) log(`warning: ${path.relative(ROOT, bundleFile)} bundles bufferutil: ws in the daemons masks/unmasks in JS`);
  } catch {
    meta.bundledBufferutil = null;
  }
  log('generating the TLS certificate for the baseline pair');
  const { key, cert } = selfSignedCert();
  const servers = await startServers({ tlsKey: key, tlsCert: cert });
  log(`servers: traffic tcp ${servers.ports.trafficTcpPort}, traffic tls ${servers.ports.trafficTlsPort}, echo ${servers.ports.echoPort}`);
  let pair: Pair | null = null;
  let tput: ThroughputCase[] | null = null;
  let lat: LatencyResult | null = null;
  let latH2: LatencyResult | null = null;
  let h2Pair: Pair | null = null;
  let floor: FloorPair | null = null;
  let rss: RssResult | null = null;
  let slow: SlowCase[] | null = null;
  try {
    const needPair = !o.baselinesOnly && (o.sections.has('throughput') || o.sections.has('latency'));
    if (needPair) {
      log('starting client/bridge pair');
      pair = await startPair({ nodeFlags, bridgeLimits: o.bridgeLimits, logLevel: o.logLevel, startTimeoutMs: DAEMON_START_TIMEOUT_MS });
      log(`bridge pid ${pair.bridge.pid} port ${pair.bridgePort}; client pid ${pair.client.pid} socks port ${pair.socksPort}; tunnel up logged: ${pair.tunnelUpSeen}`);
      if (o.cpuProf) {
        mkdirSync(profDir, { recursive: true });
        writeFileSync(path.join(profDir, 'roles.json'), JSON.stringify({ [pair.client.pid]: 'client', [pair.bridge.pid]: 'bridge' }));
      }
      const starting = (d: Daemon) => d.seen.find((l) => l.msg === 'postern starting')?.nativeMasking;
      meta.clientNativeMasking = starting(pair.client);
      meta.bridgeNativeMasking = starting(pair.bridge);
      if (!o.noH2) {
        log('starting the transport=h2 client/bridge pair');
        h2Pair = await startPair({ nodeFlags, bridgeLimits: o.bridgeLimits, logLevel: o.logLevel, startTimeoutMs: DAEMON_START_TIMEOUT_MS, transport: 'h2' });
        log(`h2 bridge pid ${h2Pair.bridge.pid}; client pid ${h2Pair.client.pid} socks port ${h2Pair.socksPort}; tunnel up logged: ${h2Pair.tunnelUpSeen}`);
        sidePids.add(h2Pair.client.pid).add(h2Pair.bridge.pid);
      }
    }
    if (o.sections.has('throughput')) {
      log('starting the floor relay pair (bench/floor-relay.mjs)');
      floor = await startFloorPair(key, cert, DAEMON_START_TIMEOUT_MS);
      const floorPids = [floor.client.pid, floor.bridge.pid];
      for (const pid of floorPids) sidePids.add(pid);
      const connectors: Partial<Record<PathName, Connector>> = {
        direct: directConnector(servers.ports.trafficTcpPort),
        tls: tlsConnector(servers.ports.trafficTlsPort, cert),
        floor: socksConnector(floor.socksPort, servers.ports.trafficTcpPort, o.pipeline),
      };
      if (pair) connectors.postern = socksConnector(pair.socksPort, servers.ports.trafficTcpPort, o.pipeline);
      if (h2Pair) connectors['postern-h2'] = socksConnector(h2Pair.socksPort, servers.ports.trafficTcpPort, o.pipeline);
      tput = await measureThroughput(o, connectors, pair);
      const how = await floor.stop();
      floor = null;
      for (const pid of floorPids) sidePids.delete(pid);
      log(`floor relay stopped: client ${how.client}; bridge ${how.bridge}`);
    }
    if (o.sections.has('latency') && pair) lat = await measureLatency(o, servers.ports.echoPort, pair);
    if (o.sections.has('latency') && h2Pair) latH2 = await measureLatency(o, servers.ports.echoPort, h2Pair);
    if (h2Pair) {
      const how = await h2Pair.stop();
      log(`h2 pair stopped: client ${how.client}; bridge ${how.bridge}`);
      h2Pair = null;
    }
    sidePids.clear();
    if (pair) {
      const warnings = [...pair.client.seen, ...pair.bridge.seen].filter((l) => typeof l.level === 'number' && l.level >= 40);
      meta.daemonWarnings = warnings.slice(0, 20);
      const how = await pair.stop();
      log(`pair stopped: client ${how.client}; bridge ${how.bridge}`);
      pair = null;
    }
    // Never under --cpu-prof: the profiler's own memory would count as growth.
    if (o.sections.has('rss') && !o.baselinesOnly) rss = await measureRss(o, servers, [], { key, cert });
    if (o.sections.has('slowpath') && !o.baselinesOnly) {
      slow = await measureSlowPath(servers.ports.echoPort, o.slowSamples, { logLevel: o.logLevel, startTimeoutMs: DAEMON_START_TIMEOUT_MS, bridgeLimits: o.bridgeLimits }, log);
    }
  } finally {
    if (floor) await floor.stop();
    if (h2Pair) await h2Pair.stop();
    if (pair) {
      process.stderr.write(`[bench] client log tail:\n${pair.client.tailText()}\n[bench] bridge log tail:\n${pair.bridge.tailText()}\n`);
      await pair.stop();
    }
    await servers.close();
  }

  meta.quietWaitedMs = quietWaitedMs;
  const { text, targets } = report(o, meta, tput, lat, rss, slow, latH2);
  process.stdout.write(`\n${text}\n`);
  const json = { meta, throughput: tput, latency: lat, latencyH2: latH2, rss, slowPath: slow, targets, table: text.split('\n') };
  writeFileSync(o.out, `${JSON.stringify(json, null, 2)}\n`);
  if (o.cpuProf) log(`CPU profiles in ${profDir} (summarise: tsx bench/profile-summary.ts ${path.relative(ROOT, profDir)})`);
  log(`wrote ${path.relative(ROOT, o.out)}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`[bench] could not run: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
