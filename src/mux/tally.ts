/**
 * TALLY (docs/protocol.md §9.8.1): what the bridge counted on the client's previous connection of
 * a session, so that a client whose connections are reset learns the wall from the bytes that
 * crossed the wire, not from the few its kernel kept. Pure: bytes in, a value or a typed error out.
 *
 *   client → bridge   payload  8: conn u64                        (this connection's number)
 *   bridge → client   payload 24: conn u64 ‖ sent u64 ‖ received u64  (about the client's connection `conn`)
 */
import { HEADER_BYTES } from './frame.js';

/** Frame type of TALLY (a connection message, stream 0, §9.1). */
export const TALLY_TYPE = 0x0f;
/** Payload of the client's TALLY (its connection number) and of the bridge's (number, sent, received). */
export const TALLY_ASK_BYTES = 8;
export const TALLY_REPORT_BYTES = 24;
/** A count the bridge does not know (it holds no record of that connection): all ones. */
export const TALLY_UNKNOWN = 2n ** 64n - 1n;

/** The client's TALLY: this is its connection number `conn` of the session. */
export interface TallyAsk {
  readonly kind: 'ask';
  readonly conn: number;
}

/** The bridge's TALLY: on the client's connection `conn` it sent and received these §9.8 charges (null: unknown). */
export interface TallyReport {
  readonly kind: 'report';
  readonly conn: number;
  readonly sentBytes: number | null;
  readonly receivedBytes: number | null;
}

/** Why a TALLY message is refused (a session protocol error, close 1002). */
export type TallyErrorReason = 'not-tally' | 'truncated-header' | 'stream-id-not-zero' | 'length-mismatch' | 'bad-payload-size' | 'count-too-large';

export class TallyError extends Error {
  constructor(readonly reason: TallyErrorReason) {
    super(`bad TALLY: ${reason}`);
    this.name = 'TallyError';
  }
}

/** Counts above 2^53 − 1 cannot be numbers here; no connection carries that much. */
function u64(m: Buffer, at: number, allowUnknown: boolean): number | null {
  const v = m.readBigUInt64BE(at);
  if (allowUnknown && v === TALLY_UNKNOWN) return null;
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new TallyError('count-too-large');
  return Number(v);
}

/**
 * Parses one whole TALLY message (header and payload) sent by `from`: the client's ask (8-byte
 * payload) or the bridge's report (24 bytes). Throws TallyError on anything else.
 */
export function decodeTally(m: Buffer, from: 'client' | 'bridge'): TallyAsk | TallyReport {
  if (m.length < HEADER_BYTES) throw new TallyError('truncated-header');
  if (m[0] !== TALLY_TYPE) throw new TallyError('not-tally');
  if (m.readUInt32BE(2) !== 0) throw new TallyError('stream-id-not-zero');
  const len = m.readUInt32BE(6);
  if (len !== m.length - HEADER_BYTES) throw new TallyError('length-mismatch');
  if (len !== (from === 'client' ? TALLY_ASK_BYTES : TALLY_REPORT_BYTES)) throw new TallyError('bad-payload-size');
  const conn = u64(m, HEADER_BYTES, false) as number;
  if (from === 'client') return { kind: 'ask', conn };
  return { kind: 'report', conn, sentBytes: u64(m, HEADER_BYTES + 8, true), receivedBytes: u64(m, HEADER_BYTES + 16, true) };
}

function header(len: number): Buffer {
  const b = Buffer.alloc(HEADER_BYTES + len);
  b[0] = TALLY_TYPE;
  b.writeUInt32BE(len, 6);
  return b;
}

/** The client's TALLY for its connection number `conn`. */
export function encodeTallyAsk(conn: number): Buffer {
  const b = header(TALLY_ASK_BYTES);
  b.writeBigUInt64BE(BigInt(conn), HEADER_BYTES);
  return b;
}

/** The bridge's TALLY about the client's connection `conn` (null counts: unknown). */
export function encodeTallyReport(conn: number, sentBytes: number | null, receivedBytes: number | null): Buffer {
  const b = header(TALLY_REPORT_BYTES);
  b.writeBigUInt64BE(BigInt(conn), HEADER_BYTES);
  b.writeBigUInt64BE(sentBytes === null ? TALLY_UNKNOWN : BigInt(sentBytes), HEADER_BYTES + 8);
  b.writeBigUInt64BE(receivedBytes === null ? TALLY_UNKNOWN : BigInt(receivedBytes), HEADER_BYTES + 16);
  return b;
}
