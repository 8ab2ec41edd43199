import crypto from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultLimits, sendQueueBound } from '../../../src/core/limits.js';
import { encodeFrame } from '../../../src/mux/codec.js';
import { FrameType } from '../../../src/mux/frame.js';
import { KEPT_MESSAGE_OVERHEAD_BYTES, ResumableLink, ResumeFrameType, encodeCountFrame } from '../../../src/mux/resume.js';
import { MuxSession } from '../../../src/mux/session.js';
import type { MuxStream } from '../../../src/mux/stream.js';
import { captureLogger, linkedPair as linkedPairOf, tick, transportPair, until } from './helpers.js';

const limits = defaultLimits({ SESSION_RESUME_TIMEOUT_MS: 2_000, RESUME_ACK_DELAY_MS: 5 });
const open: MuxSession[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

const linkedPair = () => linkedPairOf(limits, open);

/** Echo server on the bridge side: every accepted stream is piped back to itself. */
function echo(bridge: MuxSession): void {
  bridge.on('open', (req) => {
    const s = req.accept();
    s.on('error', () => undefined);
    s.pipe(s);
  });
}

async function roundTrip(stream: MuxStream, data: Buffer, during?: (sentBytes: number) => void): Promise<string> {
  const hash = crypto.createHash('sha256');
  const done = new Promise<void>((resolve, reject) => {
    stream.on('data', (d: Buffer) => hash.update(d));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const CHUNK = 32 * 1024;
  for (let off = 0; off < data.length; off += CHUNK) {
    during?.(off);
    if (!stream.write(data.subarray(off, off + CHUNK))) await new Promise((r) => stream.once('drain', r));
  }
  stream.end();
  await done;
  return hash.digest('hex');
}

const target = { kind: 'ipv4', host: '127.0.0.1', port: 7 } as const;

describe('ResumableLink (protocol.md §9)', () => {
  it('carries streams across repeated connection cuts with no byte lost, duplicated or reordered', async () => {
    const p = linkedPair();
    echo(p.bridge);
    p.connect();
    const data = crypto.randomBytes(4 * 1024 * 1024);
    const want = crypto.createHash('sha256').update(data).digest('hex');
    const streams = await Promise.all([0, 1, 2].map(() => p.client.open(target)));
    let cuts = 0;
    let nextCut = 100_000;
    const during = (off: number) => {
      if (off >= nextCut) {
        nextCut += 300_000;
        cuts++;
        p.current()?.client.terminate();
        setTimeout(() => p.connect(), 5);
      }
    };
    const got = await Promise.all(streams.map((s, i) => roundTrip(s, data, i === 0 ? during : undefined)));
    expect(got).toEqual([want, want, want]);
    expect(cuts).toBeGreaterThan(5);
  }, 30_000);

  it('makes progress on a path that cuts every connection after 12 KB (DATA is re-cut smaller)', async () => {
    const p = linkedPair();
    echo(p.bridge);
    let carried = 0;
    const connect = () => {
      const c = p.connect();
      carried = 0;
      const tap = (_dir: string, m: Buffer) => {
        carried += m.length;
        if (carried > 12 * 1024) {
          setImmediate(() => c.client.terminate());
          return null; // this message and everything after it is lost
        }
        return undefined;
      };
      c.client.tap = tap;
      c.bridge.tap = tap;
      c.client.onClose(() => setTimeout(connect, 1));
    };
    connect();
    const s = await p.client.open(target);
    const data = crypto.randomBytes(512 * 1024);
    expect(await roundTrip(s, data)).toBe(crypto.createHash('sha256').update(data).digest('hex'));
    expect(p.cl.maxPayloadHint).toBeLessThan(64 * 1024);
  }, 30_000);

  it('keeps at most the unacknowledged messages and frees them on ACK', async () => {
    const p = linkedPair();
    echo(p.bridge);
    p.connect();
    const s = await p.client.open(target);
    await roundTrip(s, crypto.randomBytes(1024 * 1024));
    await new Promise((r) => setTimeout(r, 50));
    expect(p.cl.unacknowledged.bytes).toBe(0);
    expect(p.bl.unacknowledged.bytes).toBe(0);
  });

  it('ends the session, resetting its streams, when not resumed in time', async () => {
    const p = linkedPair();
    echo(p.bridge);
    p.connect();
    const s = await p.client.open(target);
    const err = new Promise<Error>((resolve) => s.on('error', resolve));
    s.resume();
    p.current()?.client.terminate();
    await new Promise((r) => setTimeout(r, 100));
    expect(p.cl.state).toBe('detached');
    expect(p.client.closed).toBe(false);
    const started = performance.now();
    expect((await err).message).toMatch(/session closed/);
    expect(performance.now() - started).toBeGreaterThan(1_500);
    expect(p.client.closed).toBe(true);
  }, 10_000);

  it('a RESUME naming messages the peer never sent ends the session (close 4001)', async () => {
    const { logger } = captureLogger();
    const link = new ResumableLink({ limits, logger });
    const closed = new Promise<{ code: number }>((resolve) => link.onClose(resolve));
    const { client, bridge } = transportPair();
    const peerCloses: number[] = [];
    client.onClose(() => undefined);
    bridge.onMessage(() => undefined);
    bridge.onClose((i) => peerCloses.push(i.code));
    link.attach(client);
    bridge.send(encodeCountFrame(ResumeFrameType.RESUME, 5));
    expect((await closed).code).toBe(4001);
  });

  it('§9.3: the bridge sends the resume secret in its first RESUME only; the client keeps it', async () => {
    const { logger } = captureLogger();
    const secret = crypto.randomBytes(32);
    const cl = new ResumableLink({ limits, logger });
    const bl = new ResumableLink({ limits, logger, resumeSecret: secret });
    const client = new MuxSession(cl, { role: 'client', limits, logger, keepalive: false });
    const bridge = new MuxSession(bl, { role: 'bridge', limits, logger, keepalive: false });
    open.push(client, bridge);
    echo(bridge);
    const resumes: number[] = [];
    const connect = () => {
      const t = transportPair();
      const send = t.bridge.send.bind(t.bridge);
      t.bridge.send = (m: Buffer) => {
        if (m[0] === ResumeFrameType.RESUME) resumes.push(m.readUInt32BE(6));
        send(m);
      };
      cl.attach(t.client);
      bl.attach(t.bridge);
      return t;
    };
    const first = connect();
    const s = await client.open(target);
    expect(await roundTrip(s, Buffer.from('one'))).toBe(crypto.createHash('sha256').update('one').digest('hex'));
    expect(cl.resumeSecret?.equals(secret)).toBe(true);
    expect(cl.wasLive).toBe(true);
    first.client.terminate();
    connect();
    const s2 = await client.open(target);
    expect(await roundTrip(s2, Buffer.from('two'))).toBe(crypto.createHash('sha256').update('two').digest('hex'));
    expect(resumes).toEqual([40, 8]);
    expect(bl.resumeSecret).toBeNull(); // the issuer never takes one
  });

  it('§9.3: a secret in a RESUME after the first connection is a protocol error (close 1002)', async () => {
    const { logger } = captureLogger();
    const link = new ResumableLink({ limits, logger });
    const closed = new Promise<{ code: number }>((resolve) => link.onClose(resolve));
    const a = transportPair();
    a.bridge.onMessage(() => undefined);
    a.bridge.onClose(() => undefined);
    link.attach(a.client);
    a.bridge.send(encodeCountFrame(ResumeFrameType.RESUME, 0, crypto.randomBytes(32)));
    await new Promise((r) => setImmediate(r));
    expect(link.resumeSecret).not.toBeNull();
    a.client.terminate();
    const b = transportPair();
    b.bridge.onMessage(() => undefined);
    b.bridge.onClose(() => undefined);
    link.attach(b.client);
    b.bridge.send(encodeCountFrame(ResumeFrameType.RESUME, 0, crypto.randomBytes(32)));
    expect((await closed).code).toBe(1002);
  });

  it('while detached, writers stall (bufferedBytes is Infinity) and the app sees no error', async () => {
    const p = linkedPair();
    echo(p.bridge);
    p.connect();
    const s = await p.client.open(target);
    p.current()?.client.terminate();
    await new Promise((r) => setTimeout(r, 20));
    expect(p.cl.bufferedBytes).toBe(Number.POSITIVE_INFINITY);
    let errored = false;
    s.on('error', () => (errored = true));
    const data = crypto.randomBytes(2 * 1024 * 1024);
    setTimeout(() => p.connect(), 300);
    const got = await roundTrip(s, data);
    expect(got).toBe(crypto.createHash('sha256').update(data).digest('hex'));
    expect(errored).toBe(false);
  });
});

describe('what a peer can make a link keep (protocol.md §9.1, §5.3)', () => {
  const { logger } = captureLogger();
  const reset = (id: number) => encodeFrame({ type: FrameType.RESET, streamId: id, code: 0x08 });
  const data = (id: number, n: number) => encodeFrame({ type: FrameType.DATA, streamId: id, payload: Buffer.alloc(n, 1) });

  /** A link on a MemoryTransport pair whose peer side is driven by hand (RESUME injected). */
  function bare(over: Parameters<typeof defaultLimits>[0] = {}) {
    const l = defaultLimits({ SESSION_RESUME_TIMEOUT_MS: 2_000, ...over });
    const link = new ResumableLink({ limits: l, logger });
    const conns = transportPair();
    const atPeer: Buffer[] = [];
    conns.client.onMessage((m) => atPeer.push(m));
    const closes: Array<{ code: number; reason: string }> = [];
    link.onClose((i) => closes.push(i));
    return { l, link, conns, atPeer, closes };
  }

  it('counts every kept message, control ones too, and cuts off a peer that never ACKs: 1008 "resume buffer full"', async () => {
    const { link, conns, closes } = bare({ SESSION_RESUME_BUFFER_MAX_BYTES: 1024 * 1024, SESSION_RESUME_OVERFLOW_BYTES: 256 * 1024 });
    link.attach(conns.bridge);
    conns.bridge.inject(encodeCountFrame(ResumeFrameType.RESUME, 0));
    await until(() => link.state === 'live', 1_000, 'live');
    // RESETs of 11 bytes: 1.25 MiB of them at 11 + 128 bytes each is about 9,400.
    let n = 0;
    while (closes.length === 0 && n < 20_000) {
      link.send(reset(2 * n + 1));
      n++;
      await null; // the cut-off happens in a microtask after the send that overflows
    }
    await until(() => closes.length > 0, 1_000, 'cut off');
    expect(closes[0]).toEqual({ code: 1008, reason: 'resume buffer full' });
    expect(n).toBe(Math.floor((1024 * 1024 + 256 * 1024) / (11 + KEPT_MESSAGE_OVERHEAD_BYTES)) + 1);
    expect(conns.bridge.closeCalls).toEqual([{ code: 1008, reason: 'resume buffer full' }]);
  });

  it('cuts off a peer that never ACKs as soon as the owner’s budget says so (overBudget)', async () => {
    let over = false;
    const l = defaultLimits();
    const link = new ResumableLink({ limits: l, logger, overBudget: () => over });
    const conns = transportPair();
    conns.client.onMessage(() => undefined);
    const closes: Array<{ code: number; reason: string }> = [];
    link.onClose((i) => closes.push(i));
    link.attach(conns.bridge);
    conns.bridge.inject(encodeCountFrame(ResumeFrameType.RESUME, 0));
    await until(() => link.state === 'live', 1_000, 'live');
    for (let i = 0; i < 3_000; i++) link.send(reset(2 * i + 1)); // ~417 KiB kept, budget not spent
    await tick();
    expect(closes).toEqual([]);
    over = true;
    for (let i = 3_000; i < 6_000 && closes.length === 0; i++) link.send(reset(2 * i + 1));
    await until(() => closes.length > 0, 1_000, 'cut off');
    expect(closes[0]).toEqual({ code: 1008, reason: 'resume buffer full' });
  });

  it('resends kept messages paced by drain, never more than half the send-queue bound at once', async () => {
    const { l, link, conns, atPeer } = bare();
    for (let i = 0; i < 100; i++) link.send(data(1, 64 * 1024)); // 6.4 MiB kept while detached
    conns.bridge.stalled = true;
    link.attach(conns.bridge);
    conns.bridge.inject(encodeCountFrame(ResumeFrameType.RESUME, 0));
    await until(() => link.state === 'live', 1_000, 'live');
    await tick();
    expect(conns.bridge.bufferedBytes).toBeLessThanOrEqual(sendQueueBound(l) / 2 + 64 * 1024 + 10 + 18);
    expect(link.bufferedBytes).toBe(Number.POSITIVE_INFINITY); // writers wait for the resend
    conns.bridge.unstall();
    await until(() => atPeer.filter((m) => m[0] === FrameType.DATA).length === 100, 5_000, 'all resent');
    expect(conns.bridge.maxBuffered).toBeLessThanOrEqual(sendQueueBound(l) / 2 + 64 * 1024 + 10 + 18);
  });

  it('an ACK for more than was put on the connection is a session protocol error', async () => {
    const { link, conns, closes } = bare();
    for (let i = 0; i < 40; i++) link.send(data(1, 64 * 1024));
    conns.bridge.stalled = true;
    link.attach(conns.bridge);
    conns.bridge.inject(encodeCountFrame(ResumeFrameType.RESUME, 0));
    await until(() => link.state === 'live', 1_000, 'live');
    conns.bridge.inject(encodeCountFrame(ResumeFrameType.ACK, 40)); // only ~16 are on the wire
    await until(() => closes.length > 0, 1_000, 'closed');
    expect(closes[0]).toEqual({ code: 1002, reason: 'ACK out of range' });
  });
});
