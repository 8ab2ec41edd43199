/**
 * Through the wall (issue 16), loopback only: `npm run bench:wall` (builds first).
 *
 * The built client and bridge with a relay between them that either freezes each connection
 * after N bridge→client bytes (no RST, no FIN) or resets it after N bytes (both directions
 * counted), N = 16, 24, 64 KiB, with and without 25 ms added each way. For each: a download and
 * an upload through a fresh client (default settings: it has to learn the wall), reporting
 * goodput, tunnel connections used, handshakes per second (and the most within 400 ms), bytes
 * that vanished into the wall (each re-sent later), and goodput as a fraction of the ideal for the
 * wall and the handshake cap (the sustained rate of DIAL_MIN_INTERVAL_MS and DIAL_BURST_MAX per
 * DIAL_BURST_WINDOW_MS, each connection carrying N bytes).
 *
 * Then the three checks: 16 KiB freeze goodput vs ideal; 4 × 16 MiB echo under resets
 * every 64 KiB; connections used by a 256 KiB echo under resets every 16 KiB vs the ideal
 * (bytes both ways / 16 KiB).
 *
 * Env: BENCH_WALL_QUICK=1 runs the table without delay and skips the 4 × 16 MiB echo.
 * Prints tables and writes bench/results/wall.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { LIMITS } from '../src/core/limits.js';
import { FaultyRelay } from '../test/helpers/faulty-relay.js';
import { type Postern, ROOT, stopAll, tempDir } from '../test/helpers/proc.js';
import { echoTransfer, seededBytes, sha256 } from '../test/helpers/resilience.js';
import { ipv4Request, socksConnect } from '../test/helpers/socks.js';
import { init, startBridge, startClient, withPort } from '../test/helpers/stack.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const QUICK = process.env.BENCH_WALL_QUICK === '1';
/** Sustained handshakes per second the default cap allows (the tighter of its two rules). */
const CAP_PER_S = Math.min(
  LIMITS.DIAL_MIN_INTERVAL_MS > 0 ? 1000 / LIMITS.DIAL_MIN_INTERVAL_MS : Number.POSITIVE_INFINITY,
  LIMITS.DIAL_BURST_MAX > 0 && LIMITS.DIAL_BURST_WINDOW_MS > 0 ? (1000 * LIMITS.DIAL_BURST_MAX) / LIMITS.DIAL_BURST_WINDOW_MS : Number.POSITIVE_INFINITY,
);

interface Servers {
  source: number;
  sink: number;
  echo: number;
  close(): void;
}

/** Download source (sends the size asked for in a 4-byte request), upload sink, echo. */
async function servers(): Promise<Servers> {
  const payload = seededBytes(64 * MIB, 11);
  const all: net.Server[] = [];
  const listen = async (handler: (s: net.Socket) => void): Promise<number> => {
    const srv = net.createServer((s) => {
      s.on('error', () => undefined);
      handler(s);
    });
    all.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    return (srv.address() as net.AddressInfo).port;
  };
  const source = await listen((s) => s.once('data', (d: Buffer) => s.end(payload.subarray(0, d.readUInt32BE(0)))));
  const sink = await listen((s) => {
    s.resume();
    s.on('end', () => s.end());
  });
  const echo = await listen((s) => s.pipe(s));
  return { source, sink, echo, close: () => all.forEach((s) => s.close()) };
}

async function download(socksPort: number, port: number, n: number): Promise<number> {
  const { socket, reply } = await socksConnect(socksPort, ipv4Request('127.0.0.1', port));
  if (reply !== 0) throw new Error(`SOCKS reply ${reply}`);
  const started = performance.now();
  const req = Buffer.alloc(4);
  req.writeUInt32BE(n);
  socket.write(req);
  let got = 0;
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (d: Buffer) => (got += d.length));
    socket.on('end', () => (got === n ? resolve() : reject(new Error(`short: ${got} of ${n}`))));
    socket.on('error', reject);
    socket.resume();
  });
  socket.destroy();
  return performance.now() - started;
}

async function upload(socksPort: number, port: number, n: number): Promise<number> {
  const { socket, reply } = await socksConnect(socksPort, ipv4Request('127.0.0.1', port));
  if (reply !== 0) throw new Error(`SOCKS reply ${reply}`);
  const started = performance.now();
  socket.on('error', () => undefined);
  socket.resume();
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  socket.end(Buffer.alloc(n, 0x5a));
  await closed;
  return performance.now() - started;
}

/**
 * The 4 × 16 MiB echo under resets every 64 KiB gives up after this long: the handshake cap alone
 * needs 128 MiB / 64 KiB / 6 per second ≈ 341 s.
 */
const ECHO_MAX_MS = 600_000;

/** A transfer's ms, or NaN when it took longer than TRANSFER_MAX_MS (the table says so). */
const TRANSFER_MAX_MS = 90_000;
function bounded(p: Promise<number>): Promise<number> {
  return Promise.race([p, new Promise<number>((r) => setTimeout(() => r(Number.NaN), TRANSFER_MAX_MS).unref())]);
}

interface Row {
  mode: 'freeze' | 'reset';
  wallKiB: number;
  delayMs: number;
  dir: 'down' | 'up' | 'echo';
  bytes: number;
  ms: number;
  goodputKBps: number;
  connections: number;
  handshakesPerS: number;
  maxIn400ms: number;
  lostBytes: number;
  idealKBps: number;
  ofIdeal: number;
}

/** A fresh relay (mode, wall, delay) and a fresh client (fresh learned state) in front of the bridge. */
async function scenario(
  bridgePort: number,
  uri: string,
  mode: 'freeze' | 'reset',
  wall: number,
  delayMs: number,
  clientArgs: string[] = [],
): Promise<{ relay: FaultyRelay; client: Postern; socksPort: number }> {
  const relay = new FaultyRelay({ target: bridgePort, seed: 3 });
  if (mode === 'freeze') relay.freezeAfter = wall;
  else relay.cutRange = [wall, wall];
  relay.delayMs = delayMs;
  const relayPort = await relay.listen();
  const { client, port } = await startClient(withPort(uri, relayPort), clientArgs, { env: { XDG_STATE_HOME: tempDir('postern-bench-') } });
  return { relay, client, socksPort: port };
}

function row(mode: Row['mode'], wall: number, delayMs: number, dir: Row['dir'], bytes: number, ms: number, relay: FaultyRelay): Row {
  const conns = relay.accepted;
  const secs = ms / 1000;
  const goodput = bytes / KIB / secs;
  // Ideal under the wall: every connection carries the whole wall, one connection per dial interval.
  const ideal = dir === 'up' && mode === 'freeze' ? Number.NaN : (wall / KIB) * CAP_PER_S * (dir === 'echo' ? 0.5 : 1);
  return {
    mode,
    wallKiB: wall / KIB,
    delayMs,
    dir,
    bytes,
    ms: Math.round(ms),
    goodputKBps: Math.round(goodput),
    connections: conns,
    handshakesPerS: Number((conns / secs).toFixed(1)),
    maxIn400ms: relay.maxAcceptedWithin(400),
    lostBytes: relay.droppedBytes,
    idealKBps: Number.isNaN(ideal) ? Number.NaN : Math.round(ideal),
    ofIdeal: Number.isNaN(ideal) ? Number.NaN : Number((goodput / ideal).toFixed(2)),
  };
}

function print(rows: Row[]): void {
  const head = ['mode', 'wall', 'delay', 'dir', 'size', 'ms', 'KiB/s', 'conns', 'hs/s', 'max/400ms', 'lost B', 'ideal KiB/s', 'of ideal'];
  const lines = rows.map((r) => [
    r.mode,
    `${r.wallKiB} KiB`,
    `${r.delayMs} ms`,
    r.dir,
    `${(r.bytes / KIB).toFixed(0)} KiB`,
    String(r.ms),
    String(r.goodputKBps),
    String(r.connections),
    String(r.handshakesPerS),
    String(r.maxIn400ms),
    String(r.lostBytes),
    Number.isNaN(r.idealKBps) ? '—' : String(r.idealKBps),
    Number.isNaN(r.ofIdeal) ? '—' : String(r.ofIdeal),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i] as number)).join('  ');
  process.stdout.write(`${fmt(head)}\n${lines.map(fmt).join('\n')}\n`);
}

async function main(): Promise<void> {
  const { uri, config } = await init();
  const { port: bridgePort } = await startBridge(config, ['--allow-private']);
  const srv = await servers();
  const rows: Row[] = [];
  const checks: Record<string, unknown> = {};
  try {
    for (const mode of ['freeze', 'reset'] as const) {
      for (const wall of [16 * KIB, 24 * KIB, 64 * KIB]) {
        for (const delayMs of QUICK ? [0] : [0, 25]) {
          const down = wall * 32;
          let s = await scenario(bridgePort, uri, mode, wall, delayMs);
          rows.push(row(mode, wall, delayMs, 'down', down, await bounded(download(s.socksPort, srv.source, down)), s.relay));
          await s.client.stop('SIGKILL');
          await s.relay.close();
          // Reset mode counts both directions: an upload there is walled too, so it is kept as small.
          const up = mode === 'freeze' ? 4 * MIB : wall * 32;
          s = await scenario(bridgePort, uri, mode, wall, delayMs);
          rows.push(row(mode, wall, delayMs, 'up', up, await bounded(upload(s.socksPort, srv.sink, up)), s.relay));
          await s.client.stop('SIGKILL');
          await s.relay.close();
          process.stderr.write(`${mode} ${wall / KIB} KiB ${delayMs} ms done\n`);
        }
      }
    }
    print(rows);

    // The checks.
    const freeze16 = rows.find((r) => r.mode === 'freeze' && r.wallKiB === 16 && r.delayMs === 0 && r.dir === 'down') as Row;
    checks.freeze16OfIdeal = freeze16.ofIdeal;

    let s = await scenario(bridgePort, uri, 'reset', 16 * KIB, 0);
    const data = seededBytes(256 * KIB, 5);
    const t0 = performance.now();
    const r = await echoTransfer(s.socksPort, srv.echo, data);
    if (r.hash !== sha256(data)) throw new Error('256 KiB echo corrupted');
    const ideal = Math.ceil((2 * data.length) / (16 * KIB));
    checks.reset16Echo256KiB = { ms: Math.round(performance.now() - t0), connections: s.relay.accepted, ideal, ratio: Number((s.relay.accepted / ideal).toFixed(2)) };
    await s.client.stop('SIGKILL');
    await s.relay.close();

    if (!QUICK) {
      for (const args of [[], ['--dial-interval-ms', '0', '--dial-burst', '0']]) {
        s = await scenario(bridgePort, uri, 'reset', 64 * KIB, 0, args);
        const four = [1, 2, 3, 4].map((i) => seededBytes(16 * MIB, 20 + i));
        const t1 = performance.now();
        const deadline = new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), ECHO_MAX_MS).unref());
        const done = await Promise.race([Promise.all(four.map((d) => echoTransfer(s.socksPort, srv.echo, d))), deadline]);
        const ms = Math.round(performance.now() - t1);
        const ok = done !== 'timeout' && done.every((x, i) => x.hash === sha256(four[i] as Buffer));
        // The cap's lower bound: every connection carries the whole wall (both ways counted), CAP_PER_S of them a second.
        const idealMs = args.length === 0 ? Math.round(((2 * 4 * 16 * MIB) / (64 * KIB) / CAP_PER_S) * 1000) : null;
        checks[`reset64Echo4x16MiB${args.length === 0 ? '' : 'NoDialCap'}`] = {
          ms: done === 'timeout' ? `>${ECHO_MAX_MS}` : ms,
          intact: ok,
          connections: s.relay.accepted,
          wallResets: s.relay.wallResets,
          handshakesPerS: Number((s.relay.accepted / (ms / 1000)).toFixed(2)),
          maxIn400ms: s.relay.maxAcceptedWithin(400),
          ...(idealMs !== null ? { capBoundMs: idealMs, ofIdeal: done === 'timeout' ? null : Number((idealMs / ms).toFixed(2)) } : {}),
        };
        await s.client.stop('SIGKILL');
        await s.relay.close();
      }
    }
    process.stdout.write(`\nchecks: ${JSON.stringify(checks, null, 2)}\n`);
    const dir = path.join(ROOT, 'bench/results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'wall.json'), JSON.stringify({ at: new Date().toISOString(), capPerS: CAP_PER_S, rows, checks }, null, 2));
  } finally {
    srv.close();
    await stopAll();
  }
}

main().catch(async (err) => {
  process.stderr.write(`bench:wall failed: ${(err as Error).stack ?? String(err)}\n`);
  await stopAll();
  process.exit(1);
});
