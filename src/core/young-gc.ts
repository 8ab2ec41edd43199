/**
 * Young-generation collections paced by the buffers a daemon makes while it relays.
 *
 * Every relayed byte passes through fresh ArrayBuffers (a socket read, a decrypted TLS chunk, a
 * WebSocket message, a frame). V8 frees young ArrayBuffers only at a young collection, which comes
 * when its semi-space fills with JS objects or once 32 MiB of young backing stores piled up (twice
 * its largest semi-space: a build constant that no flag lowers). A relay allocates few JS objects per
 * byte, so the 32 MiB comes first: that much garbage sits in malloc's heap at each collection, and
 * glibc keeps its heap grown to that peak (the freed chunks lie between live ones and are not given
 * back). Measured: a daemon held ~33 MiB more RSS after one 64 MiB transfer than before it.
 *
 * Worse, V8 counts those buffers (its "external memory") against the old generation's allocation
 * limit: once a full collection has set that limit ~10 MiB above what is live, more than that in
 * unswept buffers starts a full collection — dozens per second in a bulk transfer. Measured with a
 * collection every 4 MiB of relayed messages: a client uploading made 12 MiB of buffers between
 * two (a read, a frame and ws's masked copy per 64 KiB), and after its first full collection it
 * ran ~27 of them per 128 MiB, its CPU per MiB up from 2.0 to 6.0 ms (`npm run bench:gc` shows
 * full collections per round of a sustained upload).
 *
 * So the pace is set by the buffers themselves: every CHECK_EVERY_RELAYED_BYTES relayed this
 * looks at V8's external memory (v8.getHeapStatistics(), about 2 µs in a daemon), and asks for a
 * young collection (0.3–0.7 ms) once it has grown LIMITS.YOUNG_GC_EVERY_BYTES above the least seen
 * since the last one (what was live then, once its garbage had been swept).
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type CollectFn = (options: { type: 'minor' | 'major'; execution: 'sync' | 'async' }) => void;

/** V8's gc(); undefined until first needed, null when this runtime cannot give it. */
let collect: CollectFn | null | undefined;
/** Relayed bytes between two looks at V8's external memory. */
export const CHECK_EVERY_RELAYED_BYTES = 256 * 1024;
let relayedSinceCheck = 0;
/** The least external memory seen since the last paced collection (Infinity right after one). */
let externalLow = Number.POSITIVE_INFINITY;
let collections = 0;

function collector(): CollectFn | null {
  if (collect !== undefined) return collect;
  try {
    const own = (globalThis as { gc?: unknown }).gc;
    if (typeof own === 'function') {
      collect = own as CollectFn;
    } else {
      // gc() is only installed into contexts made after the flag is set: make one (≈ 0.6 MiB, once).
      v8.setFlagsFromString('--expose-gc');
      const fn: unknown = vm.runInNewContext('gc');
      collect = typeof fn === 'function' ? (fn as CollectFn) : null;
    }
  } catch {
    collect = null;
  }
  return collect;
}

/**
 * Counts `bytes` relayed (a message sent or received) and, every CHECK_EVERY_RELAYED_BYTES, runs a
 * young collection if V8's external memory (ArrayBuffers) has grown by `everyBytes` since the last
 * one (process-wide; 0: never, V8 decides alone). Returns whether it collected.
 */
export function noteRelayedBytes(bytes: number, everyBytes: number): boolean {
  if (everyBytes <= 0) return false;
  relayedSinceCheck += bytes;
  if (relayedSinceCheck < CHECK_EVERY_RELAYED_BYTES) return false;
  relayedSinceCheck = 0;
  const external = v8.getHeapStatistics().external_memory;
  if (external < externalLow) externalLow = external;
  if (external - externalLow < everyBytes) return false;
  const gc = collector();
  if (gc === null) return false;
  gc({ type: 'minor', execution: 'sync' });
  // What the collection freed leaves the count when V8 has swept it, which may be a little later.
  externalLow = Number.POSITIVE_INFINITY;
  collections++;
  return true;
}

/** Young collections noteRelayedBytes has run in this process (for tests and metrics). */
export function pacedCollections(): number {
  return collections;
}
