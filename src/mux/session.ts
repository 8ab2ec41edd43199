/**
 * A mux session (docs/protocol.md §4–§8): many streams over one FrameTransport.
 *
 * The session decodes each message, dispatches its frames to streams, answers PING, enforces the
 * opening rules (§5.1), and keeps the link alive (§8). It owns one keepalive timer; open
 * timeouts are one timer per pending open. It never logs a destination: stream ids and codes only.
 */
import { EventEmitter } from 'node:events';
import type { Target } from '../core/address.js';
import { PosternError, WireCode, errorFromSystem, errorFromWire } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import { noteRelayedBytes } from '../core/young-gc.js';
import type { Logger } from '../log/logger.js';
import { decodeMessage, encodeFrame } from './codec.js';
import { MuxProtocolError } from './errors.js';
import {
  FrameType,
  HEADER_BYTES,
  MAX_STREAM_ID,
  OpenCommand,
  PING_DATA_BYTES,
  PROTOCOL_MAX_PAYLOAD_BYTES,
  type DatagramFrame,
  type Frame,
  type InvalidOpenFrame,
  type OpenFrame,
  type StreamFrame,
} from './frame.js';
import { MuxStream, type StreamHost } from './stream.js';
import { CloseCode, type FrameTransport } from './transport.js';

export type MuxRole = 'client' | 'bridge';

export interface MuxSessionOptions {
  readonly role: MuxRole;
  readonly limits: Limits;
  /** The session's logger (callers usually pass a child carrying a session id). */
  readonly logger: Logger;
  /**
   * Session-level keepalive (§8), default true. False when the transport does it per connection
   * (a ResumableLink, §9), so that a detached session is not ended for its silence.
   */
  readonly keepalive?: boolean;
}

export interface MuxOpenOptions {
  /** Aborting before OPEN_RESULT rejects with E_CANCELLED and sends RESET 0x0a. */
  readonly signal?: AbortSignal;
}

/** Why the session ended: the WebSocket close code and reason (sent or received). */
export interface SessionCloseInfo {
  readonly code: number;
  readonly reason: string;
  /** The protocol error or transport error behind it, if any. */
  readonly error?: Error;
}

/**
 * An OPEN received by a bridge. Exactly one of accept() and reject() must be called.
 * `signal` aborts (its reason a PosternError) when the opener cancels (RESET, e.g. its open
 * timeout) or the session closes first; after that accept() throws that error and reject() does
 * nothing, so the bridge should drop whatever connect it started.
 */
export interface IncomingOpen {
  readonly streamId: number;
  /** 'udp-associate' (§10): `target` is 0.0.0.0:0 and means nothing; the stream carries DATAGRAMs. */
  readonly command: 'connect' | 'udp-associate';
  readonly target: Target;
  readonly signal: AbortSignal;
  /**
   * Sends OPEN_RESULT 0 with our receive window (STREAM_WINDOW_BYTES, or `window` when the bridge's
   * memory budget grants less); returns the open stream. Throws if no longer possible.
   */
  accept(window?: number): MuxStream;
  /** Sends OPEN_RESULT with err.wire and window 0. */
  reject(err: PosternError): void;
}

export type MuxSessionEvents = {
  /** Bridge only: the client opened a stream. */
  open: [incoming: IncomingOpen];
  /** The peer sent GOAWAY: no new stream can be opened here. */
  goaway: [code: number];
  /** The last stream closed (useful to finish a drain after goAway()). */
  idle: [];
  close: [info: SessionCloseInfo];
};

interface PendingOpen {
  readonly stream: MuxStream;
  /** Null for an early open (openEarly): the app already holds the stream. */
  readonly resolve: ((s: MuxStream) => void) | null;
  readonly reject: ((e: PosternError) => void) | null;
  readonly timer: NodeJS.Timeout;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: (() => void) | undefined;
}

interface PendingIncoming {
  readonly controller: AbortController;
  settled: boolean;
  /** A UDP association: no DATA, early or not (§10). */
  readonly udp: boolean;
  /** DATA that arrived before accept() (§5.1), copied, at most STREAM_EARLY_DATA_BYTES in all. */
  early: Buffer[] | null;
  earlyBytes: number;
}

interface PendingPing {
  readonly startedAt: number;
  readonly resolve: (rttMs: number) => void;
  readonly reject: (e: PosternError) => void;
}

/** Receives one datagram of an association (§10). `data` is a subarray of the message: copy it to keep it. */
export type DatagramHandler = (addr: Target, data: Buffer) => void;

/** What happened to datagrams on this session (§10), for metrics and tests. */
export interface DatagramCounts {
  sent: number;
  received: number;
  /** Not sent: transport congested or detached, too large, or the association not open. */
  droppedOnSend: number;
  /** Received but not delivered: unknown association, no handler, unservable address. */
  droppedOnReceive: number;
}

/** The (ignored) address an OPEN for a UDP association carries (§10). */
const ASSOCIATE_ADDRESS: Target = { kind: 'ipv4', host: '0.0.0.0', port: 0 };

/** Close code and reason when the peer goes silent (§8). The transport is dropped, not closed. */
export const KEEPALIVE_CLOSE = { code: CloseCode.GOING_AWAY, reason: 'keepalive timeout' } as const;

export class MuxSession extends EventEmitter<MuxSessionEvents> {
  readonly role: MuxRole;
  private readonly transport: FrameTransport;
  private readonly limits: Limits;
  private readonly log: Logger;
  private readonly host: StreamHost;

  /** Streams that are opening or open (not CLOSED). */
  private readonly streams = new Map<number, MuxStream>();
  /** Client: opens waiting for OPEN_RESULT (their streams are also in `streams`). */
  private readonly opening = new Map<number, PendingOpen>();
  /** Bridge: OPENs handed to the app and not yet accepted or rejected. */
  private readonly incoming = new Map<number, PendingIncoming>();
  /** Streams that are UDP associations (§10), and their datagram handlers. */
  private readonly associations = new Set<number>();
  private readonly datagramHandlers = new Map<number, DatagramHandler>();
  readonly datagramCounts: DatagramCounts = { sent: 0, received: 0, droppedOnSend: 0, droppedOnReceive: 0 };
  /** Streams blocked on a congested transport, woken in FIFO order on drain. */
  private drainWaiters = new Set<MuxStream>();

  /** Client: the next id to open. */
  private nextStreamId = 1;
  /** The highest stream id opened so far (by us as client, by the peer as bridge). */
  private highestStreamId = 0;

  private goAwaySent = false;
  private goAwayReceived = false;
  private isClosed = false;

  private keepaliveTimer: NodeJS.Timeout | null = null;
  private lastReceivedAt = performance.now();
  /** A keepalive PING went out and nothing has arrived since. */
  private keepalivePinged = false;
  private pingSeq = 0;
  private readonly pings = new Map<number, PendingPing>();
  /** The latest PING not yet answered: one PONG answers every PING before it (§8). */
  private pongDue: Buffer | null = null;
  /** Refusals left in the bucket (§5.1 refused-open rate), and when it was last refilled. */
  private refusalTokens: number;
  private refusalRefilledAt = performance.now();

  constructor(transport: FrameTransport, opts: MuxSessionOptions) {
    super();
    this.role = opts.role;
    this.transport = transport;
    this.limits = opts.limits;
    this.log = opts.logger;
    this.refusalTokens = opts.limits.SESSION_REFUSED_OPEN_BURST_COUNT;
    const session = this;
    this.host = {
      // A resumable link may ask for smaller DATA frames on a path that cuts connections early.
      get maxFramePayload(): number {
        return Math.min(opts.limits.FRAME_MAX_PAYLOAD_BYTES, PROTOCOL_MAX_PAYLOAD_BYTES, transport.maxPayloadHint ?? Infinity);
      },
      logger: opts.logger,
      send: (frame) => this.send(frame),
      isCongested: () => this.transport.bufferedBytes > this.limits.SESSION_WRITE_HIGH_WATER_BYTES,
      waitForDrain: (s) => {
        if (!session.isClosed) session.drainWaiters.add(s);
      },
      stopWaitingForDrain: (s) => {
        session.drainWaiters.delete(s);
      },
      streamClosed: (s) => {
        // An early open the app gave up on (RESET sent by the stream) is no longer pending.
        const p = session.opening.get(s.id);
        if (p !== undefined) session.settleOpen(s.id, p);
        session.streams.delete(s.id);
        session.associations.delete(s.id);
        session.datagramHandlers.delete(s.id);
        session.emitIdleIfEmpty();
      },
    };
    transport.onMessage((m) => this.onMessage(m));
    transport.onDrain(() => this.onDrain());
    transport.onClose((info) => this.teardown(info.code, info.reason, info.error, 'none'));
    if (opts.keepalive !== false) this.armKeepalive(this.limits.KEEPALIVE_INTERVAL_MS);
  }

  /** True once the session has ended (closed by either side or by a protocol error). */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Streams opening, open, or offered to the app and not yet accepted/rejected. */
  get streamCount(): number {
    return this.streams.size + this.incoming.size;
  }

  /**
   * Bytes the session holds for the peer: its transport's send queue, on a resumable link every kept
   * message (docs/protocol.md §9.1), and early DATA waiting for an open to be accepted (§5.1). Stream
   * buffers are the streams' windows, counted apart.
   */
  get heldBytes(): number {
    const t = this.transport;
    const b = t.heldBytes ?? t.bufferedBytes;
    return (Number.isFinite(b) ? b : 0) + this.earlyHeldBytes();
  }

  /** Early DATA (§5.1) held for opens the bridge has not accepted or refused yet: the peer's bytes too. */
  private earlyHeldBytes(): number {
    let n = 0;
    for (const p of this.incoming.values()) if (p.early !== null) n += p.earlyBytes;
    return n;
  }

  /** True once either side sent GOAWAY: no new stream will be opened on this session. */
  get goingAway(): boolean {
    return this.goAwaySent || this.goAwayReceived;
  }

  // ── public API ──────────────────────────────────────────────────────────

  /**
   * Client only: opens a stream to `target` (§5.1). Resolves once the bridge answers OPEN_RESULT
   * 0. Rejects with the bridge's code (errorFromWire), E_TIMEOUT after STREAM_OPEN_TIMEOUT_MS,
   * E_CANCELLED on abort, E_GOING_AWAY after a GOAWAY, E_SESSION_CLOSED if the session ends.
   */
  open(target: Target, opts: MuxOpenOptions = {}): Promise<MuxStream> {
    return this.openWith(OpenCommand.CONNECT, target, opts);
  }

  /**
   * Client only: opens a stream to `target` and returns it at once, before OPEN_RESULT (§5.1):
   * the app may write right away, and up to STREAM_EARLY_DATA_BYTES leave with the OPEN; more
   * waits for OPEN_RESULT. If the bridge refuses, the open times out or the session ends first,
   * the stream is destroyed with that error (errorFromWire, E_TIMEOUT, E_SESSION_CLOSED), so
   * its app connection is reset. Destroying the stream while opening cancels the open (RESET
   * 0x0a). Throws, sending nothing, when no open is possible here (closed, going away, ids
   * exhausted, a target that cannot be encoded): the caller can still answer the app exactly.
   */
  openEarly(target: Target): MuxStream {
    const r = this.startOpen(OpenCommand.CONNECT, target, this.limits.STREAM_EARLY_DATA_BYTES);
    if (r instanceof PosternError) throw r;
    const { id, stream, frame } = r;
    const timer = setTimeout(() => this.failOpen(id, new PosternError('E_TIMEOUT', 'no OPEN_RESULT'), true), this.limits.STREAM_OPEN_TIMEOUT_MS);
    timer.unref();
    this.opening.set(id, { stream, resolve: null, reject: null, timer, signal: undefined, onAbort: undefined });
    this.streams.set(id, stream);
    this.send(frame);
    return stream;
  }

  /**
   * Client only: opens a UDP association (§10). Resolves once the bridge answers OPEN_RESULT 0;
   * rejects as open() does. The stream carries no data: datagrams go with sendDatagram() and
   * arrive at setDatagramHandler(); ending the stream ends the association.
   */
  openAssociation(opts: MuxOpenOptions = {}): Promise<MuxStream> {
    return this.openWith(OpenCommand.UDP_ASSOCIATE, ASSOCIATE_ADDRESS, opts);
  }

  /**
   * Sends one datagram on an open association (§10). Never queues: returns false (and counts a
   * drop) when the session is closed, the association is not open, the datagram is larger than
   * UDP_MAX_DATAGRAM_BYTES or than one frame holds, or the transport already buffers more than
   * SESSION_WRITE_HIGH_WATER_BYTES + UDP_SEND_HEADROOM_BYTES.
   */
  sendDatagram(streamId: number, addr: Target, data: Buffer): boolean {
    const stream = this.streams.get(streamId);
    const ok =
      !this.isClosed &&
      stream !== undefined &&
      this.associations.has(streamId) &&
      !this.opening.has(streamId) &&
      data.length <= this.limits.UDP_MAX_DATAGRAM_BYTES &&
      this.transport.bufferedBytes <= this.limits.SESSION_WRITE_HIGH_WATER_BYTES + this.limits.UDP_SEND_HEADROOM_BYTES;
    let frame: Buffer | null = null;
    if (ok) {
      try {
        frame = encodeFrame({ type: FrameType.DATAGRAM, streamId, target: addr, data });
      } catch {
        frame = null; // an address that cannot be encoded
      }
      // Address and data must fit one frame (§10.1): dropped, never split.
      if (frame !== null && frame.length - HEADER_BYTES > PROTOCOL_MAX_PAYLOAD_BYTES) frame = null;
    }
    if (frame === null) {
      this.datagramCounts.droppedOnSend++;
      return false;
    }
    this.datagramCounts.sent++;
    this.transport.send(frame);
    noteRelayedBytes(frame.length, this.limits.YOUNG_GC_EVERY_BYTES);
    return true;
  }

  /**
   * Ends every UDP association of the session with RESET (`err`'s wire code, default GOING_AWAY):
   * on shutdown, since a call never finishes by itself. TCP streams are left to drain.
   */
  endAssociations(err: PosternError = new PosternError('E_GOING_AWAY')): void {
    for (const id of [...this.associations]) if (!this.opening.has(id)) this.streams.get(id)?.destroy(err);
  }

  /** Sets (or with null removes) the receiver of an association's datagrams (§10). */
  setDatagramHandler(streamId: number, handler: DatagramHandler | null): void {
    if (handler === null || !this.associations.has(streamId)) this.datagramHandlers.delete(streamId);
    else this.datagramHandlers.set(streamId, handler);
  }

  /** Checks that an open is possible and takes an id; nothing is sent or registered yet. */
  private startOpen(cmd: number, target: Target, earlyCredit: number): { id: number; stream: MuxStream; frame: Buffer } | PosternError {
    if (this.role !== 'client') return new PosternError('E_INTERNAL', 'only a client opens streams');
    if (this.isClosed) return new PosternError('E_SESSION_CLOSED');
    if (this.goingAway) return new PosternError('E_GOING_AWAY');
    const id = this.nextStreamId;
    if (id > MAX_STREAM_ID) return new PosternError('E_STREAM_LIMIT', 'stream ids exhausted');
    let frame: Buffer;
    try {
      frame = encodeFrame({ type: FrameType.OPEN, streamId: id, window: this.limits.STREAM_WINDOW_BYTES, cmd, target });
    } catch (err) {
      return new PosternError('E_PROTOCOL', `target cannot be encoded (${(err as Error).message})`);
    }
    this.nextStreamId += 2;
    this.highestStreamId = id;
    return { id, stream: this.newStream(id, 'opening', earlyCredit), frame };
  }

  private openWith(cmd: number, target: Target, opts: MuxOpenOptions): Promise<MuxStream> {
    const { signal } = opts;
    if (this.role === 'client' && !this.isClosed && !this.goingAway && signal?.aborted) return Promise.reject(new PosternError('E_CANCELLED'));
    const r = this.startOpen(cmd, target, 0);
    if (r instanceof PosternError) return Promise.reject(r);
    const { id, stream, frame } = r;
    return new Promise<MuxStream>((resolve, reject) => {
      const timer = setTimeout(() => this.failOpen(id, new PosternError('E_TIMEOUT', 'no OPEN_RESULT'), true), this.limits.STREAM_OPEN_TIMEOUT_MS);
      timer.unref();
      const onAbort = signal ? () => this.failOpen(id, new PosternError('E_CANCELLED'), true) : undefined;
      if (signal && onAbort) signal.addEventListener('abort', onAbort, { once: true });
      this.opening.set(id, { stream, resolve, reject, timer, signal, onAbort });
      this.streams.set(id, stream);
      if (cmd === OpenCommand.UDP_ASSOCIATE) this.associations.add(id);
      this.send(frame);
    });
  }

  /** Tells the peer no new OPEN will be accepted (§8); open streams go on. Default code GOING_AWAY. */
  goAway(code: number = WireCode.GOING_AWAY): void {
    if (this.isClosed || this.goAwaySent) return;
    this.goAwaySent = true;
    this.send(encodeFrame({ type: FrameType.GOAWAY, code }));
    this.log.debug({ code }, 'GOAWAY sent');
  }

  /** Ends the session: every stream is aborted with E_SESSION_CLOSED, the transport is closed. */
  close(code: number = CloseCode.NORMAL, reason = ''): void {
    this.teardown(code, reason, undefined, 'close');
  }

  /** Round-trip time in ms of a PING (§8). Rejects with E_SESSION_CLOSED if the session ends first. */
  ping(): Promise<number> {
    if (this.isClosed) return Promise.reject(new PosternError('E_SESSION_CLOSED'));
    const seq = this.sendPing();
    return new Promise<number>((resolve, reject) => {
      this.pings.set(seq, { startedAt: performance.now(), resolve, reject });
    });
  }

  // ── receive path ────────────────────────────────────────────────────────

  private onMessage(message: Buffer): void {
    if (this.isClosed) return;
    this.lastReceivedAt = performance.now();
    this.keepalivePinged = false;
    noteRelayedBytes(message.length, this.limits.YOUNG_GC_EVERY_BYTES);
    try {
      if (message.length > this.transport.maxMessageBytes) {
        throw new MuxProtocolError('message-too-large', `${message.length} bytes`, CloseCode.TOO_BIG);
      }
      const frames = decodeMessage(message, this.limits.FRAME_MAX_PAYLOAD_BYTES);
      for (const frame of frames) {
        if (this.isClosed) return;
        this.dispatch(frame);
      }
      if (this.pongDue !== null) this.flushPong();
    } catch (err) {
      if (err instanceof MuxProtocolError) {
        this.log.warn({ reason: err.reason }, 'session protocol error');
        this.teardown(err.closeCode, err.reason, err, 'close');
      } else {
        // A bug (ours or an 'open' listener's) ends this session, not the process.
        this.log.error({ err }, 'internal error in mux session');
        this.teardown(CloseCode.INTERNAL, 'internal error', err as Error, 'close');
      }
    }
  }

  private dispatch(f: Frame): void {
    switch (f.type) {
      case FrameType.PING:
        // Answered once the message is processed, or on drain while congested (flushPong).
        this.pongDue = f.data;
        return;
      case FrameType.PONG:
        this.onPong(f.data);
        return;
      case FrameType.GOAWAY:
        if (!this.goAwayReceived) {
          this.goAwayReceived = true;
          this.log.debug({ code: f.code }, 'GOAWAY received');
          this.emit('goaway', f.code);
        }
        return;
      case FrameType.OPEN:
        this.onOpen(f);
        return;
      case FrameType.DATAGRAM:
        this.onDatagram(f);
        return;
      default:
        this.onStreamFrame(f);
    }
  }

  private onOpen(f: OpenFrame | InvalidOpenFrame): void {
    if (this.role === 'client') throw new MuxProtocolError('unexpected-open', `stream ${f.streamId}`);
    const id = f.streamId;
    if (id % 2 === 0) throw new MuxProtocolError('stream-id-parity', `stream ${id}`);
    if (id <= this.highestStreamId) throw new MuxProtocolError('stream-id-order', `stream ${id} after ${this.highestStreamId}`);
    this.highestStreamId = id;
    if (this.goAwaySent) return this.refuseOpen(id, WireCode.GOING_AWAY);
    if (f.target === null) {
      this.log.debug({ stream: id, invalid: f.invalid }, 'OPEN refused: cannot serve it');
      return this.refuseOpen(id, WireCode.PROTOCOL_ERROR);
    }
    if (this.streamCount >= this.limits.SESSION_MAX_STREAMS) return this.refuseOpen(id, WireCode.STREAM_LIMIT);
    if (this.listenerCount('open') === 0) return this.refuseOpen(id, WireCode.GENERAL_FAILURE);

    const udp = f.cmd === OpenCommand.UDP_ASSOCIATE;
    const pending: PendingIncoming = { controller: new AbortController(), settled: false, udp, early: null, earlyBytes: 0 };
    this.incoming.set(id, pending);
    const peerWindow = f.window;
    const settle = (): void => {
      if (pending.settled) throw new Error(`IncomingOpen ${id}: accept() or reject() was already called`);
      pending.settled = true;
    };
    const incoming: IncomingOpen = {
      streamId: id,
      command: udp ? 'udp-associate' : 'connect',
      target: f.target,
      signal: pending.controller.signal,
      accept: (window: number = this.limits.STREAM_WINDOW_BYTES): MuxStream => {
        settle();
        if (pending.controller.signal.aborted) throw pending.controller.signal.reason as PosternError;
        this.incoming.delete(id);
        const stream = this.newStream(id, 'open', peerWindow, window);
        this.streams.set(id, stream);
        if (udp) this.associations.add(id);
        this.send(encodeFrame({ type: FrameType.OPEN_RESULT, streamId: id, code: WireCode.OK, window }));
        // Early DATA (§5.1) is the stream's first bytes; it counts against the window just announced
        // (never below STREAM_MIN_WINDOW_BYTES, which is at least STREAM_EARLY_DATA_BYTES).
        const early = pending.early;
        pending.early = null;
        if (early !== null) for (const chunk of early) stream.handleData(chunk);
        return stream;
      },
      reject: (err: PosternError): void => {
        settle();
        pending.early = null; // never forwarded (§5.1)
        if (pending.controller.signal.aborted) return;
        this.incoming.delete(id);
        const wire = err instanceof PosternError ? err.wire : errorFromSystem(err).wire;
        this.refuseOpen(id, wire === WireCode.OK ? WireCode.GENERAL_FAILURE : wire);
        this.emitIdleIfEmpty();
      },
    };
    this.emit('open', incoming);
  }

  private refuseOpen(id: number, code: number): void {
    this.log.debug({ stream: id, code }, 'OPEN refused');
    this.send(encodeFrame({ type: FrameType.OPEN_RESULT, streamId: id, code, window: 0 }));
    this.countRefusal();
  }

  /**
   * §5.1: refused OPENs (and RESETs 0x08 for frames on streams never opened) are limited to a burst
   * of SESSION_REFUSED_OPEN_BURST_COUNT and SESSION_REFUSED_OPENS_PER_SECOND after it; past that
   * the peer is flooding us with answers to make, and the session ends as a protocol violation.
   */
  private countRefusal(): void {
    if (this.isClosed) return;
    const now = performance.now();
    const { SESSION_REFUSED_OPEN_BURST_COUNT: burst, SESSION_REFUSED_OPENS_PER_SECOND: rate } = this.limits;
    this.refusalTokens = Math.min(burst, this.refusalTokens + ((now - this.refusalRefilledAt) * rate) / 1000);
    this.refusalRefilledAt = now;
    if (this.refusalTokens >= 1) {
      this.refusalTokens -= 1;
      return;
    }
    const err = new MuxProtocolError('refused-open-flood', `over ${burst} refusals and ${rate}/s`);
    this.log.warn({ reason: err.reason, burst, perSecond: rate }, 'session protocol error');
    this.teardown(err.closeCode, err.reason, err, 'close');
  }

  /** Sends the PONG due (§8), unless the transport is congested: then on drain, still one for all. */
  private flushPong(): void {
    const data = this.pongDue;
    if (data === null || this.isClosed) return;
    if (this.transport.bufferedBytes > this.limits.SESSION_WRITE_HIGH_WATER_BYTES) {
      // Keep 8 bytes, not the message they sit in.
      if (data.buffer.byteLength > 64) this.pongDue = Buffer.from(data);
      return;
    }
    this.pongDue = null;
    this.send(encodeFrame({ type: FrameType.PONG, data }));
  }

  private onStreamFrame(f: Exclude<StreamFrame, OpenFrame | InvalidOpenFrame>): void {
    const id = f.streamId;

    const pendingOpen = this.opening.get(id);
    if (pendingOpen) {
      switch (f.type) {
        case FrameType.OPEN_RESULT:
          this.settleOpen(id, pendingOpen);
          if (f.code === WireCode.OK) {
            pendingOpen.stream.handleOpened(f.window);
            pendingOpen.resolve?.(pendingOpen.stream);
          } else {
            this.endPendingOpen(id, pendingOpen, errorFromWire(f.code));
          }
          return;
        case FrameType.RESET:
          this.failOpen(id, errorFromWire(f.code), false);
          return;
        default:
          this.streamViolation(id, `frame type ${f.type} before OPEN_RESULT`);
          this.failOpen(id, new PosternError('E_PROTOCOL', 'peer broke the opening rules'), false);
          return;
      }
    }

    const stream = this.streams.get(id);
    if (stream) {
      switch (f.type) {
        case FrameType.DATA:
          if (this.associations.has(id)) {
            // §10: an association carries no stream data.
            this.streamViolation(id, 'DATA on a UDP association');
            stream.abortBySession(new PosternError('E_PROTOCOL', 'DATA on a UDP association'));
            return;
          }
          return stream.handleData(f.payload);
        case FrameType.WINDOW:
          return stream.handleWindow(f.increment);
        case FrameType.FIN:
          return stream.handleFin();
        case FrameType.RESET:
          return stream.handleReset(f.code);
        case FrameType.OPEN_RESULT:
          this.streamViolation(id, 'OPEN_RESULT on an open stream');
          stream.abortBySession(new PosternError('E_PROTOCOL', 'unexpected OPEN_RESULT'));
          return;
      }
    }

    const pendingIn = this.incoming.get(id);
    if (pendingIn) {
      if (f.type === FrameType.DATA && !pendingIn.udp && pendingIn.earlyBytes + f.payload.length <= this.limits.STREAM_EARLY_DATA_BYTES) {
        // §5.1: early DATA, held (copied: the message it came in is not pinned) until accept().
        pendingIn.earlyBytes += f.payload.length;
        (pendingIn.early ??= []).push(Buffer.from(f.payload));
        return;
      }
      this.incoming.delete(id);
      pendingIn.early = null;
      if (f.type === FrameType.DATA && !pendingIn.udp) {
        this.log.debug({ stream: id, code: WireCode.FLOW_CONTROL_ERROR }, 'early DATA over the allowance');
        this.send(encodeFrame({ type: FrameType.RESET, streamId: id, code: WireCode.FLOW_CONTROL_ERROR }));
        pendingIn.controller.abort(new PosternError('E_FLOW_CONTROL', 'early DATA over the allowance'));
        this.emitIdleIfEmpty();
        return;
      }
      if (f.type === FrameType.RESET) {
        this.log.debug({ stream: id, code: f.code }, 'open cancelled by peer');
        pendingIn.controller.abort(errorFromWire(f.code));
      } else {
        this.streamViolation(id, `frame type ${f.type} before OPEN_RESULT`);
        pendingIn.controller.abort(new PosternError('E_PROTOCOL', 'peer broke the opening rules'));
      }
      this.emitIdleIfEmpty();
      return;
    }

    // Ids at or below the highest opened one were used and are closed now: their late frames
    // are ignored (§5.2). Any other id was never opened: RESET 0x08 (never in answer to a RESET,
    // so that two peers cannot bounce RESETs at each other).
    if (id % 2 === 1 && id <= this.highestStreamId) return;
    if (f.type !== FrameType.RESET) this.streamViolation(id, `frame type ${f.type} for a stream never opened`);
  }

  /** §10: delivered to the association's handler, or dropped (never an error: it may race a close). */
  private onDatagram(f: DatagramFrame): void {
    const handler = this.datagramHandlers.get(f.streamId);
    if (handler === undefined || f.target === null || this.opening.has(f.streamId)) {
      this.datagramCounts.droppedOnReceive++;
      return;
    }
    this.datagramCounts.received++;
    handler(f.target, f.data);
  }

  /** RESET 0x08 on one stream id (§5.2); counted as a refusal (§5.1 refused-open rate). */
  private streamViolation(id: number, detail: string): void {
    this.log.debug({ stream: id, code: WireCode.PROTOCOL_ERROR }, `stream protocol violation: ${detail}`);
    this.send(encodeFrame({ type: FrameType.RESET, streamId: id, code: WireCode.PROTOCOL_ERROR }));
    this.countRefusal();
  }

  // ── client opens ───────────────────────────────────────────────────────

  private settleOpen(id: number, p: PendingOpen): void {
    this.opening.delete(id);
    clearTimeout(p.timer);
    if (p.signal && p.onAbort) p.signal.removeEventListener('abort', p.onAbort);
  }

  private failOpen(id: number, err: PosternError, sendCancel: boolean): void {
    const p = this.opening.get(id);
    if (!p) return;
    this.settleOpen(id, p);
    if (sendCancel) this.send(encodeFrame({ type: FrameType.RESET, streamId: id, code: WireCode.CANCELLED }));
    this.endPendingOpen(id, p, err);
  }

  /** A settled open that did not succeed: the waiting caller gets `err`, or the app holding an early stream does. */
  private endPendingOpen(id: number, p: PendingOpen, err: PosternError): void {
    this.log.debug({ stream: id, code: err.code }, 'open failed');
    if (p.reject === null) {
      p.stream.failOpen(err);
    } else {
      p.stream.abandon();
      p.reject(err);
    }
  }

  private newStream(id: number, state: 'opening' | 'open', sendCredit: number, receiveWindow = this.limits.STREAM_WINDOW_BYTES): MuxStream {
    return new MuxStream(this.host, { id, state, receiveWindow, sendCredit });
  }

  // ── send path and backpressure ──────────────────────────────────────────

  private send(frame: Buffer): void {
    if (this.isClosed) return;
    this.transport.send(frame);
    noteRelayedBytes(frame.length, this.limits.YOUNG_GC_EVERY_BYTES);
  }

  /** Wakes blocked writers in FIFO order; whoever re-blocks goes behind those not yet served. */
  private onDrain(): void {
    if (this.pongDue !== null) this.flushPong();
    if (this.drainWaiters.size === 0 || this.isClosed) return;
    const waiting = [...this.drainWaiters];
    this.drainWaiters.clear();
    for (let i = 0; i < waiting.length; i++) {
      if (this.host.isCongested()) {
        const requeued = this.drainWaiters;
        this.drainWaiters = new Set(waiting.slice(i).filter((s) => !s.destroyed));
        for (const s of requeued) this.drainWaiters.add(s);
        return;
      }
      (waiting[i] as MuxStream).resumeAfterDrain();
    }
  }

  // ── liveness ────────────────────────────────────────────────────────────

  private sendPing(): number {
    const seq = ++this.pingSeq;
    const data = Buffer.allocUnsafe(PING_DATA_BYTES);
    data.writeUInt32BE(Math.floor(seq / 2 ** 32), 0);
    data.writeUInt32BE(seq >>> 0, 4);
    this.send(encodeFrame({ type: FrameType.PING, data }));
    return seq;
  }

  private onPong(data: Buffer): void {
    const seq = data.readUInt32BE(0) * 2 ** 32 + data.readUInt32BE(4);
    const p = this.pings.get(seq);
    if (!p) return; // a keepalive ping, or not ours
    this.pings.delete(seq);
    p.resolve(performance.now() - p.startedAt);
  }

  private armKeepalive(delayMs: number): void {
    this.keepaliveTimer = setTimeout(() => this.onKeepaliveTimer(), Math.max(1, Math.ceil(delayMs)));
    this.keepaliveTimer.unref();
  }

  /**
   * §8: PING once nothing has arrived for KEEPALIVE_INTERVAL_MS; end the session once nothing has
   * arrived for KEEPALIVE_TIMEOUT_MS. Both roles do this. Re-armed at most twice per interval.
   */
  private onKeepaliveTimer(): void {
    this.keepaliveTimer = null;
    if (this.isClosed) return;
    const now = performance.now();
    const idle = now - this.lastReceivedAt;
    const interval = this.limits.KEEPALIVE_INTERVAL_MS;
    const timeout = this.limits.KEEPALIVE_TIMEOUT_MS;
    if (idle >= timeout) {
      this.log.warn({ idleMs: Math.round(idle) }, 'peer silent: keepalive timeout');
      this.teardown(KEEPALIVE_CLOSE.code, KEEPALIVE_CLOSE.reason, undefined, 'terminate');
      return;
    }
    if (idle >= interval) {
      if (!this.keepalivePinged) {
        this.keepalivePinged = true;
        this.sendPing();
      }
      this.armKeepalive(this.lastReceivedAt + timeout - now);
    } else {
      this.armKeepalive(this.lastReceivedAt + interval - now);
    }
  }

  // ── end ─────────────────────────────────────────────────────────────────

  private emitIdleIfEmpty(): void {
    if (!this.isClosed && this.streamCount === 0) this.emit('idle');
  }

  private teardown(code: number, reason: string, error: Error | undefined, action: 'close' | 'terminate' | 'none'): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.keepaliveTimer) clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = null;
    this.drainWaiters.clear();
    for (const [id, p] of [...this.opening]) {
      this.settleOpen(id, p);
      if (p.reject === null) {
        p.stream.failOpen(new PosternError('E_SESSION_CLOSED'));
      } else {
        p.stream.abandon();
        p.reject(new PosternError('E_SESSION_CLOSED'));
      }
    }
    for (const p of this.incoming.values()) p.controller.abort(new PosternError('E_SESSION_CLOSED'));
    this.incoming.clear();
    for (const s of [...this.streams.values()]) s.abortBySession(new PosternError('E_SESSION_CLOSED'));
    this.streams.clear();
    this.associations.clear();
    this.datagramHandlers.clear();
    for (const p of this.pings.values()) p.reject(new PosternError('E_SESSION_CLOSED'));
    this.pings.clear();
    if (action === 'close') this.transport.close(code, reason);
    else if (action === 'terminate') this.transport.terminate();
    this.log.debug({ code, reason }, 'session closed');
    this.emit('close', { code, reason, ...(error ? { error } : {}) });
  }
}
