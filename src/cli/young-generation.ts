/**
 * V8's young generation, set before anything else runs: bin/postern loads this module's own small
 * build (dist/young-generation.js) before the bundle, since compiling the bundle would
 * already grow it; it is also the first import of cli/main.ts, for the single executable and for
 * `node dist/postern.js`.
 *
 * By default V8 doubles its young generation (1 MiB semi-spaces) up to 16 MiB whenever many
 * objects survive a collection: opening many streams at once, a bulk transfer. It shrinks it back
 * only when its memory reducer runs, seconds to minutes later, so a daemon holding many idle
 * connections can carry up to 32 MiB of young generation it no longer needs.
 *
 * Postern keeps the young generation at its initial size in every role. Measured (npm run
 * bench:gc, alternating runs): about 35–45 µs more collector time per new stream in each daemon,
 * against 0.5–0.7 ms of daemon CPU per stream; in bulk transfers no cost that repeats from run to run
 * (young collections are already paced by YOUNG_GC_EVERY_BYTES, src/core/young-gc.ts; one of five
 * comparisons showed the client's upload 15 % dearer, the others nothing or the reverse). Against
 * that, a client holding 1,000 idle streams kept 16 MiB of young generation with V8's default.
 * On a phone's link a client moves at most a few MB/s, where CPU per MiB is not what limits it.
 * POSTERN_LOW_MEMORY=0 gives V8's default.
 *
 * Only the growth factor can be changed here: the largest size (`node --max-semi-space-size`) is
 * fixed when the heap is made, before any JavaScript runs.
 */
import v8 from 'node:v8';

const SMALL_YOUNG_GENERATION = '--semi-space-growth-factor=1';

/** The V8 flag this process applies for its environment (null: V8's default). */
export function youngGenerationFlag(env: NodeJS.ProcessEnv): string | null {
  return env.POSTERN_LOW_MEMORY === '0' ? null : SMALL_YOUNG_GENERATION;
}

const flag = youngGenerationFlag(process.env);
if (flag !== null) v8.setFlagsFromString(flag);
