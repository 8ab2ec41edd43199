/**
 * A fault-injecting TCP relay for tests (loopback only): sits between a client and a bridge and
 * can delay, throttle, cut with RST after N bytes (fixed or seeded-random per connection), cut
 * everything now, blackhole (keep connections open while every byte vanishes), and freeze each
 * connection after N bridge→client bytes (the "16 KB wall": later bridge→client bytes vanish, no
 * RST, no FIN reaches the client; client→bridge bytes pass freely).
 */
import net from 'node:net';

export interface FaultyRelayOptions {
  /** Upstream port on 127.0.0.1. */
  target: number;
  /** Seed for the random cut points. */
  seed?: number;
}

/** Small deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Pair {
  a: net.Socket;
  b: net.Socket;
  budget: number;
  used: number;
  blackholed: boolean;
  /** Bridge→client bytes passed (freeze mode counts only these). */
  down: number;
  frozen: boolean;
}

export class FaultyRelay {
  // noDelay both ways: a network path does not hold small segments back (Nagle would add up to a
  // delayed-ACK wait, ~40 ms, to small writes, which is the relay's artefact, not the code's).
  private server = net.createServer({ noDelay: true }, (s) => this.accept(s));
  private readonly pairs = new Set<Pair>();
  private readonly random: () => number;
  /** Cut each connection (RST both ways) after a number of bytes (both directions) in [min, max]. */
  cutRange: [number, number] | null = null;
  /** Milliseconds added to every chunk, each direction. */
  delayMs = 0;
  /** Bytes per second per direction per connection (0: unlimited). */
  bytesPerSecond = 0;
  /** New connections are blackholed too while true. */
  blackholeNew = false;
  /** Freeze each connection after this many bridge→client bytes (null: never). */
  freezeAfter: number | null = null;
  /** Reset each connection (RST both ways) after this many bridge→client bytes (null: never); client→bridge bytes are not counted. */
  resetAfterDown: number | null = null;
  cuts = 0;
  /** Connections reset because they reached their byte count (cutRange), not closed by an end. */
  wallResets = 0;
  accepted = 0;
  /** Connections frozen, bytes that vanished into a freeze or a cut, bytes passed bridge→client. */
  freezes = 0;
  droppedBytes = 0;
  downBytes = 0;
  /** Bytes each connection reset at its wall (cutRange or resetAfterDown) had passed, each way, in order. */
  readonly wallCuts: Array<{ down: number; up: number; at: number }> = [];
  /** When each connection was accepted (performance.now()), for handshakes per second. */
  readonly acceptedAt: number[] = [];
  port = 0;

  constructor(private readonly opts: FaultyRelayOptions) {
    this.random = prng(opts.seed ?? 1);
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** Existing connections go silent (bytes vanish, nothing is closed). */
  blackholeAll(): void {
    for (const p of this.pairs) p.blackholed = true;
  }

  /** Existing connections freeze now: bridge→client bytes vanish from here on. */
  freezeAll(): void {
    for (const p of this.pairs) {
      if (!p.frozen) this.freezes++;
      p.frozen = true;
    }
  }

  /** RST every connection now. */
  cutAll(): void {
    for (const p of [...this.pairs]) this.cut(p);
  }

  get connections(): number {
    return this.pairs.size;
  }

  /** The most connections accepted within any `windowMs` (the censor flags > 3 in ~400 ms). */
  maxAcceptedWithin(windowMs: number): number {
    let best = 0;
    let lo = 0;
    const t = this.acceptedAt;
    for (let hi = 0; hi < t.length; hi++) {
      while ((t[hi] as number) - (t[lo] as number) >= windowMs) lo++;
      best = Math.max(best, hi - lo + 1);
    }
    return best;
  }

  async close(): Promise<void> {
    for (const p of [...this.pairs]) this.cut(p);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(a: net.Socket): void {
    this.accepted++;
    this.acceptedAt.push(performance.now());
    const b = net.connect({ host: '127.0.0.1', port: this.opts.target, noDelay: true });
    const budget = this.cutRange === null ? Infinity : Math.floor(this.cutRange[0] + this.random() * (this.cutRange[1] - this.cutRange[0] + 1));
    const pair: Pair = { a, b, budget, used: 0, blackholed: this.blackholeNew, down: 0, frozen: false };
    this.pairs.add(pair);
    // A blackholed path does not pass a close on either: the other side just hears nothing. A
    // frozen one passes the client's close to the bridge, but nothing from the bridge's side.
    const gone = (fromBridge: boolean): void => {
      if (pair.blackholed) return;
      if (pair.frozen && fromBridge) {
        b.destroy();
        return;
      }
      this.cut(pair);
    };
    a.on('error', () => gone(false));
    b.on('error', () => gone(true));
    a.on('close', () => gone(false));
    b.on('close', () => gone(true));
    this.forward(pair, a, b);
    this.forward(pair, b, a);
  }

  private forward(pair: Pair, from: net.Socket, to: net.Socket): void {
    let chain = Promise.resolve();
    let nextFree = 0;
    let queued = 0;
    const down = from === pair.b;
    from.on('data', (chunk: Buffer) => {
      if (!this.pairs.has(pair) || pair.blackholed) return;
      let data = chunk;
      if (down && pair.frozen) {
        this.droppedBytes += data.length;
        return;
      }
      if (down && this.freezeAfter !== null) {
        const room = this.freezeAfter - pair.down;
        if (data.length >= room) {
          this.droppedBytes += data.length - room;
          data = data.subarray(0, room);
          pair.frozen = true;
          this.freezes++;
        }
      }
      const left = down && this.resetAfterDown !== null ? Math.min(pair.budget - pair.used, this.resetAfterDown - pair.down) : pair.budget - pair.used;
      let cutAfter = false;
      if (data.length >= left) {
        this.droppedBytes += data.length - left;
        data = data.subarray(0, left);
        cutAfter = true;
        this.wallResets++;
      }
      pair.used += data.length;
      if (down) {
        pair.down += data.length;
        this.downBytes += data.length;
      }
      if (cutAfter) this.wallCuts.push({ down: pair.down, up: pair.used - pair.down, at: Date.now() });
      if (this.delayMs === 0 && this.bytesPerSecond === 0) {
        if (data.length > 0) to.write(data);
        if (cutAfter) this.cut(pair);
        return;
      }
      const arrival = Date.now();
      queued += data.length;
      if (queued > 4 * 1024 * 1024) from.pause();
      chain = chain.then(async () => {
        const now = Date.now();
        const at = Math.max(arrival + this.delayMs, nextFree, now);
        if (this.bytesPerSecond > 0) nextFree = at + (data.length * 1000) / this.bytesPerSecond;
        if (at > now) await new Promise((r) => setTimeout(r, at - now));
        queued -= data.length;
        if (queued < 1024 * 1024) from.resume();
        if (!this.pairs.has(pair) || pair.blackholed) return;
        if (data.length > 0) to.write(data);
        if (cutAfter) this.cut(pair);
      });
    });
  }

  private cut(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    this.cuts++;
    for (const s of [pair.a, pair.b]) {
      if (s.destroyed) continue;
      try {
        s.resetAndDestroy();
      } catch {
        s.destroy();
      }
    }
  }
}
