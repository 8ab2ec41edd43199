/**
 * One multiplexed stream (docs/protocol.md §5) as a Node Duplex.
 *
 * Writable side → DATA frames cut to the peer's credit and the frame size, FIN on end(), RESET on
 * destroy(). Readable side ← DATA frames; the readable buffer is the receive window, and credit
 * goes back to the peer (WINDOW) only for bytes that have left that buffer (read() or 'data').
 *
 * The session drives the stream through the handle*() methods and owns its id; apps only see a
 * Duplex with `id` and `state`.
 */
import { Duplex } from 'node:stream';
import { PosternError, WireCode, errorFromSystem, errorFromWire, type ErrorCode } from '../core/errors.js';
import type { Logger } from '../log/logger.js';
import { allocFrame, encodeFrame } from './codec.js';
import { FrameType, HEADER_BYTES, MAX_WINDOW } from './frame.js';

/** §5.2 states. */
export const StreamState = {
  /** OPEN sent, OPEN_RESULT not yet received (client side only); only early DATA may be sent (§5.1). */
  OPENING: 'opening',
  OPEN: 'open',
  /** We sent FIN; the peer may still send. */
  LOCAL_CLOSED: 'localClosed',
  /** The peer sent FIN; we may still send. */
  REMOTE_CLOSED: 'remoteClosed',
  /** Both FINs, or a RESET either way, or a failed open. No frame is sent or accepted any more. */
  CLOSED: 'closed',
} as const;
export type StreamState = (typeof StreamState)[keyof typeof StreamState];

type StreamEvent = 'openOk' | 'openFailed' | 'finSent' | 'finReceived' | 'reset';

/** Every legal transition (§5.2). Anything else is a bug and throws. */
const TRANSITIONS: { readonly [S in StreamState]: { readonly [E in StreamEvent]?: StreamState } } = {
  opening: { openOk: 'open', openFailed: 'closed', reset: 'closed' },
  open: { finSent: 'localClosed', finReceived: 'remoteClosed', reset: 'closed' },
  localClosed: { finReceived: 'closed', reset: 'closed' },
  remoteClosed: { finSent: 'closed', reset: 'closed' },
  closed: {},
};

/** What a stream needs from its session (implemented inside MuxSession, not public). */
export interface StreamHost {
  /** Largest DATA payload to send. */
  readonly maxFramePayload: number;
  readonly logger: Logger;
  /** Sends one encoded frame as one message. */
  send(frame: Buffer): void;
  /** True while the transport buffers more than SESSION_WRITE_HIGH_WATER_BYTES. */
  isCongested(): boolean;
  /** Queue the stream (FIFO) to have resumeAfterDrain() called on the next transport drain. */
  waitForDrain(stream: MuxStream): void;
  stopWaitingForDrain(stream: MuxStream): void;
  /** The stream reached CLOSED: forget its id. Called once. */
  streamClosed(stream: MuxStream): void;
}

export interface MuxStreamInit {
  readonly id: number;
  readonly state: typeof StreamState.OPENING | typeof StreamState.OPEN;
  /** Our receive window, as announced to the peer in OPEN / OPEN_RESULT. */
  readonly receiveWindow: number;
  /**
   * Open: the peer's announced window. Opening: the early-data allowance (§5.1, 0 when the app
   * only gets the stream after OPEN_RESULT); handleOpened then sets the credit from the window.
   */
  readonly sendCredit: number;
}

type WriteCallback = (err?: Error | null) => void;
interface Chunk {
  chunk: Buffer;
}
const EMPTY = Buffer.alloc(0);

/**
 * A payload kept in the readable buffer keeps its whole backing store alive. Small payloads that
 * sit in a large message (or a shared pool) are copied so that a peer cannot pin much more memory
 * than the window it was given with many tiny DATA frames.
 */
function retainable(p: Buffer): Buffer {
  return p.buffer.byteLength > 4 * p.length + 1024 ? Buffer.from(p) : p;
}

export class MuxStream extends Duplex {
  readonly id: number;
  private _state: StreamState;
  private readonly host: StreamHost;
  private log: Logger | null = null;

  // ── send side ──
  private sendCredit: number;
  /** The early-data allowance this stream started with while opening (§5.1). */
  private readonly earlyAllowance: number;
  private waitingForCredit = false;
  /** The write in progress (one _write or _writev), held until fully sent. */
  private wChunks: readonly Chunk[] | null = null;
  private wIndex = 0;
  private wOffset = 0;
  private wCallback: WriteCallback | null = null;
  private readonly single: [Chunk] = [{ chunk: EMPTY }];
  /** _final waiting for the stream to open. */
  private finalCallback: WriteCallback | null = null;

  // ── receive side ──
  /** Bytes the peer may still send before it needs a WINDOW from us. */
  private receiveRemaining: number;
  private readonly creditThreshold: number;
  private pushedBytes = 0;
  /** Payload bytes sent in DATA frames (early data included). */
  private sentBytes = 0;
  /** Consumed bytes already given back to the peer as WINDOW increments. */
  private creditedBytes = 0;

  /** Why the stream closed (set with the CLOSED state when it was not a clean close). */
  private closeError: Error | null = null;

  /** @internal Created by MuxSession only. */
  constructor(host: StreamHost, init: MuxStreamInit) {
    super({ allowHalfOpen: true, readableHighWaterMark: init.receiveWindow, decodeStrings: true });
    this.host = host;
    this.id = init.id;
    this._state = init.state;
    this.sendCredit = init.sendCredit;
    this.earlyAllowance = init.state === StreamState.OPENING ? init.sendCredit : 0;
    this.receiveRemaining = init.receiveWindow;
    this.creditThreshold = Math.max(1, Math.floor(init.receiveWindow / 4));
  }

  /** Protocol state (§5.2). */
  get state(): StreamState {
    return this._state;
  }

  /** Bytes are counted, so a string decoder would break flow control. Use Buffers. */
  override setEncoding(_encoding: BufferEncoding): this {
    throw new TypeError('MuxStream carries bytes; setEncoding is not supported');
  }

  // ── the one place the state changes ─────────────────────────────────────
  private transition(event: StreamEvent): void {
    const next = TRANSITIONS[this._state][event];
    if (next === undefined) throw new Error(`mux stream ${this.id}: illegal '${event}' in state '${this._state}'`);
    this._state = next;
    if (next === StreamState.CLOSED) {
      this.host.stopWaitingForDrain(this);
      this.waitingForCredit = false;
      this.host.streamClosed(this);
    }
  }

  private logger(): Logger {
    this.log ??= this.host.logger.child({ stream: this.id });
    return this.log;
  }

  // ── called by the session ───────────────────────────────────────────────

  /**
   * @internal OPEN_RESULT 0: the peer's window is our credit, less the early DATA already sent
   * (§5.1: the window counts from the stream's first byte).
   */
  handleOpened(peerWindow: number): void {
    this.transition('openOk');
    const earlySent = this.earlyAllowance - this.sendCredit;
    this.sendCredit = Math.max(0, peerWindow - earlySent);
    this.waitingForCredit = false;
    this.pump();
    const final = this.finalCallback;
    if (final) {
      this.finalCallback = null;
      this.sendFin();
      final();
    }
  }

  /**
   * @internal An open the app already holds (early, §5.1) was refused, cancelled or timed out:
   * CLOSED now, and the app sees `err` (its connection is reset, never ended cleanly).
   */
  failOpen(err: PosternError): void {
    if (this._state !== StreamState.OPENING) return;
    this.closeError = err;
    this.transition('openFailed');
    setImmediate(() => this.destroy(err));
  }

  /** @internal The open failed or was abandoned before the app got the stream: close silently. */
  abandon(): void {
    if (this._state !== StreamState.CLOSED) this.transition(this._state === StreamState.OPENING ? 'openFailed' : 'reset');
    this.destroy();
  }

  /** Payload bytes this stream has sent, as net.Socket's bytesWritten counts them. */
  get bytesSent(): number {
    return this.sentBytes;
  }

  /** Payload bytes this stream has received, as net.Socket's bytesRead counts them. */
  get bytesReceived(): number {
    return this.pushedBytes;
  }

  /** @internal */
  handleData(payload: Buffer): void {
    if (this._state === StreamState.OPENING) return this.violation('E_PROTOCOL', 'DATA before OPEN_RESULT');
    if (this._state === StreamState.REMOTE_CLOSED) return this.violation('E_PROTOCOL', 'DATA after FIN');
    if (payload.length > this.receiveRemaining) {
      return this.violation('E_FLOW_CONTROL', `DATA of ${payload.length} bytes with ${this.receiveRemaining} left in the window`);
    }
    this.receiveRemaining -= payload.length;
    this.pushedBytes += payload.length;
    this.push(retainable(payload));
    this.returnCredit();
  }

  /** @internal */
  handleWindow(increment: number): void {
    if (this._state === StreamState.OPENING) return this.violation('E_PROTOCOL', 'WINDOW before OPEN_RESULT');
    if (this.sendCredit + increment > MAX_WINDOW) return this.violation('E_FLOW_CONTROL', 'WINDOW overflows the credit');
    this.sendCredit += increment;
    if (this.waitingForCredit) {
      this.waitingForCredit = false;
      this.pump();
    }
  }

  /** @internal */
  handleFin(): void {
    if (this._state === StreamState.OPENING) return this.violation('E_PROTOCOL', 'FIN before OPEN_RESULT');
    if (this._state === StreamState.REMOTE_CLOSED) return this.violation('E_PROTOCOL', 'second FIN');
    this.transition('finReceived');
    this.push(null);
  }

  /** @internal The peer reset the stream: the app sees an error, never a clean end. */
  handleReset(code: number): void {
    this.logger().debug({ code }, 'stream reset by peer');
    this.closeWith(errorFromWire(code));
  }

  /** @internal The session is gone: abort without sending anything. */
  abortBySession(err: PosternError): void {
    if (this._state !== StreamState.CLOSED) this.closeWith(err);
  }

  /** @internal The transport drained: try to send again. */
  resumeAfterDrain(): void {
    this.pump();
  }

  /** A stream-level protocol or flow-control violation by the peer: RESET this stream only (§5.2, §5.3). */
  private violation(code: ErrorCode, detail: string): void {
    const err = new PosternError(code, detail);
    this.logger().debug({ code: err.wire }, `stream protocol violation: ${detail}`);
    this.host.send(encodeFrame({ type: FrameType.RESET, streamId: this.id, code: err.wire }));
    this.closeWith(err);
  }

  /**
   * CLOSED now (no further frame is sent or accepted); the Duplex is destroyed with `err` on the
   * next turn of the event loop, so that an app still receiving the stream from a resolved
   * promise has attached its 'error' listener by then.
   */
  private closeWith(err: Error): void {
    this.closeError = err;
    this.transition('reset');
    setImmediate(() => this.destroy(err));
  }

  // ── receive side: credit for consumed bytes ─────────────────────────────

  /** Every byte leaving the readable buffer by read() (paused mode, pipe, async iteration) passes here. */
  override read(size?: number): any {
    const chunk: unknown = super.read(size);
    this.returnCredit();
    return chunk;
  }

  override _read(): void {
    // Data is pushed as DATA frames arrive; the window, not _read, bounds it.
  }

  /** Sends WINDOW once a quarter of the window has been consumed and not yet credited (§5.3). */
  private returnCredit(): void {
    if (this._state !== StreamState.OPEN && this._state !== StreamState.LOCAL_CLOSED) return;
    const consumed = this.pushedBytes - this.readableLength;
    const increment = consumed - this.creditedBytes;
    if (increment < this.creditThreshold) return;
    this.creditedBytes = consumed;
    this.receiveRemaining += increment;
    this.host.send(encodeFrame({ type: FrameType.WINDOW, streamId: this.id, increment }));
  }

  // ── send side ───────────────────────────────────────────────────────────

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    this.single[0].chunk = chunk;
    this.startWrite(this.single, callback);
  }

  /**
   * write() of bytes the caller reuses once this returns (a borrowed read, src/core/borrowed-read.ts):
   * what credit and the transport let go now is copied into frames as by write(); what has to wait
   * is copied first, so the stream never keeps `chunk`. Returns what write() returns.
   */
  writeBorrowed(chunk: Buffer): boolean {
    // Writable runs _write at once only when nothing is being written or queued (not corked).
    if (this.writableLength > 0 || this.writableCorked > 0) return this.write(Buffer.from(chunk));
    const ok = this.write(chunk);
    const held = this.wChunks;
    if (held === this.single && this.single[0].chunk === chunk) {
      this.single[0].chunk = Buffer.from(chunk.subarray(this.wOffset));
      this.wOffset = 0;
    }
    return ok;
  }

  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, callback: WriteCallback): void {
    this.startWrite(chunks, callback);
  }

  private startWrite(chunks: readonly Chunk[], callback: WriteCallback): void {
    this.wChunks = chunks;
    this.wIndex = 0;
    this.wOffset = 0;
    this.wCallback = callback;
    this.pump();
  }

  /**
   * Sends as much of the current write as credit and the transport allow, one DATA frame at a
   * time (≤ credit, ≤ frame size, small chunks coalesced; each byte copied once, into the frame).
   * Stops with the callback held when credit is 0 (resumed by WINDOW) or the transport is
   * congested (resumed by drain); calls it when everything is sent.
   */
  private pump(): void {
    const chunks = this.wChunks;
    if (chunks === null) return;
    for (;;) {
      while (this.wIndex < chunks.length && this.wOffset >= (chunks[this.wIndex] as Chunk).chunk.length) {
        this.wIndex++;
        this.wOffset = 0;
      }
      if (this.wIndex >= chunks.length) break;
      // Opening: only the early allowance (the credit) may go; closed: destroy releases the write.
      const s = this._state;
      if (s !== StreamState.OPEN && s !== StreamState.REMOTE_CLOSED && s !== StreamState.OPENING) return;
      if (this.sendCredit === 0) {
        this.waitingForCredit = true;
        return;
      }
      if (this.host.isCongested()) {
        this.host.waitForDrain(this);
        return;
      }
      const limit = Math.min(this.sendCredit, this.host.maxFramePayload);
      let n = 0;
      for (let i = this.wIndex, off = this.wOffset; i < chunks.length && n < limit; i++, off = 0) {
        n += Math.min((chunks[i] as Chunk).chunk.length - off, limit - n);
      }
      const frame = allocFrame(FrameType.DATA, this.id, n);
      for (let at = HEADER_BYTES; at < frame.length; ) {
        const c = (chunks[this.wIndex] as Chunk).chunk;
        const take = Math.min(c.length - this.wOffset, frame.length - at);
        c.copy(frame, at, this.wOffset, this.wOffset + take);
        at += take;
        this.wOffset += take;
        if (this.wOffset === c.length) {
          this.wIndex++;
          this.wOffset = 0;
        }
      }
      this.sendCredit -= n;
      this.sentBytes += n;
      this.host.send(frame);
      if (this.wChunks !== chunks) return; // closed while sending
    }
    const callback = this.wCallback;
    this.wChunks = null;
    this.wCallback = null;
    this.single[0].chunk = EMPTY;
    callback?.();
  }

  override _final(callback: WriteCallback): void {
    if (this._state === StreamState.OPENING) {
      this.finalCallback = callback;
      return;
    }
    if (this._state === StreamState.CLOSED || this._state === StreamState.LOCAL_CLOSED) {
      callback(this.closeError ?? new PosternError('E_CANCELLED'));
      return;
    }
    this.sendFin();
    callback();
  }

  private sendFin(): void {
    if (this._state !== StreamState.OPEN && this._state !== StreamState.REMOTE_CLOSED) return;
    this.host.send(encodeFrame({ type: FrameType.FIN, streamId: this.id }));
    this.transition('finSent');
  }

  /**
   * destroy(err) by the app: RESET with err's wire code (a Node socket error is mapped, e.g.
   * ECONNRESET → 0x0b); destroy() with no error → RESET CANCELLED. Nothing is sent when the
   * stream is already CLOSED.
   */
  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (this._state !== StreamState.CLOSED) {
      const code = err === null ? WireCode.CANCELLED : err instanceof PosternError ? err.wire : errorFromSystem(err).wire;
      this.host.send(encodeFrame({ type: FrameType.RESET, streamId: this.id, code }));
      this.closeError = err;
      this.transition('reset');
    }
    const pending = this.wCallback;
    this.wChunks = null;
    this.wCallback = null;
    this.single[0].chunk = EMPTY;
    const final = this.finalCallback;
    this.finalCallback = null;
    if (pending !== null || final !== null) {
      // Made only when someone waits: an Error captures a stack, too dear for every stream's end.
      const failure = err ?? this.closeError ?? new PosternError('E_CANCELLED');
      pending?.(failure);
      final?.(failure);
    }
    callback(err);
  }
}
