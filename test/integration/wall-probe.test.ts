/**
 * A learned budget is probed now and then (issue 16, docs/protocol.md §9.8 "Probing a learned
 * budget"): the built binary with a walls.json that says the bridge has a wall. Where there is
 * none, a probe carries past it and the budget is forgotten, on disk too; where there is one, the
 * probes run into it and the budget stays.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { WallStore, wallKey, type WallCounts } from '../../src/client/wall.js';
import { parseShareUri } from '../../src/transport/uri.js';
import { tempDir } from '../helpers/proc.js';
import { echoTransfer, relayFixture, seededBytes, sha256, storedBudgets } from '../helpers/resilience.js';
import { TRANSPORTS, init, startBridge, startClient, withPort, withTransport, type Transport } from '../helpers/stack.js';

const KIB = 1024;
const FORGOTTEN = 'connections to this bridge carry more than the learned wall: no longer moving early';
const PROBE_ENDED = 'probe past the learned budget ended';
const FROZEN = 'connection frozen: bytes owed, nothing received';
const WEEK_MS = 7 * 24 * 3_600_000;

const fx = relayFixture();

/** bridge → relay (`freezeAfter` bridge→client bytes, or no wall) → client that starts with `budget` stored for the bridge. */
async function withStoredBudget(transport: Transport, budget: number, freezeAfter: number | null, counts: WallCounts = 'down') {
  const { uri: initUri, config } = await init();
  const uri = withTransport(initUri, transport);
  const { port: bridgePort } = await startBridge(config, undefined, transport);
  const relay = fx.relay({ target: bridgePort });
  relay.freezeAfter = freezeAfter;
  const relayPort = await relay.listen();
  const stateHome = tempDir('postern-state-');
  const key = wallKey(parseShareUri(withPort(uri, relayPort)));
  new WallStore(path.join(stateHome, 'postern', 'walls.json'), WEEK_MS).set(key, budget, counts);
  const { client, port: socksPort } = await startClient(withPort(uri, relayPort), ['--log-level', 'debug'], { env: { XDG_STATE_HOME: stateHome } });
  await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
  expect(client.lines.find((l) => l.learned === true)?.budget).toBe(budget);
  return { relay, client, socksPort, stateHome };
}

describe.each(TRANSPORTS)('probing a learned budget, over transport=%s', (transport) => {
  // Both ways, the probe is moved when its send share runs out, and judged on what the bridge's
  // TALLY says it received on it (what the client wrote may not have crossed a wall).
  it.each(['down', 'both'] as const)('forgets a wrong 16 KiB budget (counting %s) for a bridge with no wall: after 4 connections the probe carries past it', async (counts) => {
    const s = await withStoredBudget(transport, 16 * KIB, null, counts);
    const data = seededBytes(4 * 1024 * KIB, 61);
    const started = performance.now();
    const r = await echoTransfer(s.socksPort, fx.echoPort, data);
    const ms = performance.now() - started;
    expect(r.hash).toBe(sha256(data));
    const forgot = s.client.lines.find((l) => l.msg === FORGOTTEN);
    expect(forgot).toMatchObject({ budget: 16 * KIB, counts });
    expect(forgot?.carriedBytes).toBeGreaterThan((16 * KIB) / 0.85 / 0.875);
    expect(storedBudgets(s.stateHome)).toEqual([]);
    // The first connection, 4 at the budget, the probe, the one after it with no budget — and at
    // most a standby or two. Kept, the budget would have taken ~260 connections (~520 counting both).
    console.log(`${transport} ${counts}: wrong budget forgotten; ${s.relay.accepted} connections, ${Math.round(ms)} ms for a 4 MiB echo`);
    expect(s.relay.accepted).toBeLessThanOrEqual(10);
    expect(s.client.lines.filter((l) => l.msg === 'tunnel moved to a new connection').length).toBeLessThanOrEqual(7);
  }, 60_000);

  it('a wall that comes after a probe disproved one is learned from 5 freezes, not 3 (what the probe carried is remembered)', async () => {
    // The wrong 56 K budget random resets taught (the handshake plus one 64 KiB read, §9.8): its probe carries ~112 K.
    const s = await withStoredBudget(transport, 56_135, null);
    const before = seededBytes(4 * 1024 * KIB, 63);
    expect((await echoTransfer(s.socksPort, fx.echoPort, before)).hash).toBe(sha256(before));
    expect(s.client.lines.find((l) => l.msg === FORGOTTEN)?.carriedBytes).toBeGreaterThan(100 * KIB);
    // Now the path freezes every connection after 16 KiB (the one in use is reset: it is past that already).
    s.relay.freezeAfter = 16 * KIB;
    s.relay.cutAll();
    const after = seededBytes(512 * KIB, 64);
    expect((await echoTransfer(s.socksPort, fx.echoPort, after)).hash).toBe(sha256(after));
    const at = s.client.lines.findIndex((l) => l.cutAtBytes !== undefined);
    const learned = s.client.lines[at];
    expect(learned?.budget).toBeLessThan(16 * KIB);
    // Freezes the client noticed before it learned the wall (each is a cut at ~16 K; a fresh learner takes 3).
    const freezes = s.client.lines.slice(0, at).filter((l) => l.msg === FROZEN).length;
    console.log(`${transport}: a 16 KiB freeze after a disproof learned after ${freezes} freezes, ${s.relay.freezes} in all`);
    expect(freezes).toBe(5);
    expect(storedBudgets(s.stateHome)).toEqual([learned?.budget]);
  }, 90_000);

  it('keeps a right budget under a 16 KiB freeze: each probe runs into the wall and the next one comes twice as late', async () => {
    const budget = Math.floor(0.85 * 16 * KIB);
    const s = await withStoredBudget(transport, budget, 16 * KIB);
    const data = seededBytes(256 * KIB, 62);
    const r = await echoTransfer(s.socksPort, fx.echoPort, data);
    expect(r.hash).toBe(sha256(data));
    expect(s.client.lines.find((l) => l.msg === FORGOTTEN)).toBeUndefined();
    expect(storedBudgets(s.stateHome)).toEqual([budget]);
    // Each freeze is a probe's: its verdict is logged when the bridge's TALLY arrives on the next
    // connection (the line may reach us a moment after the echo ends).
    const freezes = s.relay.freezes;
    await s.client.waitFor((l) => l.msg === PROBE_ENDED && s.client.lines.filter((m) => m.msg === PROBE_ENDED).length >= freezes, 5_000, 'a verdict per freeze');
    const probes = s.client.lines.filter((l) => l.msg === PROBE_ENDED);
    // ≈ 20 connections at 13.9 K: probes at the 5th and the 14th (after 4, then 8 more).
    expect(probes.length).toBeGreaterThanOrEqual(2);
    expect(probes.slice(0, 2).map((l) => [l.outcome, l.cut, l.probeEvery])).toEqual([
      ['confirmed', true, 8],
      ['confirmed', true, 16],
    ]);
    // Only the probes reach the wall (a freeze each), nothing else does.
    expect(freezes).toBe(probes.length);
  }, 60_000);
});
