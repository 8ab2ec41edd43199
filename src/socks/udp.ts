/**
 * The SOCKS5 UDP request header (RFC 1928 §7), which every datagram between an app and its UDP
 * relay carries:
 *
 *   +----+------+------+----------+----------+----------+
 *   |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
 *   +----+------+------+----------+----------+----------+
 *   | 2  |  1   |  1   | Variable |    2     | Variable |
 *
 * App → relay, DST is where the datagram goes; relay → app, it is where the reply came from.
 *
 * Pure: bytes in, a value or a typed reason out; no sockets. A parser never throws on any input.
 * Decisions (the address rules are the TCP codec's, codec.ts, so both paths see the same Target):
 * - RSV must be X'0000'; anything else is 'bad-reserved' (the relay drops it).
 * - FRAG is returned as received; the relay, which does not reassemble (§7 allows that), drops
 *   every datagram whose FRAG is not 0.
 * - A datagram is one message: there is no "need more". Too short for its header is 'truncated'.
 * - DATA is a view into the input (no copy); it may be empty.
 */
import type { Target } from '../core/address.js';
import { encodeAddress, parseAddress } from './codec.js';

/** Shortest header: RSV(2) FRAG(1) ATYP(1) IPv4(4) PORT(2). */
export const UDP_HEADER_MIN_BYTES = 10;

/** Why a datagram's header was refused. Stable strings: counters and tests use them. */
export type UdpParseReason =
  /** Shorter than its header. */
  | 'truncated'
  /** RSV is not X'0000'. */
  | 'bad-reserved'
  /** ATYP is not 1, 3 or 4 (RFC 1928 §5). */
  | 'unknown-address-type'
  /** ATYP 3 with a length octet of 0. */
  | 'empty-domain'
  /** ATYP 3 with bytes that are not a host name (codec.ts explains which). */
  | 'bad-domain';

export interface SocksUdpDatagram {
  /** FRAG as received: 0 for a whole datagram, else a fragment number (high bit: the last one). */
  readonly frag: number;
  /** DST.ADDR / DST.PORT. Domain names stay unresolved. */
  readonly target: Target;
  /** The payload: a view into the parsed buffer. */
  readonly data: Buffer;
}

export type UdpParseResult =
  | { readonly ok: true; readonly value: SocksUdpDatagram }
  | { readonly ok: false; readonly reason: UdpParseReason };

const TRUNCATED = { ok: false, reason: 'truncated' } as const;
const BAD_RESERVED = { ok: false, reason: 'bad-reserved' } as const;

/** Parses one datagram as received on the relay socket (RFC 1928 §7). */
export function parseUdpDatagram(buf: Buffer): UdpParseResult {
  if (buf.length >= 1 && buf[0] !== 0x00) return BAD_RESERVED;
  if (buf.length >= 2 && buf[1] !== 0x00) return BAD_RESERVED;
  if (buf.length < 4) return TRUNCATED;
  const addr = parseAddress(buf, 3);
  if (!addr.ok) return 'error' in addr ? { ok: false, reason: addr.error.reason as UdpParseReason } : TRUNCATED;
  return { ok: true, value: { frag: buf[2]!, target: addr.value, data: buf.subarray(addr.used) } };
}

/** RSV FRAG ATYP ADDR PORT for `source` (the payload follows). Throws RangeError on an invalid target or FRAG. */
export function encodeUdpHeader(source: Target, frag = 0): Buffer {
  if (!Number.isInteger(frag) || frag < 0 || frag > 0xff) throw new RangeError('FRAG is one byte');
  const addr = encodeAddress(source);
  const out = Buffer.allocUnsafe(3 + addr.length);
  out[0] = 0x00;
  out[1] = 0x00;
  out[2] = frag;
  addr.copy(out, 3);
  return out;
}

/** A whole datagram: header for `source`, then `data` (copied into one buffer). Throws RangeError on an invalid target. */
export function encodeUdpDatagram(source: Target, data: Uint8Array, frag = 0): Buffer {
  return joinUdpDatagram(encodeUdpHeader(source, frag), data);
}

/** A header from encodeUdpHeader (e.g. cached for a peer) and a payload, in one new buffer. */
export function joinUdpDatagram(header: Buffer, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(header.length + data.length);
  header.copy(out, 0);
  out.set(data, header.length);
  return out;
}
