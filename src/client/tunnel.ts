import type { Duplex } from 'node:stream';
import type { Target } from '../core/address.js';
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import type { Logger } from '../log/logger.js';
import { MuxSession } from '../mux/session.js';
import { dialBridge } from '../transport/dialer.js';
import type { BridgeInfo } from '../transport/uri.js';

export type TunnelState = 'idle' | 'connecting' | 'up' | 'backoff';

/**
 * Keeps one multiplexed session to a bridge and opens streams on it. Dials lazily (and once at
 * start), single-flight: concurrent opens share one dial. After a failed dial the next attempt
 * waits an exponential backoff with jitter, capped at RECONNECT_MAX_MS; a stream request that
 * would wait longer than DIAL_TIMEOUT_MS fails at once with the last dial error.
 */
export class Tunnel {
  private session: MuxSession | null = null;
  private dialing: Promise<MuxSession> | null = null;
  private failures = 0;
  private nextAttemptAt = 0;
  private lastError: PosternError | null = null;
  private closed = false;
  private readonly log: Logger;

  constructor(
    private readonly bridge: BridgeInfo,
    private readonly limits: Limits,
    logger: Logger,
  ) {
    this.log = logger;
  }

  get state(): TunnelState {
    if (this.usable(this.session)) return 'up';
    if (this.dialing) return 'connecting';
    return Date.now() < this.nextAttemptAt ? 'backoff' : 'idle';
  }

  /** Dials now; resolves when the session is up, rejects with the dial error. */
  async connect(): Promise<void> {
    await this.getSession();
  }

  async open(target: Target, signal: AbortSignal): Promise<Duplex> {
    const session = await this.getSession(signal);
    return session.open(target, { signal });
  }

  /** A session takes new streams until it closes or either side sent GOAWAY. */
  private usable(s: MuxSession | null): s is MuxSession {
    return s !== null && !s.closed && !s.goingAway;
  }

  private async getSession(signal?: AbortSignal): Promise<MuxSession> {
    if (this.closed) throw new PosternError('E_TUNNEL_DOWN', 'client is shutting down');
    if (this.usable(this.session)) return this.session;
    if (this.dialing) return this.dialing;
    const wait = this.nextAttemptAt - Date.now();
    if (wait > this.limits.DIAL_TIMEOUT_MS && this.lastError) throw this.lastError;
    this.dialing = this.dialAfter(Math.max(0, wait), signal).finally(() => {
      this.dialing = null;
    });
    return this.dialing;
  }

  private async dialAfter(waitMs: number, signal?: AbortSignal): Promise<MuxSession> {
    if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
    const started = Date.now();
    try {
      const transport = await dialBridge(this.bridge, { limits: this.limits, logger: this.log, signal });
      const session = new MuxSession(transport, { role: 'client', limits: this.limits, logger: this.log });
      this.failures = 0;
      this.nextAttemptAt = 0;
      this.lastError = null;
      this.session = session;
      session.on('close', (info: { code: number; reason: string }) => {
        if (this.session === session) this.session = null;
        if (!this.closed) this.log.warn({ code: info.code, reason: info.reason }, 'tunnel to bridge lost; will reconnect on demand');
      });
      this.log.info({ ms: Date.now() - started }, 'tunnel to bridge up');
      return session;
    } catch (err) {
      const e = err instanceof PosternError ? err : new PosternError('E_DIAL', (err as Error).message, { cause: err });
      this.failures++;
      const backoff = Math.min(this.limits.RECONNECT_MAX_MS, this.limits.RECONNECT_MIN_MS * 2 ** (this.failures - 1));
      this.nextAttemptAt = Date.now() + backoff / 2 + Math.random() * (backoff / 2);
      this.lastError = e;
      this.log.error({ code: e.code }, `cannot connect to bridge: ${e.message}`);
      throw e;
    }
  }

  /** Closes the session; open streams are reset. */
  close(): void {
    this.closed = true;
    this.session?.close(1001, 'client shutdown');
    this.session = null;
  }

  /** Stops new streams, waits up to drainMs for open ones, then closes. */
  async drain(drainMs: number): Promise<void> {
    const s = this.session;
    this.closed = true;
    if (s) {
      const deadline = Date.now() + drainMs;
      while (s.streamCount > 0 && !s.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    }
    this.close();
  }
}
