/**
 * V8's young generation, set before anything else runs: bin/postern loads this module's own small
 * build (dist/young-generation.js) before the bundle, since compiling the 1.9 MB bundle would
 * already grow it; it is also the first import of cli/main.ts, for the single executable and for
 * `node dist/postern.js`.
 *
 * By default V8 doubles its young generation (1 MiB semi-spaces) up to 16 MiB whenever many
 * objects survive a collection: opening many streams at once, a bulk transfer. It shrinks it back
 * only when its memory reducer runs, seconds to minutes later, so a daemon holding many idle
 * connections can carry up to 32 MiB of young generation it no longer needs.
 *
 * A bridge keeps the young generation at its initial size: it runs on small shared servers where
 * memory decides how many users it carries, and there it costs no measurable CPU in bulk transfers
 * (young collections are already paced by YOUNG_GC_EVERY_BYTES, src/core/young-gc.ts) and about
 * 45 µs of collector time per new stream, against 0.5–0.7 ms of daemon CPU per stream. A client
 * lets V8 grow it: with a small one, objects in flight are promoted and old-generation collections
 * came 2.3 times as often (148 against 63 per 1.5 GiB relayed), costing it about 0.4 ms per MiB.
 * POSTERN_LOW_MEMORY=1 keeps it small in any role (a phone), =0 gives V8's default in any role.
 *
 * Only the growth factor can be changed here: the largest size (`node --max-semi-space-size`) is
 * fixed when the heap is made, before any JavaScript runs.
 */
import v8 from 'node:v8';

const SMALL_YOUNG_GENERATION = '--semi-space-growth-factor=1';

/**
 * The V8 flag this process applies (null: V8's default), given its environment and its command-line
 * arguments after the script (the subcommand is the first that is not an option).
 */
export function youngGenerationFlag(env: NodeJS.ProcessEnv, args: readonly string[]): string | null {
  if (env.POSTERN_LOW_MEMORY === '1') return SMALL_YOUNG_GENERATION;
  if (env.POSTERN_LOW_MEMORY === '0') return null;
  return args.find((a) => !a.startsWith('-')) === 'bridge' ? SMALL_YOUNG_GENERATION : null;
}

const flag = youngGenerationFlag(process.env, process.argv.slice(2));
if (flag !== null) v8.setFlagsFromString(flag);
