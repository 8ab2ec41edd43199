/**
 * A voice call (SOCKS5 UDP ASSOCIATE) beside bulk TCP on one tunnel, over a rate-limited link.
 *
 *   npx tsx bench/call.ts [--rate-mbit 10] [--seconds 10] [--bulk-streams 1] [--delay-ms 20] [--bundle FILE]
 *
 * Needs root, `ip` and `tc`. It makes its own network namespace (name with this PID) and a veth pair
 * between it and the root namespace (10.213.x.y/30, only on that pair), shapes both directions with
 * tc tbf (and netem delay, when the kernel has netem), and runs inside the namespace the bridge
 * (`postern bridge --listen <veth address>:0 --allow-private`) plus a UDP echo server and a TCP
 * sink/source on the namespace's own 127.0.0.1. `postern client` runs in the root namespace, pointed
 * at the bridge's veth address. The namespace and the veth are deleted on exit, error and SIGINT.
 *
 * The driver (this process) is a SOCKS5 UDP ASSOCIATE client sending 172-byte datagrams every 20 ms
 * with a sequence number and send time; the echo comes back through the tunnel. Three phases:
 * the call alone, the call beside a bulk upload, the call beside a bulk download (SOCKS CONNECT
 * through the same client, as fast as the link takes it). For each: loss, RTT quantiles, the bulk
 * throughput during the call, and the kernel Send-Q of the tunnel's TCP connection on the sending side.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Daemon, ROOT, initBridge, useBundle } from './daemons.js';
import { socksConnect } from './socks5.js';
import { max, median, quantile, sleep, withTimeout } from './stats.js';
import { patternChunk } from './wire.js';

// ── fixed parameters ─────────────────────────────────────────────────────────
const DATAGRAM_BYTES = 172; // an Opus voice frame with RTP headers
const INTERVAL_MS = 20;
const BULK_WARMUP_MS = 3_000; // the bulk transfer fills every queue before the call starts
const REPLY_GRACE_MS = 5_000; // a datagram not back this long after the last send counts as lost
const SETTLE_MAX_MS = 20_000; // between phases: wait (bounded) until the tunnel's Send-Q is empty again
const START_TIMEOUT_MS = 20_000;
const SEND_Q_SAMPLE_MS = 500;
const SERVER_MAX_LIFETIME_MS = 30 * 60_000; // the namespace's servers end themselves after this
const BULK_CAP_BYTES = 8 * 1024 * 1024 * 1024; // each bulk connection stops after this, whatever happens
const SINK_REPORT_MS = 200;

// ── namespace-side servers (this file, re-run inside the namespace with --serve) ─────────────
/**
 * UDP echo and a TCP server on 127.0.0.1. TCP: the first byte chooses the mode.
 *  'U' → sink: counts what arrives and writes the running total (uint64be) back every 200 ms;
 *  'D' → source: writes a pattern as fast as the connection takes it, until it closes (or the cap).
 * Prints one JSON line with the ports; exits when stdin closes (the bench ended) or after a cap.
 */
async function serve(): Promise<void> {
  const udp = dgram.createSocket('udp4');
  udp.on('message', (m, r) => udp.send(m, r.port, r.address));
  udp.on('error', () => undefined);
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  const chunk = patternChunk();
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    sock.once('data', (first: Buffer) => {
      if (first[0] === 0x55) {
        let total = first.length - 1;
        sock.on('data', (d: Buffer) => (total += d.length));
        const report = setInterval(() => {
          const b = Buffer.allocUnsafe(8);
          b.writeBigUInt64BE(BigInt(total));
          sock.write(b);
        }, SINK_REPORT_MS);
        sock.on('close', () => clearInterval(report));
      } else if (first[0] === 0x44) {
        sock.resume(); // nothing more is expected; discard
        let sent = 0;
        const pump = (): void => {
          while (!sock.destroyed && sent < BULK_CAP_BYTES) {
            sent += chunk.length;
            if (!sock.write(chunk)) return void sock.once('drain', pump);
          }
          sock.end();
        };
        pump();
      } else sock.destroy();
    });
  });
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  const end = (): void => {
    for (const s of sockets) s.destroy();
    tcp.close();
    udp.close();
    process.exit(0);
  };
  process.stdin.on('end', end).on('close', end).resume();
  setTimeout(end, SERVER_MAX_LIFETIME_MS).unref();
  process.on('SIGTERM', end);
  const udpPort = udp.address().port;
  const tcpPort = (tcp.address() as net.AddressInfo).port;
  process.stdout.write(JSON.stringify({ msg: 'servers', udp: udpPort, tcp: tcpPort }) + '\n');
}

// ── shell helpers ────────────────────────────────────────────────────────────
function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
}
function tryRun(cmd: string, args: string[]): { ok: boolean; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, err: (r.stderr || r.stdout || String(r.error ?? '')).trim() };
}
function capture(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 2_000 }, (err, stdout) => resolve(err ? '' : stdout));
  });
}

// ── the network: namespace, veth, shaping ────────────────────────────────────
interface Net {
  ns: string;
  rootDev: string;
  nsDev: string;
  rootAddr: string;
  nsAddr: string;
  delayNote: string;
  teardown(): void;
}

function setUpNetwork(rateMbit: number, delayMs: number): Net {
  const pid = process.pid;
  const ns = `postern-call-${pid}`;
  const rootDev = `pcall${pid % 100_000}a`;
  const nsDev = `pcall${pid % 100_000}b`;
  // A /30 in 10.213.0.0/16 from the PID; the next ones if that is already on an interface here.
  const inUse = spawnSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8', timeout: 5_000 }).stdout ?? '';
  let base = (pid * 4) % 65_536;
  for (let i = 0; i < 64 && inUse.includes(`10.213.${base >> 8}.${(base & 255) + 1}/`); i++) base = (base + 4) % 65_536;
  const a = (n: number): string => `10.213.${base >> 8}.${(base & 255) + n}`;
  let done = false;
  const teardown = (): void => {
    if (done) return;
    done = true;
    tryRun('ip', ['link', 'del', rootDev]); // deletes both ends
    tryRun('ip', ['netns', 'del', ns]);
  };
  try {
    run('ip', ['netns', 'add', ns]);
    run('ip', ['link', 'add', rootDev, 'type', 'veth', 'peer', 'name', nsDev, 'netns', ns]);
    run('ip', ['addr', 'add', `${a(1)}/30`, 'dev', rootDev]);
    run('ip', ['link', 'set', rootDev, 'up']);
    run('ip', ['-n', ns, 'addr', 'add', `${a(2)}/30`, 'dev', nsDev]);
    run('ip', ['-n', ns, 'link', 'set', nsDev, 'up']);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const tbf = ['tbf', 'rate', `${rateMbit}mbit`, 'burst', '32kbit', 'latency', '50ms'];
    let delayNote = 'no added delay';
    for (const [prefix, dev] of [[[], rootDev], [['-n', ns], nsDev]] as const) {
      // netem (delay) at the root, the tbf (rate, 50 ms queue) under it: packets wait out the delay, then queue at the rate.
      const withDelay =
        delayMs > 0 &&
        tryRun('tc', [...prefix, 'qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'netem', 'delay', `${delayMs}ms`, 'limit', '100000']).ok;
      if (withDelay) {
        run('tc', [...prefix, 'qdisc', 'add', 'dev', dev, 'parent', '1:1', 'handle', '10:', ...tbf]);
        delayNote = `netem delay ${delayMs} ms each way`;
      } else {
        if (delayMs > 0) delayNote = `no added delay (netem is not available in this kernel; asked for ${delayMs} ms)`;
        run('tc', [...prefix, 'qdisc', 'add', 'dev', dev, 'root', ...tbf]);
      }
    }
    return { ns, rootDev, nsDev, rootAddr: a(1), nsAddr: a(2), delayNote, teardown };
  } catch (err) {
    teardown();
    throw err;
  }
}

/** Bytes in the kernel send queue of the tunnel's TCP connection(s): root side (client) or namespace side (bridge). */
async function sendQ(n: Net, bridgePort: number, side: 'client' | 'bridge'): Promise<number | null> {
  const out =
    side === 'client'
      ? await capture('ss', ['-tnH', 'state', 'established', 'dst', `${n.nsAddr}:${bridgePort}`])
      : await capture('ip', ['netns', 'exec', n.ns, 'ss', '-tnH', 'state', 'established', 'src', `${n.nsAddr}:${bridgePort}`]);
  let total = 0;
  let seen = false;
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const q = Number(f[1]);
    if (Number.isFinite(q)) {
      total += q;
      seen = true;
    }
  }
  return seen ? total : null;
}

// ── SOCKS5 UDP ASSOCIATE (RFC 1928 §7), written by hand ───────────────────────
function readExactly(sock: net.Socket, n: number, ms: number): Promise<Buffer> {
  return withTimeout(
    new Promise<Buffer>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const onData = (d: Buffer): void => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= n) {
          sock.off('data', onData).off('close', onClose);
          sock.pause();
          if (buf.length > n) sock.unshift(buf.subarray(n));
          resolve(buf.subarray(0, n));
        }
      };
      const onClose = (): void => reject(new Error('SOCKS control connection closed'));
      sock.on('data', onData).once('close', onClose);
      sock.resume();
    }),
    ms,
    'SOCKS UDP ASSOCIATE reply',
  );
}

interface Assoc {
  control: net.Socket;
  sock: dgram.Socket;
  relayPort: number;
  close(): void;
}

async function openAssociation(socksPort: number): Promise<Assoc> {
  const control = net.connect({ host: '127.0.0.1', port: socksPort });
  control.on('error', () => undefined);
  await withTimeout(new Promise<void>((resolve, reject) => control.once('connect', resolve).once('error', reject)), 5_000, 'SOCKS connect');
  control.write(Buffer.from([5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
  const m = await readExactly(control, 2, 5_000);
  if (m[0] !== 5 || m[1] !== 0) throw new Error(`SOCKS method refused: ${m.toString('hex')}`);
  const head = await readExactly(control, 4, 5_000);
  if (head[1] !== 0) throw new Error(`UDP ASSOCIATE refused: reply ${head[1]}`);
  if (head[3] !== 1) throw new Error(`UDP ASSOCIATE: unexpected BND ATYP ${head[3]}`);
  const bnd = await readExactly(control, 6, 5_000);
  control.resume();
  const sock = dgram.createSocket('udp4');
  sock.on('error', () => undefined);
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  return {
    control,
    sock,
    relayPort: bnd.readUInt16BE(4),
    close() {
      control.destroy();
      try {
        sock.close();
      } catch {
        // already closed
      }
    },
  };
}

// ── bulk transfers through SOCKS CONNECT ──────────────────────────────────────
interface Bulk {
  /** Bytes delivered so far: upload as reported by the sink, download as received here. */
  delivered(): number;
  stop(): void;
}

async function startBulk(socksPort: number, tcpPort: number, dir: 'up' | 'down', streams: number): Promise<Bulk> {
  const socks = await Promise.all(
    Array.from({ length: streams }, () => socksConnect(socksPort, '127.0.0.1', tcpPort, { pipeline: true, timeoutMs: 10_000 })),
  );
  const counts = new Array<number>(streams).fill(0);
  let stopped = false;
  const chunk = patternChunk();
  socks.forEach((s, i) => {
    s.on('error', () => undefined);
    if (dir === 'down') {
      s.write(Buffer.from([0x44]));
      s.on('data', (d: Buffer) => (counts[i]! += d.length));
      s.resume();
      return;
    }
    let pending = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      while (pending.length >= 8) {
        counts[i] = Number(pending.readBigUInt64BE(0));
        pending = pending.subarray(8);
      }
    });
    s.resume();
    s.write(Buffer.from([0x55]));
    let written = 0;
    const pump = (): void => {
      while (!stopped && !s.destroyed && written < BULK_CAP_BYTES) {
        written += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
    };
    pump();
  });
  return {
    delivered: () => counts.reduce((x, y) => x + y, 0),
    stop() {
      stopped = true;
      for (const s of socks) s.destroy();
    },
  };
}

// ── one phase ────────────────────────────────────────────────────────────────
interface PhaseResult {
  name: string;
  sent: number;
  received: number;
  lossPct: number;
  rtt: { median: number; p95: number; p99: number; max: number };
  bulkMbit: number | null;
  sendQ: { median: number; max: number } | null;
}

async function phase(
  name: string,
  bulkDir: 'up' | 'down' | null,
  ctx: { socksPort: number; udpPort: number; tcpPort: number; seconds: number; streams: number; n: Net; bridgePort: number },
): Promise<PhaseResult> {
  const count = Math.round((ctx.seconds * 1000) / INTERVAL_MS);
  const bulk = bulkDir ? await startBulk(ctx.socksPort, ctx.tcpPort, bulkDir, ctx.streams) : null;
  const a = await openAssociation(ctx.socksPort);
  try {
    if (bulk) await sleep(BULK_WARMUP_MS);
    const rtts: number[] = [];
    const seen = new Set<number>();
    a.sock.on('message', (m: Buffer) => {
      // RSV RSV FRAG ATYP(1) ADDR(4) PORT(2), then our payload
      if (m.length !== 10 + DATAGRAM_BYTES || m[3] !== 1) return;
      const seq = m.readUInt32BE(10);
      if (seq >= count || seen.has(seq)) return;
      seen.add(seq);
      rtts.push(performance.now() - m.readDoubleBE(14));
    });
    const header = Buffer.from([0, 0, 0, 1, 127, 0, 0, 1, ctx.udpPort >> 8, ctx.udpPort & 0xff]);
    const side = bulkDir === 'down' ? 'bridge' : 'client';
    const qs: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const q = await sendQ(ctx.n, ctx.bridgePort, side);
        if (q !== null) qs.push(q);
        await sleep(SEND_Q_SAMPLE_MS);
      }
    })();
    const bulkStart = bulk?.delivered() ?? 0;
    const start = performance.now();
    for (let seq = 0; seq < count; seq++) {
      const wait = start + seq * INTERVAL_MS - performance.now();
      if (wait > 0) await sleep(wait);
      const d = Buffer.alloc(10 + DATAGRAM_BYTES, seq & 0xff);
      header.copy(d, 0);
      d.writeUInt32BE(seq, 10);
      d.writeDoubleBE(performance.now(), 14);
      a.sock.send(d, a.relayPort, '127.0.0.1');
    }
    const callMs = performance.now() - start;
    const bulkBytes = bulk ? bulk.delivered() - bulkStart : 0;
    sampling = false;
    await sampler;
    bulk?.stop();
    const deadline = performance.now() + REPLY_GRACE_MS;
    while (seen.size < count && performance.now() < deadline) await sleep(50);
    return {
      name,
      sent: count,
      received: seen.size,
      lossPct: (100 * (count - seen.size)) / count,
      rtt: { median: median(rtts), p95: quantile(rtts, 0.95), p99: quantile(rtts, 0.99), max: max(rtts) },
      bulkMbit: bulk ? (bulkBytes * 8) / (callMs / 1000) / 1e6 : null,
      sendQ: qs.length ? { median: median(qs), max: max(qs) } : null,
    };
  } finally {
    bulk?.stop();
    a.close();
  }
}

/** Waits (bounded) until neither side's tunnel connection has bytes in its kernel send queue. */
async function settle(n: Net, bridgePort: number): Promise<void> {
  const deadline = Date.now() + SETTLE_MAX_MS;
  while (Date.now() < deadline) {
    const [c, b] = await Promise.all([sendQ(n, bridgePort, 'client'), sendQ(n, bridgePort, 'bridge')]);
    if ((c ?? 0) < 4096 && (b ?? 0) < 4096) break;
    await sleep(250);
  }
  await sleep(1_000);
}

// ── main ─────────────────────────────────────────────────────────────────────
const USAGE = `Usage: npx tsx bench/call.ts [options]        (as root; needs ip and tc)

  --rate-mbit N      link rate each way, tc tbf (default 10)
  --seconds N        length of each call phase (default 10)
  --bulk-streams N   parallel bulk TCP connections in phases 2 and 3 (default 1)
  --delay-ms N       netem delay each way, if the kernel has netem (default 20; 0 = none)
  --ns-notsent-lowat N  set net.ipv4.tcp_notsent_lowat=N (bytes) in the bench's namespace only: the
                     bridge's sockets keep at most about N unsent bytes in the kernel (download side)
  --bundle FILE      run this JS bundle instead of bin/postern (another build's dist/postern.js, its chunks beside it)
  --log-level L      daemons' log level (default info; they must log their "listening" lines)
  -h, --help`;

function positive(name: string, v: string | undefined, dflt: number, allowZero = false): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isFinite(x) || x < 0 || (!allowZero && x === 0) || x > 2 ** 31) throw new Error(`${name}: bad value "${v}"`);
  return x;
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '-');

/** Resolves true when this process is the namespace's servers (it keeps running). */
async function main(): Promise<boolean> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      'rate-mbit': { type: 'string' },
      seconds: { type: 'string' },
      'bulk-streams': { type: 'string' },
      'delay-ms': { type: 'string' },
      'ns-notsent-lowat': { type: 'string' },
      bundle: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      serve: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.serve) {
    await serve();
    return true;
  }
  if (values.help) {
    console.log(USAGE);
    return false;
  }
  const rate = positive('--rate-mbit', values['rate-mbit'], 10);
  const seconds = positive('--seconds', values.seconds, 10);
  if (seconds > 600) throw new Error('--seconds: at most 600');
  const streams = Math.round(positive('--bulk-streams', values['bulk-streams'], 1));
  if (streams > 64) throw new Error('--bulk-streams: at most 64');
  const delayMs = positive('--delay-ms', values['delay-ms'], 20, true);
  if (delayMs > 1_000) throw new Error('--delay-ms: at most 1000');
  const lowat = values['ns-notsent-lowat'] === undefined ? null : Math.round(positive('--ns-notsent-lowat', values['ns-notsent-lowat'], 0));
  if (values.bundle) useBundle(values.bundle);
  const bin = values.bundle ? path.resolve(values.bundle) : path.join(ROOT, 'bin', 'postern');

  if (process.getuid?.() !== 0) {
    console.error('bench/call.ts needs root (it creates a network namespace, a veth pair and tc qdiscs).');
    process.exit(2);
  }
  for (const [cmd, arg] of [['ip', '-V'], ['tc', '-V'], ['ss', '-V']] as const) {
    if (spawnSync(cmd, [arg], { timeout: 5_000 }).error) {
      console.error(`bench/call.ts needs \`${cmd}\` (iproute2) on PATH.`);
      process.exit(2);
    }
  }

  const n = setUpNetwork(rate, delayMs);
  const daemons: Daemon[] = [];
  let bridgeDir: string | null = null;
  let cleaning: Promise<void> | null = null;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      for (const d of [...daemons].reverse()) await d.stop(5_000).catch(() => undefined);
      if (bridgeDir) rmSync(bridgeDir, { recursive: true, force: true });
      n.teardown();
    })());
  process.on('exit', () => n.teardown()); // last resort (the daemons are SIGKILLed by daemons.ts)
  const onSignal = (sig: string): void => {
    console.error(`\n${sig}: cleaning up`);
    void withTimeout(cleanup(), 20_000, 'cleanup')
      .catch(() => undefined)
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));

  try {
    console.log(`# call beside bulk over a ${rate} Mbit/s link (tc tbf both ways, burst 32kbit, latency 50ms; ${n.delayNote})`);
    console.log(`# binary: ${bin}`);
    if (lowat !== null) {
      run('ip', ['netns', 'exec', n.ns, 'sysctl', '-q', '-w', `net.ipv4.tcp_notsent_lowat=${lowat}`]);
      console.log(`# in the namespace only (bridge side): net.ipv4.tcp_notsent_lowat=${lowat}`);
    }
    console.log(`# namespace ${n.ns}; client at ${n.rootAddr} (root namespace), bridge at ${n.nsAddr}`);

    // Servers in the namespace: this file again, with --serve, under the same tsx loader.
    const srvChild = spawn('ip', ['netns', 'exec', n.ns, process.execPath, ...process.execArgv, process.argv[1]!, '--serve'], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const servers = new Daemon('servers', srvChild);
    daemons.push(servers);
    const sl = await servers.waitFor((l) => l.msg === 'servers', START_TIMEOUT_MS, 'servers ready');
    const udpPort = Number(sl.udp);
    const tcpPort = Number(sl.tcp);

    const { dir, uri } = await initBridge();
    bridgeDir = dir;
    const bridge = new Daemon(
      'bridge',
      spawn(
        'ip',
        ['netns', 'exec', n.ns, process.execPath, bin, 'bridge', '--config', path.join(dir, 'bridge.json'), '--listen', `${n.nsAddr}:0`, '--allow-private', '--log-level', values['log-level']!],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
      ),
    );
    daemons.push(bridge);
    const bl = await bridge.waitFor((l) => l.msg === 'listening' && l.role === 'bridge', START_TIMEOUT_MS, 'bridge listening');
    const bridgePort = Number(bl.port);
    const re = /^(postern:\/\/[^@/?#]*@)([^/?#]*)(?=[/?#]|$)/;
    if (!re.test(uri)) throw new Error('cannot find host:port in the share URI');
    const clientUri = uri.replace(re, `$1${n.nsAddr}:${bridgePort}`);
    const client = new Daemon(
      'client',
      // --no-auth: this bench's SOCKS client sends no password (loopback only).
      spawn(process.execPath, [bin, 'client', '--bridge', clientUri, '--listen', '127.0.0.1:0', '--no-auth', '--log-level', values['log-level']!], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NO_COLOR: "1", XDG_CONFIG_HOME: dir, XDG_STATE_HOME: dir },
      }),
    );
    daemons.push(client);
    const cl = await client.waitFor((l) => l.msg === 'listening' && l.role === 'socks', START_TIMEOUT_MS, 'client listening');
    await client.waitFor((l) => l.msg === 'tunnel to bridge up', START_TIMEOUT_MS, 'tunnel to bridge up');
    const ctx = { socksPort: Number(cl.port), udpPort, tcpPort, seconds, streams, n, bridgePort };

    console.log(`# ${Math.round((seconds * 1000) / INTERVAL_MS)} datagrams of ${DATAGRAM_BYTES} B every ${INTERVAL_MS} ms per phase; bulk: ${streams} connection(s), ${BULK_WARMUP_MS / 1000} s warm-up before the call`);
    const results: PhaseResult[] = [];
    for (const [name, dir] of [['call alone', null], ['+ bulk upload', 'up'], ['+ bulk download', 'down']] as const) {
      await settle(n, bridgePort);
      const r = await withTimeout(phase(name, dir, ctx), (seconds + 60) * 1000, `phase ${name}`);
      results.push(r);
      console.log(`#   ${name}: done (${r.received}/${r.sent} back)`);
    }

    const rows = [
      ['phase', 'sent', 'lost', 'loss %', 'RTT med ms', 'p95 ms', 'p99 ms', 'max ms', 'bulk Mbit/s', 'Send-Q med/max KiB'],
      ...results.map((r) => [
        r.name,
        String(r.sent),
        String(r.sent - r.received),
        f1(r.lossPct),
        f1(r.rtt.median),
        f1(r.rtt.p95),
        f1(r.rtt.p99),
        f1(r.rtt.max),
        r.bulkMbit === null ? '-' : f1(r.bulkMbit),
        r.sendQ ? `${f1(r.sendQ.median / 1024)}/${f1(r.sendQ.max / 1024)}` : '-',
      ]),
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    console.log('');
    for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
    console.log(`\n(Send-Q: the kernel send queue of the tunnel's TCP connection on the sending side — client for the call alone and the upload, bridge for the download.)`);
    console.log(JSON.stringify({ rateMbit: rate, seconds, bulkStreams: streams, delay: n.delayNote, nsNotsentLowat: lowat, bin, results }));
    for (const d of [bridge, client]) {
      const warns = d.seen.filter((l) => typeof l.level === 'number' && l.level >= 50);
      if (warns.length) console.log(`# ${d.name} logged ${warns.length} error(s); first: ${JSON.stringify(warns[0])}`);
    }
  } finally {
    await withTimeout(cleanup(), 30_000, 'cleanup').catch((e: Error) => console.error(e.message));
  }
  return false;
}

main().then(
  (serving) => {
    if (!serving) process.exit(0);
  },
  (err: Error) => {
    console.error(`bench/call.ts: ${err.stack ?? err.message}`);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 100).unref();
  },
);
