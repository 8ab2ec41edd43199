/**
 * V8's young generation, set before anything else runs: bin/postern loads this module's own small
 * build (dist/young-generation.js) before the bundle, since compiling the 1.9 MB bundle would
 * already grow it; it is also the first import of cli/main.ts, for the single executable and for
 * `node dist/postern.js`.
 *
 * By default V8 doubles its young generation (1 MiB semi-spaces) up to 16 MiB whenever many
 * objects survive a collection: opening many streams at once, a bulk transfer. It shrinks it back
 * only when its memory reducer runs, seconds to minutes later. A daemon holding many idle
 * connections then carries up to 32 MiB of young generation it no longer needs. Postern keeps the
 * young generation at its initial size: that costs garbage-collector time where many objects are
 * made (measured: about 45 µs more per new stream in each daemon, against 0.5–0.7 ms of daemon
 * CPU per stream) and none in bulk transfers, which already collect every YOUNG_GC_EVERY_BYTES
 * (src/core/young-gc.ts). POSTERN_LOW_MEMORY=0 gives V8 its default.
 *
 * Only the growth factor can be changed here: the largest size (`node --max-semi-space-size`) is
 * fixed when the heap is made, before any JavaScript runs.
 */
import v8 from 'node:v8';

/** The V8 flag this process applies for the environment `env` (null: V8's default). */
export function youngGenerationFlag(env: NodeJS.ProcessEnv): string | null {
  return env.POSTERN_LOW_MEMORY === '0' ? null : '--semi-space-growth-factor=1';
}

const flag = youngGenerationFlag(process.env);
if (flag !== null) v8.setFlagsFromString(flag);
