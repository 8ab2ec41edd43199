/** Command-line and environment options for bench/run.ts. */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from './daemons.js';

export type Section = 'throughput' | 'latency' | 'rss' | 'slowpath';
const SECTIONS: readonly Section[] = ['throughput', 'latency', 'rss', 'slowpath'];

export interface BenchOptions {
  quick: boolean;
  /** Bytes per transfer, each way, identical for all three paths. */
  sizeBytes: number;
  reps: number;
  latencySamples: number;
  latencyWarmup: number;
  /** Samples per client and delay in the slow-path section. */
  slowSamples: number;
  idleStreams: number;
  /** How long RSS is sampled (1 Hz) before a value counts as settled. */
  settleMs: number;
  sections: Set<Section>;
  /** Bytes each path moves each way before the throughput reps (null: the smaller of 16 MiB and the transfer size). */
  warmupBytes: number | null;
  /** Skip Postern (harness development while the binary does not build). */
  baselinesOnly: boolean;
  /** Skip the transport=h2 pair (measured beside ws by default). */
  noH2: boolean;
  /** SOCKS greeting and CONNECT in one write. */
  pipeline: boolean;
  cpuProf: boolean;
  /** Total time the bench may spend waiting for other processes to quieten (0: never wait). */
  quietBudgetMs: number;
  logLevel: string;
  /** Run this JS bundle instead of bin/postern (compare builds; it must resolve node_modules). */
  bundle: string | null;
  bridgeLimits: Record<string, number>;
  out: string;
}

export const USAGE = `Usage: npm run bench -- [options]      (or: tsx bench/run.ts [options])

  --quick              small sizes: 16 MiB transfers, 2 reps, 100 latency samples, 1000 idle streams, shorter settling
  --size-mb N          MiB per transfer, each way (default 256; env POSTERN_BENCH_SIZE_MB)
  --reps N             runs per throughput case; the median is reported (default 3)
  --warmup-mb N        MiB each path moves each way before the throughput reps (default: 16, or the
                       transfer size if smaller); the daemons' JIT needs a few hundred MiB to settle
  --samples N          new-stream latency samples per path (default 300)
  --slow-samples N     new-stream samples per client and delay over the delay relay (default 40; quick 20)
  --streams N          idle streams for the RSS measurement (default 1000)
  --settle-ms N        RSS sampling window before a value counts as settled (default 12000)
  --only LIST          comma-separated subset of: throughput,latency,rss,slowpath
  --baselines-only     direct TCP, TLS pair and relay floor only (no Postern daemons)
  --no-h2              measure the WebSocket transport only (default: h2 beside it)
  --no-pipeline        wait for the SOCKS method reply before sending CONNECT
  --cpu-prof           run the daemons under node --cpu-prof (profiles in bench/results/prof-*/)
  --quiet-budget-s N   on a shared machine, wait up to N s in total (≤ 30 s per measurement) for other
                       processes to use < 25% of a core before measuring (default 300; 0 = never wait)
  --log-level L        daemons' log level (default info)
  --bundle FILE        run this JS bundle instead of bin/postern (e.g. another build's dist/postern.js,
                       with its chunks beside it (copy the whole dist/), placed where it resolves this
                       repo's node_modules); npm run bench still builds dist/
  --bridge-limit N=V   set limit N (src/core/limits.ts) in the bridge's config, e.g. STREAM_WINDOW_BYTES=4194304
                       (repeatable; the client has no config file, so this tunes the bridge side only)
  --out PATH           JSON output (default bench/results/latest.json)
  -h, --help`;

function positiveInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}: expected a positive integer, got "${v}"`);
  return n;
}

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      'size-mb': { type: 'string' },
      reps: { type: 'string' },
      'warmup-mb': { type: 'string' },
      samples: { type: 'string' },
      'slow-samples': { type: 'string' },
      streams: { type: 'string' },
      'settle-ms': { type: 'string' },
      only: { type: 'string' },
      'baselines-only': { type: 'boolean', default: false },
      'no-h2': { type: 'boolean', default: false },
      'no-pipeline': { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
      'quiet-budget-s': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      bundle: { type: 'string' },
      'bridge-limit': { type: 'string', multiple: true },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const quick = values.quick === true;
  const sizeMiB = positiveInt('--size-mb', values['size-mb'] ?? process.env.POSTERN_BENCH_SIZE_MB, quick ? 16 : 256);
  const sections = new Set<Section>();
  for (const s of (values.only ?? SECTIONS.join(',')).split(',').map((x) => x.trim()).filter(Boolean)) {
    if (!SECTIONS.includes(s as Section)) throw new Error(`--only: unknown section "${s}" (use ${SECTIONS.join(', ')})`);
    sections.add(s as Section);
  }
  const bridgeLimits: Record<string, number> = {};
  for (const kv of values['bridge-limit'] ?? []) {
    const m = /^([A-Z_]+)=(\d+)$/.exec(kv);
    if (!m) throw new Error(`--bridge-limit: expected NAME=INTEGER, got "${kv}"`);
    bridgeLimits[m[1] as string] = Number(m[2]);
  }
  return {
    quick,
    bridgeLimits,
    sizeBytes: sizeMiB * 1024 * 1024,
    reps: positiveInt('--reps', values.reps, quick ? 2 : 3),
    latencySamples: positiveInt('--samples', values.samples, quick ? 100 : 300),
    latencyWarmup: quick ? 20 : 50,
    slowSamples: positiveInt('--slow-samples', values['slow-samples'], quick ? 20 : 40),
    idleStreams: positiveInt('--streams', values.streams, 1000),
    settleMs: positiveInt('--settle-ms', values['settle-ms'], quick ? 5000 : 12_000),
    sections,
    warmupBytes: values['warmup-mb'] === undefined ? null : positiveInt('--warmup-mb', values['warmup-mb'], 16) * 1024 * 1024,
    baselinesOnly: values['baselines-only'] === true,
    noH2: values['no-h2'] === true,
    pipeline: values['no-pipeline'] !== true,
    cpuProf: values['cpu-prof'] === true,
    quietBudgetMs: values['quiet-budget-s'] === '0' ? 0 : positiveInt('--quiet-budget-s', values['quiet-budget-s'], 300) * 1000,
    logLevel: values['log-level'] ?? 'info',
    bundle: values.bundle ?? null,
    out: path.resolve(values.out ?? path.join(ROOT, 'bench', 'results', 'latest.json')),
  };
}
