/**
 * Young-generation collections paced by the bytes a daemon relays.
 *
 * Every relayed byte passes through fresh ArrayBuffers (a socket read, a decrypted TLS chunk, a
 * WebSocket message, a frame). V8 frees young ArrayBuffers only at a young collection, which comes
 * when its semi-space fills with JS objects or once 32 MiB of young backing stores piled up (twice
 * its largest semi-space: a build constant that no flag lowers). A relay allocates few JS objects per
 * byte, so the 32 MiB comes first: that much garbage sits in malloc's heap at each collection, and
 * glibc keeps its heap grown to that peak (the freed chunks lie between live ones and are not given
 * back). Measured: a daemon held ~33 MiB more RSS after one 64 MiB transfer than before it.
 * Asking for a young collection (about 40 µs with the young generation nearly empty) every
 * LIMITS.YOUNG_GC_EVERY_BYTES relayed keeps that peak at a few times that many bytes.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type CollectFn = (options: { type: 'minor' | 'major'; execution: 'sync' | 'async' }) => void;

/** V8's gc(); undefined until first needed, null when this runtime cannot give it. */
let collect: CollectFn | null | undefined;
let relayedSinceGc = 0;
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
 * Counts `bytes` relayed (a message sent or received) and runs a young collection each time
 * `everyBytes` have been counted since the last one (process-wide; 0: never, V8 decides alone).
 * Returns whether it collected.
 */
export function noteRelayedBytes(bytes: number, everyBytes: number): boolean {
  if (everyBytes <= 0) return false;
  relayedSinceGc += bytes;
  if (relayedSinceGc < everyBytes) return false;
  relayedSinceGc = 0;
  const gc = collector();
  if (gc === null) return false;
  gc({ type: 'minor', execution: 'sync' });
  collections++;
  return true;
}

/** Young collections noteRelayedBytes has run in this process (for tests and metrics). */
export function pacedCollections(): number {
  return collections;
}
