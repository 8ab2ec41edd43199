/**
 * Counts by reason, logged once per interval at info: what a peer can make happen thousands of
 * times a second (refused streams, refused upgrades) must not become thousands of log lines.
 * Each event may still be logged at debug by its caller. A summary holds reasons only — never a
 * destination, an address or a user — so it is safe at info by default.
 */
import type { Logger } from './logger.js';

/** Most distinct reasons one summary holds; more are counted under "other" (reasons are fixed words, this is a backstop). */
const MAX_REASONS = 64;

export class LogSummary {
  private counts = new Map<string, number>();
  private total = 0;
  private timer: NodeJS.Timeout | null = null;
  private since = 0;

  /**
   * @param msg the info line's message, e.g. "streams refused"
   * @param field the name the counts go under, e.g. "byCode"
   */
  constructor(
    private readonly log: Logger,
    private readonly msg: string,
    private readonly field: string,
    private readonly intervalMs: number,
  ) {}

  /** Counts one event; the first one of an interval arms the timer (none while nothing happens). */
  note(reason: string): void {
    const key = this.counts.has(reason) || this.counts.size < MAX_REASONS ? reason : 'other';
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.total++;
    if (this.timer === null) {
      this.since = Date.now();
      this.timer = setTimeout(() => this.flush(), this.intervalMs);
      this.timer.unref();
    }
  }

  /** Logs what was counted (if anything) and starts a new interval. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.total === 0) return;
    const counts = Object.fromEntries([...this.counts].sort((a, b) => b[1] - a[1]));
    this.log.info({ total: this.total, [this.field]: counts, seconds: Math.round((Date.now() - this.since) / 1000) }, this.msg);
    this.counts = new Map();
    this.total = 0;
  }

  /** Stops the timer, logging what is pending. */
  close(): void {
    this.flush();
  }
}
