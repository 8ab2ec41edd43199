/**
 * Issue 12: what a bridge keeps for a relaying stream. Once a stream is accepted and relaying, the
 * open request that made it (its accept/reject closures, the `settle` guard, its AbortSignal) is
 * garbage: the relay keeps the stream, the socket and a lazy logger, not the request
 * (src/bridge/bridge.ts lazyStreamLog). Before, the logger closed over the request and kept it, 1.6
 * KiB per stream (bench/heap-diff.ts: 5,398 → 3,831 B of V8 heap per idle stream). A heap snapshot
 * of the bridge with STREAMS idle streams open counts the request's closures by name: 4 now, 1,004
 * before (two accept, two reject and one settle per stream).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Postern, tempDir } from '../helpers/proc.js';
import { relayFixture } from '../helpers/resilience.js';
import { ipv4Request, readN, socksConnect } from '../helpers/socks.js';
import { init, withPort } from '../helpers/stack.js';

const STREAMS = 200;
/** The closures session.ts and bridge.ts make per open request (heap snapshot names). */
const REQUEST_CLOSURES = new Set(['accept', 'reject', 'settle']);

const fixture = relayFixture();

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

/** Closures in a heap snapshot, counted by name. */
function closuresByName(file: string): Map<string, number> {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const out = new Map<string, number>();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    if (types[snap.nodes[i + iType]!] !== 'closure') continue;
    const name = snap.strings[snap.nodes[i + iName]!]!;
    out.set(name, (out.get(name) ?? 0) + 1);
  }
  return out;
}

/** Signals `pid` to write a heap snapshot into `dir` and waits until the file is whole. */
async function heapSnapshot(pid: number, dir: string): Promise<string> {
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + 30_000;
  let last = -1;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    const name = fs.readdirSync(dir).find((f) => f.endsWith('.heapsnapshot'));
    if (name === undefined) continue;
    const file = path.join(dir, name);
    const size = fs.statSync(file).size;
    if (size === last && size > 2) {
      try {
        JSON.parse(fs.readFileSync(file, 'utf8'));
        return file;
      } catch {
        // still being written
      }
    }
    last = size;
  }
  throw new Error(`no complete heap snapshot from ${pid} in 30 s`);
}

describe('bridge memory per relaying stream', () => {
  it('keeps no open request (accept/reject/settle closures) for streams that are relaying', async () => {
    const { config, uri } = await init();
    const dir = tempDir('postern-heapsnap-');
    const bridge = new Postern(['bridge', '--config', config, '--listen', '127.0.0.1:0', '--allow-private', '--no-http2'], {
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}`.trim(),
    });
    const bridgePort = await bridge.listening('bridge');
    const client = new Postern(['client', '--bridge', withPort(uri, bridgePort), '--listen', '127.0.0.1:0', '--no-auth']);
    const port = await client.listening('socks');
    await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
    const open: net.Socket[] = [];
    try {
      for (let i = 0; i < STREAMS; i++) {
        const { socket, reply } = await socksConnect(port, ipv4Request('127.0.0.1', fixture.echoPort));
        expect(reply).toBe(0);
        socket.write('x');
        expect((await readN(socket, 1)).toString()).toBe('x'); // relaying at the bridge
        open.push(socket);
      }
      const counts = closuresByName(await heapSnapshot(bridge.pid, dir));
      const held = [...REQUEST_CLOSURES].reduce((n, name) => n + (counts.get(name) ?? 0), 0);
      // A handful exist anyway (functions of those names elsewhere); one per stream would be STREAMS or more.
      expect(held).toBeLessThan(STREAMS / 10);
    } finally {
      for (const s of open) s.destroy();
    }
  }, 90_000);
});
