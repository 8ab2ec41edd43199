/**
 * The bridge's reorder buffer for packet-up (docs/protocol.md §12.3): the client's upstream
 * arrives as POST bodies numbered 0, 1, 2, …, possibly out of order (a front may forward them
 * over different connections). offer() takes one body and returns the bodies that are now next in
 * order. Only sequence numbers in [next, next + windowCount) are taken; one already taken, or one
 * outside the window, is refused, and nothing is held for it. Pure: no I/O, no timers.
 */

export type OfferResult =
  | { ok: true; ready: Buffer[] }
  | { ok: false; reason: 'duplicate' | 'out_of_window' | 'too_big' };

export class ReorderBuffer {
  readonly #windowCount: number;
  readonly #maxBodyBytes: number;
  readonly #held = new Map<number, Buffer>();
  #heldBytes = 0;
  #next = 0;

  /** windowCount: how far ahead of the next expected body one may arrive; maxBodyBytes: one body's limit. */
  constructor(windowCount: number, maxBodyBytes: number) {
    if (!Number.isSafeInteger(windowCount) || windowCount < 1) throw new RangeError('windowCount must be a positive integer');
    if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) throw new RangeError('maxBodyBytes must be a positive integer');
    this.#windowCount = windowCount;
    this.#maxBodyBytes = maxBodyBytes;
  }

  /** The sequence number expected next (every lower one was delivered). */
  get next(): number {
    return this.#next;
  }

  /** Bytes held for bodies that arrived ahead of a gap (at most (windowCount − 1) × maxBodyBytes). */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** Whether `seq` would be taken now (in the window, not yet seen). */
  accepts(seq: number): boolean {
    return Number.isSafeInteger(seq) && seq >= this.#next && seq < this.#next + this.#windowCount && !this.#held.has(seq);
  }

  offer(seq: number, body: Buffer): OfferResult {
    if (body.length > this.#maxBodyBytes) return { ok: false, reason: 'too_big' };
    if (!Number.isSafeInteger(seq) || seq < 0) return { ok: false, reason: 'out_of_window' };
    if (seq < this.#next || this.#held.has(seq)) return { ok: false, reason: 'duplicate' };
    if (seq >= this.#next + this.#windowCount) return { ok: false, reason: 'out_of_window' };
    if (seq !== this.#next) {
      this.#held.set(seq, body);
      this.#heldBytes += body.length;
      return { ok: true, ready: [] };
    }
    const ready = [body];
    this.#next++;
    for (let b = this.#held.get(this.#next); b !== undefined; b = this.#held.get(this.#next)) {
      this.#held.delete(this.#next);
      this.#heldBytes -= b.length;
      ready.push(b);
      this.#next++;
    }
    return { ok: true, ready };
  }
}

/** A packet-up sequence number as sent in `postern-seq` (decimal, no sign, no leading zero), or null. */
export function parseSeq(value: string | undefined): number | null {
  if (value === undefined || !/^(0|[1-9][0-9]{0,14})$/.test(value)) return null;
  return Number(value);
}

/**
 * Where the complete records end in a byte stream written piece by piece (the client's upstream):
 * push() each chunk; it returns the stream offsets just past each record that chunk completes.
 * POSTs are cut at these offsets, so each carries a whole number of records (§12.3).
 */
export class RecordBoundaries {
  readonly #header = Buffer.alloc(4);
  #headerHave = 0;
  #need = 0;
  #offset = 0;

  push(chunk: Buffer): number[] {
    const ends: number[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (this.#need === 0) {
        const take = Math.min(4 - this.#headerHave, chunk.length - off);
        chunk.copy(this.#header, this.#headerHave, off, off + take);
        this.#headerHave += take;
        off += take;
        if (this.#headerHave < 4) break;
        this.#headerHave = 0;
        this.#need = this.#header.readUIntBE(1, 3);
        if (this.#need === 0) ends.push(this.#offset + off);
        continue;
      }
      const take = Math.min(this.#need, chunk.length - off);
      off += take;
      this.#need -= take;
      if (this.#need === 0) ends.push(this.#offset + off);
    }
    this.#offset += chunk.length;
    return ends;
  }
}
