/**
 * Two builds side by side in one run (a noisy shared machine makes separate runs incomparable):
 * both client/bridge pairs run at once and the measurements alternate between them, with the
 * direct TCP and TLS-pair baselines in the same rounds.
 *
 *   tsx bench/ab.ts A.js B.js [--rounds N] [--size-mb N] [--samples N] [--only throughput,latency]
 *                   [--a-flags "F …"] [--b-flags "F …"]
 *
 * --a-flags / --b-flags: node flags for that pair's daemons, after bin/postern's own
 * (src/cli/launcher-flags.ts; `--concurrent-recompilation` undoes its one) — one build, two ways.
 *
 * A bundle is run with `node FILE` (as --bundle in run.ts; a launcher .mjs that imports a bundle works
 * too); a build's dist/postern.js loads chunks from its folder, so copy the whole dist/ of each build. Per round and build: download and upload MB/s and the daemons' CPU time per MiB moved (less
 * sensitive to noise than MB/s), then a block of new-stream latency samples and the daemons' CPU
 * time per new stream. Prints medians over rounds. The relay floor (bench/floor-relay.mjs) runs in
 * the throughput rounds too, with its own CPU per MiB: what a bare Node relay spends on the same.
 */
import { parseArgs } from 'node:util';
import os from 'node:os';
import { selfSignedCert } from './certs.js';
import { startFloorPair, startPair, useBundle, type FloorPair, type Pair } from './daemons.js';
import { connectEchoMicros, directConnector, socksConnector, tlsConnector } from './measure.js';
import { readCpuMs } from './proc.js';
import { startServers } from './server-host.js';
import { median, sleep } from './stats.js';
import { download, upload } from './throughput.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '5' },
    'size-mb': { type: 'string', default: '128' },
    samples: { type: 'string', default: '100' },
    only: { type: 'string', default: 'throughput,latency' },
    'a-flags': { type: 'string', default: '' },
    'b-flags': { type: 'string', default: '' },
  },
});
if (positionals.length !== 2) {
  process.stderr.write('usage: tsx bench/ab.ts A.js B.js [--rounds N] [--size-mb N] [--samples N] [--only throughput,latency] [--a-flags "F …"] [--b-flags "F …"]\n');
  process.exit(2);
}
const rounds = Number(values.rounds);
const size = Number(values['size-mb']) * 1048576;
const samples = Number(values.samples);
const only = new Set((values.only ?? '').split(','));
const log = (m: string): void => void process.stderr.write(`[ab] ${m}\n`);

const { key, cert } = selfSignedCert();
const servers = await startServers({ tlsKey: key, tlsCert: cert });
const pairs: { name: string; pair: Pair }[] = [];
let floor: FloorPair | null = null;
try {
  if (only.has('throughput')) floor = await startFloorPair(key, cert, 20_000);
  for (const [i, file] of positionals.entries()) {
    useBundle(file);
    const nodeFlags = (i === 0 ? values['a-flags'] : values['b-flags']).split(' ').filter((f) => f !== '');
    pairs.push({ name: i === 0 ? 'A' : 'B', pair: await startPair({ nodeFlags, logLevel: 'info', startTimeoutMs: 20_000 }) });
  }
  const cpu = (p: Pair): number => readCpuMs(p.client.pid) + readCpuMs(p.bridge.pid);
  type Row = Record<string, number[]>;
  const rows: Row = {};
  const add = (k: string, v: number): void => void (rows[k] ??= []).push(v);
  const tls = tlsConnector(servers.ports.trafficTlsPort, cert);
  const direct = directConnector(servers.ports.echoPort);
  const timeoutMs = 120_000;
  // Warm-up: JIT and heap of every path.
  if (floor) {
    const c = socksConnector(floor.socksPort, servers.ports.trafficTcpPort, true);
    await download(await c(), 16 * 1048576, timeoutMs);
    await upload(await c(), 16 * 1048576, timeoutMs);
  }
  for (const { pair } of pairs) {
    const c = socksConnector(pair.socksPort, servers.ports.trafficTcpPort, true);
    await download(await c(), 16 * 1048576, timeoutMs);
    await upload(await c(), 16 * 1048576, timeoutMs);
    const e = socksConnector(pair.socksPort, servers.ports.echoPort, true);
    for (let i = 0; i < 50; i++) await connectEchoMicros(e);
  }
  for (let r = 0; r < rounds; r++) {
    log(`round ${r + 1}/${rounds}, load ${os.loadavg()[0]?.toFixed(2)}`);
    const order = r % 2 === 0 ? pairs : [...pairs].reverse();
    if (only.has('throughput')) {
      for (const dir of ['download', 'upload'] as const) {
        const t = dir === 'download' ? await download(await tls(), size, timeoutMs) : await upload(await tls(), size, timeoutMs);
        add(`tls ${dir} MB/s`, t.mbps);
        if (floor) {
          const f = floor;
          const sock = await socksConnector(f.socksPort, servers.ports.trafficTcpPort, true)();
          const fcpu = (): number => readCpuMs(f.client.pid) + readCpuMs(f.bridge.pid);
          const c0 = fcpu();
          const x = dir === 'download' ? await download(sock, size, timeoutMs) : await upload(sock, size, timeoutMs);
          add(`floor ${dir} MB/s`, x.mbps);
          add(`floor ${dir} daemon CPU ms/MiB`, (fcpu() - c0) / (size / 1048576));
        }
        for (const { name, pair } of order) {
          const sock = await socksConnector(pair.socksPort, servers.ports.trafficTcpPort, true)();
          const c0 = cpu(pair);
          const x = dir === 'download' ? await download(sock, size, timeoutMs) : await upload(sock, size, timeoutMs);
          add(`${name} ${dir} MB/s`, x.mbps);
          add(`${name} ${dir} %TLS`, (100 * x.mbps) / t.mbps);
          add(`${name} ${dir} daemon CPU ms/MiB`, (cpu(pair) - c0) / (size / 1048576));
          await sleep(200);
        }
      }
    }
    if (only.has('latency')) {
      const d: number[] = [];
      for (let i = 0; i < samples; i++) d.push(await connectEchoMicros(direct));
      add('direct latency µs', median(d));
      for (const { name, pair } of order) {
        const e = socksConnector(pair.socksPort, servers.ports.echoPort, true);
        const c0 = cpu(pair);
        const xs: number[] = [];
        for (let i = 0; i < samples; i++) xs.push(await connectEchoMicros(e));
        add(`${name} latency µs`, median(xs));
        add(`${name} latency ×direct`, median(xs) / median(d));
        add(`${name} daemon CPU µs/stream`, ((cpu(pair) - c0) * 1000) / samples);
      }
    }
  }
  const out = Object.entries(rows)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k.padEnd(34)} median ${median(v).toFixed(2).padStart(9)}   [${v.map((x) => x.toFixed(1)).join(', ')}]`);
  process.stdout.write(`A = ${positionals[0]}\nB = ${positionals[1]}\n${out.join('\n')}\n`);
} finally {
  for (const { pair } of pairs) await pair.stop();
  if (floor) await floor.stop();
  await servers.close();
}
process.exit(0);
