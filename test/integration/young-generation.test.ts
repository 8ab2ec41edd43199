/**
 * Issue 12: the bridge and the client keep V8's young generation at its initial size by default,
 * and POSTERN_LOW_MEMORY=0 lets V8 grow it (src/cli/young-generation.ts). A probe loaded into each
 * daemon records the largest young generation while a burst of new streams comes and goes; each
 * case has one daemon that must grow, so the probe is shown to see growth.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Postern, ROOT, tempDir } from '../helpers/proc.js';
import { relayFixture } from '../helpers/resilience.js';
import { ipv4Request, readN, socksConnect } from '../helpers/socks.js';
import { init, withPort } from '../helpers/stack.js';

const MIB = 1024 * 1024;
/** Streams opened (each echoes a byte and closes): V8's default grows to 8 MiB under them (measured). */
const STREAMS = 800;
const CONCURRENCY = 50;
/** The young generation at its initial size: two 1 MiB semi-spaces. */
const SMALL_BYTES = 2 * MIB;
const PROBE = path.join(ROOT, 'test/helpers/young-gen-probe.cjs');

const fixture = relayFixture();

/** `env` plus the probe, which writes the largest young generation it saw to the returned file at exit. */
function probed(env: NodeJS.ProcessEnv): { env: NodeJS.ProcessEnv; file: string } {
  const file = path.join(tempDir('postern-younggen-'), 'probe.json');
  const nodeOptions = `${process.env.NODE_OPTIONS ?? ''} --require ${JSON.stringify(PROBE)}`.trim();
  return { env: { ...env, NODE_OPTIONS: nodeOptions, YOUNG_GEN_PROBE_FILE: file }, file };
}

async function stoppedMax(p: Postern, file: string): Promise<number> {
  const { code } = await p.stop();
  expect(code).toBe(0);
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { maxNewSpaceBytes: number }).maxNewSpaceBytes;
}

async function oneStream(socksPort: number): Promise<void> {
  const { socket, reply } = await socksConnect(socksPort, ipv4Request('127.0.0.1', fixture.echoPort));
  expect(reply).toBe(0);
  socket.write('x');
  expect((await readN(socket, 1)).toString()).toBe('x');
  socket.destroy();
}

/** Largest young generation of the bridge and the client while STREAMS streams came and went, in bytes. */
async function underBurst(bridgeEnv: NodeJS.ProcessEnv, clientEnv: NodeJS.ProcessEnv): Promise<{ bridge: number; client: number }> {
  const { config, uri } = await init();
  const b = probed(bridgeEnv);
  const bridge = new Postern(['bridge', '--config', config, '--listen', '127.0.0.1:0', '--allow-private', '--no-http2'], b.env);
  const bridgePort = await bridge.listening('bridge');
  const c = probed(clientEnv);
  const client = new Postern(['client', '--bridge', withPort(uri, bridgePort), '--listen', '127.0.0.1:0', '--no-auth'], c.env);
  const port = await client.listening('socks');
  await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < STREAMS) {
        next++;
        await oneStream(port);
      }
    }),
  );
  const clientMax = await stoppedMax(client, c.file);
  return { client: clientMax, bridge: await stoppedMax(bridge, b.file) };
}

describe('V8 young generation (POSTERN_LOW_MEMORY)', () => {
  it('stays at its initial size in a bridge by default, and grows in a client with POSTERN_LOW_MEMORY=0', async () => {
    const { bridge, client } = await underBurst({}, { POSTERN_LOW_MEMORY: '0' });
    expect(bridge).toBeGreaterThan(0);
    expect(bridge).toBeLessThanOrEqual(SMALL_BYTES);
    expect(client).toBeGreaterThan(SMALL_BYTES);
  }, 60_000);

  it('stays at its initial size in a client by default, and grows in a bridge with POSTERN_LOW_MEMORY=0', async () => {
    const { bridge, client } = await underBurst({ POSTERN_LOW_MEMORY: '0' }, {});
    expect(client).toBeGreaterThan(0);
    expect(client).toBeLessThanOrEqual(SMALL_BYTES);
    expect(bridge).toBeGreaterThan(SMALL_BYTES);
  }, 60_000);
});
