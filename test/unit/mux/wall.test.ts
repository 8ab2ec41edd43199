import crypto from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultLimits } from '../../../src/core/limits.js';
import { FrameType, HEADER_BYTES } from '../../../src/mux/frame.js';
import { ResumableLink, ResumeFrameType, budgetCharge, type ConnTally } from '../../../src/mux/resume.js';
import { encodeTallyAsk } from '../../../src/mux/tally.js';
import { MuxSession } from '../../../src/mux/session.js';
import { captureLogger, linkedPair, transportPair, until, type MemoryTransport } from './helpers.js';

const limits = defaultLimits({ SESSION_RESUME_TIMEOUT_MS: 5_000, RESUME_ACK_DELAY_MS: 5, DIAL_MIN_INTERVAL_MS: 0 });
const open: MuxSession[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});
const target = { kind: 'ipv4', host: '127.0.0.1', port: 7 } as const;

/** A client and a bridge session over ResumableLinks, not yet connected (the tests attach). */
const pair = () => linkedPair(limits, open);

describe('connection budgets (protocol.md §9.8)', () => {
  /**
   * A download of `data` through a client that sends BUDGET `budget` on each connection and moves
   * on MOVE; the bridge's end of each connection reports `padding` bytes of its own (h2's PADs).
   * Returns what arrived, what each connection carried (charged, padding included) and the DATA bytes sent.
   */
  async function budgetedDownload(data: Buffer, budget: number, padding = 0) {
    const { cl, bl, client, bridge } = pair();
    bridge.on('open', (req) => req.accept().on('error', () => undefined).end(data));
    const perConn: number[] = [];
    let dataBytes = 0;
    const connect = (): void => {
      const conns = transportPair();
      if (padding > 0) Object.defineProperty(conns.bridge, 'paddingBytesSent', { value: padding });
      const i = perConn.push(padding) - 1;
      conns.bridge.tap = (_dir, m) => {
        perConn[i] = (perConn[i] as number) + budgetCharge(m.length);
        if (m[0] === FrameType.DATA) dataBytes += m.readUInt32BE(6);
      };
      cl.attach(conns.client, { budgetBytes: budget });
      bl.attach(conns.bridge);
    };
    cl.on('move', () => setImmediate(connect));
    connect();
    const s = await client.open(target);
    s.on('error', () => undefined);
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    await new Promise((r) => s.on('end', r));
    return { got: Buffer.concat(got), perConn, dataBytes, bl };
  }

  it('holds session messages past the BUDGET, says MOVE, and after each move resends nothing', async () => {
    const budget = 8 * 1024;
    const data = crypto.randomBytes(256 * 1024);
    const { got, perConn, dataBytes, bl } = await budgetedDownload(data, budget);
    expect(crypto.createHash('sha256').update(got).digest('hex')).toBe(crypto.createHash('sha256').update(data).digest('hex'));
    expect(perConn.length).toBeGreaterThan(256 / 8);
    for (const charged of perConn) expect(charged).toBeLessThanOrEqual(budget);
    // Every DATA byte crossed exactly once.
    expect(dataBytes).toBe(data.length);
    expect(bl.maxPayloadHint).toBeLessThanOrEqual(budget / 8);
  });

  it('charges the padding a transport sends (h2 PAD records, §12.5) against the budget', async () => {
    const budget = 8 * 1024;
    const data = crypto.randomBytes(64 * 1024);
    // The bridge's end of each connection says it put 3 KiB of its own on it.
    const { got, perConn } = await budgetedDownload(data, budget, 3 * 1024);
    expect(got.equals(data)).toBe(true);
    // Without the padding counted, each connection would carry up to the whole budget in messages.
    for (const charged of perConn) expect(charged).toBeLessThanOrEqual(budget);
    expect(perConn.length).toBeGreaterThan(64 / 5);
  });

  it('under a wall counting both ways, keeps each connection within both shares: an echo moves before the wall, nothing crosses twice', async () => {
    const { cl, bl, client, bridge } = pair();
    const down = 6 * 1024;
    const up = 6 * 1024;
    const data = crypto.randomBytes(128 * 1024);
    bridge.on('open', (req) => {
      const s = req.accept().on('error', () => undefined);
      s.pipe(s);
    });
    const perConn: Array<{ c2b: number; b2c: number }> = [];
    const dataBytes = { c2b: 0, b2c: 0 };
    let moves = 0;
    const connect = (): void => {
      const conns = transportPair();
      const i = perConn.push({ c2b: 0, b2c: 0 }) - 1;
      conns.bridge.tap = conns.client.tap = (dir, m) => {
        (perConn[i] as { c2b: number; b2c: number })[dir as 'c2b' | 'b2c'] += budgetCharge(m.length);
        if (m[0] === FrameType.DATA) dataBytes[dir as 'c2b' | 'b2c'] += m.readUInt32BE(6);
      };
      cl.attach(conns.client, { budgetBytes: down, sendBudgetBytes: up });
      bl.attach(conns.bridge);
    };
    cl.on('move', () => {
      moves++;
      setImmediate(connect);
    });
    connect();
    const s = await client.open(target);
    s.on('error', () => undefined);
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.end(data);
    await new Promise((r) => s.on('end', r));
    expect(crypto.createHash('sha256').update(Buffer.concat(got)).digest('hex')).toBe(crypto.createHash('sha256').update(data).digest('hex'));
    // 256 KiB both ways in 12 KiB connections: about 22; a move per connection, each within its shares.
    expect(perConn.length).toBeGreaterThan(256 / 12);
    expect(perConn.length).toBeLessThan((2 * 256) / 12);
    expect(moves).toBe(perConn.length - 1);
    for (const c of perConn) {
      expect(c.c2b).toBeLessThanOrEqual(up);
      expect(c.b2c).toBeLessThanOrEqual(down);
    }
    // Every DATA byte crossed exactly once each way: the bridge stops at the client's MOVE.
    expect(dataBytes).toEqual({ c2b: data.length, b2c: data.length });
  });

  it('refuses a BUDGET after RESUME (session protocol error)', async () => {
    const { logger } = captureLogger();
    const bl = new ResumableLink({ limits, logger });
    const closed = new Promise<{ code: number }>((r) => bl.onClose(r));
    const conns = transportPair();
    bl.attach(conns.bridge);
    const count = (type: number, n: number): Buffer => {
      const b = Buffer.alloc(HEADER_BYTES + 8);
      b[0] = type;
      b.writeUInt32BE(8, 6);
      b.writeBigUInt64BE(BigInt(n), HEADER_BYTES);
      return b;
    };
    conns.bridge.inject(count(ResumeFrameType.RESUME, 0));
    conns.bridge.inject(count(ResumeFrameType.BUDGET, 9_000));
    expect((await closed).code).toBe(1002);
  });
});

describe('TALLY: what the bridge counted on the client\'s previous connection (protocol.md §9.8.1)', () => {
  /** A client link and a bridge link (the one that issues the resume secret) over MemoryTransports. */
  function tallyPair() {
    const { logger } = captureLogger();
    const cl = new ResumableLink({ limits, logger });
    const bl = new ResumableLink({ limits, logger, resumeSecret: crypto.randomBytes(32) });
    const client = new MuxSession(cl, { role: 'client', limits, logger, keepalive: false });
    const bridge = new MuxSession(bl, { role: 'bridge', limits, logger, keepalive: false });
    open.push(client, bridge);
    /** A new connection; the bridge's end reports these TCP counts. */
    const connect = (wire: { read: number; written: number }) => {
      const conns = transportPair();
      Object.defineProperty(conns.bridge, 'wireBytesRead', { get: () => wire.read });
      Object.defineProperty(conns.bridge, 'wireBytesWritten', { get: () => wire.written });
      cl.attach(conns.client, { tally: true });
      bl.attach(conns.bridge);
      return conns;
    };
    return { cl, bl, client, bridge, connect };
  }

  it('after a cut, the client learns what the bridge read and wrote on the connection before, and its held messages then flow', async () => {
    const { cl, bridge, client, connect } = tallyPair();
    bridge.on('open', (req) => {
      const s = req.accept().on('error', () => undefined);
      s.pipe(s);
    });
    const tallies: ConnTally[] = [];
    cl.on('tally', (t) => tallies.push(t));
    const first = connect({ read: 70_000, written: 1_234 });
    const s = await client.open(target);
    s.on('error', () => undefined);
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    // The first connection asks nothing back (number 0).
    await until(() => cl.state === 'live', 1_000, 'live');
    expect(tallies).toEqual([]);
    first.client.terminate(); // a cut
    await until(() => cl.state === 'detached', 1_000, 'detached');
    s.write(Buffer.from('held until the TALLY'));
    connect({ read: 0, written: 0 });
    await until(() => tallies.length === 1, 2_000, 'tally');
    expect(tallies[0]).toEqual({ sentBytes: 1_234, receivedBytes: 70_000 });
    await until(() => Buffer.concat(got).toString() === 'held until the TALLY', 2_000, 'echo');
  });

  it('says unknown for a connection the bridge never heard numbered', async () => {
    const { cl, bl, connect } = tallyPair();
    const tallies: ConnTally[] = [];
    cl.on('tally', (t) => tallies.push(t));
    const first = connect({ read: 5, written: 6 });
    await until(() => cl.state === 'live', 1_000, 'live');
    // The client's second connection: the bridge never saw a TALLY 1, so of connection 1 it knows nothing.
    first.client.terminate();
    await until(() => cl.state === 'detached' && bl.state === 'detached', 1_000, 'detached');
    const second = transportPair();
    cl.attach(second.client, { tally: false });
    bl.attach(second.bridge);
    await until(() => cl.state === 'live', 1_000, 'live');
    second.client.terminate();
    await until(() => cl.state === 'detached', 1_000, 'detached');
    connect({ read: 0, written: 0 });
    await until(() => tallies.length === 1, 2_000, 'tally');
    expect(tallies[0]).toEqual({ sentBytes: null, receivedBytes: null });
  });

  it('refuses a TALLY after the client\'s RESUME (session protocol error)', async () => {
    const { logger } = captureLogger();
    const bl = new ResumableLink({ limits, logger, resumeSecret: crypto.randomBytes(32) });
    const closed = new Promise<{ code: number }>((r) => bl.onClose(r));
    const conns = transportPair();
    bl.attach(conns.bridge);
    const resume = Buffer.alloc(HEADER_BYTES + 8);
    resume[0] = ResumeFrameType.RESUME;
    resume.writeUInt32BE(8, 6);
    conns.bridge.inject(resume);
    conns.bridge.inject(encodeTallyAsk(1));
    expect((await closed).code).toBe(1002);
  });
});

describe('frozen connections (protocol.md §9.7)', () => {
  function live() {
    const p = pair();
    const conns = transportPair();
    p.cl.attach(conns.client);
    p.bl.attach(conns.bridge);
    return { ...p, conns };
  }

  it('drops a connection within the freeze timeout when bytes are owed and nothing arrives', async () => {
    const { cl, client, bridge, conns } = live();
    bridge.on('open', (req) => req.accept().on('error', () => undefined).resume());
    const s = await client.open(target);
    s.on('error', () => undefined);
    await until(() => cl.rttMs !== null, 2_000, 'first RTT sample');
    (conns.bridge as MemoryTransport).stalled = true; // bridge→client bytes stop: the wall
    const frozen = new Promise<number>((r) => cl.once('frozen', r));
    const t0 = performance.now();
    s.write(Buffer.alloc(1000)); // a session message the bridge now owes an ACK for
    const silent = await frozen;
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeLessThan(limits.FREEZE_MIN_MS + limits.RESUME_ACK_DELAY_MS + 300);
    expect(silent).toBeGreaterThanOrEqual(limits.FREEZE_MIN_MS);
    await until(() => cl.state === 'detached', 1_000, 'detached');
  });

  it('notices a download that froze mid-way through a probe PING', async () => {
    const { cl, client, bridge, conns } = live();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    bridge.on('open', (req) => {
      const st = req.accept();
      st.on('error', () => undefined);
      st.write(Buffer.alloc(4000));
      void gate.then(() => st.write(Buffer.alloc(4000)));
    });
    const s = await client.open(target);
    s.on('error', () => undefined);
    s.resume();
    await until(() => cl.rttMs !== null, 2_000, 'first RTT sample');
    await new Promise((r) => setTimeout(r, 50)); // everything owed was answered
    (conns.bridge as MemoryTransport).stalled = true;
    const frozen = new Promise<number>((r) => cl.once('frozen', r));
    const t0 = performance.now();
    release();
    await frozen;
    expect(performance.now() - t0).toBeLessThan(1_500);
    await until(() => cl.state === 'detached', 1_000, 'detached');
  });

  it('leaves an idle connection alone: no probe loop, no drop', async () => {
    const { cl, conns } = live();
    let frozen = false;
    cl.on('frozen', () => (frozen = true));
    await new Promise((r) => setTimeout(r, 300));
    let sent = 0;
    (conns.client as MemoryTransport).tap = () => {
      sent++;
    };
    await new Promise((r) => setTimeout(r, 800));
    expect(frozen).toBe(false);
    expect(cl.state).toBe('live');
    expect(sent).toBe(0); // nothing after the handshake's RESUME and first probe
  });
});
