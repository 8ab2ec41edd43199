/**
 * An in-memory FrameTransport pair for mux tests: asynchronous, ordered delivery (one batch per
 * macrotask), bufferedBytes that counts undelivered bytes, drain on the fall to zero, optional
 * bandwidth limit, a tap to inspect/replace/drop messages, and injection of raw bytes.
 */
import { Writable } from 'node:stream';
import { defaultLimits, type Limits } from '../../../src/core/limits.js';
import { createLogger, type Logger } from '../../../src/log/logger.js';
import { decodeMessage } from '../../../src/mux/codec.js';
import type { Frame } from '../../../src/mux/frame.js';
import { ResumableLink } from '../../../src/mux/resume.js';
import { MuxSession } from '../../../src/mux/session.js';
import { CUT_CODE, type FrameTransport, type TransportClose } from '../../../src/mux/transport.js';

export type Direction = 'c2b' | 'b2c';
/** Return a Buffer to deliver instead, null to drop, undefined to deliver unchanged. */
export type Tap = (dir: Direction, message: Buffer) => Buffer | null | undefined | void;


export class MemoryTransport implements FrameTransport {
  peer!: MemoryTransport;
  bufferedBytes = 0;
  /** Bytes delivered per macrotask from this side to the peer (simulated bandwidth). */
  bytesPerTick = Infinity;
  /** While true nothing leaves this side (a stalled link); bytes pile up in bufferedBytes. */
  stalled = false;
  tap: Tap | null = null;
  closeCalls: TransportClose[] = [];
  terminated = false;
  /** Largest bufferedBytes seen. */
  maxBuffered = 0;
  /** As a WebSocket with the default limits (ws's maxPayload). */
  maxMessageBytes = defaultLimits().WS_MAX_MESSAGE_BYTES;

  private queue: Array<{ msg: Buffer; raw: boolean }> = [];
  private scheduled = false;
  private paused = false;
  private gone = false;
  private messageCb: ((m: Buffer) => void) | null = null;
  private drainCbs: Array<() => void> = [];
  private closeCbs: Array<(r: TransportClose) => void> = [];

  constructor(readonly dir: Direction) {}

  send(message: Buffer): void {
    if (this.gone) return;
    this.enqueue(message, false);
  }

  /** Delivers `message` to this side as if the peer had sent it (after anything already in flight; no tap). */
  inject(message: Buffer): void {
    if (this.peer.gone) return;
    this.peer.enqueue(message, true);
  }

  onDrain(cb: () => void): void {
    this.drainCbs.push(cb);
  }
  onMessage(cb: (message: Buffer) => void): void {
    this.messageCb = cb;
  }
  onClose(cb: (reason: TransportClose) => void): void {
    this.closeCbs.push(cb);
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    this.peer.schedule();
  }
  close(code: number, reason: string): void {
    this.closeCalls.push({ code, reason });
    if (this.gone) return;
    this.gone = true;
    // Like a WebSocket close handshake: what was sent is delivered, then both sides see the close.
    const finish = () => {
      if (this.queue.length > 0 && !this.peer.gone) return void setImmediate(finish);
      this.fireClose({ code, reason });
      this.peer.remoteClose({ code, reason });
    };
    this.schedule();
    setImmediate(finish);
  }
  terminate(): void {
    this.terminated = true;
    if (this.gone) return;
    this.gone = true;
    this.queue = [];
    this.bufferedBytes = 0;
    setImmediate(() => {
      this.fireClose({ code: CUT_CODE, reason: '', cut: true });
      this.peer.remoteClose({ code: CUT_CODE, reason: '', cut: true });
    });
  }

  private remoteClose(info: TransportClose): void {
    if (this.gone) {
      this.fireClose(info);
      return;
    }
    this.gone = true;
    this.queue = [];
    this.bufferedBytes = 0;
    this.fireClose(info);
  }

  private closedFired = false;
  private fireClose(info: TransportClose): void {
    if (this.closedFired) return;
    this.closedFired = true;
    for (const cb of this.closeCbs) cb(info);
  }

  private enqueue(msg: Buffer, raw: boolean): void {
    this.queue.push({ msg, raw });
    this.bufferedBytes += msg.length;
    if (this.bufferedBytes > this.maxBuffered) this.maxBuffered = this.bufferedBytes;
    this.schedule();
  }

  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.stalled || this.peer.paused || this.peer.closedFired) return;
    let budget = this.bytesPerTick;
    while (this.queue.length > 0 && budget > 0) {
      const { msg, raw } = this.queue.shift() as { msg: Buffer; raw: boolean };
      this.bufferedBytes -= msg.length;
      budget -= msg.length;
      let out: Buffer | null = msg;
      if (!raw && this.tap) {
        const r = this.tap(this.dir, msg);
        if (r !== undefined) out = r;
      }
      if (out !== null) this.peer.messageCb?.(out);
      if (this.peer.paused || this.peer.closedFired) break;
    }
    if (this.queue.length > 0) this.schedule();
    else if (this.bufferedBytes === 0) for (const cb of this.drainCbs) cb();
  }

  /** Starts delivery again after `stalled` was set. */
  unstall(): void {
    this.stalled = false;
    this.schedule();
  }
}

export function transportPair(): { client: MemoryTransport; bridge: MemoryTransport } {
  const client = new MemoryTransport('c2b');
  const bridge = new MemoryTransport('b2c');
  client.peer = bridge;
  bridge.peer = client;
  return { client, bridge };
}

/** A pino logger whose JSON lines land in `lines`. */
export function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(l);
      cb();
    },
  });
  return { logger: createLogger({ level: 'debug', pretty: false }, sink), lines };
}

export interface SessionPair {
  client: MuxSession;
  bridge: MuxSession;
  ct: MemoryTransport;
  bt: MemoryTransport;
  /** Every message seen in flight, decoded (tap order). */
  wire: Array<{ dir: Direction; frames: Frame[] }>;
  logs: string[];
  limits: Limits;
}

/** A client and a bridge session over a MemoryTransport pair; all traffic recorded. */
export function sessionPair(over: Partial<Limits> = {}, bridgeOver: Partial<Limits> = {}): SessionPair {
  const limits = defaultLimits(over);
  const { client: ct, bridge: bt } = transportPair();
  const { logger, lines } = captureLogger();
  const wire: SessionPair['wire'] = [];
  const record: Tap = (dir, msg) => {
    try {
      wire.push({ dir, frames: decodeMessage(msg, 1 << 30) });
    } catch {
      wire.push({ dir, frames: [] });
    }
  };
  ct.tap = record;
  bt.tap = record;
  ct.maxMessageBytes = bt.maxMessageBytes = limits.WS_MAX_MESSAGE_BYTES;
  const client = new MuxSession(ct, { role: 'client', limits, logger: logger.child({ side: 'client' }) });
  const bridge = new MuxSession(bt, { role: 'bridge', limits: { ...limits, ...bridgeOver }, logger: logger.child({ side: 'bridge' }) });
  guardStreamErrors(client, bridge);
  return { client, bridge, ct, bt, wire, logs: lines, limits };
}

/**
 * Gives every stream the sessions hand out a no-op 'error' listener, so that streams a test
 * does not watch cannot crash the worker when they are aborted (tests add their own listeners).
 */
function guardStreamErrors(client: MuxSession, bridge: MuxSession): void {
  const noop = () => undefined;
  const open = client.open.bind(client);
  client.open = (target, opts) =>
    open(target, opts).then((s) => {
      s.on('error', noop);
      return s;
    });
  const openEarly = client.openEarly.bind(client);
  client.openEarly = (target) => openEarly(target).on('error', noop);
  bridge.prependListener('open', (inc) => {
    const accept = inc.accept.bind(inc);
    (inc as { accept: () => ReturnType<typeof accept> }).accept = () => accept().on('error', noop);
  });
}

/** Frames seen in flight in one direction, flattened. */
export function framesSent(p: SessionPair, dir: Direction): Frame[] {
  return p.wire.filter((w) => w.dir === dir).flatMap((w) => w.frames);
}

export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Waits until `cond()` holds, checking every macrotask, for at most `ms`. */
export async function until(cond: () => boolean, ms = 2_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/[\s|]/g, ''), 'hex');
}

/**
 * A sessionPair() factory whose pairs are all closed by the returned `closeAll` (call it from
 * afterEach), so that no test leaves a session and its keepalive timer behind.
 */
export function trackedPairs(): { pair: (...args: Parameters<typeof sessionPair>) => SessionPair; closeAll: () => void } {
  const pairs: SessionPair[] = [];
  return {
    pair: (...args) => {
      const p = sessionPair(...args);
      pairs.push(p);
      return p;
    },
    closeAll: () => {
      for (const p of pairs.splice(0)) {
        p.client.close();
        p.bridge.close();
      }
    },
  };
}

/**
 * A client and a bridge session over ResumableLinks (§9), not yet connected: connect() attaches
 * a fresh MemoryTransport pair (the previous one, if any, is simply replaced). Sessions are pushed
 * onto `track` so the caller can close them after each test.
 */
export function linkedPair(limits: Limits, track: MuxSession[]) {
  const { logger } = captureLogger();
  const cl = new ResumableLink({ limits, logger });
  const bl = new ResumableLink({ limits, logger });
  const client = new MuxSession(cl, { role: 'client', limits, logger, keepalive: false });
  const bridge = new MuxSession(bl, { role: 'bridge', limits, logger, keepalive: false });
  track.push(client, bridge);
  let conns: { client: MemoryTransport; bridge: MemoryTransport } | null = null;
  const connect = () => {
    conns = transportPair();
    cl.attach(conns.client);
    bl.attach(conns.bridge);
    return conns;
  };
  return { cl, bl, client, bridge, connect, current: () => conns };
}
