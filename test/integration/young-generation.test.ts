/**
 * Issue 12: the daemons keep V8's young generation at its initial size by default
 * (src/cli/young-generation.ts), so a burst of new streams does not leave them holding a young
 * generation grown to many MiB. POSTERN_LOW_MEMORY=0 gives V8's default, which grows: the second
 * case shows that the probe sees growth where there is some.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Postern, ROOT, stopAll, tempDir } from '../helpers/proc.js';
import { ipv4Request, readN, socksConnect } from '../helpers/socks.js';
import { init, startBridge, withPort } from '../helpers/stack.js';

const MIB = 1024 * 1024;
/** Streams opened (each echoes a byte and closes): enough for V8's default to grow past 2 MiB. */
const STREAMS = 800;
const CONCURRENCY = 50;
const PROBE = path.join(ROOT, 'test/helpers/young-gen-probe.cjs');

let echo: net.Server;
let echoPort = 0;
let uri = '';

beforeAll(async () => {
  echo = net.createServer((s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as net.AddressInfo).port;
  const { config, uri: u } = await init();
  const { port } = await startBridge(config);
  uri = withPort(u, port);
});
afterAll(async () => {
  await stopAll();
  echo.close();
});

async function oneStream(socksPort: number): Promise<void> {
  const { socket, reply } = await socksConnect(socksPort, ipv4Request('127.0.0.1', echoPort));
  expect(reply).toBe(0);
  socket.write('x');
  expect((await readN(socket, 1)).toString()).toBe('x');
  socket.destroy();
}

/** Largest young generation a client had while STREAMS streams came and went, in bytes. */
async function youngGenerationUnderBurst(env: NodeJS.ProcessEnv): Promise<number> {
  const file = path.join(tempDir('postern-younggen-'), 'probe.json');
  const nodeOptions = `${process.env.NODE_OPTIONS ?? ''} --require ${JSON.stringify(PROBE)}`.trim();
  const client = new Postern(['client', '--bridge', uri, '--listen', '127.0.0.1:0', '--no-auth'], { ...env, NODE_OPTIONS: nodeOptions, YOUNG_GEN_PROBE_FILE: file });
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
  const { code } = await client.stop();
  expect(code).toBe(0);
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { maxNewSpaceBytes: number }).maxNewSpaceBytes;
}

describe('V8 young generation (POSTERN_LOW_MEMORY)', () => {
  it('stays at its initial size by default under a burst of new streams', async () => {
    const bytes = await youngGenerationUnderBurst({});
    expect(bytes).toBeGreaterThan(0);
    expect(bytes).toBeLessThanOrEqual(2 * MIB);
  }, 60_000);

  it('grows as V8 decides with POSTERN_LOW_MEMORY=0 (the probe sees growth)', async () => {
    const bytes = await youngGenerationUnderBurst({ POSTERN_LOW_MEMORY: '0' });
    expect(bytes).toBeGreaterThan(2 * MIB);
  }, 60_000);
});
