/**
 * Adapts a `ws` WebSocket (client or server side) and the socket under it to the mux's
 * FrameTransport. Binary messages only (docs/protocol.md §4).
 */
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import { PosternError } from '../../core/errors.js';
import { CloseCode, CUT_CODE, headroomOf, type FrameTransport, type TransportClose } from '../../mux/transport.js';
import { capTlsRecords } from '../record-cap.js';
import { maskedFrame, unmaskedFrame, WS_MASKED_HEADER_MAX_BYTES, WS_UNMASKED_HEADER_MAX_BYTES } from './frame.js';


export interface WsFrameTransportOptions {
  /** ws's maxPayload for this WebSocket (limits.WS_MAX_MESSAGE_BYTES): reported as maxMessageBytes. */
  maxMessageBytes: number;
  /** Stop reading while more than this waits to be sent (default: no limit; the bridge passes sendQueueBound(limits); a client reads always). */
  sendQueueMaxBytes?: number;
  /** The TCP socket under TLS, when the caller holds it (for wireBytesRead and wireBytesWritten). */
  wire?: { readonly bytesRead: number; readonly bytesWritten?: number };
  /**
   * This end is the server: its frames are not masked (RFC 6455 §5.1), so a large message with
   * headroom (mux/transport.ts headroomOf) is framed here and written as one buffer (see send()).
   */
  server?: boolean;
}

/**
 * Messages held for a transport nobody listens to yet (onMessage not called). Past this the
 * socket is paused, so a peer cannot grow the queue; below it the socket keeps being read so
 * that a closing handshake is still seen.
 */
const PRE_LISTEN_HOLD_BYTES = 1024 * 1024;

/** Messages up to this size are coalesced per event-loop turn (see WsFrameTransport). */
const COALESCE_MAX_MESSAGE_BYTES = 1024;
/** RFC 6455 §5.5: a close reason fits in 123 bytes. */
const MAX_CLOSE_REASON_BYTES = 123;
const WS_OPEN = 1;
const WS_CLOSED = 3;

/**
 * The client's masked frames are made in buffers of this size (a DATA frame of the largest payload,
 * framed, fits); a larger message goes through ws.
 */
const MASKED_FRAME_BUFFER_BYTES = 66 * 1024;
/**
 * …and only for messages of at least this size: a small one goes through ws, which masks it into a
 * buffer of its own size. On a path that cuts connections DATA frames shrink (mux/resume.ts), and a
 * 66 KiB buffer made for each few-KiB frame once the kept ones are in flight slowed the client per
 * frame enough to lose more at every cut: the resilience test's 3 × 8 MiB under random resets took
 * 23–66 s (6 runs) with every message over 1 KiB framed here in fresh 66 KiB buffers, 15–30 s with
 * buffers of the frame's size, 15–23 s (3 runs) with this bound.
 */
const MASKED_FRAME_MIN_BYTES = 32 * 1024;
/** Buffers for masked frames kept between writes, process-wide (more are made while more are in flight). */
const MASKED_FRAME_BUFFERS_KEPT = 4;
const maskedFrameBuffers: Buffer[] = [];

function clipReason(reason: string): string {
  const buf = Buffer.from(reason, 'utf8');
  if (buf.length <= MAX_CLOSE_REASON_BYTES) return reason;
  // Cut at a character boundary.
  let end = MAX_CLOSE_REASON_BYTES;
  while (end > 0 && ((buf[end] ?? 0) & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}

/**
 * FrameTransport over an open WebSocket.
 *
 * - Messages received while paused are held; the socket is paused too, so at most what one
 *   socket read decodes to is held.
 * - Reading stops by itself while more than `sendQueueMaxBytes` waits to be sent (whatever it is:
 *   a peer that sends PINGs, refused OPENs or anything else that is answered, and does not read the
 *   answers, cannot make us queue without bound), and starts again once half of it has left
 *   (docs/protocol.md §5.3). Before onMessage() is called messages are held as well, up
 *   to PRE_LISTEN_HOLD_BYTES, after which the socket is paused until someone listens.
 * - bufferedBytes is ws.bufferedAmount, which already counts the socket's writableLength.
 * - onDrain listeners run when bufferedBytes returns to 0 after a send left it above 0.
 * - Small messages (control frames: WINDOW, ACK, OPEN, FIN…) are coalesced per turn of the event
 *   loop: the first one corks the socket and a process.nextTick uncorks it, so the ones an event
 *   produces leave in one TLS write and one syscall instead of one each. ws corks per frame itself;
 *   nested corks only flush at the outermost uncork. A large message flushes what is corked and
 *   goes alone: Node's TLS socket copies a multi-buffer write into one buffer before encrypting, a
 *   copy of every byte that a lone DATA frame does not pay. Nothing waits past the current turn.
 * - On the server side (no masking) a large message that has headroom in front of it (a DATA frame
 *   from the mux) gets its WebSocket header written there and goes to the socket as one buffer:
 *   through ws it would be a header and a payload in one write, which the TLS socket copies whole.
 *   On the client side a large message (MASKED_FRAME_MIN_BYTES and up) is masked into one of a
 *   few buffers kept for reuse (src/transport/ws/frame.ts), where ws would mask it into a fresh one;
 *   a buffer is reused only once its write has completed (writes complete in order). The bytes on
 *   the wire are the same as ws's. ws never queues a frame of its own here (no compression, no
 *   Blobs), so writing beside it keeps frames whole and in order.
 * - A text message closes the WebSocket with 1002 (protocol error).
 * - After close() nothing more is delivered, and reading resumes so the closing handshake ends.
 */
export class WsFrameTransport implements FrameTransport {
  readonly #ws: WebSocket;
  readonly #socket: Duplex;
  #onMessage: ((message: Buffer) => void) | undefined;
  #onClose: ((reason: TransportClose) => void) | undefined;
  readonly #drainListeners: Array<() => void> = [];
  readonly #held: Buffer[] = [];
  #heldBytes = 0;
  #paused = false;
  /** Reading stopped because too much waits to be sent (see sendQueueMaxBytes). */
  #sendBlocked = false;
  readonly #sendQueueMaxBytes: number;
  #delivering = false;
  /** Set by close()/terminate()/a protocol error: nothing more is delivered or sent. */
  #local: { code: number; reason: string } | undefined;
  #error: Error | undefined;
  #closed: TransportClose | undefined;
  #closeReported = false;
  #needDrain = false;
  readonly #afterWrite = (): void => {
    if (this.#sendBlocked && this.#ws.bufferedAmount <= this.#sendQueueMaxBytes / 2) this.#unblock();
    this.#checkDrain();
  };
  /** The socket is corked until the end of this turn (see send()). */
  #corked = false;
  readonly #uncork = (): void => {
    if (!this.#corked) return;
    this.#corked = false;
    this.#socket.uncork();
  };

  /** Buffers of masked frames written and not yet flushed, oldest first. */
  readonly #maskedInFlight: Buffer[] = [];
  readonly #afterMaskedWrite = (err?: Error | null): void => {
    const buf = this.#maskedInFlight.shift();
    if (buf !== undefined && !err && maskedFrameBuffers.length < MASKED_FRAME_BUFFERS_KEPT) maskedFrameBuffers.push(buf);
    this.#afterWrite();
  };

  readonly #wire: { readonly bytesRead: number; readonly bytesWritten?: number } | undefined;
  readonly #server: boolean;
  readonly maxMessageBytes: number;

  constructor(ws: WebSocket, socket: Duplex, opts: WsFrameTransportOptions) {
    this.#ws = ws;
    this.#socket = socket;
    this.#wire = opts.wire;
    this.#server = opts.server === true;
    this.#sendQueueMaxBytes = opts.sendQueueMaxBytes ?? Number.POSITIVE_INFINITY;
    this.maxMessageBytes = opts.maxMessageBytes;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: RawData, isBinary: boolean) => this.#receive(data, isBinary));
    ws.on('error', (err: Error) => {
      // ws's own protocol errors (bad framing, message too big, …) carry a WS_ERR_* code.
      const code = (err as NodeJS.ErrnoException).code;
      this.#error ??= code?.startsWith('WS_ERR_') === true ? new PosternError('E_PROTOCOL', err.message, { cause: err }) : err;
    });
    ws.on('close', (code: number, reason: Buffer) => this.#finish(code, reason.toString('utf8')));
    socket.on('drain', this.#afterWrite);
    if (ws.readyState === WS_CLOSED) queueMicrotask(() => this.#finish(CUT_CODE, ''));
  }

  get bufferedBytes(): number {
    return this.#ws.bufferedAmount;
  }

  /** What the bridge announced in its 101 (protocol.md §2.3); set by the dialer, empty elsewhere. */
  peerFeatures: ReadonlySet<string> = new Set();

  readonly transportName = 'ws';

  get wireBytesRead(): number | undefined {
    return this.#wire?.bytesRead;
  }

  get wireBytesWritten(): number | undefined {
    return this.#wire?.bytesWritten;
  }

  /**
   * Caps the TLS records this connection sends (plain connections: no effect). On a path that cuts
   * connections, a record cut short is lost whole: small records let the peer keep what got through.
   */
  setRecordMaxBytes(bytes: number): void {
    capTlsRecords(this.#socket, bytes);
  }

  send(message: Buffer): void {
    if (this.#local !== undefined || this.#ws.readyState !== WS_OPEN) return;
    if (message.length > COALESCE_MAX_MESSAGE_BYTES) {
      this.#uncork();
    } else if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      process.nextTick(this.#uncork);
    }
    if (this.#server && message.length > COALESCE_MAX_MESSAGE_BYTES && headroomOf(message) >= WS_UNMASKED_HEADER_MAX_BYTES) {
      this.#socket.write(unmaskedFrame(message), this.#afterWrite);
    } else if (!this.#server && message.length >= MASKED_FRAME_MIN_BYTES && message.length + WS_MASKED_HEADER_MAX_BYTES <= MASKED_FRAME_BUFFER_BYTES) {
      const buf = maskedFrameBuffers.pop() ?? Buffer.allocUnsafeSlow(MASKED_FRAME_BUFFER_BYTES);
      this.#maskedInFlight.push(buf);
      this.#socket.write(maskedFrame(message, buf), this.#afterMaskedWrite);
    } else {
      this.#ws.send(message, { binary: true, compress: false, fin: true }, this.#afterWrite);
    }
    const buffered = this.#ws.bufferedAmount;
    if (buffered > 0) {
      this.#needDrain = true;
      if (buffered > this.#sendQueueMaxBytes && !this.#sendBlocked) {
        this.#sendBlocked = true;
        this.#ws.pause();
      }
    }
  }

  /** True while reading is stopped because too much waits to be sent (for tests and metrics). */
  get readBlockedBySendQueue(): boolean {
    return this.#sendBlocked;
  }

  #unblock(): void {
    this.#sendBlocked = false;
    if (this.#local !== undefined || this.#closed !== undefined) return;
    if (!this.#paused && this.#onMessage !== undefined) {
      this.#deliverHeld();
      if (!this.#paused && !this.#sendBlocked) this.#ws.resume();
    }
  }

  onDrain(cb: () => void): void {
    this.#drainListeners.push(cb);
  }

  onMessage(cb: (message: Buffer) => void): void {
    this.#onMessage = cb;
    if (!this.#paused) this.resume();
  }

  onClose(cb: (reason: TransportClose) => void): void {
    this.#onClose = cb;
    if (this.#closed !== undefined) queueMicrotask(() => this.#reportClose());
  }

  pause(): void {
    this.#paused = true;
    if (this.#local === undefined) this.#ws.pause();
  }

  resume(): void {
    this.#paused = false;
    if (this.#onMessage === undefined) return;
    this.#deliverHeld();
    if (!this.#paused && !this.#sendBlocked && this.#closed === undefined) this.#ws.resume();
  }

  close(code: number, reason: string): void {
    if (this.#local !== undefined || this.#closed !== undefined) return;
    this.#local = { code, reason };
    this.#held.length = 0;
    this.#heldBytes = 0;
    try {
      this.#ws.close(code, clipReason(reason));
      // Read again so that the peer's closing frame is seen (messages are dropped from now on).
      this.#ws.resume();
    } catch {
      // An invalid close code: drop the connection instead.
      this.#local = { code: CUT_CODE, reason: 'terminated' };
      this.#ws.terminate();
    }
  }

  terminate(): void {
    if (this.#closed !== undefined) return;
    this.#local ??= { code: CUT_CODE, reason: 'terminated' };
    this.#held.length = 0;
    this.#heldBytes = 0;
    this.#ws.terminate();
  }

  #receive(data: RawData, isBinary: boolean): void {
    if (this.#local !== undefined) return;
    if (!isBinary) {
      this.#error ??= new PosternError('E_PROTOCOL', 'text WebSocket message');
      this.close(CloseCode.PROTOCOL_ERROR, 'binary messages only');
      return;
    }
    const message = data as Buffer; // binaryType 'nodebuffer'
    if (this.#paused || this.#sendBlocked || this.#onMessage === undefined || this.#held.length > 0) {
      this.#held.push(message);
      this.#heldBytes += message.length;
      if (this.#onMessage === undefined && this.#heldBytes >= PRE_LISTEN_HOLD_BYTES) this.#ws.pause();
      if (!this.#paused && this.#onMessage !== undefined) this.#deliverHeld();
      return;
    }
    this.#onMessage(message);
  }

  #deliverHeld(): void {
    if (this.#delivering) return; // resume() called from inside a message callback
    this.#delivering = true;
    try {
      while (!this.#paused && !this.#sendBlocked && this.#local === undefined && this.#onMessage !== undefined) {
        const next = this.#held.shift();
        if (next === undefined) break;
        this.#heldBytes -= next.length;
        this.#onMessage(next);
      }
    } finally {
      this.#delivering = false;
    }
  }

  #checkDrain(): void {
    if (!this.#needDrain || this.#ws.bufferedAmount > 0) return;
    this.#needDrain = false;
    for (const cb of this.#drainListeners) cb();
  }

  #finish(code: number, reason: string): void {
    if (this.#closed !== undefined) return;
    this.#socket.removeListener('drain', this.#afterWrite);
    this.#held.length = 0;
    this.#heldBytes = 0;
    const local = this.#local;
    const info: TransportClose =
      local !== undefined && local.code !== CUT_CODE ? { code: local.code, reason: local.reason } : { code, reason };
    // ws reports 1006 when the connection ended without a closing handshake: a cut.
    if (info.code === CUT_CODE) info.cut = true;
    if (this.#error !== undefined) info.error = this.#error;
    this.#closed = info;
    this.#reportClose();
  }

  #reportClose(): void {
    if (this.#closeReported || this.#closed === undefined || this.#onClose === undefined) return;
    this.#closeReported = true;
    this.#onClose(this.#closed);
  }
}
