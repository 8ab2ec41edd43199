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
 *
 * Walls (§9.7, §9.8): a connection on which the peer owes us something (an ACK for what we sent, a
 * PONG, its RESUME) and from which nothing arrives for a few smoothed RTTs is taken as frozen and
 * dropped at once; a peer's BUDGET caps the bytes we send on one connection, and when the next
 * session message would not fit we hold it back (writers stall) and send MOVE, so that the client
 * moves the session to a new connection with nothing in flight on the old one.
 */
import { EventEmitter } from 'node:events';
import { sendQueueBound, type Limits } from '../core/limits.js';
import type { Logger } from '../log/logger.js';
import { allocFrame, encodeFrame } from './codec.js';
import { FrameType, HEADER_BYTES, PING_DATA_BYTES, PROTOCOL_MAX_PAYLOAD_BYTES } from './frame.js';
import { decodeTally, encodeTallyAsk, encodeTallyReport, TALLY_TYPE, TallyError } from './tally.js';
import { CloseCode, CUT_CODE, isCut, type FrameTransport, type TransportClose } from './transport.js';

/** Connection frame types added by §9 (stream id 0, never counted, never resent). */
export const ResumeFrameType = {
  RESUME: 0x0a,
  ACK: 0x0b,
  /** §9.8: the most bytes the receiver may send on this connection (client → bridge, before RESUME). */
  BUDGET: 0x0d,
  /** §9.8: the sender's budget on this connection is spent; it sends no more session messages on it. */
  MOVE: 0x0e,
  /** §9.8.1: the client numbers its connection; the bridge says what it counted on the previous one. */
  TALLY: TALLY_TYPE,
} as const;

type CountFrameType = Exclude<(typeof ResumeFrameType)[keyof typeof ResumeFrameType], typeof TALLY_TYPE>;

/** What the bridge counted on one connection of the session (§9.8.1): bytes it wrote to and read from its TCP connection (null: unknown). */
export interface ConnTally {
  readonly sentBytes: number | null;
  readonly receivedBytes: number | null;
}

/** PING data of the link's own probes (§9.7): a marker no mux ping uses (its seq high word is small). */
const PROBE_MARK = 0xffff_fffe;

/**
 * §9.8: what a message of `len` bytes costs against a connection budget — the payload, a
 * WebSocket header, and a TLS record's overhead per 16 KiB (a conservative estimate of wire bytes).
 */
export function budgetCharge(len: number): number {
  return len + 10 + 29 * Math.ceil((len + 10) / 16_384);
}

/** The smallest DATA payload the link asks for on a path that cuts connections early. */
const MIN_PAYLOAD_HINT_BYTES = 1024;

/** At this fraction of a connection's budget spent, the owner is told to dial a standby (§9.8). */
const STANDBY_AT_FRACTION = 0.5;

/** A record holds one DATA message of the payload hint with its headers (mux and WebSocket). */
const RECORD_SLACK_BYTES = 64;

/** A held DATA message is cut to fill a connection's budget only when at least this much fits. */
const MIN_SPLIT_BYTES = 256;

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

/** Connection messages (§9.1): never numbered, kept or resent. DATAGRAM (§10) is one: it may be lost. */
export function isConnectionFrameType(type: number): boolean {
  return (
    type === FrameType.PING ||
    type === FrameType.PONG ||
    type === ResumeFrameType.RESUME ||
    type === ResumeFrameType.ACK ||
    type === ResumeFrameType.BUDGET ||
    type === ResumeFrameType.MOVE ||
    type === ResumeFrameType.TALLY ||
    type === FrameType.DATAGRAM
  );
}

export function encodeCountFrame(type: CountFrameType, count: number, secret?: Buffer): Buffer {
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
  detached: [info: TransportClose];
  /**
   * RESUME exchanged on a new connection: `resent` session messages went out again. After a cut
   * (not a move), `cutSentBytes` estimates what of ours got through on the lost connection: every
   * connection message sent on it, plus the session messages the peer's RESUME says it received
   * (each charged as §9.8 does); null when the last connection was not cut.
   */
  resumed: [resent: number, cutSentBytes: number | null];
  /** The peer's budget on this connection is spent (§9.8): move the session to a new connection. */
  move: [];
  /** The link dropped its connection as frozen (§9.7): bytes owed, nothing received for `silentMs`. */
  frozen: [silentMs: number];
  /** Half of this connection's budget (the BUDGET we sent, or our own) is spent: time to dial a standby (§9.8). */
  budgetNear: [];
  /** Client (§9.8.1): the bridge's TALLY on this connection: what it counted on our previous one. */
  tally: [peer: ConnTally];
};

/** What attach() sends before RESUME. */
export interface AttachOptions {
  /** §9.8: ask the peer to send at most this many bytes on this connection (BUDGET). */
  readonly budgetBytes?: number;
  /**
   * §9.8, a wall that counts both directions: send at most this many bytes ourselves on this
   * connection; when the next session message would not fit, send MOVE, hold the rest and emit
   * 'move' (the owner attaches a new connection).
   */
  readonly sendBudgetBytes?: number;
  /**
   * §9.8.1 (client; the bridge's 101 named `tally`): send TALLY with this connection's number, so
   * that the bridge reports what it counted on the previous one ('tally').
   */
  readonly tally?: boolean;
}

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
  /** See maxMessageBytes; no message arrives before the first attach(). */
  private connMaxMessageBytes = Number.POSITIVE_INFINITY;
  private _state: LinkState = 'detached';

  /** Session messages [acked, sent) not yet acknowledged, oldest first (from index `head`). */
  private queue: Buffer[] = [];
  private head = 0;
  private acked = 0;
  private sent = 0;
  /**
   * Session messages handed to the current connection (absolute number; acked ≤ onWire ≤ sent while
   * live): [acked, onWire) went out, [onWire, sent) are held (wire full, or the budget spent, §9.8).
   */
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
  /** Bytes of the session messages sent (each once, resends aside) and received, for the status line and page. */
  private sentBytesTotal = 0;
  private receivedBytesTotal = 0;
  private ackedToPeer = 0;
  private bytesSinceAck = 0;
  private ackTimer: NodeJS.Timeout | null = null;

  /** One timer per connection for keepalive, probes and freeze detection (§8, §9.7). */
  private watchTimer: NodeJS.Timeout | null = null;
  private watchAt = 0;
  private lastReceivedAt = 0;
  private pinged = false;
  /** Smoothed RTT and its variation (ms), from the link's own PINGs; null before the first sample. */
  private srtt: number | null = null;
  private rttvar = 0;
  private probeSeq = 0;
  /** When our probe PING went out (0: none unanswered) and its number. */
  private probeAt = 0;
  private probeSent = 0;
  /** Since when the peer owes us something (see owed()). */
  private owedSince = 0;
  /**
   * Probes after the peer's last session message: the k-th goes out probeDelay × 2^k after it,
   * while that is below KEEPALIVE_INTERVAL_MS, so that a freeze of the peer's next burst is seen
   * soon after a pause too, and an idle session stops probing after a few.
   */
  private lastSessionAt = 0;
  private probeRound = Number.POSITIVE_INFINITY;
  /** §9.8: the peer's BUDGET for this connection (Infinity: none), what we charged on it, MOVE sent. */
  private connBudget = Number.POSITIVE_INFINITY;
  private connCharged = 0;
  private moveSent = false;
  /** The budget in force is our own (sendBudgetBytes), not the peer's BUDGET. */
  private ownBudget = false;
  /** The last connection was cut: what we had charged on it and how far its session messages went. */
  private cut: { charged: number; onWire: number; from: number } | null = null;
  /** First session message (absolute number) put on the current connection. */
  private connFrom = 0;
  /** The BUDGET we sent on this connection (Infinity: none), what the peer sent on it (charged), 'budgetNear' emitted. */
  private askedBudget = Number.POSITIVE_INFINITY;
  private connReceivedCharge = 0;
  private nearSaid = false;
  private budgetReceived = false;
  /**
   * §9.8.1. Client: its number for the current connection (−1: none yet), whether it asked for a
   * TALLY on it and whether the answer came. Bridge: the client's number for the current
   * connection (null: no TALLY on it), and what it counted on the last numbered one that ended.
   */
  private connNumber = -1;
  private tallyAsked = false;
  private tallyAnswered = false;
  /**
   * Client: after a cut, no session message goes out until the bridge's TALLY has arrived (at most
   * a freeze timeout): on a wall that counts both ways our resend would otherwise reach the wall
   * first and cut the connection before the TALLY could cross.
   */
  private tallyWait: NodeJS.Timeout | null = null;
  private connLabel: number | null = null;
  private labelledLast: (ConnTally & { conn: number }) | null = null;
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
  private closeCb: ((info: TransportClose) => void) | null = null;
  private readonly drainCbs: Array<() => void> = [];
  private paused = false;
  private endInfo: TransportClose | null = null;
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

  /** The message bound of the connection attached last (messages only arrive from one). */
  get maxMessageBytes(): number {
    return this.connMaxMessageBytes;
  }

  /** Bytes held for the peer: every kept message (with its overhead) and what the connection still buffers. */
  get heldBytes(): number {
    // The connection's own hold (its send queue and, for some transports, what it reassembles for the peer).
    const b = this.conn?.heldBytes ?? this.conn?.bufferedBytes ?? 0;
    return this.keptCost + (Number.isFinite(b) ? b : 0);
  }

  /** What the kept messages cost: their bytes plus KEPT_MESSAGE_OVERHEAD_BYTES each. */
  private get keptCost(): number {
    return this.queuedBytes + (this.sent - this.acked) * KEPT_MESSAGE_OVERHEAD_BYTES;
  }

  get maxPayloadHint(): number {
    if (this.connBudget === Number.POSITIVE_INFINITY) return this.payloadHint;
    // Under a budget, DATA small enough that at least 8 messages fit in one connection.
    const fit = 2 ** Math.floor(Math.log2(Math.max(MIN_PAYLOAD_HINT_BYTES, this.connBudget / 8)));
    return Math.min(this.payloadHint, fit);
  }

  /** Bytes of session messages (frames, headers included) this side sent and received over the session's life. */
  get carried(): { sent: number; received: number } {
    return { sent: this.sentBytesTotal, received: this.receivedBytesTotal };
  }

  /** Smoothed RTT in ms measured by the link's PINGs (null before the first). */
  get rttMs(): number | null {
    return this.srtt;
  }

  /** True while session messages are held back because this connection's budget is spent (§9.8). */
  get moving(): boolean {
    return this.moveSent;
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
    if (this._state !== 'live' || this.conn === null || this.moveSent || this.tallyWait !== null || this.onWire < this.sent) return Number.POSITIVE_INFINITY;
    if (this.keptCost > this.limits.SESSION_RESUME_BUFFER_MAX_BYTES) {
      this.stalledByQueue = true;
      return Number.POSITIVE_INFINITY;
    }
    return this.conn.bufferedBytes;
  }

  send(message: Buffer): void {
    if (this._state === 'ended' || message.length === 0) return;
    if (isConnectionFrameType(message[0] as number)) {
      if (this._state === 'live' && this.conn !== null) this.sendOnConn(this.conn, message);
      return;
    }
    if (this.overflowed) return; // being cut off (below)
    this.queue.push(message);
    this.sent++;
    this.queuedBytes += message.length;
    this.sentBytesTotal += message.length;
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

  /**
   * Puts kept messages not yet on the connection [onWire, sent) onto it, while it buffers at most
   * wireMaxBytes and while they fit the peer's budget for it (§9.8): when the next one does not
   * fit (even cut by splitToFit), MOVE goes out and the rest is held for the next connection.
   */
  private pumpKept(conn: FrameTransport): void {
    if (this.moveSent || this.tallyWait !== null) return;
    while (this.onWire < this.sent && conn.bufferedBytes <= this.wireMaxBytes) {
      const at = this.head + (this.onWire - this.acked);
      let m = this.queue[at] as Buffer;
      const room = this.connBudget - this.limits.CONN_BUDGET_RESERVE_BYTES - this.connCharged - (conn.paddingBytesSent ?? 0);
      if (budgetCharge(m.length) > room && this.splitToFit(at, room)) m = this.queue[at] as Buffer;
      if (budgetCharge(m.length) > room) {
        this.moveSent = true;
        this.log.debug({ charged: this.connCharged, budget: this.connBudget, own: this.ownBudget }, 'connection budget spent: MOVE');
        this.sendOnConn(conn, encodeCountFrame(ResumeFrameType.MOVE, this.onWire));
        // Our own budget (a wall counting both ways): the owner moves the session. After this
        // turn: pumpKept runs inside the mux's send().
        if (this.ownBudget) queueMicrotask(() => this.conn === conn && this._state === 'live' && this.emit('move'));
        return;
      }
      if (this.onWire === this.acked && this.probeAt === 0) this.owedSince = performance.now();
      this.onWire++;
      this.connBytes += m.length;
      this.sendOnConn(conn, m);
      if (this.conn !== conn || this._state !== 'live') return;
    }
    this.armWatch();
  }

  /**
   * §9.8 with §9.3: a held DATA message (the peer has none of it) that does not fit the budget left
   * is cut in two so that its first part fills the connection; the rest waits for the next one.
   */
  private splitToFit(at: number, room: number): boolean {
    const m = this.queue[at] as Buffer;
    const payload = m.length - HEADER_BYTES;
    const fits = room - budgetCharge(HEADER_BYTES);
    if (m[0] !== FrameType.DATA || m.readUInt32BE(6) !== payload || fits < MIN_SPLIT_BYTES || fits >= payload) return false;
    const streamId = m.readUInt32BE(2);
    const first = allocFrame(FrameType.DATA, streamId, fits);
    m.copy(first, HEADER_BYTES, HEADER_BYTES, HEADER_BYTES + fits);
    const rest = allocFrame(FrameType.DATA, streamId, payload - fits);
    m.copy(rest, HEADER_BYTES, HEADER_BYTES + fits);
    this.queue.splice(at, 1, first, rest);
    this.sent++;
    this.queuedBytes += HEADER_BYTES;
    return true;
  }

  private sendOnConn(conn: FrameTransport, m: Buffer): void {
    this.connCharged += budgetCharge(m.length);
    if (this.ownBudget && this.connCharged >= STANDBY_AT_FRACTION * this.connBudget) this.sayNear();
    conn.send(m);
  }

  /**
   * Once per connection. Sending, after this turn (we may be inside the mux's send()); receiving, at
   * once: a transport may hand over a whole budget of messages in one turn (h2 decodes a 16 KiB
   * DATA chunk into many), and the owner must hear of the standby before the MOVE that follows.
   */
  private sayNear(now = false): void {
    if (this.nearSaid) return;
    this.nearSaid = true;
    if (now) {
      this.emit('budgetNear');
      return;
    }
    const conn = this.conn;
    queueMicrotask(() => conn === this.conn && this._state !== 'ended' && this.emit('budgetNear'));
  }

  onDrain(cb: () => void): void {
    this.drainCbs.push(cb);
  }

  onMessage(cb: (message: Buffer) => void): void {
    this.messageCb = cb;
  }

  onClose(cb: (info: TransportClose) => void): void {
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
    this.end({ code: CUT_CODE, reason: 'terminated', cut: true });
    conn?.terminate();
  }

  // ── connections ───────────────────────────────────────────────────────

  /**
   * Puts the link on `conn` (a fresh, open connection of the same session). A connection still
   * attached is dropped first. Sends RESUME at once; session messages flow after the peer's RESUME.
   */
  attach(conn: FrameTransport, opts: AttachOptions = {}): void {
    if (this._state === 'ended') {
      conn.close(SESSION_LOST_CLOSE.code, SESSION_LOST_CLOSE.reason);
      return;
    }
    const old = this.conn;
    this.conn = null;
    // Dropped, not closed: a close frame would end the session at the peer (§9.4).
    if (old !== null) {
      this.noteConnEnd(old);
      old.terminate();
      this.cut = null; // a move or a rotation, not a cut
    }
    this.stopConnTimers();
    this.stopExpiry();
    this.conn = conn;
    this.connMaxMessageBytes = conn.maxMessageBytes;
    this._state = 'handshake';
    this.pongDue = null;
    this.connBytes = 0;
    this.connProgress = 0;
    this.grownAt = 0;
    this.connSince = performance.now();
    this.connBudget = Number.POSITIVE_INFINITY;
    this.ownBudget = false;
    this.askedBudget = Number.POSITIVE_INFINITY;
    this.connReceivedCharge = 0;
    this.nearSaid = false;
    this.connCharged = 0;
    this.connNumber++;
    this.connLabel = null;
    this.tallyAsked = opts.tally === true && !this.issuesSecret;
    this.tallyAnswered = false;
    this.moveSent = false;
    this.budgetReceived = false;
    this.probeAt = 0;
    this.probeRound = Number.POSITIVE_INFINITY;
    this.owedSince = this.connSince; // the peer owes its RESUME
    conn.onMessage((m) => this.onConnMessage(conn, m));
    conn.onDrain(() => {
      if (conn !== this.conn || this._state !== 'live') return;
      if (this.pongDue !== null) {
        this.sendOnConn(conn, this.pongDue);
        this.pongDue = null;
      }
      this.pumpKept(conn);
      if (this.onWire === this.sent) this.fireDrain();
    });
    conn.onClose((info) => this.onConnClose(conn, info));
    if (this.paused) conn.pause();
    this.lastReceivedAt = performance.now();
    this.pinged = false;
    if (opts.budgetBytes !== undefined) {
      const b = Math.max(2 * this.limits.CONN_BUDGET_RESERVE_BYTES, Math.floor(opts.budgetBytes));
      this.askedBudget = b;
      this.sendOnConn(conn, encodeCountFrame(ResumeFrameType.BUDGET, b));
    }
    if (this.tallyAsked) {
      this.sendOnConn(conn, encodeTallyAsk(this.connNumber));
      if (this.connNumber > 0 && old === null && this.everLive) this.waitForTally(conn);
    }
    if (opts.sendBudgetBytes !== undefined) {
      this.ownBudget = true;
      this.connBudget = Math.max(2 * this.limits.CONN_BUDGET_RESERVE_BYTES, Math.floor(opts.sendBudgetBytes));
    }
    // The secret goes out on the session's first connection only (§9.3), never again.
    const secret = this.secretToSend ?? undefined;
    this.secretToSend = null;
    this.sendOnConn(conn, encodeCountFrame(ResumeFrameType.RESUME, this.received, secret));
    this.sendProbe(conn); // the first RTT sample of this connection
    this.armWatch();
  }

  /** Drops the current connection (as if it were cut); the link detaches and waits for attach(). */
  dropConnection(): void {
    this.conn?.terminate();
  }

  /** Client, after a cut: hold session messages until the TALLY arrives or a freeze timeout passes. */
  private waitForTally(conn: FrameTransport): void {
    this.tallyWait = setTimeout(() => this.endTallyWait(conn), this.freezeTimeoutMs());
    this.tallyWait.unref();
  }

  private endTallyWait(conn: FrameTransport): void {
    if (this.tallyWait === null) return;
    clearTimeout(this.tallyWait);
    this.tallyWait = null;
    if (conn !== this.conn || this._state !== 'live') return;
    this.pumpKept(conn);
    if (this._state === 'live' && this.conn === conn && conn.bufferedBytes === 0) setImmediate(() => this.fireDrain());
  }

  /** Bridge: a connection the client numbered ends (cut, or dropped for the next one): its TCP counts, for TALLY (§9.8.1). */
  private noteConnEnd(conn: FrameTransport): void {
    if (!this.issuesSecret || this.connLabel === null) return;
    this.labelledLast = { conn: this.connLabel, sentBytes: conn.wireBytesWritten ?? null, receivedBytes: conn.wireBytesRead ?? null };
  }

  private onConnClose(conn: FrameTransport, info: TransportClose): void {
    if (conn !== this.conn) return;
    this.noteConnEnd(conn);
    this.conn = null;
    this.stopConnTimers();
    if (this._state === 'ended') return;
    if (!isCut(info)) {
      // An orderly close (sent or received) ends the session: only a cut connection is resumed.
      this.end(info);
      return;
    }
    this._state = 'detached';
    if (this.everLive) this.cut = { charged: this.connCharged, onWire: this.onWire, from: this.connFrom };
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
    this.connReceivedCharge += budgetCharge(m.length);
    if (this.connReceivedCharge + (conn.paddingBytesReceived ?? 0) >= STANDBY_AT_FRACTION * this.askedBudget) this.sayNear(true);
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
    this.lastSessionAt = this.lastReceivedAt;
    this.probeRound = 0;
    this.armWatch();
    this.received++;
    this.receivedBytesTotal += m.length;
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
        else this.sendOnConn(conn, pong);
      } else if (m.readUInt32BE(HEADER_BYTES) === PROBE_MARK) {
        this.onProbePong(m.readUInt32BE(HEADER_BYTES + 4));
      } else if (this._state === 'live') {
        this.messageCb?.(m); // the mux matches PONGs to its ping() calls
      }
      return;
    }
    if (type === ResumeFrameType.TALLY) return this.onTally(conn, m);
    if (type === ResumeFrameType.RESUME && len === COUNT_BYTES + RESUME_SECRET_BYTES) {
      // §9.3: only the first RESUME of a session, on its first connection, carries the secret.
      if (this.issuesSecret || this.everLive || this.peerSecret !== null || this._state !== 'handshake') return this.protocolError(conn, 'resume secret after the first connection');
      this.peerSecret = Buffer.from(m.subarray(HEADER_BYTES + COUNT_BYTES));
    } else if (len !== COUNT_BYTES) return this.protocolError(conn, 'bad RESUME/ACK/BUDGET/MOVE size');
    const count = Number(m.readBigUInt64BE(HEADER_BYTES));
    if (type === ResumeFrameType.BUDGET) {
      // §9.8: once per connection, before the sender's RESUME (so before we send any session message).
      if (this._state !== 'handshake' || this.budgetReceived) return this.protocolError(conn, 'BUDGET after RESUME');
      this.budgetReceived = true;
      // Never less than twice the reserve: a peer cannot make us send nothing but MOVE.
      this.connBudget = Math.max(2 * this.limits.CONN_BUDGET_RESERVE_BYTES, count);
      return;
    }
    if (type === ResumeFrameType.MOVE) {
      // Everything the peer sent on this connection has arrived (MOVE follows it in order).
      if (this._state !== 'live' || count !== this.received) return;
      if (this.budgetReceived) {
        // The bridge (it got BUDGET): the client spent its own budget (§9.8, both directions
        // counted) and moves; stop sending session messages here too, so that nothing of ours is
        // in flight when it does.
        if (!this.moveSent) {
          this.moveSent = true;
          this.sendOnConn(conn, encodeCountFrame(ResumeFrameType.MOVE, this.onWire));
        }
        return;
      }
      this.emit('move');
      return;
    }
    if (type === ResumeFrameType.RESUME) {
      if (this._state !== 'handshake') return this.protocolError(conn, 'second RESUME');
      if (count < this.acked || count > this.onWire) {
        // The peer has lost (or never had) this session's state: it cannot be continued.
        this.log.warn({ peerReceived: count, acked: this.acked, sent: this.sent }, 'peer cannot resume this session');
        this.conn = null;
        this.stopConnTimers();
        this.end({ code: SESSION_LOST_CLOSE.code, reason: SESSION_LOST_CLOSE.reason });
        conn.close(SESSION_LOST_CLOSE.code, SESSION_LOST_CLOSE.reason);
        return;
      }
      this.release(count);
      const cutSent = this.cutSentBytes(count);
      this._state = 'live';
      this.everLive = true;
      this.splitKept();
      const resend = Math.max(0, this.onWire - this.acked);
      this.onWire = this.acked;
      this.connFrom = this.acked;
      // A cut loses the record it falls in: on a cutting path, records no larger than the messages.
      const hint = this.maxPayloadHint;
      if (hint !== Number.POSITIVE_INFINITY) conn.setRecordMaxBytes?.(hint + RECORD_SLACK_BYTES);
      this.pumpKept(conn);
      this.emit('resumed', resend, cutSent);
      if (this._state === 'live' && this.conn === conn && conn.bufferedBytes === 0) setImmediate(() => this.fireDrain());
      return;
    }
    // ACK
    if (this._state !== 'live') return this.protocolError(conn, 'ACK before RESUME');
    // Only what is on the wire can have been received.
    if (count < this.acked || count > this.onWire) return this.protocolError(conn, 'ACK out of range');
    this.release(count);
    if (this.acked === this.onWire && this.probeAt === 0) this.owedSince = 0;
    this.nextBudgetCheck = Math.min(this.nextBudgetCheck, this.keptCost + BUDGET_CHECK_STEP_BYTES);
    if (this.stalledByQueue && this.keptCost <= this.limits.SESSION_RESUME_BUFFER_MAX_BYTES) {
      this.stalledByQueue = false;
      this.fireDrain();
    }
  }

  /**
   * §9.8.1. At the bridge, the client's TALLY (before its RESUME, once per connection) numbers
   * this connection and is answered, for a number above 0, with what was counted on the previous
   * one. At the client, the answer to the TALLY it sent on this connection (once).
   */
  private onTally(conn: FrameTransport, m: Buffer): void {
    let t;
    try {
      t = decodeTally(m, this.issuesSecret ? 'client' : 'bridge');
    } catch (err) {
      if (err instanceof TallyError) return this.protocolError(conn, err.message);
      throw err;
    }
    if (t.kind === 'ask') {
      if (this._state !== 'handshake' || this.connLabel !== null) return this.protocolError(conn, 'TALLY after RESUME, or twice');
      this.connLabel = t.conn;
      if (t.conn === 0) return;
      const last = this.labelledLast?.conn === t.conn - 1 ? this.labelledLast : null;
      this.sendOnConn(conn, encodeTallyReport(t.conn - 1, last?.sentBytes ?? null, last?.receivedBytes ?? null));
      return;
    }
    if (!this.tallyAsked || this.tallyAnswered || t.conn !== this.connNumber - 1) return this.protocolError(conn, 'unasked TALLY');
    this.tallyAnswered = true;
    this.emit('tally', { sentBytes: t.sentBytes, receivedBytes: t.receivedBytes });
    this.endTallyWait(conn);
  }

  /**
   * §9.3: messages not yet received by the peer may be renumbered before they are resent. Kept
   * DATA larger than the payload hint is cut into several DATA frames of the same stream (same
   * bytes, same order), so that a path that cuts early still lets whole messages through.
   */
  private splitKept(): void {
    const hint = this.maxPayloadHint;
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
    this.onWire = this.acked;
    this.queue = out;
    this.head = 0;
    let bytes = 0;
    for (const m of out) bytes += m.length;
    this.queuedBytes = bytes;
  }

  /**
   * After a cut, at the new RESUME (`count`: session messages the peer has): what of ours got
   * through on the lost connection — all it was charged, less the session messages sent on it that
   * the peer never received (still kept, from the head of the queue).
   */
  private cutSentBytes(count: number): number | null {
    const c = this.cut;
    this.cut = null;
    if (c === null) return null;
    let lost = 0;
    for (let n = Math.max(count, c.from, this.acked); n < c.onWire; n++) lost += budgetCharge((this.queue[this.head + (n - this.acked)] as Buffer).length);
    return Math.max(0, c.charged - lost);
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
    this.sendOnConn(this.conn, encodeCountFrame(ResumeFrameType.ACK, this.received));
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

  /**
   * The peer owes us something on this connection: its RESUME, an ACK for session messages we
   * sent, or the PONG of our probe.
   */
  private owed(): boolean {
    return this._state === 'handshake' || this.onWire > this.acked || this.probeAt !== 0;
  }

  /** §9.7: how long an owing peer may stay silent before the connection is taken as frozen. */
  private freezeTimeoutMs(): number {
    const l = this.limits;
    const rtt = this.srtt === null ? l.FREEZE_NO_RTT_MS : Math.max(l.FREEZE_TIMEOUT_RTTS * this.srtt, this.srtt + 4 * this.rttvar);
    let t = Math.max(l.FREEZE_MIN_MS, rtt) + l.RESUME_ACK_DELAY_MS;
    // A request after a long silence may wait for a sleeping radio to wake.
    if (this.owedSince - this.lastReceivedAt >= l.FREEZE_IDLE_GAP_MS) t = Math.max(t, l.FREEZE_AFTER_IDLE_MS);
    return Math.min(t, l.KEEPALIVE_TIMEOUT_MS);
  }

  private probeDelayMs(): number {
    return Math.max(this.limits.FREEZE_PROBE_MIN_MS, 2 * (this.srtt ?? this.limits.FREEZE_PROBE_MIN_MS));
  }

  /** When the next probe is due (Infinity: none left since the peer's last session message). */
  private probeDueAt(): number {
    const wait = this.probeDelayMs() * 2 ** this.probeRound;
    if (wait >= this.limits.KEEPALIVE_INTERVAL_MS) return Number.POSITIVE_INFINITY;
    return Math.max(this.lastSessionAt + wait, this.lastReceivedAt + this.probeDelayMs());
  }

  /** When the watch must look next: freeze deadline, probe, keepalive ping or timeout. */
  private nextWatchAt(): number {
    const { KEEPALIVE_INTERVAL_MS: interval, KEEPALIVE_TIMEOUT_MS: timeout } = this.limits;
    let at = this.lastReceivedAt + (this.pinged ? timeout : interval);
    if (this.owed()) at = Math.min(at, Math.max(this.lastReceivedAt, this.owedSince) + this.freezeTimeoutMs());
    else at = Math.min(at, this.probeDueAt());
    return at;
  }

  /** (Re)arms the watch timer when it would fire later than needed (or is not armed). */
  private armWatch(): void {
    if (this.conn === null || this._state === 'ended' || this._state === 'detached') return;
    const at = this.nextWatchAt();
    if (this.watchTimer !== null) {
      if (this.watchAt <= at) return;
      clearTimeout(this.watchTimer);
    }
    this.watchAt = at;
    this.watchTimer = setTimeout(() => this.onWatch(), Math.max(1, Math.ceil(at - performance.now())));
    this.watchTimer.unref();
  }

  /**
   * §8 per connection and §9.7: drop a connection that owes and is silent past the freeze
   * timeout, or silent past the keepalive timeout; probe once after the peer's sending stopped;
   * PING after the keepalive interval.
   */
  private onWatch(): void {
    this.watchTimer = null;
    const conn = this.conn;
    if (conn === null || this._state === 'ended' || this._state === 'detached') return;
    const now = performance.now();
    const idle = now - this.lastReceivedAt;
    if (this.owed()) {
      const silent = now - Math.max(this.lastReceivedAt, this.owedSince);
      if (silent >= this.freezeTimeoutMs()) {
        this.log.info({ silentMs: Math.round(silent), rttMs: this.srtt === null ? null : Math.round(this.srtt) }, 'connection frozen: bytes owed, nothing received');
        this.emit('frozen', silent);
        conn.terminate();
        return;
      }
    }
    if (idle >= this.limits.KEEPALIVE_TIMEOUT_MS) {
      this.log.warn({ idleMs: Math.round(idle) }, 'connection silent: keepalive timeout');
      conn.terminate();
      return;
    }
    if (!this.owed() && now >= this.probeDueAt()) {
      this.probeRound++;
      this.sendProbe(conn);
    } else if (idle >= this.limits.KEEPALIVE_INTERVAL_MS && !this.pinged) {
      this.pinged = true;
      this.sendOnConn(conn, encodeFrame({ type: FrameType.PING, data: Buffer.alloc(PING_DATA_BYTES) }));
    }
    this.armWatch();
  }

  /** A PING of the link's own (§9.7): an RTT sample, and a question the peer owes an answer to. */
  private sendProbe(conn: FrameTransport): void {
    const data = Buffer.allocUnsafe(PING_DATA_BYTES);
    data.writeUInt32BE(PROBE_MARK, 0);
    data.writeUInt32BE(++this.probeSeq >>> 0, 4);
    if (!this.owed()) this.owedSince = performance.now();
    this.probeAt = performance.now();
    this.probeSent = this.probeSeq >>> 0;
    this.sendOnConn(conn, encodeFrame({ type: FrameType.PING, data }));
  }

  private onProbePong(seq: number): void {
    if (this.probeAt === 0 || seq !== this.probeSent) return;
    const sample = performance.now() - this.probeAt;
    this.probeAt = 0;
    if (this.srtt === null) {
      this.srtt = sample;
      this.rttvar = sample / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - sample);
      this.srtt = 0.875 * this.srtt + 0.125 * sample;
    }
    if (!this.owed()) this.owedSince = 0;
  }

  private stopConnTimers(): void {
    if (this.watchTimer !== null) clearTimeout(this.watchTimer);
    this.watchTimer = null;
    if (this.tallyWait !== null) clearTimeout(this.tallyWait);
    this.tallyWait = null;
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

  private end(info: TransportClose): void {
    if (this._state === 'ended') return;
    this._state = 'ended';
    this.stopConnTimers();
    this.stopExpiry();
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
    this.onWire = this.acked = this.sent = 0;
    this.endInfo = info;
    this.reportEnd();
  }

  private reportEnd(): void {
    if (this.endReported || this.endInfo === null || this.closeCb === null) return;
    this.endReported = true;
    this.closeCb(this.endInfo);
  }
}
