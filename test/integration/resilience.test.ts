/**
 * Sessions that survive a hostile network (issue 3, docs/protocol.md §9): the built binary, a
 * fault-injecting relay between client and bridge.
 */
import { describe, expect, it } from 'vitest';
import { Postern } from '../helpers/proc.js';
import { echoTransfer, relayFixture, seededBytes, setBridgeLimits, sha256 } from '../helpers/resilience.js';
import { closeKind, ipv4Request, readN, socksConnect } from '../helpers/socks.js';
import { TRANSPORTS, init, startBridge, startClient, startStack, withPort, withTransport, type Transport } from '../helpers/stack.js';

const fx = relayFixture();

/** init → bridge (fast keepalive) → relay in front of it → client through the relay. */
async function relayedStack(opts: { clientArgs?: string[]; seed?: number; transport?: Transport } = {}) {
  const { uri: initUri, config } = await init();
  const transport = opts.transport ?? 'ws';
  const uri = withTransport(initUri, transport);
  setBridgeLimits(config, { KEEPALIVE_INTERVAL_MS: 1_000, KEEPALIVE_TIMEOUT_MS: 2_000 });
  const { bridge, port: bridgePort } = await startBridge(config, undefined, transport);
  const relay = fx.relay({ target: bridgePort, seed: opts.seed ?? 7 });
  const relayPort = await relay.listen();
  const { client, port: socksPort } = await startClient(withPort(uri, relayPort), ['--keepalive-ms', '2000', ...(opts.clientArgs ?? [])]);
  await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
  return { uri, config, bridge, bridgePort, relay, client, socksPort };
}

describe.each(TRANSPORTS)('resumable sessions over transport=%s', (transport) => {
  // Over h2 this took 47–83 s until a TCP reset that lands while HTTP/2 over TLS writes stopped
  // hanging the connection (transport/h2/wedge.ts): the freeze detector had to notice each one.
  it('carries 3 × 8 MiB both ways intact while the relay resets the tunnel every 16 KB–1 MiB', async () => {
    // Hundreds of resets: redial at once (the handshake pacing of §9.8 is not under test here),
    // and no learned connection budget: these resets come at random byte counts, not at a wall,
    // but what got through before each reset can look like one (§9.8 learning on, measured: ws
    // opened 3,486 connections in 21 s; h2 learned budgets of 4–13 KB both ways and reached 4,096,
    // where the bridge's replay cache refused the rest).
    const s = await relayedStack({ seed: 42, clientArgs: ['--dial-interval-ms', '0', '--dial-burst', '0', '--conn-budget', 'off'], transport });
    s.relay.cutRange = [16 * 1024, 1024 * 1024];
    s.relay.cutAll(); // the connection made before cutRange was set has no budget
    const data = [1, 2, 3].map((i) => seededBytes(8 * 1024 * 1024, i));
    const started = Date.now();
    const results = await Promise.all(data.map((d) => echoTransfer(s.socksPort, fx.echoPort, d)));
    for (let i = 0; i < data.length; i++) {
      expect(results[i]?.ended).toBe('end');
      expect(results[i]?.hash).toBe(sha256(data[i] as Buffer));
    }
    // The tunnel really was cut, many times, and the session resumed each time.
    expect(s.relay.cuts).toBeGreaterThan(20);
    expect(s.client.lines.filter((l) => l.msg === 'tunnel to bridge up' && l.resumed === true).length).toBeGreaterThan(20);
    // Measured side by side (load 5): ws 13 s, h2 17 s; at load 12 both 26 s. Before wedge.ts h2
    // took 129 s (275 connections hung until the freeze detector dropped them).
    expect(Date.now() - started).toBeLessThan(60_000);
  }, 90_000);

  it('makes progress when every tunnel connection is reset after 16–24 KB (DATA frames shrink)', async () => {
    const s = await relayedStack({ seed: 16, transport });
    s.relay.cutRange = [16 * 1024, 24 * 1024];
    s.relay.cutAll();
    const data = seededBytes(256 * 1024, 5);
    const r = await echoTransfer(s.socksPort, fx.echoPort, data);
    expect(r.ended).toBe('end');
    expect(r.hash).toBe(sha256(data));
    expect(s.relay.cuts).toBeGreaterThan(20);
  }, 60_000);

  it('detects a blackholed path within the keepalive bound, resumes on a new connection, completes intact', async () => {
    const s = await relayedStack({ transport });
    s.relay.bytesPerSecond = 8 * 1024 * 1024; // long enough a transfer to blackhole it midway
    const data = seededBytes(8 * 1024 * 1024, 9);
    let holedAt = 0;
    const result = echoTransfer(s.socksPort, fx.echoPort, data, (got) => {
      if (holedAt === 0 && got > 1024 * 1024) {
        holedAt = Date.now();
        s.relay.blackholeAll();
      }
    });
    // Data is owed, so the freeze detector (§9.7) drops it well before the keepalive would.
    const silent = await s.client.waitFor(
      (l) => l.msg === 'connection frozen: bytes owed, nothing received' || l.msg === 'connection silent: keepalive timeout',
      15_000,
      'frozen or keepalive timeout',
    );
    // --keepalive-ms 2000: dead after 2 s of silence at most (+ timer slack).
    expect(silent.time as number).toBeLessThan(holedAt + 3_500);
    const r = await result;
    expect(r.ended).toBe('end');
    expect(r.hash).toBe(sha256(data));
    expect(s.client.lines.some((l) => l.msg === 'tunnel to bridge up' && l.resumed === true)).toBe(true);
  }, 60_000);

  it('a stream that cannot resume (bridge killed and restarted) is reset, never cleanly ended; new streams work within 3 s', async () => {
    const { uri, config } = await init();
    const first = await startBridge(config);
    const { client, port: socksPort } = await startClient(withPort(uri, first.port));
    await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
    const { socket, reply } = await socksConnect(socksPort, ipv4Request('127.0.0.1', fx.echoPort));
    expect(reply).toBe(0);
    socket.write(Buffer.alloc(1000, 1));
    // The echo proves the bridge had the stream (with optimistic replies the reply comes first; a
    // bridge killed before it answered anything leaves a session a fresh bridge can still take up).
    await readN(socket, 1000);
    const kind = closeKind(socket, 20_000);
    await first.bridge.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 1_000));
    // The restarted bridge takes the old port (startBridge would pick a new one).
    const restarted = new Postern(['bridge', '--config', config, '--listen', `127.0.0.1:${first.port}`, '--allow-private']);
    await restarted.listening('bridge');
    const backAt = Date.now();
    expect(await kind).toBe('reset');
    // New SOCKS connections succeed within 3 s of the bridge being back.
    let okAt = 0;
    while (Date.now() - backAt < 10_000) {
      const r = await socksConnect(socksPort, ipv4Request('127.0.0.1', fx.echoPort)).catch(() => null);
      r?.socket.destroy();
      if (r?.reply === 0) {
        okAt = Date.now();
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(okAt).toBeGreaterThan(0);
    expect(okAt - backAt).toBeLessThan(3_000);
  }, 60_000);
});

describe('connection rotation', () => {
  it('moves the session to a fresh connection every 1 MiB, make-before-break, streams undisturbed', async () => {
    const s = await relayedStack({ clientArgs: ['--rotate-bytes', String(1024 * 1024)] });
    s.relay.bytesPerSecond = 8 * 1024 * 1024; // ≈ 2 s of transfer: several rotation checks
    const data = [1, 2].map((i) => seededBytes(4 * 1024 * 1024, 50 + i));
    const results = await Promise.all(data.map((d) => echoTransfer(s.socksPort, fx.echoPort, d)));
    for (let i = 0; i < data.length; i++) {
      expect(results[i]?.ended).toBe('end');
      expect(results[i]?.hash).toBe(sha256(data[i] as Buffer));
    }
    expect(s.client.lines.filter((l) => l.msg === 'rotating the tunnel connection').length).toBeGreaterThanOrEqual(3);
    // The session itself was never lost (the bridge switches at the new upgrade, so the client may
    // see its old connection end a moment before its own dial completes: a detach, not an end).
    expect(s.client.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('tunnel session ended'))).toBe(false);
  }, 60_000);
});

describe('several bridges', () => {
  it('failover: with one of two bridges killed, every new stream still works', async () => {
    const a = await init();
    const b = await init();
    const ba = await startBridge(a.config);
    const bb = await startBridge(b.config);
    const { client, port: socksPort } = await startClient(withPort(a.uri, ba.port), ['--bridge', withPort(b.uri, bb.port)]);
    await client.waitFor((l) => l.msg === 'tunnel to bridge up' && l.bridge === 0, 15_000, 'bridge 0 up');
    await client.waitFor((l) => l.msg === 'tunnel to bridge up' && l.bridge === 1, 15_000, 'bridge 1 up');
    const small = seededBytes(64 * 1024, 3);
    expect((await echoTransfer(socksPort, fx.echoPort, small)).hash).toBe(sha256(small));
    await ba.bridge.stop('SIGKILL');
    await client.waitFor((l) => l.msg === 'tunnel to bridge lost; resuming' && l.bridge === 0, 10_000, 'bridge 0 lost');
    for (let i = 0; i < 20; i++) {
      const r = await echoTransfer(socksPort, fx.echoPort, small);
      expect(r.ended).toBe('end');
      expect(r.hash).toBe(sha256(small));
    }
  }, 60_000);

  it('a bridge refusing our credential is reported as misconfigured, not unreachable', async () => {
    const a = await init();
    const b = await init();
    const ba = await startBridge(a.config);
    const u = new URL(withPort(a.uri, ba.port));
    u.username = new URL(b.uri).username;
    const { client } = await startClient(u.toString());
    const line = await client.waitFor((l) => l.code === 'E_AUTH_REJECTED', 10_000, 'auth rejected');
    expect(line.health).toBe('misconfigured');
  }, 30_000);
});

describe('graceful shutdown', () => {
  it('SIGTERM to the bridge lets an open stream finish inside the drain time, then exits 0', async () => {
    const s = await relayedStack();
    s.relay.bytesPerSecond = 4 * 1024 * 1024; // ≈ 1 s per direction for 4 MiB
    const data = seededBytes(4 * 1024 * 1024, 11);
    const result = echoTransfer(s.socksPort, fx.echoPort, data);
    await new Promise((r) => setTimeout(r, 400));
    const exit = s.bridge.stop('SIGTERM', 15_000);
    const r = await Promise.race([result, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`stuck: ${s.bridge.stdout.slice(-3000)}\n---\n${s.client.stdout.slice(-3000)}`)), 15_000))]);
    expect(r.ended).toBe('end');
    expect(r.hash).toBe(sha256(data));
    expect((await exit).code).toBe(0);
  }, 40_000);

  it('SIGTERM to a bridge whose only session is detached with nothing open exits at once, not after the drain time', async () => {
    const s = await startStack();
    await s.client.stop('SIGKILL');
    await s.bridge.waitFor((l) => l.msg === 'session detached; waiting to resume', 10_000, 'session detached');
    const t0 = performance.now();
    const exit = await s.bridge.stop('SIGTERM', 15_000);
    const ms = performance.now() - t0;
    expect(exit.code).toBe(0);
    // SHUTDOWN_DRAIN_MS is 5 s; before this fix the bridge waited all of it (5,081 ms measured).
    expect(ms).toBeLessThan(2_500);
  }, 30_000);

  it('SIGTERM to the client lets an open stream finish inside the drain time, then exits 0', async () => {
    const s = await relayedStack();
    s.relay.bytesPerSecond = 4 * 1024 * 1024;
    const data = seededBytes(4 * 1024 * 1024, 12);
    const result = echoTransfer(s.socksPort, fx.echoPort, data);
    await new Promise((r) => setTimeout(r, 400));
    const exit = s.client.stop('SIGTERM', 15_000);
    const r = await result;
    expect(r.ended).toBe('end');
    expect(r.hash).toBe(sha256(data));
    expect((await exit).code).toBe(0);
  }, 40_000);
});
