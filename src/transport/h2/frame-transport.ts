/**
 * The mux's FrameTransport over one HTTP/2 byte pipe: an HTTP/2 stream whose request body carries
 * one direction and whose response body the other (stream-one, protocol.md §12.2), or any Duplex
 * that stands for the two. Messages travel
 * as records (codec.ts); a graceful close is a CLOSE record, and a pipe that ends or breaks without
 * one is a cut (code 1006), which a resumable session resumes (§9).
 */
import type { Duplex } from 'node:stream';
import { PosternError } from '../../core/errors.js';
import { CUT_CODE, CloseCode, type FrameTransport, type TransportClose } from '../../mux/transport.js';
import { RECORD_HEADER_BYTES, RecordDecoder, RecordType, encodeClose, encodeData, encodePad, encodeRecordHeader, randomPadLength } from './codec.js';
import { capTlsRecords, type RecordCappable } from '../record-cap.js';


/** The first this-many records each side sends are preceded by a PAD record of random length (§12.5). */
export const PADDED_RECORDS_COUNT = 8;
/** Messages up to this size are written whole and coalesced per event-loop turn (cork/uncork). */
const COALESCE_MAX_MESSAGE_BYTES = 1024;

export interface H2TransportOptions {
  /** The largest DATA record accepted (limits.WS_MAX_MESSAGE_BYTES). */
  maxMessageBytes: number;
  /** Stop reading while more than this waits to be sent (the bridge: sendQueueBound(limits)). */
  sendQueueMaxBytes?: number;
  /** After a local close(), how long the peer has to end its side before the pipe is dropped. */
  closeTimeoutMs: number;
  /** The TCP socket under it all, for wireBytesRead and wireBytesWritten. */
  wire?: { readonly bytesRead: number; readonly bytesWritten: number };
  /** The socket the HTTP/2 (or HTTP/1.1) connection writes on, whose TLS records setRecordMaxBytes caps. */
  records?: RecordCappable;
  /** What the peer announced when the pipe opened (Postern-Features, §2.3). */
  peerFeatures?: ReadonlySet<string>;
  /** Called once when the transport has closed (the dialer closes its HTTP/2 connection there). */
  onFinish?: () => void;
  /**
   * The connection's hang check (wedge.ts), run every `everyMs` while a write is outstanding; true:
   * the connection broke without a word, and the transport is dropped as cut.
   */
  wedge?: { check: () => boolean; everyMs: number } | undefined;
}

export class H2FrameTransport implements FrameTransport {
  readonly #pipe: Duplex;
  readonly #opts: H2TransportOptions;
  readonly #decoder: RecordDecoder;
  #onMessage: ((message: Buffer) => void) | undefined;
  #onClose: ((reason: TransportClose) => void) | undefined;
  readonly #drainListeners: Array<() => void> = [];
  readonly #held: Buffer[] = [];
  #paused = false;
  #sendBlocked = false;
  #delivering = false;
  #padLeft = PADDED_RECORDS_COUNT;
  /** The length of the next PAD record's payload (chosen ahead, so paddingBytes can count it). */
  #nextPad = randomPadLength();
  /** PAD records sent so far, and received so far, headers included. */
  #padSent = 0;
  #padReceived = 0;
  #local: { code: number; reason: string } | undefined;
  #remote: { code: number; reason: string } | undefined;
  #error: Error | undefined;
  #closed: TransportClose | undefined;
  #closeReported = false;
  #needDrain = false;
  #corked = false;
  #closeTimer: NodeJS.Timeout | undefined;
  #wedgeTimer: NodeJS.Timeout | undefined;
  /** The chunk received last (a view into the HTTP/2 session's read buffer): see unseenPart. */
  #lastChunk: Buffer | undefined;
  readonly peerFeatures: ReadonlySet<string>;
  readonly maxMessageBytes: number;
  readonly transportName = 'h2';

  readonly #uncork = (): void => {
    if (!this.#corked) return;
    this.#corked = false;
    this.#pipe.uncork();
  };
  readonly #afterWrite = (): void => {
    if (this.#sendBlocked && this.#pipe.writableLength <= (this.#opts.sendQueueMaxBytes ?? Infinity) / 2) this.#unblock();
    if (this.#needDrain && this.#pipe.writableLength === 0) {
      this.#needDrain = false;
      for (const cb of this.#drainListeners) cb();
    }
  };

  constructor(pipe: Duplex, opts: H2TransportOptions) {
    this.#pipe = pipe;
    this.#opts = opts;
    this.#decoder = new RecordDecoder(opts.maxMessageBytes);
    this.peerFeatures = opts.peerFeatures ?? new Set();
    this.maxMessageBytes = opts.maxMessageBytes;
    pipe.pause();
    pipe.on('data', (chunk: Buffer) => {
      const fresh = unseenPart(this.#lastChunk, chunk);
      if (fresh === null) return;
      this.#lastChunk = chunk;
      this.#receive(fresh);
    });
    pipe.on('end', () => {
      // The peer ended its side: after a CLOSE record that is the close handshake, else a cut.
      if (this.#remote === undefined && this.#local === undefined) this.#local = { code: CUT_CODE, reason: 'ended without close' };
      if (this.#local === undefined) this.#pipe.end();
      else if (this.#local.code === CUT_CODE) this.#pipe.destroy();
    });
    pipe.on('error', (err: Error) => {
      this.#error ??= err;
    });
    pipe.on('close', () => this.#finish());
    pipe.on('drain', this.#afterWrite);
    if (pipe.destroyed) queueMicrotask(() => this.#finish());
  }

  get bufferedBytes(): number {
    return this.#pipe.writableLength;
  }

  /**
   * Every byte held for the peer: the send queue, and on a packet-up bridge the POST bodies that
   * arrived ahead of a gap (§12.3), so they count against the user's budget (§7.1).
   */
  get heldBytes(): number {
    const reorder = (this.#pipe as Partial<{ heldBytes: number }>).heldBytes;
    return this.#pipe.writableLength + (typeof reorder === 'number' ? reorder : 0);
  }

  get wireBytesRead(): number | undefined {
    return this.#opts.wire?.bytesRead;
  }

  get wireBytesWritten(): number | undefined {
    return this.#opts.wire?.bytesWritten;
  }

  /** Caps the TLS records of the connection under this session (§9.8; plain connections: no effect). */
  setRecordMaxBytes(bytes: number): void {
    capTlsRecords(this.#opts.records, bytes);
  }

  /** PAD records sent, and the one the next send() will put before its message (§12.5). */
  get paddingBytesSent(): number {
    return this.#padSent + (this.#padLeft > 0 ? RECORD_HEADER_BYTES + this.#nextPad : 0);
  }

  get paddingBytesReceived(): number {
    return this.#padReceived;
  }

  send(message: Buffer): void {
    if (this.#local !== undefined || this.#remote !== undefined || this.#closed !== undefined || this.#pipe.writableEnded) return;
    const pipe = this.#pipe;
    if (this.#padLeft > 0) {
      this.#padLeft--;
      this.#cork();
      pipe.write(encodePad(this.#nextPad));
      this.#padSent += RECORD_HEADER_BYTES + this.#nextPad;
      this.#nextPad = randomPadLength();
    }
    if (message.length > COALESCE_MAX_MESSAGE_BYTES) {
      this.#uncork();
      // Header and payload in one writev, without copying the payload.
      pipe.cork();
      pipe.write(encodeRecordHeader(RecordType.DATA, message.length));
      pipe.write(message, this.#afterWrite);
      pipe.uncork();
    } else {
      this.#cork();
      pipe.write(encodeData(message), this.#afterWrite);
    }
    const buffered = pipe.writableLength;
    if (buffered > 0) {
      this.#needDrain = true;
      this.#watchWedge();
      const max = this.#opts.sendQueueMaxBytes ?? Infinity;
      if (buffered > max && !this.#sendBlocked) {
        this.#sendBlocked = true;
        pipe.pause();
      }
    }
  }

  /** While writes are outstanding, checks the connection for the hang of wedge.ts. */
  #watchWedge(): void {
    const wedge = this.#opts.wedge;
    if (wedge === undefined || this.#wedgeTimer !== undefined) return;
    this.#wedgeTimer = setInterval(() => {
      if (this.#pipe.writableLength === 0 || this.#closed !== undefined) {
        clearInterval(this.#wedgeTimer);
        this.#wedgeTimer = undefined;
      } else if (wedge.check()) {
        this.#error ??= new PosternError('E_CONN_RESET', 'the TCP connection broke under HTTP/2 (a write failed; Node did not report it)');
        this.terminate();
      }
    }, wedge.everyMs);
    this.#wedgeTimer.unref();
  }

  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.#pipe.cork();
    process.nextTick(this.#uncork);
  }

  get readBlockedBySendQueue(): boolean {
    return this.#sendBlocked;
  }

  #unblock(): void {
    this.#sendBlocked = false;
    if (this.#local !== undefined || this.#closed !== undefined) return;
    if (!this.#paused && this.#onMessage !== undefined) {
      this.#deliverHeld();
      if (!this.#paused && !this.#sendBlocked) this.#pipe.resume();
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
    if (this.#local === undefined) this.#pipe.pause();
  }

  resume(): void {
    this.#paused = false;
    if (this.#onMessage === undefined) return;
    this.#deliverHeld();
    if (!this.#paused && !this.#sendBlocked && this.#closed === undefined) this.#pipe.resume();
  }

  close(code: number, reason: string): void {
    if (this.#local !== undefined || this.#closed !== undefined) return;
    this.#local = { code, reason };
    this.#held.length = 0;
    this.#uncork();
    if (!this.#pipe.writableEnded) this.#pipe.end(encodeClose(code, reason));
    // Read on so that the peer's end is seen; drop the pipe if it never comes.
    this.#pipe.resume();
    if (this.#remote === undefined) {
      this.#closeTimer = setTimeout(() => this.#pipe.destroy(), this.#opts.closeTimeoutMs);
      this.#closeTimer.unref?.();
    }
  }

  terminate(): void {
    if (this.#closed !== undefined) return;
    this.#local ??= { code: CUT_CODE, reason: 'terminated' };
    this.#held.length = 0;
    this.#pipe.destroy();
  }

  #receive(chunk: Buffer): void {
    if (this.#closed !== undefined) return;
    const { records, error } = this.#decoder.push(chunk);
    for (const r of records) {
      if (r.type === RecordType.DATA) {
        if (this.#local !== undefined || this.#remote !== undefined) continue;
        if (this.#paused || this.#sendBlocked || this.#onMessage === undefined || this.#held.length > 0) {
          this.#held.push(r.payload);
        } else {
          this.#onMessage(r.payload);
        }
      } else if (r.type === RecordType.PAD) {
        this.#padReceived += RECORD_HEADER_BYTES + r.length;
      } else if (r.type === RecordType.CLOSE) {
        if (this.#remote !== undefined) continue;
        this.#remote = { code: r.code, reason: r.reason };
        this.#held.length = 0;
        // Answer the close as WebSocket does: our own end of the pipe, echoing the code.
        if (this.#local === undefined && !this.#pipe.writableEnded) this.#pipe.end(encodeClose(r.code, ''));
        this.#pipe.resume();
      }
    }
    if (error !== undefined) {
      this.#error ??= new PosternError('E_PROTOCOL', error.message);
      this.close(CloseCode.PROTOCOL_ERROR, `bad record: ${error.message}`);
      return;
    }
    // Held messages are bounded by one chunk's worth: the pipe is paused while anything is held.
    if (this.#held.length > 0) {
      if (this.#paused || this.#sendBlocked || this.#onMessage === undefined) this.#pipe.pause();
      else this.#deliverHeld();
    }
  }

  #deliverHeld(): void {
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      while (!this.#paused && !this.#sendBlocked && this.#local === undefined && this.#onMessage !== undefined) {
        const next = this.#held.shift();
        if (next === undefined) break;
        this.#onMessage(next);
      }
    } finally {
      this.#delivering = false;
    }
  }

  #finish(): void {
    if (this.#closed !== undefined) return;
    clearTimeout(this.#closeTimer);
    clearInterval(this.#wedgeTimer);
    this.#wedgeTimer = undefined;
    this.#pipe.removeListener('drain', this.#afterWrite);
    this.#held.length = 0;
    const local = this.#local;
    let info: TransportClose;
    if (local !== undefined && local.code !== CUT_CODE) info = { code: local.code, reason: local.reason };
    else if (this.#remote !== undefined) info = { code: this.#remote.code, reason: this.#remote.reason };
    else info = { code: CUT_CODE, reason: local?.reason ?? '', cut: true };
    if (this.#error !== undefined) info.error = this.#error;
    this.#closed = info;
    try {
      this.#opts.onFinish?.();
    } finally {
      this.#reportClose();
    }
  }

  #reportClose(): void {
    if (this.#closeReported || this.#closed === undefined || this.#onClose === undefined) return;
    this.#closeReported = true;
    this.#onClose(this.#closed);
  }
}

/**
 * Node 20's HTTP/2 sometimes hands a stream bytes it already handed it: after the session paused
 * and resumed its input, a 'data' event repeats (part of) the chunk before it, as a view into the
 * same socket read — the same view again (seen with the first DATA frame of a read a full 16 KiB
 * one, under load), or one that starts earlier, at that DATA frame's 9-byte header, and ends where
 * the chunk before ended (seen with TLS records capped small under frequent resets: [7670, 8256)
 * of a read, then [7661, 8256)). Taken twice, records are counted twice (the peer claims messages
 * we never sent, §9), the record framing slips (a bad record), or a frame header lands in a
 * stream's bytes. Chunks of one read follow each other without overlapping, so a chunk that
 * overlaps the one before in the same memory is such a repeat: only what lies past the end of the
 * chunk before is new (usually nothing). Returns the part of `chunk` to take, or null for none.
 */
export function unseenPart(last: Buffer | undefined, chunk: Buffer): Buffer | null {
  if (last === undefined || chunk.length === 0 || last.buffer !== chunk.buffer) return chunk;
  const lastEnd = last.byteOffset + last.length;
  if (chunk.byteOffset >= lastEnd || chunk.byteOffset + chunk.length <= last.byteOffset) return chunk;
  const fresh = chunk.byteOffset + chunk.length - lastEnd;
  return fresh > 0 ? chunk.subarray(chunk.length - fresh) : null;
}
