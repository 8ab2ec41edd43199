/**
 * Resumption benchmark (issue 3), loopback only: `npm run bench:resume` (builds first).
 *
 *   1. one stream's download throughput through a relay that resets the tunnel connection every
 *      1 MiB, as a ratio to the same relay never cutting;
 *   2. time to resume after a cut: the gap in a steady download between the relay's RST and the
 *      next byte reaching the app (median and worst of several cuts).
 *
 * Env: BENCH_RESUME_MIB (default 64) download size; BENCH_RESUME_CUTS (default 15).
 * Prints a table and writes bench/results/resume.json. Uses the test helpers' process wrapper.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { FaultyRelay } from '../test/helpers/faulty-relay.js';
import { ROOT, stopAll } from '../test/helpers/proc.js';
import { ipv4Request, socksConnect } from '../test/helpers/socks.js';
import { init, startBridge, startClient, withPort } from '../test/helpers/stack.js';

const MIB = 1024 * 1024;
const SIZE = Number(process.env.BENCH_RESUME_MIB ?? 64) * MIB;
const CUTS = Number(process.env.BENCH_RESUME_CUTS ?? 15);

/** A server that sends `n` bytes (or forever at `rate` bytes/s when n = 0) to whoever connects. */
async function source(n: number, rate = 0): Promise<{ port: number; close: () => void }> {
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    let sent = 0;
    const pump = (): void => {
      while (!s.destroyed && (n === 0 || sent < n)) {
        const c = n === 0 ? chunk : chunk.subarray(0, Math.min(chunk.length, n - sent));
        sent += c.length;
        if (rate > 0) {
          s.write(c);
          setTimeout(pump, (c.length * 1000) / rate);
          return;
        }
        if (!s.write(c)) return void s.once('drain', pump);
      }
      if (n !== 0) s.end();
    };
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

async function downloadMs(socksPort: number, srcPort: number, n: number): Promise<number> {
  const { socket, reply } = await socksConnect(socksPort, ipv4Request('127.0.0.1', srcPort));
  if (reply !== 0) throw new Error(`SOCKS reply ${reply}`);
  const started = performance.now();
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

async function main(): Promise<void> {
  const { uri, config } = await init();
  const { port: bridgePort } = await startBridge(config);
  const relay = new FaultyRelay({ target: bridgePort, seed: 1 });
  const relayPort = await relay.listen();
  const { client, port: socksPort } = await startClient(withPort(uri, relayPort));
  const src = await source(SIZE);
  try {
    await downloadMs(socksPort, src.port, SIZE); // warm-up
    const rounds = 3;
    const base: number[] = [];
    const cut: number[] = [];
    for (let i = 0; i < rounds; i++) {
      relay.cutRange = null;
      relay.cutAll();
      base.push(await downloadMs(socksPort, src.port, SIZE));
      relay.cutRange = [MIB, MIB];
      relay.cutAll();
      const cutsBefore = relay.cuts;
      cut.push(await downloadMs(socksPort, src.port, SIZE));
      process.stderr.write(`round ${i + 1}: unbroken ${base[i]?.toFixed(0)} ms, reset every 1 MiB ${cut[i]?.toFixed(0)} ms (${relay.cuts - cutsBefore} resets)\n`);
    }
    relay.cutRange = null;
    relay.cutAll();
    const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] as number;
    const mbps = (ms: number) => SIZE / MIB / (ms / 1000);

    // Time to resume: a steady 8 MiB/s download, cut, gap until the next byte.
    const steady = await source(0, 8 * MIB);
    const { socket } = await socksConnect(socksPort, ipv4Request('127.0.0.1', steady.port));
    const stamps: number[] = [];
    socket.on('data', () => stamps.push(performance.now()));
    socket.on('error', () => undefined);
    socket.resume();
    await new Promise((r) => setTimeout(r, 500));
    // The stall a cut causes: the longest silence in the app's download within 2 s after the cut
    // (at 8 MiB/s bytes normally arrive every few ms).
    const gaps: number[] = [];
    for (let i = 0; i < CUTS; i++) {
      stamps.length = 0;
      const t0 = performance.now();
      relay.cutAll();
      await new Promise((r) => setTimeout(r, 2_000));
      let prev = t0;
      let worst = 0;
      for (const t of stamps) {
        worst = Math.max(worst, t - prev);
        prev = t;
      }
      if (stamps.length === 0) throw new Error('download did not resume within 2 s');
      gaps.push(worst);
    }
    socket.destroy();
    steady.close();
    gaps.sort((a, b) => a - b);
    const result = {
      sizeMiB: SIZE / MIB,
      unbrokenMBps: Number(mbps(med(base)).toFixed(1)),
      resetEvery1MiBMBps: Number(mbps(med(cut)).toFixed(1)),
      ratio: Number((med(base) / med(cut)).toFixed(3)),
      resumeGapMs: { median: Number(med(gaps).toFixed(1)), max: Number((gaps[gaps.length - 1] as number).toFixed(1)), samples: gaps.length },
    };
    process.stdout.write(
      [
        `one stream, ${SIZE / MIB} MiB download through the relay (median of ${rounds}):`,
        `  unbroken                 ${result.unbrokenMBps} MiB/s`,
        `  reset every 1 MiB        ${result.resetEvery1MiBMBps} MiB/s   ratio ${result.ratio}`,
        `time to resume after a cut (gap in a steady download, ${gaps.length} cuts): median ${result.resumeGapMs.median} ms, max ${result.resumeGapMs.max} ms`,
        '',
      ].join('\n'),
    );
    const dir = path.join(ROOT, 'bench/results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'resume.json'), JSON.stringify({ at: new Date().toISOString(), ...result }, null, 2));
    void client;
  } finally {
    src.close();
    await relay.close();
    await stopAll();
  }
}

main().catch(async (err) => {
  process.stderr.write(`bench:resume failed: ${(err as Error).stack ?? String(err)}\n`);
  await stopAll();
  process.exit(1);
});
