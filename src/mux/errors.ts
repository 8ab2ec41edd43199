/**
 * Session-level protocol errors (docs/protocol.md §4, §5.1). Each one ends the whole session:
 * the WebSocket is closed with `closeCode` (1002, or 1009 for an oversize message) and every
 * stream on it is aborted. Stream-level violations are not errors of this kind: they become a
 * RESET on the one stream (a PosternError with the RESET's wire code).
 */
import { CloseCode } from './transport.js';

/** Why a session was ended. Stable strings: tests and logs use them. */
export type MuxProtocolReason =
  /** A WebSocket message with no frame in it (§4: one or more whole frames per message). */
  | 'empty-message'
  /** A message larger than the transport's maxMessageBytes (§4, close code 1009). */
  | 'message-too-large'
  /** Fewer than 10 bytes left for a frame header (§4: a frame never spans two messages). */
  | 'truncated-header'
  /** A frame type outside 0x01..0x09 and 0x0c (§4). */
  | 'unknown-type'
  /** A header announcing more than the maximum payload, rejected before reading it (§4). */
  | 'payload-too-large'
  /** A payload length that runs past the end of the message (§4). */
  | 'truncated-payload'
  /** A payload of the wrong size for its type (§4 table). */
  | 'bad-payload-size'
  /** Stream id 0 on OPEN, OPEN_RESULT, DATA, WINDOW, FIN, RESET or DATAGRAM (§4). */
  | 'stream-id-zero'
  /** A non-zero stream id on PING, PONG or GOAWAY (§4). */
  | 'stream-id-not-zero'
  /** A DATAGRAM sharing its message with another frame (§10: it travels alone). */
  | 'datagram-not-alone'
  /** A WINDOW increment of 0 (§4: increment > 0). */
  | 'window-increment-zero'
  /** An OPEN address that ends before its port (§4.1). */
  | 'address-truncated'
  /** A domain address of length 0 (§4.1: 1..255). */
  | 'empty-domain'
  /** Bytes after the port of an OPEN address (§4.1: the payload ends right after the port). */
  | 'address-trailing-bytes'
  /** A client received OPEN (§5.1: only clients open streams in version 1). */
  | 'unexpected-open'
  /** An OPEN with an even stream id (§5.1: clients open odd ids). */
  | 'stream-id-parity'
  /** An OPEN whose id is not greater than every id opened before (§5.1). */
  | 'stream-id-order'
  /**
   * More refused OPENs (and RESETs 0x08 for frames on streams never opened) than
   * SESSION_REFUSED_OPEN_BURST_COUNT at once plus SESSION_REFUSED_OPENS_PER_SECOND (§5.1).
   */
  | 'refused-open-flood';

export class MuxProtocolError extends Error {
  readonly reason: MuxProtocolReason;
  /** The WebSocket close code (RFC 6455 §7.4.1) the session is closed with. */
  readonly closeCode: number;
  constructor(reason: MuxProtocolReason, detail?: string, closeCode: number = CloseCode.PROTOCOL_ERROR) {
    super(detail ? `mux protocol error: ${reason}: ${detail}` : `mux protocol error: ${reason}`);
    this.name = 'MuxProtocolError';
    this.reason = reason;
    this.closeCode = closeCode;
  }
}
