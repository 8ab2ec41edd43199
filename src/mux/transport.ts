/**
 * What the mux needs from whatever carries its messages (a WebSocket in production, an
 * in-memory pair in tests). The mux never imports ws or net: src/transport adapts a
 * WebSocket to this interface.
 */
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
  onClose(cb: (reason: { code: number; reason: string; error?: Error }) => void): void;
  /** Stops delivering messages until resume() (backpressure on the receive side). */
  pause(): void;
  resume(): void;
  /** Closes gracefully (WebSocket close code, RFC 6455 §7.4). */
  close(code: number, reason: string): void;
  /** Drops the connection at once. */
  terminate(): void;
  /** Optional: every byte held for the peer (send queue, kept messages); default bufferedBytes. */
  readonly heldBytes?: number;
  /** Optional: the largest DATA payload worth sending now (a resumable link on a cutting path). */
  readonly maxPayloadHint?: number;
  /** Optional: bytes received on the wire so far (TCP payload: TLS handshake and records, HTTP, frames). */
  readonly wireBytesRead?: number;
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
