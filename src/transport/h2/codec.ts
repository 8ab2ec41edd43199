/**
 * The record framing of the HTTP/2 transport (docs/protocol.md §12.4): each direction of a
 * session is a byte stream (an HTTP/2 body) cut into records
 *
 *   type (1 byte) ‖ length (3 bytes, big-endian) ‖ payload (length bytes)
 *
 * DATA carries one mux message, PAD random bytes the receiver drops, CLOSE the code and reason
 * of a graceful close (the WebSocket close frame's role). Pure: bytes in, records or a typed
 * error out; lengths are checked from the header, before any payload is buffered.
 */
import { randomBytes, randomInt } from 'node:crypto';

export const RecordType = {
  DATA: 0x00,
  PAD: 0x01,
  CLOSE: 0x02,
} as const;
export type RecordTypeValue = (typeof RecordType)[keyof typeof RecordType];

export const RECORD_HEADER_BYTES = 4;
/** The largest length a 3-byte field holds. */
export const RECORD_LENGTH_MAX = 0xff_ffff;
/** A PAD record's payload is at most this long (protocol.md §12.5): what a receiver accepts. */
export const PAD_MAX_BYTES = 1024;
/**
 * The PADs we send are at most this long: 8 of them on every connection, so on a path that cuts
 * connections every 16 KiB (§9.8, where they count against the budget) 0..1024 cost a quarter of it.
 */
export const PAD_SEND_MAX_BYTES = 255;
/** A CLOSE payload: 2-byte code and a reason of at most 123 bytes (as a WebSocket close frame). */
export const CLOSE_MIN_BYTES = 2;
export const CLOSE_MAX_BYTES = 125;

export type Record =
  | { type: typeof RecordType.DATA; payload: Buffer }
  | { type: typeof RecordType.PAD; length: number }
  | { type: typeof RecordType.CLOSE; code: number; reason: string };

export class RecordError extends Error {
  /** A stable code: 'unknown_type' | 'too_big' | 'bad_close'. */
  readonly code: 'unknown_type' | 'too_big' | 'bad_close';
  constructor(code: RecordError['code'], message: string) {
    super(message);
    this.name = 'RecordError';
    this.code = code;
  }
}

/** The 4-byte header of a record. */
export function encodeRecordHeader(type: RecordTypeValue, length: number): Buffer {
  if (!Number.isInteger(length) || length < 0 || length > RECORD_LENGTH_MAX) throw new RangeError(`record length ${length} out of range`);
  const h = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  h[0] = type;
  h.writeUIntBE(length, 1, 3);
  return h;
}

/** A whole DATA record as one buffer (a copy; large messages are better sent as header + payload). */
export function encodeData(message: Buffer): Buffer {
  return Buffer.concat([encodeRecordHeader(RecordType.DATA, message.length), message]);
}

/** A PAD record of `length` random payload bytes (0..PAD_MAX_BYTES). */
export function encodePad(length: number): Buffer {
  if (!Number.isInteger(length) || length < 0 || length > PAD_MAX_BYTES) throw new RangeError(`pad length ${length} out of range`);
  return Buffer.concat([encodeRecordHeader(RecordType.PAD, length), randomBytes(length)]);
}

/** A CLOSE record; the reason is cut at a character boundary to fit 123 bytes. */
export function encodeClose(code: number, reason: string): Buffer {
  let r = Buffer.from(reason, 'utf8');
  if (r.length > CLOSE_MAX_BYTES - 2) {
    let end = CLOSE_MAX_BYTES - 2;
    while (end > 0 && ((r[end] ?? 0) & 0xc0) === 0x80) end--;
    r = r.subarray(0, end);
  }
  const p = Buffer.allocUnsafe(2 + r.length);
  p.writeUInt16BE(code & 0xffff, 0);
  r.copy(p, 2);
  return Buffer.concat([encodeRecordHeader(RecordType.CLOSE, p.length), p]);
}

/** A random pad length for the first records of a direction (protocol.md §12.5). */
export function randomPadLength(): number {
  return randomInt(0, PAD_SEND_MAX_BYTES + 1);
}

/**
 * Streaming decoder. push() takes the next chunk and returns the records it completes; a bad
 * header (unknown type, a length over the limit for its type) returns a RecordError and the
 * decoder stays failed. At most one record's payload (≤ maxDataBytes) is ever buffered.
 */
export class RecordDecoder {
  readonly #maxDataBytes: number;
  /** Header bytes gathered so far (a header may arrive split). */
  readonly #header = Buffer.alloc(RECORD_HEADER_BYTES);
  #headerHave = 0;
  /** The record whose payload is being gathered. */
  #type = -1;
  #need = 0;
  #parts: Buffer[] = [];
  #have = 0;
  #failed: RecordError | null = null;

  constructor(maxDataBytes: number) {
    if (!(maxDataBytes >= 1 && maxDataBytes <= RECORD_LENGTH_MAX)) throw new RangeError('maxDataBytes out of range');
    this.#maxDataBytes = maxDataBytes;
  }

  /** Bytes held for an unfinished record (header and payload). */
  get bufferedBytes(): number {
    return this.#headerHave + this.#have;
  }

  push(chunk: Buffer): { records: Record[]; error?: RecordError } {
    const records: Record[] = [];
    if (this.#failed !== null) return { records, error: this.#failed };
    let off = 0;
    while (off < chunk.length) {
      if (this.#type < 0) {
        const take = Math.min(RECORD_HEADER_BYTES - this.#headerHave, chunk.length - off);
        chunk.copy(this.#header, this.#headerHave, off, off + take);
        this.#headerHave += take;
        off += take;
        if (this.#headerHave < RECORD_HEADER_BYTES) break;
        this.#headerHave = 0;
        const type = this.#header[0] as number;
        const length = this.#header.readUIntBE(1, 3);
        const problem = checkHeader(type, length, this.#maxDataBytes);
        if (problem !== null) {
          this.#failed = problem;
          return { records, error: problem };
        }
        this.#type = type;
        this.#need = length;
        if (length === 0) {
          const r = this.#finish(Buffer.alloc(0));
          if (r instanceof RecordError) return { records, error: r };
          records.push(r);
          continue;
        }
      }
      const want = this.#need - this.#have;
      const avail = chunk.length - off;
      if (this.#have === 0 && avail >= want) {
        // The whole payload in this chunk: no copy.
        const r = this.#finish(chunk.subarray(off, off + want));
        off += want;
        if (r instanceof RecordError) return { records, error: r };
        records.push(r);
        continue;
      }
      const take = Math.min(want, avail);
      this.#parts.push(chunk.subarray(off, off + take));
      this.#have += take;
      off += take;
      if (this.#have === this.#need) {
        const payload = Buffer.concat(this.#parts, this.#have);
        this.#parts = [];
        this.#have = 0;
        const r = this.#finish(payload);
        if (r instanceof RecordError) return { records, error: r };
        records.push(r);
      }
    }
    return { records };
  }

  #finish(payload: Buffer): Record | RecordError {
    const type = this.#type;
    this.#type = -1;
    this.#need = 0;
    if (type === RecordType.DATA) return { type: RecordType.DATA, payload };
    if (type === RecordType.PAD) return { type: RecordType.PAD, length: payload.length };
    const reason = payload.subarray(2).toString('utf8');
    return { type: RecordType.CLOSE, code: payload.readUInt16BE(0), reason };
  }
}

function checkHeader(type: number, length: number, maxData: number): RecordError | null {
  switch (type) {
    case RecordType.DATA:
      return length > maxData ? new RecordError('too_big', `DATA record of ${length} bytes (at most ${maxData})`) : null;
    case RecordType.PAD:
      return length > PAD_MAX_BYTES ? new RecordError('too_big', `PAD record of ${length} bytes (at most ${PAD_MAX_BYTES})`) : null;
    case RecordType.CLOSE:
      return length < CLOSE_MIN_BYTES || length > CLOSE_MAX_BYTES ? new RecordError('bad_close', `CLOSE record of ${length} bytes (${CLOSE_MIN_BYTES}..${CLOSE_MAX_BYTES})`) : null;
    default:
      return new RecordError('unknown_type', `unknown record type 0x${type.toString(16).padStart(2, '0')}`);
  }
}
