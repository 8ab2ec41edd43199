/**
 * SOCKS5 UDP ASSOCIATE (RFC 1928 §7, issue 5), end to end with the built binary on loopback:
 * an app (a small SOCKS5 UDP client written here with net + dgram) → `postern client` (mixed port)
 * → tunnel → `postern bridge` (--allow-private) → UDP echo servers on 127.0.0.1 and ::1.
 *
 * The SOCKS UDP header is written and read here by hand (not with src/socks/udp.ts), so that a
 * codec bug cannot hide itself.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { rewriteConfig } from '../helpers/bridge-config.js';
import { getText, sample } from '../helpers/metrics.js';
import { stopAll, type Postern } from '../helpers/proc.js';
import { echoServer, udpEchoServer, type Local, type LocalUdp } from '../helpers/servers.js';
import { connectRaw, ipv4Request, readN, socksConnect } from '../helpers/socks.js';
import { init, startBridge, startClient, withPort } from '../helpers/stack.js';

/** A name only the bridge's `hosts` table knows (under .invalid: never resolvable by DNS). */
const ECHO_NAME = 'udp-echo.invalid';

let echo4: LocalUdp;
let echo6: LocalUdp;
let tcpEcho: Local<net.Server>;
let bridge: Postern;
let client: Postern;
let socksPort: number;
let adminPort: number;
const open: UdpAssoc[] = [];

beforeAll(async () => {
  [echo4, echo6, tcpEcho] = await Promise.all([udpEchoServer('127.0.0.1'), udpEchoServer('::1'), echoServer('127.0.0.1')]);
  const { uri: initUri, config } = await init();
  rewriteConfig(config, (c) => {
    c.hosts = { [ECHO_NAME]: ['127.0.0.1'] };
    c.admin = { listen: '127.0.0.1:0' };
  });
  const b = await startBridge(config, ['--allow-private']);
  bridge = b.bridge;
  adminPort = (await bridge.waitFor((l) => l.msg === 'listening' && l.role === 'admin', 10_000, 'admin listening')).port as number;
  const c = await startClient(withPort(initUri, b.port));
  client = c.client;
  socksPort = c.port;
  await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
});

afterEach(() => {
  for (const a of open.splice(0)) a.close();
});

afterAll(async () => {
  await stopAll();
  await Promise.all([echo4?.close(), echo6?.close(), tcpEcho?.close()]);
});

// ── A small SOCKS5 UDP client (RFC 1928 §4, §6, §7) ──────────────────────────

type Dest = { kind: 'ipv4' | 'ipv6' | 'domain'; host: string; port: number };

/** RSV RSV FRAG ATYP DST.ADDR DST.PORT, written by hand. */
function udpHeader(d: Dest, frag = 0): Buffer {
  const port = [d.port >> 8, d.port & 0xff];
  if (d.kind === 'ipv4') return Buffer.from([0, 0, frag, 1, ...d.host.split('.').map(Number), ...port]);
  if (d.kind === 'ipv6') {
    if (d.host !== '::1') throw new Error('this test client writes only ::1');
    return Buffer.from([0, 0, frag, 4, ...new Array(15).fill(0), 1, ...port]);
  }
  const name = Buffer.from(d.host, 'ascii');
  return Buffer.concat([Buffer.from([0, 0, frag, 3, name.length]), name, Buffer.from(port)]);
}

interface Reply {
  /** '127.0.0.1' or '::1' (the only sources here), else the raw address bytes in hex. */
  host: string;
  port: number;
  data: Buffer;
}

/** A reply datagram from the relay: the source's header, then the payload. */
function parseUdp(msg: Buffer): Reply {
  if (msg[0] !== 0 || msg[1] !== 0 || msg[2] !== 0) throw new Error(`bad RSV/FRAG in a reply: ${msg.subarray(0, 3).toString('hex')}`);
  if (msg[3] === 1) return { host: [...msg.subarray(4, 8)].join('.'), port: msg.readUInt16BE(8), data: msg.subarray(10) };
  if (msg[3] === 4) {
    const a = msg.subarray(4, 20);
    const host = a.equals(Buffer.from([...new Array(15).fill(0), 1])) ? '::1' : a.toString('hex');
    return { host, port: msg.readUInt16BE(20), data: msg.subarray(22) };
  }
  throw new Error(`unexpected ATYP ${msg[3]} in a reply`);
}

class UdpAssoc {
  readonly replies: Reply[] = [];
  #wake: (() => void) | null = null;
  controlClosed = false;

  private constructor(
    readonly control: net.Socket,
    readonly relayPort: number,
    readonly sock: dgram.Socket,
  ) {
    control.on('close', () => (this.controlClosed = true));
    sock.on('message', (m) => {
      this.replies.push(parseUdp(m));
      const w = this.#wake;
      this.#wake = null;
      w?.();
    });
  }

  /** Greeting + UDP ASSOCIATE 0.0.0.0:0 on the mixed port; a UDP socket on 127.0.0.1 to talk to the relay. */
  static async open(): Promise<UdpAssoc> {
    const control = await connectRaw(socksPort);
    control.on('error', () => undefined);
    control.write(Buffer.concat([Buffer.from([5, 1, 0]), ipv4Request('0.0.0.0', 0, 3)]));
    expect([...(await readN(control, 2))]).toEqual([5, 0]);
    const head = await readN(control, 4);
    expect(head[1], 'UDP ASSOCIATE reply code').toBe(0);
    expect(head[3], 'BND.ADDR type (the control connection came over IPv4)').toBe(1);
    const bnd = await readN(control, 6);
    expect([...bnd.subarray(0, 4)].join('.')).toBe('127.0.0.1');
    control.resume(); // nothing more comes; see the close
    const sock = await boundSocket();
    const a = new UdpAssoc(control, bnd.readUInt16BE(4), sock);
    open.push(a);
    return a;
  }

  send(d: Dest, data: Buffer, frag = 0): void {
    this.sendRaw(Buffer.concat([udpHeader(d, frag), data]));
  }

  sendRaw(bytes: Buffer): void {
    this.sock.send(bytes, this.relayPort, '127.0.0.1');
  }

  /** Waits (bounded) until `n` replies in total have arrived; false on timeout. */
  async waitReplies(n: number, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (this.replies.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return true;
  }

  close(): void {
    this.control.destroy();
    try {
      this.sock.close();
    } catch {
      // already closed
    }
  }
}

async function boundSocket(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  s.on('error', () => undefined);
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The bridge's admin /metrics. */
const metrics = (): Promise<string> => getText(adminPort, '/metrics');
async function waitForGauge(name: string, value: number, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = sample(await metrics(), name);
    if (v === value) return;
    if (Date.now() > deadline) throw new Error(`${name} stayed at ${v}, expected ${value}`);
    await sleep(50);
  }
}

/** Deterministic payload for size `n`: every datagram size used once, so the size names the datagram. */
function payload(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let j = 0; j < n; j++) b[j] = (n * 31 + j * 7) & 0xff;
  return b;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

// ── Tests ────────────────────────────────────────────────────────────────────

describe('SOCKS5 UDP ASSOCIATE through postern, end to end', () => {
  it('echoes a datagram to an IPv4 target, with the source in the reply header', async () => {
    const a = await UdpAssoc.open();
    a.send({ kind: 'ipv4', host: '127.0.0.1', port: echo4.port }, Buffer.from('hello over udp4'));
    expect(await a.waitReplies(1, 5_000)).toBe(true);
    expect(a.replies[0]).toEqual({ host: '127.0.0.1', port: echo4.port, data: Buffer.from('hello over udp4') });
  });

  it('echoes a datagram to an IPv6 target [::1]', async () => {
    const a = await UdpAssoc.open();
    a.send({ kind: 'ipv6', host: '::1', port: echo6.port }, Buffer.from('hello over udp6'));
    expect(await a.waitReplies(1, 5_000)).toBe(true);
    expect(a.replies[0]).toEqual({ host: '::1', port: echo6.port, data: Buffer.from('hello over udp6') });
    expect(echo6.saw('hello over udp6')).toBe(true);
  });

  it('echoes a datagram to a domain target, resolved at the bridge only (hosts table)', async () => {
    const a = await UdpAssoc.open();
    a.send({ kind: 'domain', host: ECHO_NAME, port: echo4.port }, Buffer.from('hello by name'));
    expect(await a.waitReplies(1, 5_000)).toBe(true);
    expect(a.replies[0]).toEqual({ host: '127.0.0.1', port: echo4.port, data: Buffer.from('hello by name') });
  });

  it('carries 1,400 datagrams of every size from 1 to 1,400 bytes intact (loss reported, ≤ 0.5 %)', async () => {
    const a = await UdpAssoc.open();
    const dest: Dest = { kind: 'ipv4', host: '127.0.0.1', port: echo4.port };
    // Each size once, in a shuffled order; paced in windows of 50 so that no socket buffer overflows.
    const sizes = Array.from({ length: 1_400 }, (_, i) => i + 1);
    for (let i = sizes.length - 1; i > 0; i--) {
      const j = (i * 7_919 + 13) % (i + 1);
      [sizes[i], sizes[j]] = [sizes[j]!, sizes[i]!];
    }
    const t0 = performance.now();
    const WINDOW = 50;
    for (let off = 0; off < sizes.length; off += WINDOW) {
      const batch = sizes.slice(off, off + WINDOW);
      for (const n of batch) a.send(dest, payload(n));
      await a.waitReplies(off + batch.length, 2_000);
    }
    await a.waitReplies(sizes.length, 1_000);
    const ms = performance.now() - t0;
    const got = new Map<number, number>();
    let corrupt = 0;
    for (const r of a.replies) {
      expect(r.host).toBe('127.0.0.1');
      expect(r.port).toBe(echo4.port);
      if (!r.data.equals(payload(r.data.length))) corrupt++;
      got.set(r.data.length, (got.get(r.data.length) ?? 0) + 1);
    }
    const lost = sizes.filter((n) => !got.has(n)).length;
    const duplicated = [...got.values()].filter((c) => c > 1).length;
    console.log(`[udp] 1,400 datagrams (1..1,400 B): received ${a.replies.length}, lost ${lost}, corrupt ${corrupt}, duplicated ${duplicated}, ${ms.toFixed(0)} ms`);
    expect(corrupt).toBe(0);
    expect(duplicated).toBe(0);
    expect(lost).toBeLessThanOrEqual(7);
    expect(a.replies.length).toBe(sizes.length - lost);
  });

  it('carries a call-like flow (50 datagrams/s for 10 s) beside a bulk TCP stream on the same tunnel: loss and latency', async () => {
    const a = await UdpAssoc.open();
    const dest: Dest = { kind: 'ipv4', host: '127.0.0.1', port: echo4.port };
    const COUNT = 500;
    const INTERVAL_MS = 20;
    const SIZE = 172; // about an Opus voice frame with RTP headers

    // Bulk: SOCKS CONNECT to a TCP echo server, pushing 256 KiB writes (with backpressure) for the whole call.
    const { socket: bulk, reply } = await socksConnect(socksPort, ipv4Request('127.0.0.1', tcpEcho.port));
    expect(reply).toBe(0);
    let bulkUp = 0;
    let bulkDown = 0;
    bulk.on('data', (d: Buffer) => (bulkDown += d.length));
    bulk.on('error', () => undefined);
    bulk.resume();
    const chunk = Buffer.alloc(256 * 1024, 0x5a);
    const BULK_CAP = 1024 * 1024 * 1024;
    let calling = true;
    const pump = (async () => {
      while (calling && bulkUp < BULK_CAP) {
        bulkUp += chunk.length;
        if (!bulk.write(chunk)) await new Promise((r) => bulk.once('drain', r));
      }
    })();
    await sleep(300); // the bulk stream is at full speed before the call starts

    const sentAt = new Float64Array(COUNT);
    const latency: number[] = [];
    const seen = new Set<number>();
    a.sock.on('message', (m) => {
      const r = parseUdp(m);
      const seq = r.data.readUInt32BE(0);
      if (seq < COUNT && !seen.has(seq) && r.data.length === SIZE) {
        seen.add(seq);
        latency.push(performance.now() - r.data.readDoubleBE(4));
      }
    });
    const start = performance.now();
    for (let seq = 0; seq < COUNT; seq++) {
      // Paced against the start time, so that a late timer does not stretch the call.
      const due = start + seq * INTERVAL_MS;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const d = Buffer.alloc(SIZE, seq & 0xff);
      d.writeUInt32BE(seq, 0);
      sentAt[seq] = performance.now();
      d.writeDoubleBE(sentAt[seq]!, 4);
      a.send(dest, d);
    }
    const callMs = performance.now() - start;
    await a.waitReplies(COUNT, 1_000);
    calling = false;
    await pump;
    const bulkMiB = (bulkUp + bulkDown) / (1024 * 1024);
    bulk.destroy();

    const sorted = [...latency].sort((x, y) => x - y);
    const lost = COUNT - seen.size;
    const lossPct = (100 * lost) / COUNT;
    const med = quantile(sorted, 0.5);
    const p99 = quantile(sorted, 0.99);
    const max = sorted[sorted.length - 1]!;
    console.log(
      `[udp] call: ${COUNT} datagrams of ${SIZE} B every ${INTERVAL_MS} ms over ${(callMs / 1000).toFixed(1)} s with ${bulkMiB.toFixed(0)} MiB of bulk TCP (both ways) on the tunnel: ` +
        `lost ${lost} (${lossPct.toFixed(1)} %), latency median ${med.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms`,
    );
    expect(bulkMiB).toBeGreaterThan(20); // the bulk stream really ran
    expect(lossPct).toBeLessThanOrEqual(5);
    expect(med).toBeLessThan(200);
    expect(p99).toBeLessThan(1_000);
  }, 40_000);

  it('drops a datagram from a stranger (another source port after the pin): the echo server never sees it', async () => {
    const a = await UdpAssoc.open();
    const dest: Dest = { kind: 'ipv4', host: '127.0.0.1', port: echo4.port };
    a.send(dest, Buffer.from('pin-me'));
    expect(await a.waitReplies(1, 5_000)).toBe(true);
    const stranger = await boundSocket();
    const strangerGot: Buffer[] = [];
    stranger.on('message', (m) => strangerGot.push(m));
    const marker = `stranger-${process.pid}-${Date.now()}`;
    for (let i = 0; i < 3; i++) stranger.send(Buffer.concat([udpHeader(dest), Buffer.from(marker)]), a.relayPort, '127.0.0.1');
    // The rightful app still works, after the stranger's datagrams (UDP on loopback keeps order per socket pair).
    a.send(dest, Buffer.from('still-mine'));
    expect(await a.waitReplies(2, 5_000)).toBe(true);
    await sleep(300);
    expect(echo4.saw(marker)).toBe(false);
    expect(strangerGot).toEqual([]);
    expect(a.replies.map((r) => r.data.toString())).toEqual(['pin-me', 'still-mine']);
    stranger.close();
  });

  it('ends the association with its TCP control connection: bridge side released, relay port closed', async () => {
    await waitForGauge('postern_udp_associations', 0);
    const a = await UdpAssoc.open();
    const dest: Dest = { kind: 'ipv4', host: '127.0.0.1', port: echo4.port };
    a.send(dest, Buffer.from('before-close'));
    expect(await a.waitReplies(1, 5_000)).toBe(true);
    expect(sample(await metrics(), 'postern_udp_associations')).toBe(1);
    a.control.destroy();
    await waitForGauge('postern_udp_associations', 0);
    // The relay port is closed: on a connected socket, the ICMP port unreachable that the first
    // datagram draws surfaces as ECONNREFUSED on a later send (Linux).
    const marker = `after-close-${process.pid}-${Date.now()}`;
    const probe = dgram.createSocket('udp4');
    let outcome = 'silence';
    probe.on('error', (e: NodeJS.ErrnoException) => (outcome = e.code ?? 'error'));
    probe.on('message', () => (outcome = 'echo'));
    await new Promise<void>((resolve) => probe.connect(a.relayPort, '127.0.0.1', resolve));
    for (let i = 0; i < 10 && outcome === 'silence'; i++) {
      try {
        probe.send(Buffer.concat([udpHeader(dest), Buffer.from(marker)]), (err) => {
          if (err) outcome = (err as NodeJS.ErrnoException).code ?? 'error';
        });
      } catch {
        break; // the socket was closed by its error
      }
      await sleep(100);
    }
    expect(outcome).toBe('ECONNREFUSED');
    try {
      probe.close();
    } catch {
      // closed by the error
    }
    await sleep(200);
    expect(echo4.saw(marker)).toBe(false);
  });

  it('discards what the app sends on the control connection and keeps the association', async () => {
    const a = await UdpAssoc.open();
    a.control.write(Buffer.alloc(64 * 1024, 0x41));
    const dest: Dest = { kind: 'ipv4', host: '127.0.0.1', port: echo4.port };
    a.send(dest, Buffer.from('after-junk'));
    expect(await a.waitReplies(1, 5_000)).toBe(true);
    expect(a.controlClosed).toBe(false);
  });

  it('drops FRAG ≠ 0 and malformed headers, and keeps serving', async () => {
    const a = await UdpAssoc.open();
    const dest: Dest = { kind: 'ipv4', host: '127.0.0.1', port: echo4.port };
    const marker = (what: string) => Buffer.from(`${what}-${process.pid}-${Date.now()}`);
    const frag1 = marker('frag1');
    const frag81 = marker('frag81');
    const rsv = marker('rsv');
    const atyp = marker('atyp');
    a.send(dest, Buffer.from('pin'));
    expect(await a.waitReplies(1, 5_000)).toBe(true);
    a.send(dest, frag1, 1);
    a.send(dest, frag81, 0x81);
    a.sendRaw(Buffer.concat([Buffer.from([1, 0, 0, 1, 127, 0, 0, 1, echo4.port >> 8, echo4.port & 255]), rsv]));
    a.sendRaw(Buffer.concat([Buffer.from([0, 0, 0, 9, 127, 0, 0, 1, echo4.port >> 8, echo4.port & 255]), atyp]));
    a.sendRaw(Buffer.from([0, 0, 0, 1, 127, 0])); // truncated
    a.sendRaw(Buffer.from([0, 0, 0, 3, 0, 0, 7])); // empty domain
    a.sendRaw(Buffer.alloc(0));
    a.send(dest, Buffer.from('valid-after-junk'));
    expect(await a.waitReplies(2, 5_000)).toBe(true);
    await sleep(300);
    expect(a.replies.map((r) => r.data.toString())).toEqual(['pin', 'valid-after-junk']);
    for (const m of [frag1, frag81, rsv, atyp]) expect(echo4.saw(m)).toBe(false);
    expect(client.child.exitCode).toBeNull();
    expect(bridge.child.exitCode).toBeNull();
    // A fresh association and a TCP stream still work.
    const b = await UdpAssoc.open();
    b.send(dest, Buffer.from('fresh'));
    expect(await b.waitReplies(1, 5_000)).toBe(true);
    const t = await socksConnect(socksPort, ipv4Request('127.0.0.1', tcpEcho.port));
    expect(t.reply).toBe(0);
    t.socket.write('tcp-ok');
    expect((await readN(t.socket, 6)).toString()).toBe('tcp-ok');
    t.socket.destroy();
  });
});
