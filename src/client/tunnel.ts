import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { formatHostPort, type Target } from '../core/address.js';
import { PosternError, type ErrorCode } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import type { Logger } from '../log/logger.js';
import { ResumableLink, type ConnTally } from '../mux/resume.js';
import { MuxSession } from '../mux/session.js';
import type { MuxStream } from '../mux/stream.js';
import type { FrameTransport } from '../mux/transport.js';
import { FEATURE_EARLY_DATA, FEATURE_TALLY, SESSION_ID_BYTES } from '../transport/auth.js';
import type { Dialer } from '../transport/types.js';
import type { BridgeInfo } from '../transport/uri.js';
import type { BridgeStrategy, BudgetPolicy } from '../core/tunnel-policy.js';
import { WallLearner, dialSlotAt, wallKey, type CutBytes, type WallCounts, type WallStore } from './wall.js';

export type TunnelState = 'idle' | 'connecting' | 'up' | 'backoff';

/** How new streams choose among several bridges. */

/** How a new stream answers its app: at once, optimistically ('early'), or after the bridge's result ('exact'). */
export type OpenMode = 'early' | 'exact';

/** Health of one bridge as the client sees it. */
export type BridgeHealth = 'up' | 'connecting' | 'unreachable' | 'misconfigured';

/** What the status line and page show of one bridge (never its secret, path or pin). */
export interface BridgeStatus {
  /** The share link's label, else its host:port. */
  readonly name: string;
  readonly health: BridgeHealth;
  /** New streams may go to it now. */
  readonly usable: boolean;
  /** Smoothed RTT of its live connection (ms), null before the first sample or while down. */
  readonly rttMs: number | null;
  readonly streams: number;
  /** Bytes of session messages sent to and received from it since start (all its sessions). */
  readonly sentBytes: number;
  readonly receivedBytes: number;
  /** The code of its last failed dial (null once it is up again), and when (ms since the epoch). */
  readonly lastError: { readonly code: ErrorCode; readonly at: number } | null;
}

/** Every bridge's status, and the failed dials since the tunnel was last up. */
export interface TunnelStatus {
  readonly state: TunnelState;
  readonly bridges: readonly BridgeStatus[];
  readonly failedDialsInRow: number;
}

/** What a bridge reports to its Tunnel: a change of state, a failed dial, or a session up. */
type LinkEvent = 'changed' | 'dial-failed' | 'up';

export interface TunnelOptions {
  /** `failover` (default): the first healthy bridge in list order; `spread`: the least loaded healthy one. */
  readonly strategy?: BridgeStrategy;
  /**
   * Connection rotation (0 or absent: off): once the live connection has carried this many bytes
   * (both ways) or is this old, a fresh one is dialled and the session moves onto it
   * (make-before-break: the old one carries traffic until the new one is up).
   */
  readonly rotateBytes?: number;
  readonly rotateMs?: number;
  /**
   * Per-connection budget of bridge→client bytes (docs/protocol.md §9.8) for every bridge; absent:
   * each bridge's share-link `budget`, else learned ('auto').
   */
  readonly budget?: BudgetPolicy;
  /** Where learned budgets are remembered across restarts (null: not remembered). */
  readonly wallStore?: WallStore | null;
  /**
   * Opens the connections (transport/registry.ts bridgeDialer). An E_BAD_URI from it (a transport
   * this build lacks) marks that bridge misconfigured.
   */
  readonly dialer: Dialer;
}

/** How often the rotation budget is checked. */
const ROTATE_CHECK_MS = 250;

/**
 * Under a wall that counts both directions (§9.8) each side of a connection gets a share of the
 * budget: never less than this fraction of it (ACKs and window updates need a little room)…
 */
const BOTH_MIN_SHARE_FRACTION = 0.125;
/** …and the bridge's share follows the traffic: this weight on the last connection's mix. */
const SHARE_EWMA_WEIGHT = 0.5;

/** Errors that mean the bridge refused who we are, not that it is out of reach. */
const MISCONFIGURED: ReadonlySet<string> = new Set(['E_AUTH_REJECTED', 'E_PIN_MISMATCH', 'E_BAD_URI']);

/** A standby connection: its dial (held before the upgrade), the gate that lets it upgrade, its expiry. */
interface Standby {
  readonly session: ClientSession;
  readonly transport: Promise<FrameTransport>;
  readonly open: () => void;
  readonly abort: AbortController;
  readonly timer: NodeJS.Timeout;
}

interface ClientSession {
  readonly id: string;
  readonly link: ResumableLink;
  readonly mux: MuxSession;
  /** RESUME was exchanged at least once (the session carried traffic). */
  live: boolean;
}

/**
 * One bridge: keeps one resumable session (docs/protocol.md §9) to it, eagerly. A lost connection
 * is redialled at once and then with exponential backoff and jitter (RECONNECT_MIN_MS doubling,
 * capped at RECONNECT_MAX_MS) carrying the same session id, until the session resumes or its
 * SESSION_RESUME_TIMEOUT_MS passes; a session that ends (GOAWAY, closed by the bridge, not
 * resumable) is replaced by a new one.
 */
class BridgeLink {
  current: ClientSession | null = null;
  /** Every session not yet closed, the current one included (old ones drain after GOAWAY). */
  readonly sessions = new Set<ClientSession>();
  health: BridgeHealth = 'connecting';
  lastError: PosternError | null = null;
  private lastErrorAt = 0;
  /** Bytes carried by this bridge's sessions that have closed (the open ones are read live). */
  private readonly retired = { sent: 0, received: 0 };
  private dialing = false;
  private failures = 0;
  private lastAttemptAt = 0;
  private dialStartedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private rotateTimer: NodeJS.Timeout | null = null;
  private readonly log: Logger;
  /** When the latest dials started (at most DIAL_BURST_MAX kept): the handshake cap (the censor flags bursts). */
  private readonly dialStarts: number[] = [];
  /** The connection attached last, and whether the next attach is a move (§9.8) rather than a resume. */
  private conn: FrameTransport | null = null;
  private moving = false;
  /** Wire bytes of the attached connection's handshake (TLS, HTTP upgrade) each way. */
  private connHandshake = { down: 0, up: 0 };
  /** The attached connection is a probe past the learned budget (WallLearner.nextConnection), not yet judged. */
  private connProbe = false;
  /**
   * A probe moved from under a wall counting both ways: what it received, waiting for the bridge's
   * TALLY on the next connection to say how much of ours crossed (our bytes written may not have).
   */
  private movedProbe: { down: number } | null = null;
  /** A cut waiting for the next RESUME to say how much of ours got through (the wall may count it); `probe`: the cut one was a probe. */
  private pendingCut: { down: number; up: number; handshakeUp: number; probe: boolean; sentBytes?: number | null } | null = null;
  /** The attached connection's bridge answers TALLY (§9.8.1): a cut is learned from its count, not ours. */
  private tallyOn = false;
  /** Under a `both` wall: the bridge's share of a connection's budget, following the traffic mix. */
  private downShare = 0.5;
  /**
   * At most one standby (§9.8): dialled when the live connection has spent half its budget, TLS
   * done, its upgrade held until the move; closed unused after STANDBY_IDLE_MAX_MS.
   */
  private standby: Standby | null = null;
  /** A standby being prepared (waiting for its handshake slot): a move waits for it rather than dial beside it. */
  private standbyPending: Promise<void> | null = null;
  /** The connection attached last was a standby (for the log). */
  private viaStandby = false;
  /** Learns the wall in 'auto' mode (null otherwise). */
  private readonly learner: WallLearner | null;
  private readonly wallKey: string;
  /** Connections dialled (standbys included), standbys used, moves made, cuts seen (for tests, metrics and the bench). */
  readonly counts = { dials: 0, standbysUsed: 0, moves: 0, cuts: 0 };
  /** The bridge accepts early data (it said so in its last 101, §2.3): only then are opens optimistic. */
  earlyData = false;

  constructor(
    readonly index: number,
    private readonly info: BridgeInfo,
    private readonly limits: Limits,
    logger: Logger,
    private readonly changed: (event?: LinkEvent) => void,
    private readonly rotation: { bytes: number; ms: number } = { bytes: 0, ms: 0 },
    private readonly budget: BudgetPolicy = { mode: 'auto' },
    private readonly wallStore: WallStore | null,
    private readonly dialer: Dialer,
  ) {
    this.log = logger.child({ bridge: index });
    this.wallKey = wallKey(info);
    const stored = budget.mode === 'auto' ? (wallStore?.getWall(this.wallKey) ?? null) : null;
    this.learner = budget.mode === 'auto' ? new WallLearner(limits, stored?.budget ?? null, stored?.counts ?? 'down') : null;
    const b = this.budgetBytes();
    if (b !== null) this.log.info({ budget: b, learned: budget.mode === 'auto', counts: this.budgetCounts() }, 'moving to a new connection every budget of bytes from the bridge');
  }

  /** What the budget counts: bridge→client bytes, or both directions (learned, or set as `both:BYTES`). */
  budgetCounts(): WallCounts {
    if (this.budget.mode === 'fixed') return this.budget.counts ?? 'down';
    return this.learner?.counts ?? 'down';
  }

  /**
   * What a new connection may carry (§9.8), its handshake already spent: the bridge's BUDGET, and
   * under a wall counting both ways our own share too, split by the traffic mix seen so far.
   * `budget`: the whole budget, both shares together (a probe's is larger than the one in force).
   */
  private budgetsFor(budget: number | null = this.budgetBytes()): { budgetBytes?: number; sendBudgetBytes?: number } {
    const hs = this.connHandshake;
    if (budget === null) return {};
    if (this.budgetCounts() === 'down') return { budgetBytes: budget - hs.down };
    const left = Math.max(0, budget - hs.down - hs.up);
    const floor = BOTH_MIN_SHARE_FRACTION * left;
    const down = Math.floor(Math.min(left - floor, Math.max(floor, this.downShare * left)));
    return { budgetBytes: down, sendBudgetBytes: left - down };
  }

  /** The connection being left (moved from or cut): its traffic mix steers the next split. */
  private noteConnectionMix(conn: FrameTransport | null): void {
    if (conn === null) return;
    const down = (conn.wireBytesRead ?? 0) - this.connHandshake.down;
    const up = (conn.wireBytesWritten ?? 0) - this.connHandshake.up;
    if (down <= 0 || up < 0) return;
    this.downShare = (1 - SHARE_EWMA_WEIGHT) * this.downShare + SHARE_EWMA_WEIGHT * (down / (down + up));
  }

  /** This bridge as the status line and page show it. */
  status(): BridgeStatus {
    let streams = 0;
    let { sent, received } = this.retired;
    for (const s of this.sessions) {
      streams += s.mux.streamCount;
      const c = s.link.carried;
      sent += c.sent;
      received += c.received;
    }
    const usable = this.usable() !== null;
    return {
      name: this.info.label ?? formatHostPort({ host: this.info.host, port: this.info.port }),
      health: this.health,
      usable,
      rttMs: usable ? (this.current?.link.rttMs ?? null) : null,
      streams,
      sentBytes: sent,
      receivedBytes: received,
      lastError: this.lastError === null ? null : { code: this.lastError.code, at: this.lastErrorAt },
    };
  }

  /** Bridge→client bytes one connection may carry (§9.8), or null: no budget. */
  budgetBytes(): number | null {
    if (this.budget.mode === 'fixed') return this.budget.bytes;
    return this.learner?.budget ?? null;
  }

  /**
   * A lost connection may teach the wall (auto mode): what it received is known now, what of ours
   * got through only at the next RESUME (learnFromResume).
   */
  private noteCut(): void {
    this.counts.cuts++;
    // The connection before this one resumed but its TALLY never came (this one was cut first):
    // learn from our own counts of it, as without TALLY.
    const waiting = this.pendingCut;
    if (waiting !== null && waiting.sentBytes !== undefined) {
      this.pendingCut = null;
      this.learn(waiting.down, waiting.sentBytes === null ? 0 : waiting.handshakeUp + waiting.sentBytes, null, waiting.probe);
    }
    // A moved probe whose TALLY never came (this connection was cut first): judged on what it received.
    if (this.movedProbe !== null) this.probeEnded(this.movedProbe, false);
    const bytes = this.conn?.wireBytesRead;
    const up = this.conn?.wireBytesWritten ?? 0;
    this.pendingCut = this.learner === null || bytes === undefined ? null : { down: bytes, up, handshakeUp: this.connHandshake.up, probe: this.connProbe };
    this.connProbe = false;
  }

  /** The session resumed after a cut: the cut's bytes both ways go to the learner; remembered when it learns. */
  private learnFromResume(cutSentBytes: number | null): void {
    const cut = this.pendingCut;
    if (cut !== null && this.tallyOn) {
      // The bridge's TALLY follows its RESUME: learn from its count (learnFromTally).
      cut.sentBytes = cutSentBytes;
      return;
    }
    this.pendingCut = null;
    if (cut === null || this.learner === null) return;
    const up = cutSentBytes === null ? 0 : cut.handshakeUp + cutSentBytes;
    this.log.debug({ receivedBytes: cut.down, sentBytes: up, probe: cut.probe }, 'connection cut');
    this.learn(cut.down, up, null, cut.probe);
  }

  /**
   * The bridge's TALLY about the connection before this one (§9.8.1). When that one was cut, each
   * receiver's count is what is known to have crossed (a reset may still have cost it the last
   * bytes), each sender's count the most that can have.
   */
  private learnFromTally(peer: ConnTally): void {
    // After a move the bridge's count is of the probe moved from (if it was one): what of ours crossed.
    if (this.movedProbe !== null) this.probeEnded({ down: this.movedProbe.down, up: peer.receivedBytes ?? 0 }, false);
    const cut = this.pendingCut;
    this.pendingCut = null;
    if (cut === null || this.learner === null || cut.sentBytes === undefined) return;
    const ownUp = cut.sentBytes === null ? 0 : cut.handshakeUp + cut.sentBytes;
    const up = Math.max(ownUp, peer.receivedBytes ?? 0);
    const max = { down: Math.max(cut.down, peer.sentBytes ?? cut.down), up: Math.max(up, cut.up) };
    this.log.debug({ receivedBytes: cut.down, sentBytes: up, maxReceivedBytes: max.down, maxSentBytes: max.up, probe: cut.probe }, 'connection cut');
    this.learn(cut.down, up, max, cut.probe);
  }

  /** A lost connection's bytes go to the learner (a probe's first to the probe's verdict, then as any cut). */
  private learn(down: number, up: number, max: { down: number; up: number } | null = null, probe = false): void {
    if (this.learner === null) return;
    if (probe) this.probeEnded({ down, up, ...(max !== null ? { downMax: max.down, upMax: max.up } : {}) }, true);
    const next = this.learner.observeCut(down, up, max);
    if (next === null) return;
    const counts = this.learner.counts;
    this.log.info(
      { cutAtBytes: counts === 'both' ? down + up : down, budget: next, counts },
      'connections to this bridge die after about the same byte count: moving before it from now on',
    );
    this.wallStore?.set(this.wallKey, next, counts);
  }

  /**
   * A probe connection (WallLearner.nextConnection) was moved or cut having carried `carried`:
   * past the wall the budget was learned from, the budget is forgotten here and on disk.
   */
  private probeEnded(carried: CutBytes, cut: boolean): void {
    this.movedProbe = null;
    const learner = this.learner;
    if (learner === null) return;
    const budget = learner.budget;
    const counts = learner.counts;
    const outcome = learner.observeProbe(carried, cut);
    const carriedBytes = counts === 'both' ? carried.down + (carried.up ?? 0) : carried.down;
    if (outcome === 'forgotten') {
      this.log.info({ budget, carriedBytes, counts }, 'connections to this bridge carry more than the learned wall: no longer moving early');
      this.wallStore?.delete(this.wallKey);
    } else {
      this.log.debug({ budget, carriedBytes, cut, outcome, probeEvery: learner.probeEvery }, 'probe past the learned budget ended');
    }
  }

  /** The current session takes new streams: live on a connection, no GOAWAY, not closed. */
  usable(): MuxSession | null {
    const c = this.current;
    if (c === null || c.mux.closed || c.mux.goingAway || c.link.state !== 'live') return null;
    return c.mux;
  }

  get busy(): boolean {
    return this.dialing;
  }

  get load(): number {
    return this.current?.mux.streamCount ?? 0;
  }

  start(): void {
    this.schedule(0);
    if (this.rotation.bytes > 0 || this.rotation.ms > 0) {
      this.rotateTimer = setInterval(() => this.checkRotation(), ROTATE_CHECK_MS);
      this.rotateTimer.unref();
    }
  }

  /** Moves a live session whose connection used up its budget onto a fresh connection. */
  private checkRotation(): void {
    const c = this.current;
    if (this.closed || this.dialing || c === null || c.link.state !== 'live') return;
    const use = c.link.connectionUse;
    const { bytes, ms } = this.rotation;
    if ((bytes > 0 && use.bytes >= bytes) || (ms > 0 && use.ageMs >= ms)) void this.attempt('rotate');
  }

  /** A stream is waiting: try now unless a dial is running or one started very recently. */
  kick(): void {
    if (this.closed || this.dialing || this.usable() !== null) return;
    if (performance.now() - this.lastAttemptAt < this.limits.RECONNECT_MIN_MS) return;
    this.schedule(0);
  }

  close(): void {
    this.closed = true;
    this.dropStandby();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.rotateTimer !== null) clearInterval(this.rotateTimer);
    this.rotateTimer = null;
    for (const s of this.sessions) s.mux.close(1001, 'client shutdown');
  }

  /** Ends the UDP associations of every session (they never finish by themselves). */
  endAssociations(): void {
    for (const s of this.sessions) s.mux.endAssociations();
  }

  /** Streams open, plus session messages not yet acknowledged (data still in flight). */
  get pending(): number {
    let n = 0;
    for (const s of this.sessions) n += s.mux.streamCount + (s.link.state === 'ended' ? 0 : s.link.unacknowledged.messages);
    return n;
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.attempt();
    }, delayMs);
    this.timer.unref();
  }

  private backoffMs(): number {
    const cap = Math.min(this.limits.RECONNECT_MAX_MS, this.limits.RECONNECT_MIN_MS * 2 ** Math.min(30, this.failures - 1));
    return cap / 2 + Math.random() * (cap / 2);
  }

  /**
   * Dials once: resumes the current session if it is detached (or, with `rotate`, moves it from
   * its live connection to the new one), else starts a new session.
   */
  private async attempt(move: 'rotate' | 'budget' | null = null): Promise<void> {
    const rotate = move !== null;
    if (this.closed || this.dialing) return;
    const cur = this.current;
    if (cur !== null && (cur.mux.closed || cur.mux.goingAway)) this.current = null;
    const state = this.current?.link.state;
    if (state !== undefined && state !== 'detached' && !(rotate && state === 'live')) return; // live or handshaking
    // A session whose first connection was lost before the bridge's RESUME arrived has no resume
    // secret (§9.3) and cannot be resumed: start afresh (nothing was exchanged on it).
    if (this.current !== null && this.current.link.resumeSecret === null && !this.current.link.wasLive) {
      const stale = this.current;
      this.current = null;
      stale.link.close(1000, 'not resumable');
    }
    const session = this.current ?? this.newSession();
    // Resuming (or rotating): prove the session's resume secret; a new session's first dial has none.
    const resumeSecret = session.link.wasLive ? (session.link.resumeSecret ?? undefined) : undefined;
    this.dialing = true;
    this.lastAttemptAt = performance.now();
    let started = Date.now();
    try {
      if (this.standbyPending !== null) await this.standbyPending;
      if (this.closed) return;
      const standby = this.takeStandby(session);
      let transport: FrameTransport | null = null;
      if (standby !== null) {
        started = Date.now();
        standby.open();
        transport = await standby.transport.catch(() => null); // failed: dial afresh below
        if (transport !== null) this.counts.standbysUsed++;
      }
      this.viaStandby = transport !== null;
      if (transport === null) {
        const wait = this.dialSlotAt() - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (this.closed) return;
        this.noteDialStart();
        started = Date.now();
        this.counts.dials++;
        transport = await this.dialer.dial(this.info, {
          limits: this.limits,
          logger: this.log,
          sessionId: session.id,
          ...(resumeSecret !== undefined ? { resumeSecret } : {}),
        });
      }
      if (this.closed || session.link.state === 'ended') {
        transport.terminate();
        if (!this.closed) this.schedule(0);
        return;
      }
      this.dialStartedAt = started;
      this.earlyData = transport.peerFeatures?.has(FEATURE_EARLY_DATA) === true;
      this.moving = rotate;
      if (move === 'rotate') this.log.info('rotating the tunnel connection');
      else if (move === 'budget') {
        this.counts.moves++;
        this.log.debug('moving the session to a new connection');
      }
      if (rotate) this.noteConnectionMix(this.conn); // a cut connection's bytes written say nothing of the mix
      // A probe moved (not cut: a cut was judged as one in noteCut): what it carried says whether the
      // wall is still there. Under a wall counting both ways only the bridge knows how much of ours
      // crossed: its TALLY on the new connection says (learnFromTally); without TALLY only what we
      // received counts (a probe can then pass only on that).
      const left = this.conn;
      if (rotate && this.connProbe && left !== null && session.link.state === 'live') {
        const down = left.wireBytesRead ?? 0;
        if (this.budgetCounts() === 'down' || transport.peerFeatures?.has(FEATURE_TALLY) !== true) this.probeEnded({ down }, false);
        else this.movedProbe = { down };
      }
      this.connProbe = false;
      this.connHandshake = { down: transport.wireBytesRead ?? 0, up: transport.wireBytesWritten ?? 0 };
      // Only a client that learns its budget needs the bridge's count (and waits for it after a cut).
      this.tallyOn = this.learner !== null && transport.peerFeatures?.has(FEATURE_TALLY) === true;
      // Under a learned budget, now and then a probe gets more (§9.8: a wall the budget was learned from may be gone).
      const next = this.learner?.nextConnection() ?? null;
      this.connProbe = next?.probe === true;
      if (this.connProbe) this.log.debug({ budget: next?.budget }, 'probing past the learned budget');
      session.link.attach(transport, { ...this.budgetsFor(next?.budget), tally: this.tallyOn });
      this.conn = transport;
    } catch (err) {
      const e = err instanceof PosternError ? err : new PosternError('E_DIAL', (err as Error).message, { cause: err });
      if (rotate && session.link.state === 'live') {
        // Make-before-break: the old connection still works; try again at the next check.
        this.log.warn({ code: e.code }, `connection rotation failed; keeping the current connection: ${e.message}`);
        return;
      }
      this.failures++;
      this.lastError = e;
      this.lastErrorAt = Date.now();
      this.health = MISCONFIGURED.has(e.code) ? 'misconfigured' : 'unreachable';
      if (this.health === 'misconfigured') {
        this.log.error({ code: e.code, health: this.health }, `cannot connect to bridge: ${e.message} (check the share URI)`);
      } else {
        this.log.error({ code: e.code, health: this.health }, `cannot connect to bridge: ${e.message}`);
      }
      this.schedule(this.backoffMs());
      this.changed('dial-failed');
    } finally {
      this.dialing = false;
    }
  }

  /**
   * Dials a standby for `session` (§9.8) unless one exists or is being dialled: it counts against
   * the handshake cap like any dial, and is held after TLS until the move opens it.
   */
  private prepareStandby(session: ClientSession): void {
    if (this.closed || this.standby !== null || this.standbyPending !== null || this.dialing) return;
    const resumeSecret = session.link.resumeSecret;
    if (!session.link.wasLive || resumeSecret === null) return;
    const pending = this.dialStandby(session, resumeSecret).finally(() => {
      if (this.standbyPending === pending) this.standbyPending = null;
    });
    this.standbyPending = pending;
  }

  private async dialStandby(session: ClientSession, resumeSecret: Buffer): Promise<void> {
    const wait = this.dialSlotAt() - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    // The session may have ended meanwhile (a move waits for this; a cut resume may use it).
    if (this.closed || this.current !== session || session.link.state === 'ended') return;
    this.noteDialStart();
    this.counts.dials++;
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const abort = new AbortController();
    const transport = this.dialer.dial(this.info, { limits: this.limits, logger: this.log, sessionId: session.id, resumeSecret, gate, signal: abort.signal });
    transport.catch(() => {
      if (this.standby?.transport === transport) this.dropStandby();
    });
    const timer = setTimeout(() => {
      if (this.standby?.transport === transport) this.dropStandby();
    }, this.limits.STANDBY_IDLE_MAX_MS);
    timer.unref();
    this.standby = { session, transport, open, abort, timer };
    this.log.debug('standby connection dialled');
  }

  /** The standby for `session`, taken (null: none; one for another session is dropped). */
  private takeStandby(session: ClientSession): Standby | null {
    const s = this.standby;
    if (s === null) return null;
    clearTimeout(s.timer);
    this.standby = null;
    if (s.session === session) return s;
    s.abort.abort();
    return null;
  }

  private dropStandby(): void {
    const s = this.standby;
    if (s === null) return;
    this.standby = null;
    clearTimeout(s.timer);
    s.abort.abort();
  }

  /**
   * When the next dial may start under the handshake cap: DIAL_MIN_INTERVAL_MS after the last one,
   * and no more than DIAL_BURST_MAX within any DIAL_BURST_WINDOW_MS.
   */
  private dialSlotAt(): number {
    return dialSlotAt(this.dialStarts, this.limits);
  }

  private noteDialStart(): void {
    this.dialStarts.push(performance.now());
    if (this.dialStarts.length > Math.max(1, this.limits.DIAL_BURST_MAX)) this.dialStarts.shift();
  }

  private newSession(): ClientSession {
    const id = randomBytes(SESSION_ID_BYTES).toString('base64url');
    const log = this.log;
    const link = new ResumableLink({ limits: this.limits, logger: log });
    const mux = new MuxSession(link, { role: 'client', limits: this.limits, logger: log, keepalive: false });
    const session: ClientSession = { id, link, mux, live: false };
    this.current = session;
    this.sessions.add(session);
    link.on('resumed', (resent, cutSentBytes) => {
      if (this.current !== session) return;
      this.learnFromResume(cutSentBytes);
      this.failures = 0;
      this.lastError = null;
      this.health = 'up';
      const fields = { ms: Date.now() - this.dialStartedAt, resumed: session.live, resent, standby: this.viaStandby };
      if (this.moving) this.log.debug(fields, 'tunnel moved to a new connection');
      else this.log.info(fields, 'tunnel to bridge up');
      session.live = true;
      this.changed('up');
    });
    link.on('tally', (peer) => {
      if (this.current === session) this.learnFromTally(peer);
    });
    link.on('budgetNear', () => {
      if (this.current === session && !this.closed) this.prepareStandby(session);
    });
    link.on('move', () => {
      if (this.current === session && !this.closed) void this.attempt('budget');
    });
    link.on('detached', () => {
      if (this.current !== session || this.closed) return;
      this.noteCut();
      this.health = 'connecting';
      this.log.warn('tunnel to bridge lost; resuming');
      this.changed();
      this.schedule(0);
    });
    mux.on('goaway', () => {
      if (this.current !== session || this.closed) return;
      this.log.info('bridge is going away; new streams go to a new session');
      this.current = null;
      this.changed();
      this.schedule(0);
    });
    mux.on('close', (info) => {
      if (this.sessions.delete(session)) {
        const c = link.carried;
        this.retired.sent += c.sent;
        this.retired.received += c.received;
      }
      if (this.current !== session) return;
      this.current = null;
      if (this.closed) return;
      this.log.warn({ code: info.code, reason: info.reason }, 'tunnel session ended; any stream still open on it was reset');
      if (!session.live) this.failures++;
      this.health = 'connecting';
      this.changed();
      this.schedule(session.live ? 0 : this.backoffMs());
    });
    return session;
  }
}

/**
 * Streams to one or more bridges. Each bridge keeps a resumable session (see BridgeLink); open()
 * picks a bridge by strategy. A request arriving while no bridge is up waits (at most
 * TUNNEL_WAIT_MS) while a dial or a resume is under way, and fails with the last dial error as
 * soon as every bridge has failed its attempt.
 */
export class Tunnel {
  private readonly links: BridgeLink[];
  private readonly strategy: BridgeStrategy;
  private waiters = new Set<() => void>();
  /** Called on every change of a bridge's state (the status model listens). */
  private readonly watchers = new Set<() => void>();
  /** Dials failed since no bridge was up (reset when one comes up). */
  private failedInRow = 0;
  private closed = false;
  private started = false;

  constructor(bridges: BridgeInfo | readonly BridgeInfo[], limits: Limits, logger: Logger, opts: TunnelOptions) {
    const list = Array.isArray(bridges) ? (bridges as readonly BridgeInfo[]) : [bridges as BridgeInfo];
    if (list.length === 0) throw new PosternError('E_CONFIG', 'no bridge given');
    this.limits = limits;
    this.strategy = opts.strategy ?? 'failover';
    const rotation = { bytes: opts.rotateBytes ?? 0, ms: opts.rotateMs ?? 0 };
    this.links = list.map((b, i) => {
      const budget: BudgetPolicy = opts.budget ?? (b.budget !== undefined ? { mode: 'fixed', bytes: b.budget, ...(b.budgetBoth === true ? { counts: 'both' as const } : {}) } : { mode: 'auto' });
      const changed = (event: LinkEvent = 'changed'): void => {
        if (event === 'up') this.failedInRow = 0;
        else if (event === 'dial-failed' && this.pick() === null) this.failedInRow++;
        this.notify();
      };
      return new BridgeLink(i, b, limits, logger, changed, rotation, budget, opts.wallStore ?? null, opts.dialer);
    });
  }

  private readonly limits: Limits;

  get state(): TunnelState {
    if (this.links.some((l) => l.usable() !== null)) return 'up';
    if (this.links.some((l) => l.busy)) return 'connecting';
    return this.links.some((l) => l.lastError !== null) ? 'backoff' : 'idle';
  }

  /** Per bridge: connections dialled, moves (§9.8) and cuts seen, and the budget in force. */
  get wallStats(): Array<{ dials: number; moves: number; cuts: number; budget: number | null }> {
    return this.links.map((l) => ({ ...l.counts, budget: l.budgetBytes() }));
  }

  /** Every bridge's status (list order) and the failed dials since the tunnel was last up. */
  get status(): TunnelStatus {
    return { state: this.state, bridges: this.links.map((l) => l.status()), failedDialsInRow: this.failedInRow };
  }

  /** Calls `fn` on every change of a bridge's state; returns the function that stops it. */
  watch(fn: () => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  /** Health of each bridge, in list order. */
  get health(): BridgeHealth[] {
    return this.links.map((l) => l.health);
  }

  /** Starts every bridge's session; resolves when one is up, rejects when all failed their first dial. */
  async connect(): Promise<void> {
    this.ensureStarted();
    const deadline = performance.now() + this.limits.DIAL_TIMEOUT_MS + 1_000;
    for (;;) {
      if (this.pick() !== null) return;
      if (this.closed) throw new PosternError('E_TUNNEL_DOWN', 'client is shutting down');
      const failed = this.allFailed();
      if (failed) throw failed;
      if (performance.now() >= deadline) throw new PosternError('E_TUNNEL_DOWN');
      await this.changedOrTimeout(deadline);
    }
  }

  /**
   * Opens a stream to `target`. 'exact' resolves after the bridge's OPEN_RESULT and rejects with
   * its code. 'early' (the optimistic open, docs/protocol.md §5.1), when a session is up now,
   * resolves at once with a stream the app may write to; a later refusal destroys the stream with
   * its error. With no session up (or none that can open), 'early' waits and opens as 'exact'
   * does, so that a tunnel that is down still gets its exact answer.
   */
  async open(target: Target, signal: AbortSignal, mode: OpenMode = 'exact'): Promise<Duplex> {
    if (mode === 'early' && !this.closed && !signal.aborted) {
      this.ensureStarted();
      // Only a bridge that announced early data gets it (§2.3): an older one would reset the stream.
      const link = this.pickLink();
      const mux = link !== null && link.earlyData ? link.usable() : null;
      if (mux !== null) {
        try {
          return mux.openEarly(target);
        } catch {
          // Closing, going away or ids exhausted: the exact path below waits for another session or says why.
        }
      }
    }
    return (await this.openOn((mux) => mux.open(target, { signal }), signal)).stream;
  }

  /**
   * Opens a UDP association (docs/protocol.md §10) on a session, waiting for a bridge as open()
   * does. The session is returned with the stream: datagrams go through it.
   */
  openAssociation(signal: AbortSignal): Promise<{ session: MuxSession; stream: MuxStream }> {
    return this.openOn((mux) => mux.openAssociation({ signal }), signal);
  }

  private async openOn(
    opener: (mux: MuxSession) => Promise<MuxStream>,
    signal: AbortSignal,
  ): Promise<{ session: MuxSession; stream: MuxStream }> {
    this.ensureStarted();
    const deadline = performance.now() + this.limits.TUNNEL_WAIT_MS;
    let kicked = false;
    for (;;) {
      if (this.closed) throw new PosternError('E_TUNNEL_DOWN', 'client is shutting down');
      if (signal.aborted) throw new PosternError('E_CANCELLED');
      const mux = this.pick();
      if (mux !== null) {
        try {
          return { session: mux, stream: await opener(mux) };
        } catch (err) {
          // The session went away between the pick and OPEN_RESULT: try another one.
          const code = (err as PosternError).code;
          if ((code === 'E_GOING_AWAY' || code === 'E_SESSION_CLOSED') && performance.now() < deadline) continue;
          throw err;
        }
      }
      if (!kicked) {
        kicked = true;
        for (const l of this.links) l.kick();
      } else {
        const failed = this.allFailed();
        if (failed) throw failed;
      }
      if (performance.now() >= deadline) throw this.lastError() ?? new PosternError('E_TUNNEL_DOWN', 'no bridge came up in time');
      await this.changedOrTimeout(deadline, signal);
    }
  }

  /** Closes every session; open streams are reset. */
  close(): void {
    this.closed = true;
    for (const l of this.links) l.close();
    this.notify();
  }

  /** Stops new streams, waits up to drainMs for open ones, then closes. */
  async drain(drainMs: number): Promise<void> {
    this.closed = true;
    this.notify();
    for (const l of this.links) l.endAssociations();
    const deadline = Date.now() + drainMs;
    while (this.links.some((l) => l.pending > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    this.close();
  }

  private ensureStarted(): void {
    if (this.started || this.closed) return;
    this.started = true;
    for (const l of this.links) l.start();
  }

  private pick(): MuxSession | null {
    return this.pickLink()?.usable() ?? null;
  }

  /** The bridge new streams go to: the first usable one (failover) or the least loaded (spread). */
  private pickLink(): BridgeLink | null {
    let best: BridgeLink | null = null;
    for (const l of this.links) {
      if (l.usable() === null) continue;
      if (this.strategy === 'failover') return l;
      if (best === null || l.load < best.load) best = l;
    }
    return best;
  }

  /** Every bridge has failed its latest attempt and none is dialing or resuming: the last error. */
  private allFailed(): PosternError | null {
    let err: PosternError | null = null;
    for (const l of this.links) {
      if (l.busy || l.lastError === null || l.usable() !== null) return null;
      err = l.lastError;
    }
    return err;
  }

  private lastError(): PosternError | null {
    for (const l of this.links) if (l.lastError !== null) return l.lastError;
    return null;
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = new Set();
    for (const f of w) f();
    for (const f of this.watchers) f();
  }

  private changedOrTimeout(deadline: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, Math.max(1, Math.min(250, deadline - performance.now())));
      this.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}
