/**
 * Where does a daemon's memory per idle stream go? Starts a client/bridge pair with
 * --heapsnapshot-signal, takes a heap snapshot of both at rest and with N idle streams open, and
 * prints which constructors grew, in bytes per stream (V8 heap only: RSS also holds libuv/TLS/
 * kernel-facing native memory that no snapshot shows).
 *
 *   tsx bench/heap-diff.ts [--streams 1000] [--top 25] [--bundle FILE]   (after npm run build; FILE as in run.ts)
 *
 * Needs a quiet machine: a snapshot freezes a daemon, and one frozen past KEEPALIVE_TIMEOUT_MS (20 s)
 * makes the session drop (the script then says so instead of printing wrong figures).
 */
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { selfSignedCert } from './certs.js';
import { startPair, useBundle, type Daemon } from './daemons.js';
import { openIdleStreams, socksConnector } from './measure.js';
import { startServers } from './server-host.js';
import { sleep } from './stats.js';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

/** Self size and count per "type:name" for every node in a .heapsnapshot. */
function aggregate(file: string): Map<string, { size: number; count: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const f = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = f.length;
  const iType = f.indexOf('type');
  const iName = f.indexOf('name');
  const iSize = f.indexOf('self_size');
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType] as number] ?? '?';
    let name = snap.strings[snap.nodes[i + iName] as number] ?? '?';
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '';
    if (type === 'code' || type === 'hidden') name = name.slice(0, 40);
    const key = `${type}:${name.slice(0, 60)}`;
    const e = out.get(key) ?? { size: 0, count: 0 };
    e.size += snap.nodes[i + iSize] as number;
    e.count++;
    out.set(key, e);
  }
  return out;
}

async function snapshot(d: Daemon, dir: string, timeoutMs: number): Promise<string> {
  const before = new Set(readdirSync(dir));
  process.kill(d.pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await sleep(250);
    const fresh = readdirSync(dir).filter((f) => !before.has(f) && f.endsWith('.heapsnapshot') && f.includes(`.${d.pid}.`));
    if (fresh.length) {
      // Node writes the snapshot in pieces: done once it ends with the closing "]}" and its size
      // holds still (a cheap check; parsing it while it grows would steal the CPU it needs).
      const file = path.join(dir, fresh[0] as string);
      let last = -1;
      for (let i = 0; i < 240; i++) {
        const size = statSync(file).size;
        if (size === last && size > 2) {
          const fd = openSync(file, 'r');
          const tail = Buffer.alloc(Math.min(16, size));
          readSync(fd, tail, 0, tail.length, size - tail.length);
          closeSync(fd);
          if (tail.toString('latin1').trimEnd().endsWith(']}')) return file;
        }
        last = size;
        await sleep(250);
      }
      throw new Error(`${d.name}: heap snapshot ${file} incomplete after 60 s`);
    }
  }
  throw new Error(`${d.name}: no heap snapshot within ${timeoutMs} ms`);
}

const { values } = parseArgs({ options: { streams: { type: 'string', default: '1000' }, top: { type: 'string', default: '25' }, bundle: { type: 'string' } } });
if (values.bundle !== undefined) useBundle(values.bundle);
const streams = Number(values.streams);
const top = Number(values.top);
const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-heap-'));
const { key, cert } = selfSignedCert();
const servers = await startServers({ tlsKey: key, tlsCert: cert });
const pair = await startPair({ nodeFlags: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`], logLevel: 'info', startTimeoutMs: 20_000 });
try {
  const connect = socksConnector(pair.socksPort, servers.ports.echoPort, true);
  const warm = await openIdleStreams(connect, 100, 50, 60_000);
  for (const s of warm) s.destroy();
  await sleep(2000);
  // Both at once: a daemon frozen by its snapshot for longer than KEEPALIVE_TIMEOUT_MS (20 s)
  // would make the other end drop the session.
  const both = async () => {
    const [client, bridge] = await Promise.all([snapshot(pair.client, dir, 60_000), snapshot(pair.bridge, dir, 60_000)]);
    return { client, bridge };
  };
  const base = await both();
  const open = await openIdleStreams(connect, streams, 50, 120_000);
  await sleep(2000);
  const t0 = Date.now();
  const loaded = await both();
  const after = (await servers.stats()).echoOpen;
  process.stderr.write(`heap-diff: ${after} streams open at the echo server after the snapshots (${Date.now() - t0} ms)\n`);
  if (after < streams) throw new Error(`streams closed during the snapshots; figures would be wrong\nbridge log:\n${pair.bridge.tailText(5)}`);
  for (const s of open) s.destroy();
  for (const role of ['client', 'bridge'] as const) {
    const a = aggregate(base[role]);
    const b = aggregate(loaded[role]);
    const rows = [...b.entries()].map(([k, v]) => {
      const o = a.get(k) ?? { size: 0, count: 0 };
      return { k, dSize: v.size - o.size, dCount: v.count - o.count };
    });
    const total = rows.reduce((s, r) => s + r.dSize, 0);
    process.stdout.write(`\n[${role}] V8 heap growth with ${streams} idle streams: ${(total / streams).toFixed(0)} B/stream (snapshots are taken after a full GC)\n`);
    for (const r of rows.sort((x, y) => y.dSize - x.dSize).slice(0, top)) {
      process.stdout.write(`  ${(r.dSize / streams).toFixed(0).padStart(7)} B/stream  ${(r.dCount / streams).toFixed(2).padStart(6)} objs/stream  ${r.k}\n`);
    }
  }
} catch (err) {
  process.stderr.write(`heap-diff: ${(err as Error).message}\nclient log:\n${pair.client.tailText()}\nbridge log:\n${pair.bridge.tailText()}\n`);
  process.exitCode = 1;
} finally {
  await pair.stop();
  await servers.close();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(process.exitCode ?? 0);
