/**
 * The bridge's per-user bookkeeping and stream limits, kept out of the wiring in bridge.ts:
 * sessions per user (cap, revocation on reload, idle close), per-stream idle reset, per-user
 * bandwidth buckets, and the metrics that go with them.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import { relay } from '../core/relay.js';
import type { Logger } from '../log/logger.js';
import type { MuxSession } from '../mux/session.js';
import type { MuxStream } from '../mux/stream.js';
import { CloseCode } from '../mux/transport.js';
import { TokenVerifier, type TokenUser, type TokenVerifierOptions, type VerifyResult } from '../transport/auth.js';
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

export class Governor {
  readonly metrics: BridgeMetrics = bridgeMetrics();
  private readonly userSessions = new Map<string, Set<MuxSession>>();
  private readonly buckets = new Map<string, { rate: number; up: TokenBucket; down: TokenBucket }>();
  private readonly meters = new Map<string, { up: (c: Buffer) => void; down: (c: Buffer) => void }>();
  private users: readonly GovernedUser[];
  /** `users` by name: bucketsFor() runs per stream and per datagram. */
  private usersByName: ReadonlyMap<string, GovernedUser>;
  private openStreams = 0;

  constructor(
    users: readonly GovernedUser[],
    private readonly limits: Limits,
    sessionCount: () => number,
  ) {
    this.users = users;
    this.usersByName = new Map(users.map((u) => [u.name, u]));
    this.metrics.registry.onCollect(() => {
      this.metrics.sessions.set(sessionCount());
      this.metrics.streams.set(this.openStreams);
    });
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
    socket.on('data', m.down);
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
