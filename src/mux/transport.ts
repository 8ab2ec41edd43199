/**
 * What the mux needs from whatever carries its messages (a transport's connection in production —
 * src/transport/<name>/ adapts one — an in-memory pair in tests). The mux never imports ws, http2
 * or net.
 */

/** How a connection ended. */
export interface TransportClose {
  /** The close code (RFC 6455 §7.4 numbering, whatever the transport: protocol.md §4). */
  code: number;
  reason: string;
  error?: Error;
  /**
   * True when the connection was cut — it ended without an orderly close from either side (a reset,
   * a timeout, terminate()). Only a cut connection's session may be resumed (protocol.md §9); an
   * orderly close ends the session. Transports set `code` to CUT_CODE alongside.
   */
  cut?: boolean;
}

/** The code reported with a cut (RFC 6455's 1006, "closed abnormally"; never sent on the wire). */
export const CUT_CODE = 1006;

/** Whether `info` reports a cut connection (see TransportClose.cut). */
export function isCut(info: TransportClose): boolean {
  return info.cut === true;
}

/**
 * Bytes reserved in front of a large message the mux makes (a DATA frame), for the header of what
 * carries it: a WebSocket frame header is at most 14 bytes (RFC 6455 §5.2). A transport may write
 * its header there and send header and message as one buffer, neither copied nor split in two
 * writes (Node's TLS socket copies a multi-buffer write into one buffer before encrypting).
 */
export const MESSAGE_HEADROOM_BYTES = 14;
/** The messages allocWithHeadroom made: only in front of these are the bytes free to write. */
const withHeadroom = new WeakSet<Buffer>();

/** An uninitialised buffer of `length` bytes with MESSAGE_HEADROOM_BYTES reserved in front of it (headroomOf). */
export function allocWithHeadroom(length: number): Buffer {
  const buf = Buffer.allocUnsafeSlow(MESSAGE_HEADROOM_BYTES + length).subarray(MESSAGE_HEADROOM_BYTES);
  withHeadroom.add(buf);
  return buf;
}

/**
 * How many bytes in front of `message` (in its ArrayBuffer) a transport may overwrite with its own
 * header: MESSAGE_HEADROOM_BYTES for a buffer from allocWithHeadroom, else 0. They are never the
 * message's own bytes, so a message kept for resending (resume.ts) may be sent this way again.
 */
export function headroomOf(message: Buffer): number {
  return withHeadroom.has(message) ? MESSAGE_HEADROOM_BYTES : 0;
}

export interface FrameTransport {
  /** Sends one binary message (one or more whole frames). Never throws; after close it is a no-op. */
  send(message: Buffer): void;
  /** Bytes accepted by send() but not yet handed to the kernel. */
  readonly bufferedBytes: number;
  /** Called once when bufferedBytes falls back to zero after having been above zero. */
  onDrain(cb: () => void): void;
  /** Called for each binary message received, in order. */
  onMessage(cb: (message: Buffer) => void): void;
  /** Called once when the transport is gone, for whatever reason. */
  onClose(cb: (reason: TransportClose) => void): void;
  /** Stops delivering messages until resume() (backpressure on the receive side). */
  pause(): void;
  resume(): void;
  /** Closes gracefully (a close code as in RFC 6455 §7.4, whatever the transport). */
  close(code: number, reason: string): void;
  /** Drops the connection at once (the close it reports is a cut). */
  terminate(): void;
  /** The largest message this transport delivers (the receiver closes with TOO_BIG above it: protocol.md §4). */
  readonly maxMessageBytes: number;
  /** Optional: every byte held for the peer (send queue, kept messages); default bufferedBytes. */
  readonly heldBytes?: number;
  /** Optional: the largest DATA payload worth sending now (a resumable link on a cutting path). */
  readonly maxPayloadHint?: number;
  /**
   * Optional: bytes this transport has sent, or puts before the next message, that no message
   * accounts for (h2's PAD records, protocol.md §12.5); a connection budget (§9.8) counts them.
   */
  readonly paddingBytesSent?: number;
  /** Optional: bytes received that no message accounts for (PAD records), counted like paddingBytesSent. */
  readonly paddingBytesReceived?: number;
  /** Optional: bytes received on the wire so far (TCP payload: TLS handshake and records, HTTP, frames). */
  readonly wireBytesRead?: number;
  /** Which transport this is ('ws', …: src/transport/registry.ts), for reports; the mux ignores it. */
  readonly transportName?: string;
  /** Optional: bytes handed to the kernel for the wire so far (the same layers, the other way). */
  readonly wireBytesWritten?: number;
  /** Optional: cap the size of the records (TLS) the transport sends; Infinity: the protocol's largest. */
  setRecordMaxBytes?(bytes: number): void;
  /** Features the peer announced when the connection opened (a bridge's 101, protocol.md §2.3); none when absent. */
  readonly peerFeatures?: ReadonlySet<string>;
}

/** WebSocket close codes the mux uses (RFC 6455 §7.4.1). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
} as const;
