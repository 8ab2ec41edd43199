import crypto from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultLimits } from '../../../src/core/limits.js';
import { ResumableLink, ResumeFrameType, encodeCountFrame } from '../../../src/mux/resume.js';
import { MuxSession } from '../../../src/mux/session.js';
import type { MuxStream } from '../../../src/mux/stream.js';
import { captureLogger, linkedPair as linkedPairOf, transportPair } from './helpers.js';

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
