/**
 * Through the wall (issue 16, docs/protocol.md §9.7–§9.8): the built binary behind a relay that
 * freezes every connection after 16 KiB bridge→client — no RST, no FIN, bytes just stop.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultyRelay } from '../helpers/faulty-relay.js';
import { stopAll, tempDir } from '../helpers/proc.js';
import { echoTransfer, seededBytes, sha256, storedBudgets } from '../helpers/resilience.js';
import { ipv4Request, socksConnect } from '../helpers/socks.js';
import { TRANSPORTS, init, startBridge, startClient, withPort, withTransport, type Transport } from '../helpers/stack.js';

const KIB = 1024;
const FORGOTTEN = 'connections to this bridge carry more than the learned wall: no longer moving early';
const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  await stopAll();
  for (const c of closers.splice(0)) await c();
});

/** A server that sends `data` to whoever connects, then ends. */
async function source(data: Buffer, bytesPerSecond = 0): Promise<number> {
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    if (bytesPerSecond === 0) return void s.end(data);
    let off = 0;
    const tick = setInterval(() => {
      const n = Math.ceil(bytesPerSecond / 20);
      s.write(data.subarray(off, off + n));
      off += n;
      if (off >= data.length) {
        clearInterval(tick);
        s.end();
      }
    }, 50);
    s.on('close', () => clearInterval(tick));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as net.AddressInfo).port;
}

/** A server that hashes what it receives; resolves with hash and byte count at EOF. */
async function sink(): Promise<{ port: number; result: Promise<{ hash: string; bytes: number }> }> {
  let resolve!: (v: { hash: string; bytes: number }) => void;
  const result = new Promise<{ hash: string; bytes: number }>((r) => (resolve = r));
  const server = net.createServer((s) => {
    const h = crypto.createHash('sha256');
    let bytes = 0;
    s.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.length;
    });
    s.on('end', () => {
      s.end();
      resolve({ hash: h.digest('hex'), bytes });
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as net.AddressInfo).port, result };
}

async function download(socksPort: number, port: number): Promise<{ hash: string; bytes: number; ms: number }> {
  const started = performance.now();
  const { socket, reply } = await socksConnect(socksPort, ipv4Request('127.0.0.1', port));
  expect(reply).toBe(0);
  const h = crypto.createHash('sha256');
  let bytes = 0;
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.length;
    });
    socket.on('end', resolve);
    socket.on('error', reject);
    socket.resume();
  });
  socket.destroy();
  return { hash: h.digest('hex'), bytes, ms: performance.now() - started };
}

async function upload(socksPort: number, port: number, data: Buffer): Promise<number> {
  const started = performance.now();
  const { socket, reply } = await socksConnect(socksPort, ipv4Request('127.0.0.1', port));
  expect(reply).toBe(0);
  socket.on('error', () => undefined);
  socket.resume();
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  socket.end(data);
  await closed;
  return performance.now() - started;
}

/** An echo server on loopback. */
async function echoServer(): Promise<number> {
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as net.AddressInfo).port;
}

/** init → bridge → relay → client (default settings unless `args`) over `transport`, tunnel up. */
async function walled(transport: Transport, opts: { freezeAfter?: number | null; resetAfter?: number; resetAfterDown?: number; args?: string[]; stateHome?: string; env?: NodeJS.ProcessEnv } = {}) {
  const { uri: initUri, config } = await init();
  const uri = withTransport(initUri, transport);
  const { port: bridgePort } = await startBridge(config, undefined, transport);
  const relay = new FaultyRelay({ target: bridgePort });
  relay.freezeAfter = opts.freezeAfter === undefined ? 16 * KIB : opts.freezeAfter;
  if (opts.resetAfter !== undefined) {
    relay.freezeAfter = null;
    relay.cutRange = [opts.resetAfter, opts.resetAfter];
  }
  if (opts.resetAfterDown !== undefined) {
    relay.freezeAfter = null;
    relay.resetAfterDown = opts.resetAfterDown;
  }
  closers.push(() => relay.close());
  const relayPort = await relay.listen();
  const stateHome = opts.stateHome ?? tempDir('postern-state-');
  const { client, port: socksPort } = await startClient(withPort(uri, relayPort), opts.args ?? [], { env: { XDG_STATE_HOME: stateHome, ...opts.env } });
  await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
  return { uri, relay, relayPort, client, socksPort, stateHome };
}

describe.each(TRANSPORTS)('a network that freezes every connection after 16 KiB downstream, over transport=%s', (transport) => {
  it('delivers a 1 MiB download intact with default client settings, learning the wall on the way', async () => {
    const s = await walled(transport);
    const data = seededBytes(1024 * KIB, 1);
    const r = await download(s.socksPort, await source(data));
    expect(r.bytes).toBe(data.length);
    expect(r.hash).toBe(sha256(data));
    expect(s.relay.freezes).toBeGreaterThan(0);
    const learned = s.client.lines.find((l) => l.budget !== undefined && l.cutAtBytes !== undefined);
    expect(learned?.budget).toBeLessThan(16 * KIB);
    // Once learned, connections move before the wall instead of freezing into it.
    expect(s.relay.freezes).toBeLessThan(s.relay.accepted / 2);
    // The probes past the budget (after 4, 8, 16, … connections) ran into the wall: it is kept.
    expect(s.client.lines.find((l) => l.msg === FORGOTTEN)).toBeUndefined();
    expect(storedBudgets(s.stateHome)).toEqual([s.client.lines.filter((l) => l.cutAtBytes !== undefined).at(-1)?.budget]);
    // Never a burst of handshakes: the client dials at most 3 per 500 ms. The relay stamps accepts on
    // this test process's event loop, whose lag can bunch them by a few tens of ms under load, so the
    // window checked here is 300 ms.
    expect(s.relay.maxAcceptedWithin(300)).toBeLessThanOrEqual(3);
  }, 60_000);

  /** Beyond the detection bound, for the new connection to reach the relay (a dial, seen on this process's loop). */
  const RECONNECT_ALLOWANCE_MS = 400;

  it('notices a freeze in well under a second while data is owed, and resumes on a new connection', async () => {
    const s = await walled(transport, { freezeAfter: null, args: ['--conn-budget', 'off'] });
    const data = seededBytes(2048 * KIB, 2);
    const got = download(s.socksPort, await source(data, 1024 * KIB));
    await new Promise((r) => setTimeout(r, 600));
    const before = s.relay.accepted;
    const frozenAt = performance.now();
    s.relay.freezeAll();
    const r = await got;
    expect(r.hash).toBe(sha256(data));
    expect(s.relay.accepted).toBeGreaterThan(before);
    const detectedMs = (s.relay.acceptedAt[before] as number) - frozenAt;
    const line = s.client.lines.find((l) => l.msg === 'connection frozen: bytes owed, nothing received');
    // The timeout is 4 smoothed RTTs, at least 300 ms (§9.7): on loopback RTTs of 10–60 ms, well
    // under a second. A loaded machine can queue a 1 MiB/s transfer's probes for 200 ms and more
    // (measured: 225–270 ms, over ws and h2 alike); the bound follows the RTT the client measured.
    const bound = Math.max(800, 4 * Number(line?.rttMs ?? 0) + 400);
    // The detection itself is the client's count (silentMs); the relay's clock also holds the new
    // dial, and this test process's event-loop lag under a full parallel run (803 ms once, bound 800).
    expect(line?.silentMs).toBeLessThan(bound);
    expect(detectedMs).toBeLessThan(bound + RECONNECT_ALLOWANCE_MS);
  }, 30_000);

  it('keeps an idle tunnel on one connection: no reconnect loop', async () => {
    const s = await walled(transport, { args: ['--keepalive-ms', '2000'] });
    await new Promise((r) => setTimeout(r, 4_000));
    // Keepalive PINGs (every second) are answered: the tunnel stays on its first connection.
    expect(s.relay.accepted).toBe(1);
    expect(s.client.lines.filter((l) => l.msg === 'connection frozen: bytes owed, nothing received')).toHaveLength(0);
  }, 30_000);

  it('uploads 16 MiB at full speed: the upstream is not walled, so nothing rotates for it', async () => {
    const data = seededBytes(16 * 1024 * KIB, 3);
    const free = await walled(transport, { freezeAfter: null });
    const dst1 = await sink();
    const freeMs = await upload(free.socksPort, dst1.port, data);
    expect((await dst1.result).hash).toBe(sha256(data));
    const s = await walled(transport);
    const dst2 = await sink();
    const wallMs = await upload(s.socksPort, dst2.port, data);
    expect((await dst2.result).hash).toBe(sha256(data));
    // ACKs and window updates cost the downstream little: a connection or two at most.
    expect(s.relay.accepted).toBeLessThanOrEqual(3);
    expect(wallMs).toBeLessThan(freeMs * 2 + 1_000);
  }, 60_000);

  it('dials a standby before each move: the next connection is up when the budget runs out, and an idle tunnel dials none', async () => {
    const s = await walled(transport, { args: ['--conn-budget', '12000', '--log-level', 'debug'] });
    const data = seededBytes(512 * KIB, 7);
    const r = await download(s.socksPort, await source(data));
    expect(r.hash).toBe(sha256(data));
    const moves = s.client.lines.filter((l) => l.msg === 'tunnel moved to a new connection');
    expect(moves.length).toBeGreaterThan(20);
    // Nearly every move lands on a standby dialled at half the budget (the first may not).
    expect(moves.filter((l) => l.standby === true).length).toBeGreaterThanOrEqual(moves.length - 2);
    expect(s.relay.freezes).toBe(0); // nor is a fixed budget ever probed (§9.8): no connection reaches the wall
    expect(s.client.lines.filter((l) => l.msg === 'probing past the learned budget')).toHaveLength(0);
    expect(s.relay.maxAcceptedWithin(300)).toBeLessThanOrEqual(3); // see above: the cap, with room for the relay's loop lag
    // Idle now: at most the one standby dialled near the end, no more.
    const after = s.relay.accepted;
    await new Promise((res) => setTimeout(res, 3_000));
    expect(s.relay.accepted - after).toBeLessThanOrEqual(1);
  }, 60_000);

  it('remembers the learned budget across a client restart', async () => {
    const s = await walled(transport, { args: ['--dial-interval-ms', '50'] });
    const data = seededBytes(128 * KIB, 4);
    const r = await download(s.socksPort, await source(data));
    expect(r.hash).toBe(sha256(data));
    const learned = s.client.lines.find((l) => l.cutAtBytes !== undefined);
    expect(learned).toBeDefined();
    const file = path.join(s.stateHome, 'postern', 'walls.json');
    expect(storedBudgets(s.stateHome)).toEqual([learned?.budget]);
    // The state file names no bridge address.
    expect(fs.readFileSync(file, 'utf8')).not.toContain('127.0.0.1');
    await s.client.stop('SIGKILL');

    const { client, port } = await startClient(withPort(s.uri, s.relayPort), [], { env: { XDG_STATE_HOME: s.stateHome } });
    await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
    const start = client.lines.find((l) => l.learned === true);
    expect(start?.budget).toBe(learned?.budget);
    const freezes = s.relay.freezes;
    const again = await download(port, await source(data));
    expect(again.hash).toBe(sha256(data));
    // With the budget known from the start, no connection runs into the wall.
    expect(s.relay.freezes - freezes).toBeLessThanOrEqual(1);
  }, 60_000);
});

describe.each(TRANSPORTS)('a network that resets every connection after 16 KiB, both directions counted, over transport=%s', (transport) => {
  it('learns a budget below the wall: a 256 KiB echo uses at most 3 × the ideal connections, each moving before the wall, and the kind learned is stored', async () => {
    const s = await walled(transport, { resetAfter: 16 * KIB });
    const data = seededBytes(256 * KIB, 6);
    const r = await echoTransfer(s.socksPort, await echoServer(), data);
    expect(r.hash).toBe(sha256(data));
    const ideal = (2 * data.length) / (16 * KIB);
    expect(s.relay.accepted).toBeLessThanOrEqual(3 * ideal);
    const learned = s.client.lines.find((l) => l.cutAtBytes !== undefined);
    // Usually 'both'. Under heavy load a reset can make the client's kernel drop bytes it had received,
    // and the learner then settles on bytes received alone with a budget that still moves in time.
    expect(['both', 'down']).toContain(learned?.counts);
    expect(learned?.budget).toBeLessThan(16 * KIB);
    // Once learned, connections move instead of running into the wall (learning takes a few cuts).
    expect(s.relay.wallResets).toBeLessThan(s.relay.accepted / 2);
    expect(s.relay.maxAcceptedWithin(300)).toBeLessThanOrEqual(3); // see above: the cap, with room for the relay's loop lag
    const stored = JSON.parse(fs.readFileSync(path.join(s.stateHome, 'postern', 'walls.json'), 'utf8')) as { bridges: Record<string, { counts?: string }> };
    expect(Object.values(stored.bridges).map((e) => e.counts)).toEqual([learned?.counts]);
  }, 90_000);
});

describe.each(TRANSPORTS)('a network that resets every connection after 64 KiB (§9.8.1: the wall is learned from what crossed), over transport=%s', (transport) => {
  // Four echoes at once keep both sides writing when the reset comes: a reset then used to cost
  // the reader most of what had crossed last (its socket was dropped on the failed write before
  // it read them), and the counts never agreed. Each side now reads to the reset, and the bridge's
  // TALLY says what it read and wrote on the connection before.
  const echoes = async (s: Awaited<ReturnType<typeof walled>>): Promise<void> => {
    const port = await echoServer();
    const data = [0, 1, 2, 3].map((i) => seededBytes(512 * KIB, 30 + i));
    const rs = await Promise.all(data.map((d) => echoTransfer(s.socksPort, port, d)));
    rs.forEach((r, i) => expect(r.hash).toBe(sha256(data[i] as Buffer)));
  };
  /** The learned line, and how many walled resets the relay had seen when it was logged. */
  const watchLearning = (s: Awaited<ReturnType<typeof walled>>): { resetsAtLearning: () => number | null } => {
    let at: number | null = null;
    void s.client.waitFor((l) => l.cutAtBytes !== undefined, 60_000, 'learned').then(
      () => (at = s.relay.wallResets),
      () => undefined,
    );
    return { resetsAtLearning: () => at };
  };

  /**
   * What the client did about the wall (its debug lines: cuts, learned budgets, probes) and the
   * relay's resets, in time order: printed when an assertion below fails, so that a failure in a
   * loaded CI run says which kind of connection kept running into the wall.
   */
  const timeline = (s: Awaited<ReturnType<typeof walled>>): string => {
    const client = s.client.lines
      .filter((l) => l.cutAtBytes !== undefined || l.msg === FORGOTTEN || l.msg === 'connection cut' || String(l.msg).startsWith('prob'))
      .map((l) => {
        const { time, msg, level: _l, pid: _p, hostname: _h, component: _c, bridge: _b, ...rest } = l as Record<string, unknown>;
        return { at: time as number, text: `client ${String(msg).slice(0, 40)} ${JSON.stringify(rest)}` };
      });
    const relay = s.relay.wallCuts.map((c) => ({ at: c.at, text: `relay reset at the wall: down ${c.down}, up ${c.up}` }));
    const events = [...client, ...relay].sort((a, b) => a.at - b.at);
    return events.map((e) => `${String(Math.round(e.at - (events[0]?.at ?? 0))).padStart(6)} ms  ${e.text}`).join('\n');
  };

  it.each([
    ['both directions counted', { resetAfter: 64 * KIB }, 'both'],
    ['bridge→client bytes counted', { resetAfterDown: 64 * KIB }, 'down'],
  ] as const)('%s: learns a budget below 64 KiB within a few cuts, then moves before the wall', async (_name, wall, counts) => {
    // At debug the client logs each cut (probe or not) and each probe: the accounting below needs them.
    const s = await walled(transport, { ...wall, env: { POSTERN_LOG_LEVEL: 'debug' } });
    const learning = watchLearning(s);
    await echoes(s);
    const why = timeline(s);
    const learned = s.client.lines.filter((l) => l.cutAtBytes !== undefined);
    expect(learned.length, why).toBeGreaterThan(0);
    const last = learned[learned.length - 1] as unknown as { budget: number; counts: string };
    expect(last.budget, why).toBeLessThan(64 * KIB);
    expect(last.budget, why).toBeGreaterThan(0.7 * 64 * KIB);
    expect(last.counts, why).toBe(counts);
    // The probes past the budget ran into the wall (or showed nothing): it is kept.
    expect(s.client.lines.find((l) => l.msg === FORGOTTEN), why).toBeUndefined();
    expect(storedBudgets(s.stateHome)).toEqual([last.budget]);
    // Within a few cuts, and after that hardly any connection runs into the wall but the probes.
    const atLearning = learning.resetsAtLearning();
    expect(atLearning, why).not.toBeNull();
    const after = s.relay.wallResets - (atLearning as number);
    const probesCut = s.client.lines.filter((l) => l.msg === 'connection cut' && l.probe === true).length;
    console.log(`${transport} ${counts}: ${atLearning} resets before the wall was learned, ${after} after (${probesCut} of them probes), ${s.relay.accepted} connections`);
    // Over h2 with only bridge→client bytes walled, a cut often finds the client with little of the
    // 64 KiB read (1.2–2.8 KB in a debug run: Linux drops what a socket had not read when the reset
    // comes), and such cuts do not agree, so learning takes longer: measured alone, 3–18 resets (7 of
    // 28 runs above 8) on this code and on e36c648 alike; ws down 3–4. A loaded machine does the same
    // to the two-way case: ws both took 20 in a full CI run of 4cd72b4, where alone it takes 3–6
    // (6 runs each of 4cd72b4 and dccfb23, alternated).
    expect(atLearning, why).toBeLessThanOrEqual(counts === 'down' && transport === 'ws' ? 8 : 20);
    // Connections under the budget move before the wall: few of them run into it after learning.
    // Probes run into it on purpose (§9.8: 2 × the budget after 4 connections, the gap doubling
    // when one is confirmed), at most one in five connections by the schedule; counted apart, as a
    // CI run of b377278 failed with 18 resets after learning against 10 allowed for both together
    // and did not say which (locally 3–8 after learning, 3–4 of them probes, alone and under load).
    expect(after - probesCut, why).toBeLessThanOrEqual(Math.max(3, s.relay.accepted / 10));
    expect(probesCut, why).toBeLessThanOrEqual(Math.ceil(s.relay.accepted / 5));
    expect(s.relay.maxAcceptedWithin(300), why).toBeLessThanOrEqual(3); // see above: the cap, with room for the relay's loop lag
  }, 90_000);
});

describe.each(TRANSPORTS)('a budget set to count both directions (--conn-budget both:BYTES), over transport=%s', (transport) => {
  it('moves before a 64 KiB two-way wall from the first connection on: no connection runs into it', async () => {
    const s = await walled(transport, { resetAfter: 64 * KIB, args: ['--conn-budget', 'both:48k'] });
    expect(s.client.lines.find((l) => l.budget !== undefined)).toMatchObject({ budget: 48 * KIB, learned: false, counts: 'both' });
    const data = seededBytes(512 * KIB, 40);
    const r = await echoTransfer(s.socksPort, await echoServer(), data);
    expect(r.hash).toBe(sha256(data));
    expect(s.relay.accepted).toBeGreaterThan(10); // ≈ 2 × 512 KiB / 48 KiB
    expect(s.relay.wallResets).toBe(0); // a fixed budget is never probed (§9.8)
  }, 60_000);
});

