/**
 * bin/postern as users run it — executed, its first line starting node (`env -S`) with
 * LAUNCHER_NODE_FLAGS (src/cli/launcher-flags.ts) — against `node bin/postern`, which has none.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LAUNCHER_NODE_FLAGS } from '../../src/cli/launcher-flags.js';
import { BIN, Postern, stopAll, sumOverHelperThreads } from '../helpers/proc.js';
import { echoBulk, relayFixture } from '../helpers/resilience.js';
import { init, withPort } from '../helpers/stack.js';

const MIB = 1024 * 1024;
const fixture = relayFixture();

/** CPU time (ms) of every thread of `pid` but its main one (schedstat: ns on a CPU first). */
const helperCpuMs = (pid: number): number => sumOverHelperThreads(pid, 'schedstat', (t) => Number(t.split(' ')[0])) / 1e6;

const bridgeArgs = (config: string): string[] => ['bridge', '--config', config, '--listen', '127.0.0.1:0', '--allow-private', '--no-http2'];

/** A bridge started as bin/postern (executed) or as `node bin/postern`, and a client; tunnel up. */
async function pair(launcher: boolean): Promise<{ bridge: Postern; socksPort: number }> {
  const { config, uri } = await init();
  const bridge = launcher ? new Postern(bridgeArgs(config), {}, { exe: BIN }) : new Postern([BIN, ...bridgeArgs(config)], {}, { exe: process.execPath });
  const bridgePort = await bridge.listening('bridge');
  const client = new Postern(['client', '--bridge', withPort(uri, bridgePort), '--listen', '127.0.0.1:0', '--no-auth']);
  const socksPort = await client.listening('socks');
  await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
  return { bridge, socksPort };
}

describe('bin/postern executed', () => {
  it('runs node with the launcher flags before the script', async () => {
    const { config } = await init();
    const bridge = new Postern(bridgeArgs(config), {}, { exe: BIN });
    await bridge.listening('bridge');
    // env -S execs node in the same process: node, the flags, the script, its arguments.
    const argv = fs.readFileSync(`/proc/${bridge.pid}/cmdline`, 'utf8').split('\0');
    const n = LAUNCHER_NODE_FLAGS.length;
    expect(argv[0]).toMatch(/node$/);
    expect(argv.slice(1, 1 + n)).toEqual([...LAUNCHER_NODE_FLAGS]);
    expect(argv[1 + n]).toBe(BIN);
    expect(argv.slice(2 + n, 4 + n)).toEqual(['bridge', '--config']);
  });

  // V8 optimises the relay's hot paths during the first MiBs a daemon carries: by default on its
  // worker threads (whose scratch memory then stays in their malloc arenas), with the launcher's
  // --no-concurrent-recompilation on the main thread. Measured, a bridge's other threads' CPU time
  // over its first 32 MiB echoed: 0 ms started as bin/postern, 70–97 ms as `node bin/postern`.
  it('optimises on the main thread: a bridge\'s other threads stay idle through its first 32 MiB, where `node bin/postern` uses them', async () => {
    const helpers: Record<string, number> = {};
    for (const launcher of [true, false]) {
      const { bridge, socksPort } = await pair(launcher);
      const before = helperCpuMs(bridge.pid);
      expect(await echoBulk(socksPort, fixture.echoPort, 32 * MIB)).toBe(32 * MIB);
      helpers[launcher ? 'bin/postern' : 'node bin/postern'] = helperCpuMs(bridge.pid) - before;
      await stopAll();
    }
    console.log(`a bridge's other threads' CPU over its first 32 MiB echoed (ms): ${JSON.stringify(helpers)}`);
    expect(helpers['node bin/postern']).toBeGreaterThan(30);
    expect(helpers['bin/postern']).toBeLessThan(15);
  }, 60_000);
});
