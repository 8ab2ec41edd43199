/**
 * The HTTP/2 transport's packet-up mode (protocol.md §12.3) with the built binary: direct (TLS,
 * ALPN h2), and behind a real nginx that buffers request bodies, where stream-one cannot work.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type net from 'node:net';
import { curl } from '../helpers/ops.js';
import { stopAll } from '../helpers/proc.js';
import { echoTransfer, seededBytes, sha256 } from '../helpers/resilience.js';
import { echoServer, httpServer, type Local } from '../helpers/servers.js';
import { init, startBridge, startClient, withPort, withTransport } from '../helpers/stack.js';

let web: Local<import('node:http').Server>;
let echo: Local<net.Server>;
beforeAll(async () => {
  web = await httpServer();
  echo = await echoServer();
});
afterEach(async () => {
  await stopAll();
});
afterAll(async () => {
  await web?.close();
  await echo?.close();
});

/** Adds mode=packet-up to an h2 link. */
function packetUp(uri: string): string {
  const u = new URL(uri);
  u.searchParams.set('mode', 'packet-up');
  return u.toString();
}

describe('transport=h2 mode=packet-up, direct', () => {
  it('carries curl through SOCKS5 and 16 MiB both ways, the upstream as numbered POSTs', async () => {
    const { uri: initUri, config } = await init();
    const { bridge, port } = await startBridge(config, ['--allow-private', '--log-level', 'debug'], 'h2');
    const uri = packetUp(withTransport(withPort(initUri, port), 'h2'));
    const { client, port: socks } = await startClient(uri, ['--log-level', 'debug']);
    await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
    expect(client.lines.some((l) => l.msg === 'bridge session open' && l.transport === 'h2' && l.mode === 'packet-up')).toBe(true);
    expect(bridge.lines.some((l) => l.msg === 'h2 session accepted')).toBe(true);

    const got = await curl(['--socks5-hostname', `127.0.0.1:${socks}`, `http://127.0.0.1:${web.port}/page`]);
    expect(got.stdout).toContain('hello through postern');

    const big = seededBytes(16 * 1024 * 1024, 7);
    const r = await echoTransfer(socks, echo.port, big);
    expect(r.ended).toBe('end');
    expect(r.hash).toBe(sha256(big));
    expect(bridge.child.exitCode).toBeNull();
  }, 120_000);
});
