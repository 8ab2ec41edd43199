/**
 * Runs the built binary the way a user does (node bin/postern …), reads its JSON log lines, and
 * ends it by PID: SIGTERM, then SIGKILL after a bounded wait. Every daemon started here is also
 * killed if the bench itself exits early.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LAUNCHER_NODE_FLAGS } from '../src/cli/launcher-flags.js';
import { withTimeout } from './stats.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** What `node` runs: bin/postern, or another build's bundle (--bundle, to compare builds). */
let BIN = path.join(ROOT, 'bin', 'postern');
export function useBundle(file: string): void {
  BIN = path.resolve(file);
}
const TAIL_LINES = 200;

export type LogLine = Record<string, unknown> & { msg?: string };

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) if (p.exitCode === null && p.signalCode === null && p.pid) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

export class Daemon {
  readonly pid: number;
  private readonly tail: string[] = [];
  private readonly waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  private readonly exited: Promise<{ code: number | null; signal: string | null }>;
  readonly seen: LogLine[] = [];

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    if (!child.pid) throw new Error(`${name}: spawn failed`);
    this.pid = child.pid;
    live.add(child);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        resolve({ code, signal });
      });
    });
    createInterface({ input: child.stdout! }).on('line', (line) => this.onLine(line, 'stdout'));
    createInterface({ input: child.stderr! }).on('line', (line) => this.onLine(line, 'stderr'));
  }

  private onLine(line: string, from: string): void {
    this.tail.push(`${from}: ${line}`);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    let parsed: LogLine | null = null;
    try {
      const v: unknown = JSON.parse(line);
      if (v && typeof v === 'object') parsed = v as LogLine;
    } catch {
      return;
    }
    if (!parsed) return;
    // Keep only the start-up and warning/error lines, not one per stream.
    if (this.seen.length < 50 || (typeof parsed.level === 'number' && parsed.level >= 40 && this.seen.length < 500)) this.seen.push(parsed);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (w.pred(parsed)) {
        this.waiters.splice(i, 1);
        w.resolve(parsed);
      }
    }
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first log line (from now on, or already seen) that matches. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine> {
    const earlier = this.seen.find(pred);
    if (earlier) return Promise.resolve(earlier);
    const p = new Promise<LogLine>((resolve, reject) => {
      this.waiters.push({ pred, resolve });
      this.exited.then(({ code, signal }) => reject(new Error(`${this.name} exited (code ${code}, signal ${signal}) before: ${what}\n${this.tailText()}`)));
    });
    return withTimeout(p, timeoutMs, `${this.name}: ${what}`);
  }

  tailText(n = 30): string {
    return this.tail.slice(-n).map((l) => `    ${l}`).join('\n');
  }

  /** SIGTERM, wait up to graceMs, then SIGKILL and wait up to 3 s. Resolves with how it ended. */
  async stop(graceMs = 8_000): Promise<string> {
    if (!this.running) {
      const e = await this.exited;
      return `already exited (code ${e.code}, signal ${e.signal})`;
    }
    process.kill(this.pid, 'SIGTERM');
    const first = await withTimeout(this.exited, graceMs, 'stop').catch(() => null);
    if (first) return `exited after SIGTERM (code ${first.code}, signal ${first.signal})`;
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      // gone in between
    }
    const second = await withTimeout(this.exited, 3_000, 'kill').catch(() => null);
    return second ? `killed with SIGKILL after ${graceMs} ms` : 'did not exit even after SIGKILL';
  }
}

// Benchmarks never write into the real home folder (stored credentials, learned wall budgets).
const BENCH_HOME = mkdtempSync(path.join(os.tmpdir(), 'postern-bench-home-'));
process.on('exit', () => rmSync(BENCH_HOME, { recursive: true, force: true }));

const helpCache = new Map<string, string>();
/**
 * Whether this build's `postern client` takes a flag: builds since local credentials became the
 * default need --no-auth for the benches' unauthenticated SOCKS client; older builds (bench/ab.ts
 * A/B runs) refuse the flag and need nothing.
 */
function takes(command: 'client' | 'bridge', flag: string): boolean {
  const key = `${BIN} ${command}`;
  let help = helpCache.get(key);
  if (help === undefined) {
    help = execFileSync(process.execPath, [BIN, command, '--help'], { encoding: 'utf8', env: { ...process.env, XDG_CONFIG_HOME: BENCH_HOME } });
    helpCache.set(key, help);
  }
  return help.includes(flag);
}
const clientTakes = (flag: string): boolean => takes('client', flag);

function spawnPostern(name: string, nodeFlags: string[], args: string[]): Daemon {
  // As bin/postern's first line runs it (LAUNCHER_NODE_FLAGS), whatever build BIN is.
  const child = spawn(process.execPath, [...LAUNCHER_NODE_FLAGS, ...nodeFlags, BIN, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', XDG_CONFIG_HOME: BENCH_HOME, XDG_STATE_HOME: BENCH_HOME },
  });
  return new Daemon(name, child);
}

/** `postern init` into a fresh temp dir; returns the dir and the share URI it printed. */
export async function initBridge(): Promise<{ dir: string; uri: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-bench-'));
  const child = spawn(process.execPath, [BIN, 'init', '--dir', dir, '--host', '127.0.0.1', '--port', '443'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await withTimeout(
    new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c))),
    30_000,
    'postern init',
  ).finally(() => {
    live.delete(child);
    if (child.exitCode === null && child.pid) child.kill('SIGKILL');
  });
  const uri = out.split('\n').map((l) => l.trim()).find((l) => l.startsWith('postern://'));
  if (code !== 0 || !uri) throw new Error(`postern init failed (exit ${code}): ${err.trim() || out.trim()}`);
  return { dir, uri };
}

/** Replaces the port in a share URI's authority (…@host:443/… or //host:443?…). */
export function withPort(uri: string, port: number): string {
  const re = /^(postern:\/\/[^/?#]*?)(:\d+)?(?=[/?#]|$)/;
  const m = re.exec(uri);
  if (!m || m[2] === undefined) throw new Error('cannot find the port in the share URI');
  return uri.replace(re, `$1:${port}`);
}

export interface Pair {
  bridge: Daemon;
  client: Daemon;
  socksPort: number;
  bridgePort: number;
  tunnelUpSeen: boolean;
  stop(): Promise<{ bridge: string; client: string }>;
}

export interface PairOptions {
  nodeFlags: string[];
  /** Written into bridge.json's "limits" (tuning experiments; the bridge checks the bounds). */
  bridgeLimits?: Record<string, number>;
  logLevel: string;
  startTimeoutMs: number;
  /** Extra arguments for `postern client` (e.g. --exact-replies). */
  clientArgs?: string[];
  /** Puts something (a delay relay) between client and bridge: given the bridge's port, returns the port the client dials. */
  via?: (bridgePort: number) => Promise<number>;
  /**
   * The session transport: 'ws' (default; the bridge runs with --no-http2 when the build has it, so
   * that the client, which offers h2, really uses WebSocket) or 'h2' (transport=h2 in the link; the
   * bridge runs with --http2, which may be off by default).
   */
  transport?: 'ws' | 'h2';
}

/** A share URI with transport=h2 added (ws is the default and left unsaid). */
function withTransport(uri: string, transport: 'ws' | 'h2'): string {
  if (transport === 'ws') return uri;
  const u = new URL(uri);
  u.searchParams.set('transport', transport);
  return u.toString();
}

/** init + bridge + client; resolves once both listen (and, if it says so in time, the tunnel is up). */
export async function startPair(opts: PairOptions): Promise<Pair> {
  const { dir, uri } = await initBridge();
  if (opts.bridgeLimits && Object.keys(opts.bridgeLimits).length) {
    const file = path.join(dir, 'bridge.json');
    const config = JSON.parse(readFileSync(file, 'utf8')) as { limits?: Record<string, number> };
    config.limits = { ...config.limits, ...opts.bridgeLimits };
    writeFileSync(file, JSON.stringify(config, null, 2), { mode: 0o600 });
  }
  let bridgeD: Daemon | null = null;
  let clientD: Daemon | null = null;
  let stopping: Promise<{ bridge: string; client: string }> | null = null;
  // Client first (so that it does not see its tunnel drop), then the bridge; idempotent.
  const cleanup = (): Promise<{ bridge: string; client: string }> =>
    (stopping ??= (async () => {
      const client = clientD ? await clientD.stop() : 'not started';
      const bridge = bridgeD ? await bridgeD.stop() : 'not started';
      rmSync(dir, { recursive: true, force: true });
      return { bridge, client };
    })());
  try {
    const bridge = spawnPostern('bridge', opts.nodeFlags, [
      'bridge',
      '--config',
      path.join(dir, 'bridge.json'),
      '--allow-private',
      '--listen',
      '127.0.0.1:0',
      '--log-level',
      opts.logLevel,
      ...(opts.transport !== 'h2' && takes('bridge', '--no-http2') ? ['--no-http2'] : []),
      // HTTP/2 may be off by default on the bridge: an h2 pair turns it on where the build has the flag.
      ...(opts.transport === 'h2' && takes('bridge', '--http2 ') ? ['--http2'] : []),
    ]);
    bridgeD = bridge;
    const bl = await bridge.waitFor((l) => l.msg === 'listening' && l.role === 'bridge', opts.startTimeoutMs, 'bridge listening');
    const bridgePort = Number(bl.port);
    const client = spawnPostern('client', opts.nodeFlags, [
      'client',
      '--bridge',
      withTransport(withPort(uri, opts.via ? await opts.via(bridgePort) : bridgePort), opts.transport ?? 'ws'),
      '--listen',
      '127.0.0.1:0',
      '--log-level',
      opts.logLevel,
      ...(clientTakes('--no-auth') ? ['--no-auth'] : []),
      ...(opts.clientArgs ?? []),
    ]);
    clientD = client;
    const cl = await client.waitFor((l) => l.msg === 'listening' && l.role === 'socks', opts.startTimeoutMs, 'client listening');
    const tunnelUp = await client
      .waitFor((l) => l.msg === 'tunnel to bridge up', opts.startTimeoutMs, 'tunnel to bridge up')
      .then(() => true, () => false);
    return { bridge, client, socksPort: Number(cl.port), bridgePort, tunnelUpSeen: tunnelUp, stop: cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** The floor relay pair (bench/floor-relay.mjs): what a bare Node TLS tunnel does, beside Postern. */
export interface FloorPair {
  bridge: Daemon;
  client: Daemon;
  socksPort: number;
  stop(): Promise<{ bridge: string; client: string }>;
}

export async function startFloorPair(tlsKey: string, tlsCert: string, startTimeoutMs: number): Promise<FloorPair> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-bench-floor-'));
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  writeFileSync(keyFile, tlsKey, { mode: 0o600 });
  writeFileSync(certFile, tlsCert);
  const script = path.join(ROOT, 'bench', 'floor-relay.mjs');
  const spawnFloor = (role: 'bridge' | 'client', args: string[]): Daemon =>
    new Daemon(`floor ${role}`, spawn(process.execPath, [script, role, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  let bridge: Daemon | null = null;
  let client: Daemon | null = null;
  const stop = async (): Promise<{ bridge: string; client: string }> => {
    const c = client ? await client.stop() : 'not started';
    const b = bridge ? await bridge.stop() : 'not started';
    rmSync(dir, { recursive: true, force: true });
    return { bridge: b, client: c };
  };
  try {
    bridge = spawnFloor('bridge', ['--cert', certFile, '--key', keyFile]);
    const bl = await bridge.waitFor((l) => l.msg === 'listening', startTimeoutMs, 'floor bridge listening');
    client = spawnFloor('client', ['--bridge-port', String(bl.port)]);
    const cl = await client.waitFor((l) => l.msg === 'listening', startTimeoutMs, 'floor client listening');
    return { bridge, client, socksPort: Number(cl.port), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
