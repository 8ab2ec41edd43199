/**
 * The bridge's per-user bookkeeping and stream limits, kept out of the wiring in bridge.ts:
 * sessions per user (cap, revocation on reload, idle close), per-stream idle reset, per-user
 * bandwidth buckets, and the metrics that go with them.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { observeReads } from '../core/borrowed-read.js';
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import { relay } from '../core/relay.js';
import type { Logger } from '../log/logger.js';
import type { MuxSession } from '../mux/session.js';
import type { MuxStream } from '../mux/stream.js';
import { CloseCode } from '../mux/transport.js';
import { TokenVerifier, type TokenUser, type TokenVerifierOptions, type VerifyResult } from '../transport/auth.js';
import { Descriptors } from './descriptors.js';
import { ThrottledSocket, TokenBucket } from './limiter.js';
import { bridgeMetrics, type BridgeMetrics } from './metrics.js';

export interface GovernedUser {
  readonly name: string;
  readonly secret: Buffer;
  readonly maxBytesPerSecond?: number;
}

/** A TokenVerifier that reports each refusal's reason (metrics). */
export class CountingVerifier extends TokenVerifier {
  constructor(
    users: TokenUser[],
    opts: TokenVerifierOptions,
    private readonly onFailure: (reason: string) => void,
  ) {
    super(users, opts);
  }
  override verify(token: string | undefined, path: string, bound?: string): VerifyResult {
    const r = super.verify(token, path, bound);
    if (!r.ok) this.onFailure(r.reason);
    return r;
  }
}

/** Close code and reason for the sessions of a user removed (or re-keyed) by a reload. */
export const REVOKED_CLOSE = { code: CloseCode.POLICY, reason: 'credential revoked' } as const;
/** Close code and reason when a user already holds BRIDGE_MAX_SESSIONS_PER_USER sessions. */
export const USER_LIMIT_CLOSE = { code: CloseCode.POLICY, reason: 'too many sessions for this user' } as const;

/** The budget a refused stream ran into (metrics label, log field). */
export type BudgetName = 'user_buffered' | 'user_streams' | 'user_descriptors' | 'bridge_buffered' | 'bridge_streams' | 'bridge_descriptors';

/** A stream refused by a budget: OPEN_RESULT 0x09 (E_STREAM_LIMIT), SOCKS 0x01, HTTP 503. */
export class BudgetRefusal extends PosternError {
  constructor(readonly budget: BudgetName) {
    super('E_STREAM_LIMIT', `${budget.replace('_', ' ')} budget spent`);
  }
}

/** An admitted stream's share of its user's and the bridge's budgets; release() once it is gone. */
export interface StreamLease {
  /** The receive window to announce (bytes it may make us hold). */
  readonly window: number;
  /** Idempotent. */
  release(): void;
}

interface Usage {
  /** Streams open or connecting. */
  streams: number;
  /** Their receive windows. */
  windowBytes: number;
}

/** Refusals are logged once per minute per budget (and user), with how many since the last line. */
const BUDGET_LOG_INTERVAL_MS = 60_000;
/** The sum of every session's held bytes is recomputed at most this often (it walks all sessions). */
const SESSIONS_HELD_CACHE_MS = 100;

export class Governor {
  readonly metrics: BridgeMetrics = bridgeMetrics();
  private readonly userSessions = new Map<string, Set<MuxSession>>();
  private readonly buckets = new Map<string, { rate: number; up: TokenBucket; down: TokenBucket }>();
  private readonly meters = new Map<string, { up: (c: Buffer) => void; down: (c: Buffer) => void }>();
  private users: readonly GovernedUser[];
  /** `users` by name: bucketsFor() runs per stream and per datagram. */
  private usersByName: ReadonlyMap<string, GovernedUser>;
  private openStreams = 0;
  /** Budget use per user (docs/protocol.md §7.1), and for the whole bridge. */
  private readonly usage = new Map<string, Usage>();
  private readonly total: Usage = { streams: 0, windowBytes: 0 };
  private sessionsHeld = { at: Number.NEGATIVE_INFINITY, bytes: 0 };
  private readonly budgetLog = new Map<string, { at: number; refused: number }>();
  readonly descriptors: Descriptors;

  constructor(
    users: readonly GovernedUser[],
    private readonly limits: Limits,
    private readonly sessionCount: () => number,
    private readonly log: Logger | null = null,
    descriptors?: Descriptors,
  ) {
    this.users = users;
    this.usersByName = new Map(users.map((u) => [u.name, u]));
    this.descriptors = descriptors ?? new Descriptors(() => this.total.streams + this.sessionCount());
    this.metrics.registry.onCollect(() => this.collect());
  }

  private collect(): void {
    const m = this.metrics;
    m.sessions.set(this.sessionCount());
    m.streams.set(this.openStreams);
    m.bufferedBytes.set(this.total.windowBytes + this.allSessionsHeld(0));
    m.descriptors.set(this.descriptors.inUse() ?? 0);
    m.descriptorLimit.set(this.descriptors.limit?.soft ?? 0);
    const names = new Set([...this.usage.keys(), ...this.userSessions.keys()]);
    for (const name of names) {
      const u = this.usage.get(name) ?? { streams: 0, windowBytes: 0 };
      m.userStreams.set(u.streams, { user: name });
      m.userBufferedBytes.set(u.windowBytes + this.userSessionsHeld(name), { user: name });
      m.userDescriptors.set(u.streams + (this.userSessions.get(name)?.size ?? 0), { user: name });
    }
    // Users with nothing open any more read 0 rather than their last value.
    for (const g of [m.userStreams, m.userBufferedBytes, m.userDescriptors]) g.zeroExcept('user', names);
  }

  /** Bytes held by a user's sessions (send queues and resume buffers, detached sessions included). */
  private userSessionsHeld(user: string): number {
    let n = 0;
    for (const s of this.userSessions.get(user) ?? []) n += s.heldBytes;
    return n;
  }

  private allSessionsHeld(maxAgeMs = SESSIONS_HELD_CACHE_MS): number {
    const now = performance.now();
    if (now - this.sessionsHeld.at >= maxAgeMs) {
      let n = 0;
      for (const set of this.userSessions.values()) for (const s of set) n += s.heldBytes;
      this.sessionsHeld = { at: now, bytes: n };
    }
    return this.sessionsHeld.bytes;
  }

  /**
   * True when the sessions of `user` (send queues, resume buffers) hold more than the user's
   * budget, or all sessions more than the bridge's: a resumable session whose peer does not ACK is
   * then cut off (docs/protocol.md §9.1). Stream windows are not counted here: they are granted
   * within the budgets when streams open.
   */
  sessionsOverBudget(user: string): boolean {
    return this.userSessionsHeld(user) > this.limits.USER_MAX_BUFFERED_BYTES || this.allSessionsHeld(0) > this.limits.BRIDGE_MAX_BUFFERED_BYTES;
  }

  /**
   * Admits a new stream of `user` within the budgets (docs/protocol.md §7.1), or says which one is
   * spent. Streams and descriptors are counts; bytes held are every open stream's receive window
   * plus the sessions' send queues and resume buffers, and near the budget a stream gets a smaller
   * window (a 32nd of what is left) instead of being refused, down to STREAM_MIN_WINDOW_BYTES.
   * `windowed` false (a UDP association: no stream data) takes no window.
   */
  admitStream(user: string, windowed = true): StreamLease | BudgetRefusal {
    const l = this.limits;
    let u = this.usage.get(user);
    const sessions = this.userSessions.get(user)?.size ?? 0;
    let refusal: BudgetName | null = null;
    let window = 0;
    if ((u?.streams ?? 0) >= l.USER_MAX_STREAMS) refusal = 'user_streams';
    else if ((u?.streams ?? 0) + sessions >= l.USER_MAX_DESCRIPTORS) refusal = 'user_descriptors';
    else if (this.total.streams >= l.BRIDGE_MAX_STREAMS) refusal = 'bridge_streams';
    else if (this.descriptors.left() <= l.BRIDGE_DESCRIPTOR_RESERVE_COUNT) refusal = 'bridge_descriptors';
    else if (windowed) {
      const userFree = l.USER_MAX_BUFFERED_BYTES - (u?.windowBytes ?? 0) - this.userSessionsHeld(user);
      const bridgeFree = l.BRIDGE_MAX_BUFFERED_BYTES - this.total.windowBytes - this.allSessionsHeld();
      const free = Math.min(userFree, bridgeFree);
      window = Math.min(l.STREAM_WINDOW_BYTES, Math.floor(free / 32 / 1024) * 1024);
      if (window < l.STREAM_MIN_WINDOW_BYTES) refusal = userFree <= bridgeFree ? 'user_buffered' : 'bridge_buffered';
    }
    if (refusal !== null) {
      this.refused(refusal, user);
      return new BudgetRefusal(refusal);
    }
    if (u === undefined) {
      u = { streams: 0, windowBytes: 0 };
      this.usage.set(user, u);
    }
    const mine = u;
    mine.streams++;
    mine.windowBytes += window;
    this.total.streams++;
    this.total.windowBytes += window;
    let released = false;
    return {
      // An association announces the usual window; nothing can be sent into it (§10).
      window: windowed ? window : l.STREAM_WINDOW_BYTES,
      release: () => {
        if (released) return;
        released = true;
        mine.streams--;
        mine.windowBytes -= window;
        this.total.streams--;
        this.total.windowBytes -= window;
        if (mine.streams === 0 && this.usage.get(user) === mine) this.usage.delete(user);
      },
    };
  }

  /** Counts a budget refusal; logs the first, then one line per minute with how many since. */
  private refused(budget: BudgetName, user: string): void {
    this.metrics.budgetRefusals.inc({ budget });
    const bridgeWide = budget.startsWith('bridge_');
    const key = bridgeWide ? budget : `${budget}:${user}`;
    const now = performance.now();
    const last = this.budgetLog.get(key);
    if (last !== undefined && now - last.at < BUDGET_LOG_INTERVAL_MS) {
      last.refused++;
      return;
    }
    const since = last?.refused ?? 0;
    this.budgetLog.set(key, { at: now, refused: 0 });
    if (budget === 'bridge_descriptors') {
      this.log?.warn(
        { budget, inUse: this.descriptors.inUse(), limit: this.descriptors.limit?.soft, reserve: this.limits.BRIDGE_DESCRIPTOR_RESERVE_COUNT, refusedSinceLastLine: since },
        'descriptors near the limit: refusing new streams (sessions still accepted)',
      );
    } else {
      this.log?.warn({ budget, ...(bridgeWide ? {} : { user }), refusedSinceLastLine: since }, 'stream refused: budget spent');
    }
  }

  /** Why a new session of `user` must be refused, or null to admit it. */
  admit(user: string): typeof USER_LIMIT_CLOSE | null {
    const n = this.userSessions.get(user)?.size ?? 0;
    if (n < this.limits.BRIDGE_MAX_SESSIONS_PER_USER) return null;
    this.metrics.sessionsRefused.inc({ reason: 'user_limit' });
    return USER_LIMIT_CLOSE;
  }

  /** Tracks an admitted session: per-user set, idle close after SESSION_IDLE_TIMEOUT_MS without streams. */
  track(session: MuxSession, user: string, log: Logger): void {
    let mine = this.userSessions.get(user);
    if (!mine) {
      mine = new Set();
      this.userSessions.set(user, mine);
    }
    const set = mine;
    set.add(session);
    this.metrics.sessionsTotal.inc();
    let timer: NodeJS.Timeout | null = null;
    const stop = () => {
      if (timer) clearTimeout(timer);
      timer = null;
    };
    const arm = () => {
      stop();
      timer = setTimeout(() => {
        timer = null;
        if (session.streamCount === 0 && !session.closed) {
          log.info('session idle; closing');
          session.close(CloseCode.NORMAL, 'idle');
        }
      }, this.limits.SESSION_IDLE_TIMEOUT_MS);
      timer.unref();
    };
    arm();
    session.on('idle', arm);
    session.on('open', stop);
    session.on('close', () => {
      stop();
      set.delete(session);
      if (set.size === 0 && this.userSessions.get(user) === set) this.userSessions.delete(user);
    });
  }

  /**
   * Applies a new user list: closes at once every session of a user who is gone or whose
   * secret changed; drops bandwidth buckets whose rate changed. Returns the sessions closed.
   */
  setUsers(next: readonly GovernedUser[], limits: Limits = this.limits): number {
    const byName = new Map(next.map((u) => [u.name, u]));
    let closed = 0;
    for (const u of this.users) {
      const now = byName.get(u.name);
      if (now && now.secret.equals(u.secret)) continue;
      for (const s of [...(this.userSessions.get(u.name) ?? [])]) {
        s.close(REVOKED_CLOSE.code, REVOKED_CLOSE.reason);
        closed++;
      }
    }
    for (const [name, b] of this.buckets) {
      const u = byName.get(name);
      if (!u || rateOf(u, limits) !== b.rate) this.buckets.delete(name);
    }
    this.users = next;
    this.usersByName = byName;
    return closed;
  }

  /** The user's bandwidth buckets (up, down), or null when the user has no cap. */
  bucketsFor(name: string): { up: TokenBucket; down: TokenBucket } | null {
    const u = this.usersByName.get(name);
    const rate = u ? rateOf(u, this.limits) : 0;
    if (rate <= 0) return null;
    let b = this.buckets.get(name);
    if (!b || b.rate !== rate) {
      b = { rate, up: new TokenBucket(rate), down: new TokenBucket(rate) };
      this.buckets.set(name, b);
    }
    return b;
  }

  /**
   * Relays an accepted stream and its target socket with the stream limits: reset after
   * STREAM_IDLE_TIMEOUT_MS with no byte either way, the user's bandwidth cap (reads paused,
   * writes held — never buffered), and byte counters.
   */
  relayStream(stream: MuxStream, socket: Socket, user: string, log: () => Logger): void {
    this.metrics.streamsTotal.inc();
    this.openStreams++;
    const buckets = this.bucketsFor(user);
    const target: Duplex = buckets ? new ThrottledSocket(socket, buckets.down, buckets.up) : socket;
    // Idle: the target socket's own inactivity timer, refreshed by every read and write on it (the
    // stream's bytes are written to it), so nothing is timed per chunk and no timer is made here.
    const idleMs = this.limits.STREAM_IDLE_TIMEOUT_MS;
    socket.setTimeout(idleMs);
    socket.once('timeout', () => {
      this.metrics.streamIdleResets.inc();
      log().debug({ idleMs }, 'stream idle; reset');
      stream.destroy(new PosternError('E_TIMEOUT', 'stream idle'));
    });
    relay(stream, target, (err) => {
      socket.setTimeout(0);
      this.openStreams--;
      if (err) log().debug({ code: (err as PosternError).code ?? 'E_CONN_RESET' }, 'stream aborted');
    });
    // Counted after relay() has started both flows (a 'data' listener added earlier would start one).
    // The counting listeners are shared by all streams of a user (no per-stream closures or label keys).
    const m = this.metersFor(user);
    stream.on('data', m.up);
    observeReads(socket, m.down);
  }

  /** Byte-counting 'data' listeners for one user, made once. */
  private metersFor(user: string): { up: (c: Buffer) => void; down: (c: Buffer) => void } {
    let m = this.meters.get(user);
    if (!m) {
      const up = this.metrics.userBytes.labels({ user, direction: 'up' });
      const down = this.metrics.userBytes.labels({ user, direction: 'down' });
      const upAll = this.metrics.bytesUp.labels({});
      const downAll = this.metrics.bytesDown.labels({});
      m = {
        up: (c: Buffer) => {
          up.inc(c.length);
          upAll.inc(c.length);
        },
        down: (c: Buffer) => {
          down.inc(c.length);
          downAll.inc(c.length);
        },
      };
      this.meters.set(user, m);
    }
    return m;
  }
}

function rateOf(u: GovernedUser, limits: Limits): number {
  return u.maxBytesPerSecond ?? limits.USER_MAX_BYTES_PER_SECOND;
}
