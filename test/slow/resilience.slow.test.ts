/**
 * The full-size resumption test (issue 3): 64 MiB per stream, three streams, both directions,
 * through a relay that resets the tunnel every 16 KB–1 MiB. `npm run test:slow`.
 */
import type net from 'node:net';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { FaultyRelay } from '../helpers/faulty-relay.js';
import { stopAll } from '../helpers/proc.js';
import { echoTransfer, seededBytes, sha256 } from '../helpers/resilience.js';
import { echoServer, type Local } from '../helpers/servers.js';
import { init, startBridge, startClient, withPort } from '../helpers/stack.js';

let echo: Local<net.Server>;
let relay: FaultyRelay | null = null;
beforeAll(async () => {
  echo = await echoServer('127.0.0.1');
});
afterEach(async () => {
  await stopAll();
  await relay?.close();
});
afterAll(() => echo?.close());

it('carries 3 × 64 MiB both ways intact while the tunnel is reset every 16 KB–1 MiB', async () => {
  const { uri, config } = await init();
  const { port } = await startBridge(config);
  relay = new FaultyRelay({ target: port, seed: 20260 });
  relay.cutRange = [16 * 1024, 1024 * 1024];
  const relayPort = await relay.listen();
  const { client, port: socksPort } = await startClient(withPort(uri, relayPort));
  await client.waitFor((l) => l.msg === 'tunnel to bridge up', 30_000, 'tunnel up');
  const data = [1, 2, 3].map((i) => seededBytes(64 * 1024 * 1024, 100 + i));
  const results = await Promise.all(data.map((d) => echoTransfer(socksPort, echo.port, d)));
  for (let i = 0; i < data.length; i++) {
    expect(results[i]?.ended).toBe('end');
    expect(results[i]?.hash).toBe(sha256(data[i] as Buffer));
  }
  expect(relay.cuts).toBeGreaterThan(100);
}, 600_000);
