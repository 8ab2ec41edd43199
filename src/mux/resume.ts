/**
 * Resumable sessions (docs/protocol.md §9): a FrameTransport that outlives the WebSocket
 * connections under it.
 *
 * Every message the mux sends, except connection messages (PING, PONG, RESUME, ACK, DATAGRAM), is a
 * *session message*: numbered implicitly from 0 in sending order and kept until the peer
 * acknowledges it (ACK, cumulative count). When a connection is lost without a WebSocket close
 * frame (TCP reset, EOF, keepalive timeout) the link is *detached*: nothing is lost, writers stall
 * (bufferedBytes reads as Infinity), and a new connection can be attached. On attach each side
 * sends RESUME carrying how many session messages it has received; each then drops what the peer
 * already has and resends the rest, in order. A link not resumed within SESSION_RESUME_TIMEOUT_MS
 * ends, and only then do its streams reset.
 *
 * Memory: the resend queue holds what the peer has not acknowledged. DATA in it is bounded by the
 * streams' flow-control credit (a receiver acknowledges at least every RESUME_ACK_BYTES), and as a
 * safety belt writers stall while it holds more than SESSION_RESUME_BUFFER_MAX_BYTES, counting every
 * kept message (control ones too). A peer that lets it grow past that plus
 * SESSION_RESUME_OVERFLOW_BYTES (by never acknowledging the answers it provokes) is cut off: close
 * 1008 "resume buffer full". Kept messages go onto a connection while it buffers at most half the
 * send-queue bound (a resend after RESUME is paced by drain, never dumped at once), so that the
 * connection's read stop (sendQueueBound) is never reached by our own resending.
 *
 * The link also does keepalive per connection (§8): PING after KEEPALIVE_INTERVAL_MS of silence,
 * the connection is dropped (and the link detached) after KEEPALIVE_TIMEOUT_MS of silence.
 */
import { EventEmitter } from 'node:events';
import { sendQueueBound, type Limits } from '../core/limits.js';
import type { Logger } from '../log/logger.js';
import { allocFrame, encodeFrame } from './codec.js';
import { FrameType, HEADER_BYTES, PING_DATA_BYTES, PROTOCOL_MAX_PAYLOAD_BYTES } from './frame.js';
import { CloseCode, type FrameTransport } from './transport.js';

/** Connection frame types added by §9 (stream id 0, never counted, never resent). */
export const ResumeFrameType = {
  RESUME: 0x0a,
  ACK: 0x0b,
} as const;

/** The smallest DATA payload the link asks for on a path that cuts connections early. */
const MIN_PAYLOAD_HINT_BYTES = 1024;

/**
 * What keeping one message costs beyond its bytes (a Buffer object and its queue slot), counted
 * against the caps: 11 M kept RESETs of 11 bytes each took 2 GB, not 120 MB.
 */
export const KEPT_MESSAGE_OVERHEAD_BYTES = 128;

/** The budget hook (ResumableLinkOptions.overBudget) is consulted each time kept bytes grow by this. */
const BUDGET_CHECK_STEP_BYTES = 256 * 1024;

/** RESUME and ACK carry one u64: a count of session messages received. */
const COUNT_BYTES = 8;
/** §9.3: the bridge's RESUME on the first connection of a session also carries the session's resume secret. */
export const RESUME_SECRET_BYTES = 32;

/** WebSocket close code sent when a RESUME names a state the receiver cannot continue from. */
export const SESSION_LOST_CLOSE = { code: 4001, reason: 'session unknown' } as const;
/** Close code and reason when the peer lets the resume buffer overflow (never acknowledges). */
export const RESUME_OVERFLOW_CLOSE = { code: CloseCode.POLICY, reason: 'resume buffer full' } as const;
/** Close code (local report) when a detached link was not resumed in time. */
export const RESUME_TIMEOUT_CLOSE = { code: CloseCode.GOING_AWAY, reason: 'resume timeout' } as const;

type CloseInfo = { code: number; reason: string; error?: Error };

/** Connection messages (§9.1): never numbered, kept or resent. DATAGRAM (§10) is one: it may be lost. */
export function isConnectionFrameType(type: number): boolean {
  return (
    type === FrameType.PING ||
    type === FrameType.PONG ||
    type === ResumeFrameType.RESUME ||
    type === ResumeFrameType.ACK ||
    type === FrameType.DATAGRAM
  );
}

export function encodeCountFrame(type: typeof ResumeFrameType.RESUME | typeof ResumeFrameType.ACK, count: number, secret?: Buffer): Buffer {
  const extra = secret?.length ?? 0;
  const buf = Buffer.alloc(HEADER_BYTES + COUNT_BYTES + extra);
  buf[0] = type;
  buf.writeUInt32BE(COUNT_BYTES + extra, 6);
  buf.writeBigUInt64BE(BigInt(count), HEADER_BYTES);
  secret?.copy(buf, HEADER_BYTES + COUNT_BYTES);
  return buf;
}

export type LinkState = 'detached' | 'handshake' | 'live' | 'ended';

export type ResumableLinkEvents = {
  /** The connection was lost; the link waits for a new one (up to SESSION_RESUME_TIMEOUT_MS). */
  detached: [info: CloseInfo];
  /** RESUME exchanged on a new connection: `resent` session messages went out again. */
  resumed: [resent: number];
};

export interface ResumableLinkOptions {
  readonly limits: Limits;
  readonly logger: Logger;
  /**
   * Bridge: the session's resume secret (RESUME_SECRET_BYTES random bytes), sent once, in the
   * RESUME on the session's first connection (§9.3). A resuming client proves it holds it.
   */
  readonly resumeSecret?: Buffer;
  /**
   * True when the owner's budget for held bytes is spent (the bridge: the user's or the bridge's);
   * consulted as the kept messages grow, and the peer is then cut off as past the overflow.
   */
  readonly overBudget?: () => boolean;
}

export class ResumableLink extends EventEmitter<ResumableLinkEvents> implements FrameTransport {
  private readonly limits: Limits;
  private readonly log: Logger;
  private conn: FrameTransport | null = null;
  private _state: LinkState = 'detached';

  /** Session messages [acked, sent) not yet acknowledged, oldest first (from index `head`). */
  private queue: Buffer[] = [];
  private head = 0;
  private acked = 0;
  private sent = 0;
  /** Session messages handed to the current connection (absolute number; acked ≤ onWire ≤ sent while live). */
  private onWire = 0;
  private queuedBytes = 0;
  /** Kept bytes past which the peer is cut off (cap + overflow). */
  private readonly overflowAt: number;
  /** Kept messages are put on the connection only while it buffers at most this. */
  private readonly wireMaxBytes: number;
  private readonly overBudget: (() => boolean) | undefined;
  private nextBudgetCheck = BUDGET_CHECK_STEP_BYTES;
  /** The latest connection PING not yet answered (the connection was congested). */
  private pongDue: Buffer | null = null;
  /** Session messages received (and handed to the mux). */
  private received = 0;
  private ackedToPeer = 0;
  private bytesSinceAck = 0;
  private ackTimer: NodeJS.Timeout | null = null;

  private keepaliveTimer: NodeJS.Timeout | null = null;
  private lastReceivedAt = 0;
  private pinged = false;
  private expiryTimer: NodeJS.Timeout | null = null;
  private detachedAt = 0;
  private stalledByQueue = false;
  /** The peer let the kept messages overflow: the session is being ended. */
  private overflowed = false;
  /**
   * DATA payload size to use (Infinity: the protocol maximum). A connection cut after carrying
   * little shrinks it (a path that resets every few KB never passes a 64 KiB message); every
   * 16 × hint carried on one connection doubles it back.
   */
  private payloadHint = Number.POSITIVE_INFINITY;
  private grownAt = 0;
  /** Bytes that got through on the current connection: received, plus ours the peer acknowledged. */
  private connProgress = 0;
  /** Bytes sent and received on the current connection, and when it was attached. */
  private connBytes = 0;
  private connSince = 0;

  private messageCb: ((m: Buffer) => void) | null = null;
  private closeCb: ((info: CloseInfo) => void) | null = null;
  private readonly drainCbs: Array<() => void> = [];
  private paused = false;
  private endInfo: CloseInfo | null = null;
  private endReported = false;
  /** Bridge: the secret to send in the first RESUME; null once sent (or never given). */
  private secretToSend: Buffer | null;
  /** This side (the bridge) issues the secret, and so never accepts one. */
  private readonly issuesSecret: boolean;
  /** Client: the secret the bridge sent in its first RESUME (null: none yet, or an older bridge). */
  private peerSecret: Buffer | null = null;
  /** A RESUME has been accepted on some connection (the first connection is over once this is true). */
  private everLive = false;

  constructor(opts: ResumableLinkOptions) {
    super();
    this.limits = opts.limits;
    this.log = opts.logger;
    this.secretToSend = opts.resumeSecret ?? null;
    this.issuesSecret = opts.resumeSecret !== undefined;
    this.overflowAt = opts.limits.SESSION_RESUME_BUFFER_MAX_BYTES + opts.limits.SESSION_RESUME_OVERFLOW_BYTES;
    this.overBudget = opts.overBudget;
    this.wireMaxBytes = sendQueueBound(opts.limits) / 2;
    this.startExpiry();
  }

  get state(): LinkState {
    return this._state;
  }

  /** Client: the session's resume secret, as the bridge sent it on the first connection (§9.3), or null. */
  get resumeSecret(): Buffer | null {
    return this.peerSecret;
  }

  /** Whether a RESUME was ever exchanged (the session has been live on some connection). */
  get wasLive(): boolean {
    return this.everLive;
  }

  /** Session messages kept for resending, and their bytes (for tests and metrics). */
  get unacknowledged(): { messages: number; bytes: number } {
    return { messages: this.sent - this.acked, bytes: this.queuedBytes };
  }

  /** Bytes held for the peer: every kept message (with its overhead) and what the connection still buffers. */
  get heldBytes(): number {
    const b = this.conn?.bufferedBytes ?? 0;
    return this.keptCost + (Number.isFinite(b) ? b : 0);
  }

  /** What the kept messages cost: their bytes plus KEPT_MESSAGE_OVERHEAD_BYTES each. */
  private get keptCost(): number {
    return this.queuedBytes + (this.sent - this.acked) * KEPT_MESSAGE_OVERHEAD_BYTES;
  }

  get maxPayloadHint(): number {
    return this.payloadHint;
  }

  /** Bytes carried (both ways) by the current connection and its age in ms (for rotation). */
  get connectionUse(): { bytes: number; ageMs: number } {
    return this.conn === null ? { bytes: 0, ageMs: 0 } : { bytes: this.connBytes, ageMs: performance.now() - this.connSince };
  }

  /** Milliseconds since the link detached (0 while a connection is attached). */
  get detachedForMs(): number {
    return this._state === 'detached' ? performance.now() - this.detachedAt : 0;
  }

  // ── FrameTransport (what the mux sees) ────────────────────────────────

  get bufferedBytes(): number {
    if (this._state !== 'live' || this.conn === null || this.onWire < this.sent) return Number.POSITIVE_INFINITY;
    if (this.keptCost > this.limits.SESSION_RESUME_BUFFER_MAX_BYTES) {
      this.stalledByQueue = true;
      return Number.POSITIVE_INFINITY;
    }
    return this.conn.bufferedBytes;
  }

  send(message: Buffer): void {
    if (this._state === 'ended' || message.length === 0) return;
    if (isConnectionFrameType(message[0] as number)) {
      if (this._state === 'live') this.conn?.send(message);
      return;
    }
    if (this.overflowed) return; // being cut off (below)
    this.queue.push(message);
    this.sent++;
    this.queuedBytes += message.length;
    const cost = this.keptCost;
    let over = cost > this.overflowAt;
    if (!over && cost > this.nextBudgetCheck) {
      this.nextBudgetCheck = cost + BUDGET_CHECK_STEP_BYTES;
      over = this.overBudget?.() === true;
    }
    if (over) {
      // Every kept message counts: a peer that provokes answers and never acknowledges them is cut
      // off. After this turn, so that the mux is not torn down inside its own send().
      this.overflowed = true;
      this.log.warn(
        { code: RESUME_OVERFLOW_CLOSE.code, reason: RESUME_OVERFLOW_CLOSE.reason, keptBytes: cost, messages: this.sent - this.acked, overBudget: cost <= this.overflowAt },
        'peer does not acknowledge: resume buffer full; ending the session',
      );
      queueMicrotask(() => this.close(RESUME_OVERFLOW_CLOSE.code, RESUME_OVERFLOW_CLOSE.reason));
      return;
    }
    if (this._state === 'live' && this.conn !== null) this.pumpKept(this.conn);
  }

  /** Puts kept messages not yet on the connection onto it, while it buffers at most wireMaxBytes. */
  private pumpKept(conn: FrameTransport): void {
    while (this.onWire < this.sent && conn.bufferedBytes <= this.wireMaxBytes) {
      const m = this.queue[this.head + (this.onWire - this.acked)] as Buffer;
      this.onWire++;
      this.connBytes += m.length;
      conn.send(m);
      if (this.conn !== conn || this._state !== 'live') return;
    }
  }

  onDrain(cb: () => void): void {
    this.drainCbs.push(cb);
  }

  onMessage(cb: (message: Buffer) => void): void {
    this.messageCb = cb;
  }

  onClose(cb: (info: CloseInfo) => void): void {
    this.closeCb = cb;
    this.reportEnd();
  }

  pause(): void {
    this.paused = true;
    this.conn?.pause();
  }

  resume(): void {
    this.paused = false;
    this.conn?.resume();
  }

  /** Ends the session: the connection (if any) is closed with `code`, nothing is resumed any more. */
  close(code: number, reason: string): void {
    if (this._state === 'ended') return;
    const conn = this.conn;
    this.end({ code, reason });
    conn?.close(code, reason);
  }

  terminate(): void {
    if (this._state === 'ended') return;
    const conn = this.conn;
    this.end({ code: 1006, reason: 'terminated' });
    conn?.terminate();
  }

  // ── connections ───────────────────────────────────────────────────────

  /**
   * Puts the link on `conn` (a fresh, open connection of the same session). A connection still
   * attached is dropped first. Sends RESUME at once; session messages flow after the peer's RESUME.
   */
  attach(conn: FrameTransport): void {
    if (this._state === 'ended') {
      conn.close(SESSION_LOST_CLOSE.code, SESSION_LOST_CLOSE.reason);
      return;
    }
    const old = this.conn;
    this.conn = null;
    // Dropped, not closed: a close frame would end the session at the peer (§9.4).
    if (old !== null) old.terminate();
    this.stopConnTimers();
    this.stopExpiry();
    this.conn = conn;
    this._state = 'handshake';
    this.pongDue = null;
    this.connBytes = 0;
    this.connProgress = 0;
    this.grownAt = 0;
    this.connSince = performance.now();
    conn.onMessage((m) => this.onConnMessage(conn, m));
    conn.onDrain(() => {
      if (conn !== this.conn || this._state !== 'live') return;
      if (this.pongDue !== null) {
        conn.send(this.pongDue);
        this.pongDue = null;
      }
      this.pumpKept(conn);
      if (this.onWire === this.sent) this.fireDrain();
    });
    conn.onClose((info) => this.onConnClose(conn, info));
    if (this.paused) conn.pause();
    this.lastReceivedAt = performance.now();
    this.pinged = false;
    this.armKeepalive(this.limits.KEEPALIVE_INTERVAL_MS);
    // The secret goes out on the session's first connection only (§9.3), never again.
    const secret = this.secretToSend ?? undefined;
    this.secretToSend = null;
    conn.send(encodeCountFrame(ResumeFrameType.RESUME, this.received, secret));
  }

  /** Drops the current connection (as if it were cut); the link detaches and waits for attach(). */
  dropConnection(): void {
    this.conn?.terminate();
  }

  private onConnClose(conn: FrameTransport, info: CloseInfo): void {
    if (conn !== this.conn) return;
    this.conn = null;
    this.stopConnTimers();
    if (this._state === 'ended') return;
    if (info.code !== 1006) {
      // A WebSocket close frame (sent or received) ends the session: only a cut connection is resumed.
      this.end(info);
      return;
    }
    this._state = 'detached';
    if (this.connProgress < 4 * PROTOCOL_MAX_PAYLOAD_BYTES) {
      const next = Math.max(MIN_PAYLOAD_HINT_BYTES, 2 ** Math.floor(Math.log2(Math.max(1, this.connProgress / 4))));
      this.payloadHint = Math.min(this.payloadHint, next);
    }
    this.log.info({ reason: info.reason || 'connection lost' }, 'session detached; waiting to resume');
    this.startExpiry();
    this.emit('detached', info);
  }

  private onConnMessage(conn: FrameTransport, m: Buffer): void {
    if (conn !== this.conn || this._state === 'ended') return;
    this.lastReceivedAt = performance.now();
    this.pinged = false;
    this.connBytes += m.length;
    this.progress(m.length);
    const type = m.length >= HEADER_BYTES ? (m[0] as number) : -1;
    if (type === FrameType.DATAGRAM) {
      // §10: handed to the mux (which checks it) only while live; never counted.
      if (this._state === 'live') this.messageCb?.(m);
      return;
    }
    if (type !== -1 && isConnectionFrameType(type)) {
      this.onConnectionFrame(conn, type, m);
      return;
    }
    if (this._state !== 'live') return this.protocolError(conn, 'session message before RESUME');
    this.received++;
    this.bytesSinceAck += m.length;
    this.messageCb?.(m);
    if (this._state !== 'live') return;
    if (this.bytesSinceAck >= this.limits.RESUME_ACK_BYTES) this.sendAck();
    else if (this.ackTimer === null) {
      this.ackTimer = setTimeout(() => {
        this.ackTimer = null;
        this.sendAck();
      }, this.limits.RESUME_ACK_DELAY_MS);
      this.ackTimer.unref();
    }
  }

  private onConnectionFrame(conn: FrameTransport, type: number, m: Buffer): void {
    const len = m.readUInt32BE(6);
    if (m.readUInt32BE(2) !== 0 || len !== m.length - HEADER_BYTES) return this.protocolError(conn, 'malformed connection frame');
    if (type === FrameType.PING || type === FrameType.PONG) {
      if (len !== PING_DATA_BYTES) return this.protocolError(conn, 'bad PING/PONG size');
      if (type === FrameType.PING) {
        // One PONG answers every PING before it: while the connection is congested only the
        // latest is kept, and answered on drain.
        const pong = Buffer.from(m);
        pong[0] = FrameType.PONG;
        if (conn.bufferedBytes > this.limits.SESSION_WRITE_HIGH_WATER_BYTES) this.pongDue = pong;
        else conn.send(pong);
      } else if (this._state === 'live') {
        this.messageCb?.(m); // the mux matches PONGs to its ping() calls
      }
      return;
    }
    if (type === ResumeFrameType.RESUME && len === COUNT_BYTES + RESUME_SECRET_BYTES) {
      // §9.3: only the first RESUME of a session, on its first connection, carries the secret.
      if (this.issuesSecret || this.everLive || this.peerSecret !== null || this._state !== 'handshake') return this.protocolError(conn, 'resume secret after the first connection');
      this.peerSecret = Buffer.from(m.subarray(HEADER_BYTES + COUNT_BYTES));
    } else if (len !== COUNT_BYTES) return this.protocolError(conn, 'bad RESUME/ACK size');
    const count = Number(m.readBigUInt64BE(HEADER_BYTES));
    if (type === ResumeFrameType.RESUME) {
      if (this._state !== 'handshake') return this.protocolError(conn, 'second RESUME');
      if (count < this.acked || count > this.sent) {
        // The peer has lost (or never had) this session's state: it cannot be continued.
        this.log.warn({ peerReceived: count, acked: this.acked, sent: this.sent }, 'peer cannot resume this session');
        this.conn = null;
        this.stopConnTimers();
        this.end({ code: SESSION_LOST_CLOSE.code, reason: SESSION_LOST_CLOSE.reason });
        conn.close(SESSION_LOST_CLOSE.code, SESSION_LOST_CLOSE.reason);
        return;
      }
      this.release(count);
      this._state = 'live';
      this.everLive = true;
      this.splitKept();
      const resend = this.sent - this.acked;
      this.onWire = this.acked;
      this.pumpKept(conn);
      this.emit('resumed', resend);
      if (this._state === 'live' && this.conn === conn && conn.bufferedBytes === 0) setImmediate(() => this.fireDrain());
      return;
    }
    // ACK
    if (this._state !== 'live') return this.protocolError(conn, 'ACK before RESUME');
    // Only what is on the wire can have been received.
    if (count < this.acked || count > this.onWire) return this.protocolError(conn, 'ACK out of range');
    this.release(count);
    this.nextBudgetCheck = Math.min(this.nextBudgetCheck, this.keptCost + BUDGET_CHECK_STEP_BYTES);
    if (this.stalledByQueue && this.keptCost <= this.limits.SESSION_RESUME_BUFFER_MAX_BYTES) {
      this.stalledByQueue = false;
      this.fireDrain();
    }
  }

  /**
   * §9.3: messages not yet received by the peer may be renumbered before they are resent. Kept
   * DATA larger than the payload hint is cut into several DATA frames of the same stream (same
   * bytes, same order), so that a path that cuts early still lets whole messages through.
   */
  private splitKept(): void {
    const hint = this.payloadHint;
    if (hint === Number.POSITIVE_INFINITY) return;
    let needed = false;
    for (let i = this.head; i < this.queue.length && !needed; i++) {
      const m = this.queue[i] as Buffer;
      needed = m[0] === FrameType.DATA && m.length - HEADER_BYTES > hint;
    }
    if (!needed) return;
    const out: Buffer[] = [];
    for (let i = this.head; i < this.queue.length; i++) {
      const m = this.queue[i] as Buffer;
      if (m[0] !== FrameType.DATA || m.length - HEADER_BYTES <= hint || m.readUInt32BE(6) !== m.length - HEADER_BYTES) {
        out.push(m);
        continue;
      }
      const streamId = m.readUInt32BE(2);
      for (let off = HEADER_BYTES; off < m.length; off += hint) {
        const part = m.subarray(off, Math.min(m.length, off + hint));
        const f = allocFrame(FrameType.DATA, streamId, part.length);
        part.copy(f, HEADER_BYTES);
        out.push(f);
      }
    }
    this.sent = this.acked + out.length;
    this.queue = out;
    this.head = 0;
    let bytes = 0;
    for (const m of out) bytes += m.length;
    this.queuedBytes = bytes;
  }

  /** Bytes got through on this connection: grow the payload hint back by doubling. */
  private progress(bytes: number): void {
    this.connProgress += bytes;
    if (this.payloadHint !== Number.POSITIVE_INFINITY && this.connProgress - this.grownAt >= 16 * this.payloadHint) {
      this.grownAt = this.connProgress;
      this.payloadHint = this.payloadHint * 2 >= PROTOCOL_MAX_PAYLOAD_BYTES ? Number.POSITIVE_INFINITY : this.payloadHint * 2;
    }
  }

  /** The peer has received `count` session messages: forget those. */
  private release(count: number): void {
    let freed = 0;
    while (this.acked < count) {
      const m = this.queue[this.head] as Buffer;
      this.queue[this.head] = undefined as unknown as Buffer;
      this.head++;
      this.acked++;
      this.queuedBytes -= m.length;
      freed += m.length;
    }
    if (freed > 0) this.progress(freed);
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private sendAck(): void {
    if (this.ackTimer !== null) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    this.bytesSinceAck = 0;
    if (this._state !== 'live' || this.conn === null || this.ackedToPeer === this.received) return;
    this.ackedToPeer = this.received;
    this.conn.send(encodeCountFrame(ResumeFrameType.ACK, this.received));
  }

  private protocolError(conn: FrameTransport, detail: string): void {
    this.log.warn({ reason: detail }, 'session protocol error on the link');
    this.conn = null;
    this.stopConnTimers();
    this.end({ code: CloseCode.PROTOCOL_ERROR, reason: detail });
    conn.close(CloseCode.PROTOCOL_ERROR, detail);
  }

  private fireDrain(): void {
    if (this._state !== 'live') return;
    for (const cb of this.drainCbs) cb();
  }

  // ── timers ────────────────────────────────────────────────────────────

  private armKeepalive(delayMs: number): void {
    this.keepaliveTimer = setTimeout(() => this.onKeepaliveTimer(), Math.max(1, Math.ceil(delayMs)));
    this.keepaliveTimer.unref();
  }

  /** §8 per connection: PING after the interval, drop the connection after the timeout. */
  private onKeepaliveTimer(): void {
    this.keepaliveTimer = null;
    const conn = this.conn;
    if (conn === null || this._state === 'ended') return;
    const now = performance.now();
    const idle = now - this.lastReceivedAt;
    const { KEEPALIVE_INTERVAL_MS: interval, KEEPALIVE_TIMEOUT_MS: timeout } = this.limits;
    if (idle >= timeout) {
      this.log.warn({ idleMs: Math.round(idle) }, 'connection silent: keepalive timeout');
      conn.terminate();
      return;
    }
    if (idle >= interval) {
      if (!this.pinged) {
        this.pinged = true;
        conn.send(encodeFrame({ type: FrameType.PING, data: Buffer.alloc(PING_DATA_BYTES) }));
      }
      this.armKeepalive(this.lastReceivedAt + timeout - now);
    } else {
      this.armKeepalive(this.lastReceivedAt + interval - now);
    }
  }

  private stopConnTimers(): void {
    if (this.keepaliveTimer !== null) clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = null;
    if (this.ackTimer !== null) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    // A new connection starts its ACK accounting from the RESUME it sends.
    this.ackedToPeer = this.received;
    this.bytesSinceAck = 0;
  }

  private startExpiry(): void {
    this.detachedAt = performance.now();
    if (this.expiryTimer !== null) return;
    this.expiryTimer = setTimeout(() => {
      this.expiryTimer = null;
      if (this._state !== 'detached') return;
      this.log.warn({ ms: this.limits.SESSION_RESUME_TIMEOUT_MS }, 'session not resumed in time; ending it');
      this.end({ code: RESUME_TIMEOUT_CLOSE.code, reason: RESUME_TIMEOUT_CLOSE.reason });
    }, this.limits.SESSION_RESUME_TIMEOUT_MS);
    this.expiryTimer.unref();
  }

  private stopExpiry(): void {
    if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
  }

  private end(info: CloseInfo): void {
    if (this._state === 'ended') return;
    this._state = 'ended';
    this.stopConnTimers();
    this.stopExpiry();
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
    this.endInfo = info;
    this.reportEnd();
  }

  private reportEnd(): void {
    if (this.endReported || this.endInfo === null || this.closeCb === null) return;
    this.endReported = true;
    this.closeCb(this.endInfo);
  }
}
