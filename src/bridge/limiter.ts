/**
 * Small bounded primitives for the bridge: a token bucket (bandwidth caps) and a socket wrapper
 * that applies a bucket by pausing reads and holding write callbacks — backpressure, never
 * buffering. (DNS slots are in dns.ts.)
 */
import { Duplex } from 'node:stream';
import type net from 'node:net';
import { isBorrowedRead, takeReads } from '../core/borrowed-read.js';
import { PosternError } from '../core/errors.js';

/**
 * A token bucket of `ratePerSecond` tokens (bytes) per second, holding at most `burst`.
 * take(n) always succeeds and may leave the bucket in debt; it returns how long (ms) the caller
 * should wait before sending more, so that over time throughput converges on the rate.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  readonly burst: number;

  constructor(
    readonly ratePerSecond: number,
    burst?: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(ratePerSecond > 0)) throw new RangeError('ratePerSecond must be positive');
    // 100 ms worth, at least one full frame's worth (64 KiB), so short bursts are not chopped.
    this.burst = burst ?? Math.max(64 * 1024, Math.floor(ratePerSecond / 10));
    this.tokens = this.burst;
    this.last = this.now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.ratePerSecond) / 1000);
    this.last = t;
  }

  /** Spends n bytes only if the bucket holds them (for datagrams, which are dropped, never delayed). */
  tryTake(n: number): boolean {
    this.refill();
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /** Spends n bytes; returns the wait in ms until the bucket is out of debt (0 = go on). */
  take(n: number): number {
    this.refill();
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.ratePerSecond);
  }
}

/**
 * A net.Socket seen through two token buckets: bytes read from the socket spend `readBucket`
 * (the socket is paused while in debt), bytes written spend `writeBucket` (the write callback is
 * held while in debt, so a pipe() into it stops). Nothing is queued beyond the stream buffers.
 * resetAndDestroy() resets the socket, as relay() expects of a TCP peer. A borrowed-read socket
 * (src/core/borrowed-read.ts) is read through its sink, each chunk copied.
 */
export class ThrottledSocket extends Duplex {
  private wantRead = false;
  private readDebtTimer: NodeJS.Timeout | null = null;
  private writeTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly socket: net.Socket,
    private readonly readBucket: TokenBucket,
    private readonly writeBucket: TokenBucket,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024, writableHighWaterMark: 64 * 1024 });
    socket.pause();
    const onChunk = (chunk: Buffer): void => {
      const wait = this.readBucket.take(chunk.length);
      if (!this.push(chunk)) this.wantRead = false;
      if (wait > 0) {
        socket.pause();
        this.readDebtTimer = setTimeout(() => {
          this.readDebtTimer = null;
          if (this.wantRead) socket.resume();
        }, wait);
      } else if (!this.wantRead) {
        socket.pause();
      }
    };
    // A borrowed-read socket (src/bridge/egress.ts) lends its buffer only for the call: keep a copy.
    if (isBorrowedRead(socket)) takeReads(socket, (chunk) => onChunk(Buffer.from(chunk)));
    else socket.on('data', onChunk);
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => {
      if (!socket.readableEnded && !this.destroyed) this.destroy(new PosternError('E_CONN_RESET', 'closed without end'));
    });
  }

  override _read(): void {
    this.wantRead = true;
    if (this.readDebtTimer === null) this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const wait = this.writeBucket.take(chunk.length);
    const send = () => {
      this.writeTimer = null;
      if (this.socket.destroyed) return cb(new PosternError('E_CONN_RESET'));
      if (this.socket.write(chunk)) cb();
      else this.socket.once('drain', () => cb());
    };
    if (wait > 0) this.writeTimer = setTimeout(send, wait);
    else send();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end();
    cb();
  }

  /** Abort towards the target: RST, like a bare socket in relay(). */
  resetAndDestroy(): this {
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
    this.destroy();
    return this;
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.readDebtTimer) clearTimeout(this.readDebtTimer);
    if (this.writeTimer) clearTimeout(this.writeTimer);
    this.readDebtTimer = this.writeTimer = null;
    if (!this.socket.destroyed) {
      if (err) this.socket.resetAndDestroy();
      else this.socket.destroy();
    }
    cb(err);
  }
}
