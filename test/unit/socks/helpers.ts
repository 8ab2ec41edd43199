/** Test doubles for the SOCKS server tests: a byte-queue TCP client and a loopback target. */
import net from 'node:net';
import { Duplex, Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { parseReply, type SocksReplyMessage } from '../../../src/socks/codec.js';

const WAIT_MS = 3_000;

/** An app connection whose received bytes queue up for exact reads. */
export class TestClient {
  #buf = Buffer.alloc(0);
  #ended = false;
  #closed = false;
  #wake: (() => void) | null = null;
  /** Bytes received in total (also when not kept). */
  received = 0;
  /** Keep received bytes for read(); false: only count them (bulk tests). */
  keep = true;
  readonly closedPromise: Promise<void>;

  constructor(readonly sock: net.Socket) {
    sock.on('error', () => {});
    sock.on('data', (c: Buffer) => {
      this.received += c.length;
      if (this.keep) this.#buf = Buffer.concat([this.#buf, c]);
      this.#notify();
    });
    sock.on('end', () => {
      this.#ended = true;
      this.#notify();
    });
    this.closedPromise = new Promise((resolve) =>
      sock.on('close', () => {
        this.#closed = true;
        this.#notify();
        resolve();
      }),
    );
  }

  /** halfOpen: keep our side open after the peer's FIN (default: end it, as most apps do). */
  static async connect(port: number, halfOpen = false): Promise<TestClient> {
    const sock = net.connect({ host: '127.0.0.1', port, allowHalfOpen: halfOpen, noDelay: true });
    const c = new TestClient(sock);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    return c;
  }

  get ended(): boolean {
    return this.#ended;
  }
  get closed(): boolean {
    return this.#closed;
  }
  /** Bytes received and not yet read. */
  get pending(): Buffer {
    return this.#buf;
  }

  write(bytes: Buffer | string): void {
    this.sock.write(bytes);
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  /** Waits (bounded) until cond() holds. */
  async until(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** Exactly n bytes, or throws if the connection ends first or the wait runs out. */
  async read(n: number, ms = WAIT_MS): Promise<Buffer> {
    await this.until(() => this.#buf.length >= n || this.#ended || this.#closed, `${n} bytes`, ms);
    if (this.#buf.length < n) throw new Error(`connection ended after ${this.#buf.length} of ${n} bytes`);
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** One RFC 1928 §6 reply. */
  async readReply(ms = WAIT_MS): Promise<SocksReplyMessage> {
    let r = parseReply(this.#buf);
    await this.until(
      () => {
        r = parseReply(this.#buf);
        return !(!r.ok && 'need' in r) || this.#ended || this.#closed;
      },
      'a SOCKS reply',
      ms,
    );
    if (!r.ok) throw new Error(`no valid reply: ${JSON.stringify(r)}`);
    this.#buf = this.#buf.subarray(r.used);
    return r.value;
  }

  async waitClosed(ms = WAIT_MS): Promise<void> {
    await this.until(() => this.#closed, 'the connection to close', ms);
  }

  async waitEnded(ms = WAIT_MS): Promise<void> {
    await this.until(() => this.#ended || this.#closed, 'end of stream', ms);
  }

  destroy(): void {
    this.sock.destroy();
  }
}

/** A loopback TCP server standing in for the destination; the test drives each accepted socket. */
export class TestTarget {
  readonly server = net.createServer({ allowHalfOpen: true });
  readonly sockets: TestClient[] = [];
  port = 0;

  async start(): Promise<this> {
    this.server.on('connection', (s) => {
      // The accepted socket gets the same byte-queue helper.
      this.sockets.push(new TestClient(s));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  /** A socket connected to this target (what a fake `connect` returns). */
  async dial(): Promise<net.Socket> {
    const s = net.connect({ host: '127.0.0.1', port: this.port, allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    return s;
  }

  async accepted(n = 1): Promise<TestClient> {
    const deadline = Date.now() + WAIT_MS;
    while (this.sockets.length < n) {
      if (Date.now() > deadline) throw new Error('target accepted no connection');
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.sockets[n - 1]!;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Waits (bounded) until cond() holds. */
export async function waitFor(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Two in-process duplex ends: what one writes the other reads (no backpressure; small tests only). */
export function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (i: number) =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        ends[1 - i]!.push(chunk);
        cb();
      },
      final(cb) {
        ends[1 - i]!.push(null);
        cb();
      },
    });
  ends.push(make(0), make(1));
  return [ends[0]!, ends[1]!];
}

/** A pino logger whose JSON lines land in `lines` (debug level). */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[]; text: () => string } {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      cb();
    },
  });
  const logger = pino({ level: 'debug', base: undefined, timestamp: false }, sink);
  return { logger, lines, text: () => raw.join('\n') };
}
