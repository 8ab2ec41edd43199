/**
 * Issue 12: the bridge and the client collect V8's young generation on their main thread by
 * default, and POSTERN_GC_THREADS=1 gives V8's default, helper threads (src/cli/young-generation.ts).
 * What shows it from outside: V8 hands work to its helper threads after each young collection
 * (parallel scavenging, freeing dead ArrayBuffers), and a helper blocks again once done, so the
 * helpers' voluntary context switches (/proc/PID/task/TID/status) count the hand-offs. Measured
 * here, per ECHO_BYTES echoed: 61–74 with the default, 366–449 with POSTERN_GC_THREADS=1 (360–449 in
 * both daemons of the build before the setting, where both tests fail). Each case has one daemon that must show
 * many, so the count is shown to see them.
 */
import { describe, expect, it } from 'vitest';
import { Postern, sumOverHelperThreads } from '../helpers/proc.js';
import { echoBulk, relayFixture } from '../helpers/resilience.js';
import { init, withPort } from '../helpers/stack.js';

const MIB = 1024 * 1024;
/** Echoed through one stream: each daemon relays it both ways at once. */
const ECHO_BYTES = 96 * MIB;

const fixture = relayFixture();

/** Voluntary context switches of every thread of `pid` but its main one. */
const helperWakeups = (pid: number): number =>
  sumOverHelperThreads(pid, 'status', (status) => Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1] ?? 0));

/** Helper-thread wakeups of each daemon while ECHO_BYTES are echoed through it (after a warm-up). */
async function underBulk(bridgeEnv: NodeJS.ProcessEnv, clientEnv: NodeJS.ProcessEnv): Promise<{ bridge: number; client: number }> {
  const { config, uri } = await init();
  const bridge = new Postern(['bridge', '--config', config, '--listen', '127.0.0.1:0', '--allow-private', '--no-http2'], bridgeEnv);
  const bridgePort = await bridge.listening('bridge');
  const client = new Postern(['client', '--bridge', withPort(uri, bridgePort), '--listen', '127.0.0.1:0', '--no-auth'], clientEnv);
  const port = await client.listening('socks');
  await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
  expect(await echoBulk(port, fixture.echoPort, ECHO_BYTES)).toBe(ECHO_BYTES); // start-up work (compilation, the first full collections) is not counted
  const b0 = helperWakeups(bridge.pid);
  const c0 = helperWakeups(client.pid);
  expect(await echoBulk(port, fixture.echoPort, ECHO_BYTES)).toBe(ECHO_BYTES);
  return { bridge: helperWakeups(bridge.pid) - b0, client: helperWakeups(client.pid) - c0 };
}

describe('V8 young collections on the main thread (POSTERN_GC_THREADS)', () => {
  it('a bridge by default wakes its helper threads far less than a client with POSTERN_GC_THREADS=1', async () => {
    const { bridge, client } = await underBulk({}, { POSTERN_GC_THREADS: '1' });
    expect(client).toBeGreaterThan(150);
    expect(bridge * 3).toBeLessThan(client);
  }, 90_000);

  it('a client by default wakes its helper threads far less than a bridge with POSTERN_GC_THREADS=1', async () => {
    const { bridge, client } = await underBulk({ POSTERN_GC_THREADS: '1' }, {});
    expect(bridge).toBeGreaterThan(150);
    expect(client * 3).toBeLessThan(bridge);
  }, 90_000);
});
