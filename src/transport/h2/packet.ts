/**
 * packet-up (docs/protocol.md §12.3): the two byte pipes that let H2FrameTransport run over a
 * downstream response and a sequence of upstream POSTs, for fronts that buffer request bodies.
 *
 *   - BridgePacketPipe (bridge): its readable side is the client's records, reassembled in order
 *     from the POST bodies (reorder.ts); its writable side is the downstream response body.
 *   - ClientPacketPipe (client): its writable side is cut at record boundaries into POSTs of at
 *     most postBodyLimit() bytes, at most PACKET_WINDOW_COUNT unanswered; its readable side is the
 *     downstream response body.
 */
import { randomBytes } from 'node:crypto';
import { Duplex, type Readable, type Writable } from 'node:stream';
import type { Limits } from '../../core/limits.js';
import { RECORD_HEADER_BYTES } from './codec.js';
import { RecordBoundaries, ReorderBuffer } from './reorder.js';

/** The request header naming a packet-up session's key (§12.3), and its form (16 random bytes, base64url). */
export const PACKET_HEADER = 'postern-packet';
export const PACKET_KEY_RE = /^[A-Za-z0-9_-]{21}[AQgw]$/;
/** The POST header carrying the sequence number, and the one marking the last POST. */
export const SEQ_HEADER = 'postern-seq';
export const END_HEADER = 'postern-end';

export function newPacketKey(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * What the token's MAC is bound to on a packet-up downstream request (§12.3): the session id (or
 * nothing) and the key, so that the key cannot be swapped under a recorded token.
 */
export function packetBinding(sessionId: string | undefined, key: string): string {
  return `${sessionId ?? ''}\u0000packet-up\u0000${key}`;
}

/** The largest POST body: PACKET_POST_MAX_BYTES, or one whole largest record when that is more. */
export function postBodyLimit(limits: Limits): number {
  return Math.max(limits.PACKET_POST_MAX_BYTES, limits.WS_MAX_MESSAGE_BYTES + RECORD_HEADER_BYTES);
}

export type PostAnswer = (ok: boolean) => void;

/** The bridge's pipe for one packet-up session. */
export class BridgePacketPipe extends Duplex {
  readonly #down: Writable;
  readonly #reorder: ReorderBuffer;
  /** Answers of POSTs taken but not yet delivered, by sequence number. */
  readonly #answers = new Map<number, PostAnswer>();
  /** Answers of POSTs delivered while the reader was full: sent when it reads again. */
  #waiting: PostAnswer[] = [];
  #lastSeq: number | null = null;
  /** Numbers of POSTs whose bodies are being read: another POST with the same number is refused meanwhile. */
  readonly #reading = new Set<number>();

  constructor(down: Writable, limits: Limits) {
    super({ readableHighWaterMark: postBodyLimit(limits), allowHalfOpen: true });
    this.#down = down;
    this.#reorder = new ReorderBuffer(limits.PACKET_WINDOW_COUNT, postBodyLimit(limits));
    down.on('error', (err: Error) => this.destroy(err));
    down.once('close', () => {
      if (!this.destroyed) this.destroy();
    });
  }

  /** Bytes held for POSTs that arrived ahead of a gap (the session's reorder window). */
  get heldBytes(): number {
    return this.#reorder.heldBytes;
  }

  /** Whether a POST numbered `seq` would be taken (checked before its body is read). */
  accepts(seq: number): boolean {
    if (this.destroyed || (this.#lastSeq !== null && seq > this.#lastSeq) || this.#reading.has(seq)) return false;
    return this.#reorder.accepts(seq);
  }

  /**
   * Marks `seq` as being read (after accepts(), before the body is read), so that at most one body
   * per number in the window is held at a time; release() if the body never comes.
   */
  reserve(seq: number): void {
    this.#reading.add(seq);
  }

  release(seq: number): void {
    this.#reading.delete(seq);
  }

  /**
   * One POST's body. False (nothing taken): refused — the caller lets the decoy answer. True: the
   * body is taken; `answer(true)` is called once it has been read in order, `answer(false)` if
   * the session ends first.
   */
  offer(seq: number, body: Buffer, last: boolean, answer: PostAnswer): boolean {
    this.#reading.delete(seq);
    if (this.destroyed || this.readableEnded) return false;
    if (body.length === 0 && !last) return false;
    if (last && this.#lastSeq !== null) return false;
    if (this.#lastSeq !== null && seq > this.#lastSeq) return false;
    const r = this.#reorder.offer(seq, body);
    if (!r.ok) return false;
    if (last) this.#lastSeq = seq;
    this.#answers.set(seq, answer);
    const first = this.#reorder.next - r.ready.length;
    for (let i = 0; i < r.ready.length; i++) {
      const s = first + i;
      const b = r.ready[i] as Buffer;
      const room = b.length === 0 ? true : this.push(b);
      const a = this.#answers.get(s);
      this.#answers.delete(s);
      if (a !== undefined) {
        if (room && this.#waiting.length === 0) a(true);
        else this.#waiting.push(a);
      }
      if (s === this.#lastSeq) this.push(null);
    }
    return true;
  }

  override _read(): void {
    const w = this.#waiting;
    this.#waiting = [];
    for (const a of w) a(true);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#down.write(chunk, (err) => cb(err ?? null));
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#down.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    for (const a of this.#answers.values()) a(false);
    for (const a of this.#waiting) a(false);
    this.#answers.clear();
    this.#waiting = [];
    if (!this.#down.destroyed) this.#down.destroy();
    cb(err);
  }
}

/** Sends one POST: resolves when the bridge answered 200 and the answer's body ended, rejects otherwise. */
export type PostSender = (seq: number, body: Buffer, last: boolean) => Promise<void>;

/** The client's pipe for one packet-up session. */
export class ClientPacketPipe extends Duplex {
  readonly #send: PostSender;
  readonly #down: Readable;
  readonly #window: number;
  readonly #postMax: number;
  readonly #bounds = new RecordBoundaries();
  /** Written bytes not yet sent, from stream offset #sentOffset. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #sentOffset = 0;
  /** Stream offsets just past each complete record written and not yet sent. */
  #ends: number[] = [];
  #seq = 0;
  #inFlight = 0;
  #heldCb: ((err?: Error | null) => void) | null = null;
  #finalCb: ((err?: Error | null) => void) | null = null;
  #lastSent = false;
  #pumpScheduled = false;
  /** The current POST size limit: PACKET_POST_FIRST_BYTES, doubled by each answered POST up to #postMax. */
  #postNow: number;

  constructor(send: PostSender, down: Readable, limits: Limits) {
    super({ allowHalfOpen: true });
    this.#send = send;
    this.#down = down;
    this.#window = limits.PACKET_WINDOW_COUNT;
    this.#postMax = postBodyLimit(limits);
    this.#postNow = Math.min(limits.PACKET_POST_FIRST_BYTES, this.#postMax);
    down.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) down.pause();
    });
    down.once('end', () => this.push(null));
    down.on('error', (err: Error) => this.destroy(err));
    down.once('close', () => {
      if (!down.readableEnded && !this.destroyed) this.destroy();
    });
  }

  override _read(): void {
    this.#down.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    for (const e of this.#bounds.push(chunk)) this.#ends.push(e);
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    this.#schedule();
    // Backpressure: more than one POST's worth waiting holds the writer.
    if (this.#pendingBytes > this.#postMax) this.#heldCb = cb;
    else cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#finalCb = cb;
    this.#schedule();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#down.destroy();
    this.#pending = [];
    cb(err);
  }

  #schedule(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    // Writes of one event-loop turn go in one POST.
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    while (!this.destroyed && this.#inFlight < this.#window && !this.#lastSent) {
      let cut = -1;
      while (this.#ends.length > 0 && (this.#ends[0] as number) - this.#sentOffset <= this.#postNow) cut = this.#ends.shift() as number;
      // A record larger than the current size goes alone (no record is larger than #postMax).
      if (cut < 0 && this.#ends.length > 0) cut = this.#ends.shift() as number;
      const ending = this.#finalCb !== null && this.#ends.length === 0;
      if (cut < 0 && !ending) break;
      // The last POST takes whatever is left (whole records, as the transport writes nothing else).
      const body = this.#take(cut < 0 ? this.#pendingBytes : cut - this.#sentOffset);
      const last = ending && this.#pendingBytes === 0;
      this.#post(body, last);
      if (last) break;
    }
    if (this.#heldCb !== null && this.#pendingBytes <= this.#postMax) {
      const cb = this.#heldCb;
      this.#heldCb = null;
      cb();
    }
  }

  #take(n: number): Buffer {
    const parts: Buffer[] = [];
    let need = n;
    while (need > 0) {
      const head = this.#pending[0] as Buffer;
      if (head.length <= need) {
        parts.push(head);
        this.#pending.shift();
        need -= head.length;
      } else {
        parts.push(head.subarray(0, need));
        this.#pending[0] = head.subarray(need);
        need = 0;
      }
    }
    this.#pendingBytes -= n;
    this.#sentOffset += n;
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, n);
  }

  #post(body: Buffer, last: boolean): void {
    const seq = this.#seq++;
    this.#inFlight++;
    if (last) this.#lastSent = true;
    this.#send(seq, body, last).then(
      () => {
        this.#inFlight--;
        this.#postNow = Math.min(this.#postNow * 2, this.#postMax);
        if (this.#lastSent && this.#inFlight === 0 && this.#finalCb !== null) {
          const cb = this.#finalCb;
          this.#finalCb = null;
          cb();
          return;
        }
        this.#pump();
      },
      (err: unknown) => {
        this.#inFlight--;
        this.destroy(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }
}
