/**
 * Failed logins to the local listeners (SOCKS5 RFC 1929, HTTP Proxy-Authorization), limited and
 * counted per source address.
 *
 * A source's first LOCAL_AUTH_FREE_FAILURES_COUNT failures in a window are answered at once.
 * Past that, each further failure is answered only after LOCAL_AUTH_FAILURE_DELAY_MS, and while
 * the source has LOCAL_AUTH_DELAYED_PER_SOURCE_COUNT such answers pending, its new attempts are
 * refused without being checked. So a source learns at most
 * DELAYED_PER_SOURCE_COUNT / FAILURE_DELAY_MS guesses per second (4/s with the defaults).
 *
 * Right credentials are never refused while a check runs: on loopback every app on the device
 * shares one source address, and a hostile app that keeps guessing must not lock the user out.
 * Only past the pending bound — where the hostile app could as well fill the connection limit —
 * do the user's own apps wait too.
 *
 * Sources are remembered up to LOCAL_AUTH_TRACKED_SOURCES_COUNT; the oldest is forgotten first.
 * Nothing here is logged; the counts are read by the listener that owns the throttle.
 */
import type { Limits } from './limits.js';

interface SourceState {
  windowStart: number;
  failures: number;
  pending: number;
}

export type AuthThrottleLimits = Pick<
  Limits,
  'LOCAL_AUTH_FREE_FAILURES_COUNT' | 'LOCAL_AUTH_FAILURE_WINDOW_MS' | 'LOCAL_AUTH_FAILURE_DELAY_MS' | 'LOCAL_AUTH_DELAYED_PER_SOURCE_COUNT' | 'LOCAL_AUTH_TRACKED_SOURCES_COUNT'
>;

export interface AuthFailure {
  /** Wait this long before answering (0: answer now); then call done(). */
  readonly delayMs: number;
  /** True for the failure that made this source slowed in this window (log once). */
  readonly startedThrottling: boolean;
}

export class AuthThrottle {
  readonly #sources = new Map<string, SourceState>();
  /** Totals since start: wrong credentials, attempts refused unchecked, requests without credentials. */
  readonly counts = { failed: 0, refusedUnchecked: 0, challenged: 0 };

  constructor(
    private readonly limits: AuthThrottleLimits,
    private readonly now: () => number = Date.now,
  ) {}

  #state(source: string): SourceState {
    const t = this.now();
    let s = this.#sources.get(source);
    if (s === undefined) {
      if (this.#sources.size >= this.limits.LOCAL_AUTH_TRACKED_SOURCES_COUNT) {
        // Forget the oldest source that has nothing pending (a pending one's done() would find nothing).
        for (const [k, v] of this.#sources) {
          if (v.pending === 0) {
            this.#sources.delete(k);
            break;
          }
        }
      }
      s = { windowStart: t, failures: 0, pending: 0 };
      this.#sources.set(source, s);
    } else if (t - s.windowStart >= this.limits.LOCAL_AUTH_FAILURE_WINDOW_MS) {
      s.windowStart = t;
      s.failures = 0;
    }
    return s;
  }

  /** May this source's credentials be checked now? False: refuse without checking. */
  admit(source: string): boolean {
    const s = this.#sources.get(source);
    if (s === undefined) return true;
    const ok = s.failures < this.limits.LOCAL_AUTH_FREE_FAILURES_COUNT || s.pending < this.limits.LOCAL_AUTH_DELAYED_PER_SOURCE_COUNT;
    if (!ok) this.counts.refusedUnchecked++;
    return ok;
  }

  /** A request came without credentials and gets the challenge (not a guess: browsers do this first). */
  challenged(): void {
    this.counts.challenged++;
  }

  /** The check failed. */
  failed(source: string): AuthFailure {
    this.counts.failed++;
    const s = this.#state(source);
    s.failures++;
    if (s.failures <= this.limits.LOCAL_AUTH_FREE_FAILURES_COUNT) return { delayMs: 0, startedThrottling: false };
    s.pending++;
    return { delayMs: this.limits.LOCAL_AUTH_FAILURE_DELAY_MS, startedThrottling: s.failures === this.limits.LOCAL_AUTH_FREE_FAILURES_COUNT + 1 };
  }

  /** A delayed answer went out (or its connection closed). */
  done(source: string): void {
    const s = this.#sources.get(source);
    if (s !== undefined && s.pending > 0) s.pending--;
  }

  /** Sources remembered now (bounded by LOCAL_AUTH_TRACKED_SOURCES_COUNT). */
  get trackedSources(): number {
    return this.#sources.size;
  }
}
