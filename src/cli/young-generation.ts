/**
 * V8's young generation and how it is collected, set before anything else runs: bin/postern loads
 * this module's own small build (dist/young-generation.js) before the bundle, since compiling the
 * bundle would already grow it; it is also the first import of cli/main.ts, for the single
 * executable and for `node dist/postern.js`.
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
 *
 * Young collections also run on the main thread alone. V8 by default scavenges with helper threads
 * and frees the dead ArrayBuffers on a worker thread after each young collection; a relaying
 * daemon runs one every few MiB (YOUNG_GC_EVERY_BYTES), and each then hands work to a thread that,
 * on a machine whose cores are busy, waits to be scheduled while the next collection waits for it.
 * A young generation of 1 MiB leaves helpers little to share. Measured on 2 cores: collector time
 * per MiB relayed 0.28–0.33 → 0.15–0.22 ms, per young collection 0.61–0.89 → 0.31–0.43 ms (npm run
 * bench:gc, alternated); daemon CPU per MiB 1–11 % lower down and 5–14 % lower up in three
 * side-by-side runs of 8 rounds × 128 MiB (bench/ab.ts); V8's four helper threads woke 110–127
 * times instead of 638–726 per 128 MiB each way. POSTERN_GC_THREADS=1 gives V8's default.
 *
 * Only flags V8 reads at each collection are set here, after start: `--single-threaded-gc`, which
 * would also stop concurrent marking, makes V8 abort at its next full collection when set this
 * way (a fatal check in cppgc's marker, measured on Node 20).
 */
import v8 from 'node:v8';

const SMALL_YOUNG_GENERATION = '--semi-space-growth-factor=1';
const YOUNG_GC_ON_MAIN_THREAD = ['--no-parallel-scavenge', '--no-concurrent-array-buffer-sweeping'];

/** The V8 flags this process applies for its environment (none: V8's defaults). */
export function v8FlagsFor(env: NodeJS.ProcessEnv): string[] {
  return [
    ...(env.POSTERN_LOW_MEMORY === '0' ? [] : [SMALL_YOUNG_GENERATION]),
    ...(env.POSTERN_GC_THREADS === '1' ? [] : YOUNG_GC_ON_MAIN_THREAD),
  ];
}

for (const flag of v8FlagsFor(process.env)) v8.setFlagsFromString(flag);
