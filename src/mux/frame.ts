/**
 * Frame types and values of the mux wire protocol (docs/protocol.md §4). Data only: the byte
 * layout lives in codec.ts.
 */
import type { Target } from '../core/address.js';

/** Frame type byte (§4 table). Values are part of the protocol. */
export const FrameType = {
  OPEN: 0x01,
  OPEN_RESULT: 0x02,
  DATA: 0x03,
  WINDOW: 0x04,
  FIN: 0x05,
  RESET: 0x06,
  PING: 0x07,
  PONG: 0x08,
  GOAWAY: 0x09,
  /** §10: one UDP datagram of an association. 0x0a and 0x0b are RESUME and ACK (§9, resume.ts). */
  DATAGRAM: 0x0c,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** type u8 ‖ flags u8 ‖ stream id u32 ‖ payload length u32 (§4). */
export const HEADER_BYTES = 10;
/** Largest payload the protocol allows in one frame (§4, FRAME_MAX_PAYLOAD_BYTES). */
export const PROTOCOL_MAX_PAYLOAD_BYTES = 65_536;
/** PING and PONG carry exactly this many opaque bytes (§4). */
export const PING_DATA_BYTES = 8;
/** Largest window or credit a peer may announce (§5.3: credit never exceeds 2^32 − 1). */
export const MAX_WINDOW = 0xffff_ffff;
/** Largest stream id (u32). */
export const MAX_STREAM_ID = 0xffff_ffff;

/** OPEN `cmd` values (§4.1). */
export const OpenCommand = {
  CONNECT: 0x01,
  /** §10: a UDP association; the address is 0.0.0.0:0 and is ignored. */
  UDP_ASSOCIATE: 0x03,
} as const;

/** OPEN address types: the SOCKS5 ATYP values (§4.1, RFC 1928 §5). */
export const AddressType = {
  IPV4: 0x01,
  DOMAIN: 0x03,
  IPV6: 0x04,
} as const;

export interface OpenFrame {
  readonly type: typeof FrameType.OPEN;
  readonly streamId: number;
  /** The opener's receive window (§5.3). */
  readonly window: number;
  /** OpenCommand.CONNECT or OpenCommand.UDP_ASSOCIATE. */
  readonly cmd: number;
  readonly target: Target;
}

/** Why an OPEN was well-framed but cannot be served. Answered with OPEN_RESULT 0x08 (§4.1). */
export type OpenInvalidReason =
  /** `cmd` is neither CONNECT nor UDP_ASSOCIATE. The address is not parsed (a future command may lay it out differently). */
  | 'unknown-command'
  /** ATYP is not 1, 3 or 4. */
  | 'unknown-address-type'
  /** A domain name that is not valid UTF-8. */
  | 'bad-domain-encoding';

/**
 * An OPEN that is well framed but names a command or address this version cannot serve. It is a
 * stream-level failure, not a session protocol error: the receiver answers OPEN_RESULT 0x08 for
 * that stream and the session goes on. `rest` holds the payload bytes after `cmd`, undecoded
 * (a subarray of the message), so that the frame re-encodes byte for byte.
 */
export interface InvalidOpenFrame {
  readonly type: typeof FrameType.OPEN;
  readonly streamId: number;
  readonly window: number;
  readonly cmd: number;
  readonly target: null;
  readonly invalid: OpenInvalidReason;
  readonly rest: Buffer;
}

export interface OpenResultFrame {
  readonly type: typeof FrameType.OPEN_RESULT;
  readonly streamId: number;
  /** A wire code (§6); 0 = success. */
  readonly code: number;
  /** The acceptor's receive window; 0 when code ≠ 0. */
  readonly window: number;
}

export interface DataFrame {
  readonly type: typeof FrameType.DATA;
  readonly streamId: number;
  /** 1..65,536 bytes. Decoded payloads are subarrays of the message (no copy). */
  readonly payload: Buffer;
}

export interface WindowFrame {
  readonly type: typeof FrameType.WINDOW;
  readonly streamId: number;
  /** 1..2^32 − 1. */
  readonly increment: number;
}

export interface FinFrame {
  readonly type: typeof FrameType.FIN;
  readonly streamId: number;
}

export interface ResetFrame {
  readonly type: typeof FrameType.RESET;
  readonly streamId: number;
  /** A wire code (§6). */
  readonly code: number;
}

export interface PingFrame {
  readonly type: typeof FrameType.PING;
  /** Exactly 8 opaque bytes. */
  readonly data: Buffer;
}

export interface PongFrame {
  readonly type: typeof FrameType.PONG;
  /** The 8 bytes of the PING this answers. */
  readonly data: Buffer;
}

export interface GoAwayFrame {
  readonly type: typeof FrameType.GOAWAY;
  /** A wire code (§6), normally GOING_AWAY (0x0e). */
  readonly code: number;
}

/**
 * §10: one datagram of the association `streamId`. `target` is the destination (client → bridge)
 * or the source (bridge → client); null when its address type or domain encoding cannot be
 * served, in which case the receiver drops the datagram. `data` (possibly empty) is a subarray of
 * the message.
 */
export interface DatagramFrame {
  readonly type: typeof FrameType.DATAGRAM;
  readonly streamId: number;
  readonly target: Target | null;
  readonly data: Buffer;
}

export type Frame =
  | DatagramFrame
  | OpenFrame
  | InvalidOpenFrame
  | OpenResultFrame
  | DataFrame
  | WindowFrame
  | FinFrame
  | ResetFrame
  | PingFrame
  | PongFrame
  | GoAwayFrame;

/** Frames that belong to one stream (non-zero stream id), DATAGRAM aside. */
export type StreamFrame = Exclude<Extract<Frame, { readonly streamId: number }>, DatagramFrame>;

export function isStreamFrameType(type: number): boolean {
  return type >= FrameType.OPEN && type <= FrameType.RESET;
}
