/**
 * Name resolution at the bridge that one user cannot starve (issue 10, finding 3):
 *
 * - names go to DNS through c-ares (`dns.Resolver`): queries run on the event loop, not on
 *   libuv's 4-thread pool (where `dns.lookup` runs and where a hung lookup holds a thread until
 *   the system resolver gives up), and each lookup can be cancelled;
 * - a DnsLimiter bounds lookups bridge-wide (EGRESS_DNS_MAX_CONCURRENT running,
 *   EGRESS_DNS_MAX_QUEUED waiting) and per user (EGRESS_DNS_MAX_CONCURRENT_PER_USER running,
 *   EGRESS_DNS_MAX_PENDING_PER_USER running + waiting). Waiting lookups are served round-robin
 *   between users. A lookup frees its slot the moment its signal aborts (timeout, stream
 *   cancelled), whether or not the query behind it has ended; the query is cancelled too.
 *
 * The hosts file and the config's `hosts` table are consulted before any of this (bridge.ts), so
 * their names never wait for a DNS slot.
 */
import dns from 'node:dns';
import net from 'node:net';
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import type { Registry } from './metrics.js';

export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** Who asks, and when to give up: the signal aborts on timeout or when the stream is cancelled. */
export interface LookupContext {
  readonly user?: string;
  readonly signal?: AbortSignal;
}

/** Resolves a name to addresses. Injectable so tests never depend on real DNS. */
export type Resolver = (name: string, ctx?: LookupContext) => Promise<ResolvedAddress[]>;

/** Why the limiter refused a lookup at once (metrics label `reason`). */
export type DnsRefusal = 'user_budget' | 'bridge_queue';

/** The bridge's DNS metrics, on the bridge's registry (kept apart from metrics.ts). */
export function dnsMetrics(registry: Registry) {
  return {
    registry,
    lookups: registry.gauge('postern_dns_lookups', 'DNS lookups pending now, by state (running, waiting for a slot).'),
    userPending: registry.gauge('postern_dns_user_lookups_pending', 'DNS lookups pending now (running + waiting), per user.'),
    lookupsTotal: registry.counter('postern_dns_lookups_total', 'DNS lookups ended, by result (answered, failed, aborted: timed out or cancelled).'),
    refused: registry.counter('postern_dns_lookups_refused_total', 'DNS lookups refused at once, by reason (user_budget: the user had EGRESS_DNS_MAX_PENDING_PER_USER pending; bridge_queue: EGRESS_DNS_MAX_QUEUED were waiting).'),
    hostsAnswers: registry.counter('postern_dns_hosts_answers_total', 'Names answered from the hosts file or the config hosts table, without DNS.'),
    limit: registry.gauge('postern_dns_limit', 'The DNS limits in force (limit: its name in limits.ts).'),
  };
}
export type DnsMetrics = ReturnType<typeof dnsMetrics>;

type DnsLimits = Pick<Limits, 'EGRESS_DNS_MAX_CONCURRENT' | 'EGRESS_DNS_MAX_QUEUED' | 'EGRESS_DNS_MAX_CONCURRENT_PER_USER' | 'EGRESS_DNS_MAX_PENDING_PER_USER'>;

interface Waiter {
  readonly start: () => void;
  readonly cancel: () => void;
}

interface UserState {
  running: number;
  readonly queue: Waiter[];
}

const ANONYMOUS = '';

/** Bounded, per-user-fair slots for lookups. */
export class DnsLimiter {
  private running = 0;
  private waiting = 0;
  private readonly users = new Map<string, UserState>();
  /** Users with a waiting lookup, in the order they are served (round-robin). */
  private readonly turn = new Set<string>();
  /** Every user seen, so that the per-user gauge falls back to 0. */
  private readonly seen = new Set<string>();

  constructor(
    private readonly limits: DnsLimits,
    private readonly metrics: DnsMetrics | null = null,
  ) {
    if (metrics !== null) {
      for (const name of ['EGRESS_DNS_MAX_CONCURRENT', 'EGRESS_DNS_MAX_QUEUED', 'EGRESS_DNS_MAX_CONCURRENT_PER_USER', 'EGRESS_DNS_MAX_PENDING_PER_USER'] as const) {
        metrics.limit.set(limits[name], { limit: name });
      }
      metrics.registry.onCollect(() => this.collect());
    }
  }

  /** Lookups running and waiting now, bridge-wide and for `user`. */
  stats(user?: string): { running: number; waiting: number; userPending: number } {
    const u = user === undefined ? undefined : this.users.get(user);
    return { running: this.running, waiting: this.waiting, userPending: u === undefined ? 0 : u.running + u.queue.length };
  }

  /**
   * Runs `fn` holding a slot for `user`. Refuses at once (E_DNS) when the user already has
   * EGRESS_DNS_MAX_PENDING_PER_USER lookups pending or EGRESS_DNS_MAX_QUEUED are waiting. When
   * `signal` aborts, the lookup's slot (or place in the queue) is freed at once and the promise
   * rejects with E_DNS; `fn` gets the same signal to cancel its query.
   */
  run<T>(user: string | undefined, signal: AbortSignal | undefined, fn: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    const name = user ?? ANONYMOUS;
    if (signal?.aborted) return Promise.reject(new PosternError('E_DNS', 'lookup aborted'));
    let u = this.users.get(name);
    const pending = u === undefined ? 0 : u.running + u.queue.length;
    if (pending >= this.limits.EGRESS_DNS_MAX_PENDING_PER_USER) return this.refuse('user_budget', 'too many lookups pending for this user');
    const runNow = this.running < this.limits.EGRESS_DNS_MAX_CONCURRENT && (u?.running ?? 0) < this.limits.EGRESS_DNS_MAX_CONCURRENT_PER_USER;
    if (!runNow && this.waiting >= this.limits.EGRESS_DNS_MAX_QUEUED) return this.refuse('bridge_queue', 'too many lookups in progress');
    if (u === undefined) {
      u = { running: 0, queue: [] };
      this.users.set(name, u);
      this.seen.add(name);
    }
    const state = u;
    return new Promise<T>((resolve, reject) => {
      let phase: 'waiting' | 'running' | 'done' = 'waiting';
      const onAbort = (): void => {
        if (phase === 'waiting') {
          const i = state.queue.indexOf(waiter);
          if (i !== -1) state.queue.splice(i, 1);
          this.waiting--;
          if (state.queue.length === 0) this.turn.delete(name);
          phase = 'done';
          this.forget(name, state);
          this.metrics?.lookupsTotal.inc({ result: 'aborted' });
          reject(new PosternError('E_DNS', 'lookup aborted'));
        } else if (phase === 'running') {
          finish();
          this.metrics?.lookupsTotal.inc({ result: 'aborted' });
          reject(new PosternError('E_DNS', 'lookup aborted'));
        }
      };
      const finish = (): void => {
        if (phase !== 'running') return;
        phase = 'done';
        signal?.removeEventListener('abort', onAbort);
        this.running--;
        state.running--;
        this.forget(name, state);
        this.dispatch();
      };
      const start = (): void => {
        phase = 'running';
        this.running++;
        state.running++;
        let p: Promise<T>;
        try {
          p = fn(signal);
        } catch (err) {
          p = Promise.reject(err);
        }
        p.then(
          (v) => {
            if (phase !== 'running') return;
            finish();
            this.metrics?.lookupsTotal.inc({ result: 'answered' });
            resolve(v);
          },
          (err: unknown) => {
            if (phase !== 'running') return;
            finish();
            this.metrics?.lookupsTotal.inc({ result: 'failed' });
            reject(err);
          },
        );
      };
      const waiter: Waiter = { start, cancel: onAbort };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (runNow) start();
      else {
        state.queue.push(waiter);
        this.waiting++;
        this.turn.add(name);
      }
    });
  }

  private refuse<T>(reason: DnsRefusal, detail: string): Promise<T> {
    this.metrics?.refused.inc({ reason });
    return Promise.reject(new PosternError('E_DNS', detail));
  }

  /** Starts waiting lookups while slots are free, one user after another. */
  private dispatch(): void {
    while (this.running < this.limits.EGRESS_DNS_MAX_CONCURRENT && this.turn.size > 0) {
      let started = false;
      for (const name of this.turn) {
        const u = this.users.get(name);
        if (u === undefined || u.queue.length === 0) {
          this.turn.delete(name);
          continue;
        }
        if (u.running >= this.limits.EGRESS_DNS_MAX_CONCURRENT_PER_USER) continue;
        const w = u.queue.shift() as Waiter;
        this.waiting--;
        // Served: to the back of the line.
        this.turn.delete(name);
        if (u.queue.length > 0) this.turn.add(name);
        w.start();
        started = true;
        break;
      }
      if (!started) return;
    }
  }

  private forget(name: string, u: UserState): void {
    if (u.running === 0 && u.queue.length === 0 && this.users.get(name) === u) this.users.delete(name);
  }

  private collect(): void {
    const m = this.metrics;
    if (m === null) return;
    m.lookups.set(this.running, { state: 'running' });
    m.lookups.set(this.waiting, { state: 'waiting' });
    for (const name of this.seen) {
      const u = this.users.get(name);
      m.userPending.set(u === undefined ? 0 : u.running + u.queue.length, { user: name === ANONYMOUS ? '-' : name });
    }
  }
}

/** Options of the c-ares resolver. */
export interface CaresOptions {
  /** DNS servers ("IP" or "IP:PORT", "[IPv6]:PORT"); default: the system's (resolv.conf). */
  readonly servers?: () => readonly string[] | null;
  /** c-ares' own per-try timeout, ms (our signal is the real bound). */
  readonly tryTimeoutMs: number;
}

/** Most idle c-ares channels kept for reuse (an idle channel holds no socket). */
const CARES_POOL_MAX = 64;

/**
 * A Resolver on c-ares: A and AAAA queries in parallel, IPv4 addresses first. Each lookup has a
 * channel to itself, so that aborting it (Resolver.cancel) cancels that lookup only; channels are
 * reused from a small pool (making one costs a few hundred µs of main-thread time).
 */
export function caresResolver(opts: CaresOptions): Resolver {
  const timeout = Math.max(100, Math.floor(opts.tryTimeoutMs));
  let pool: dns.promises.Resolver[] = [];
  let poolKey = '';
  const take = (): dns.promises.Resolver => {
    const servers = opts.servers?.() ?? null;
    const key = servers === null ? '' : servers.join(',');
    if (key !== poolKey) {
      pool = []; // servers changed (reload): start afresh
      poolKey = key;
    }
    const reused = pool.pop();
    if (reused !== undefined) return reused;
    const r = new dns.promises.Resolver({ timeout, tries: 2 });
    if (servers !== null && servers.length > 0) r.setServers([...servers]);
    return r;
  };
  return async (name, ctx) => {
    if (net.isIP(name) !== 0) return [{ address: name, family: net.isIPv6(name) ? 6 : 4 }];
    const signal = ctx?.signal;
    if (signal?.aborted) throw new PosternError('E_DNS', 'lookup aborted');
    const key = poolKey;
    const r = take();
    const onAbort = (): void => r.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const [a, aaaa] = await Promise.allSettled([r.resolve4(name), r.resolve6(name)]);
      const out: ResolvedAddress[] = [];
      if (a.status === 'fulfilled') for (const address of a.value) out.push({ address, family: 4 });
      if (aaaa.status === 'fulfilled') for (const address of aaaa.value) out.push({ address, family: 6 });
      if (out.length > 0) return out;
      // Both failed (or gave nothing): report A's reason (ENOTFOUND, ETIMEOUT, ECANCELLED…).
      if (a.status === 'rejected') throw a.reason;
      if (aaaa.status === 'rejected') throw aaaa.reason;
      return out;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      // Both queries have ended (answered, failed or cancelled): the channel is idle again.
      if (poolKey === key && pool.length < CARES_POOL_MAX) pool.push(r);
    }
  };
}

/** Runs a resolver's lookups through the limiter. */
export function limitResolver(next: Resolver, limiter: DnsLimiter): Resolver {
  return (name, ctx) => limiter.run(ctx?.user, ctx?.signal, (signal) => next(name, { ...ctx, ...(signal ? { signal } : {}) }));
}
