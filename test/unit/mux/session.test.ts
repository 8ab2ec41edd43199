import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Target } from '../../../src/core/address.js';
import { PosternError, WireCode } from '../../../src/core/errors.js';
import { encodeFrame } from '../../../src/mux/codec.js';
import { FrameType, type Frame } from '../../../src/mux/frame.js';
import type { IncomingOpen, MuxSession } from '../../../src/mux/session.js';
import type { MuxStream } from '../../../src/mux/stream.js';
import { framesSent, hex, sessionPair, tick, trackedPairs, until, type SessionPair } from './helpers.js';

const T: Target = { kind: 'domain', host: 'example.com', port: 443 };

const { pair, closeAll } = trackedPairs();
afterEach(closeAll);

/** Bridge accepts every stream and echoes it back (half-close passes through). */
function echo(bridge: MuxSession): MuxStream[] {
  const accepted: MuxStream[] = [];
  bridge.on('open', (inc) => {
    const s = inc.accept();
    accepted.push(s);
    s.on('error', () => undefined);
    s.pipe(s);
  });
  return accepted;
}

interface Outcome {
  data: Buffer;
  how: 'end' | 'error';
  err?: Error;
}
function outcome(s: Duplex): Promise<Outcome> {
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    s.on('data', (d: Buffer) => chunks.push(d));
    s.once('end', () => resolve({ data: Buffer.concat(chunks), how: 'end' }));
    s.once('error', (err) => resolve({ data: Buffer.concat(chunks), how: 'error', err }));
  });
}
function nextOpen(bridge: MuxSession): Promise<IncomingOpen> {
  return new Promise((r) => bridge.once('open', r));
}
/** Opens a stream and accepts it at the bridge: [client end, bridge end]. */
async function openPair(p: SessionPair): Promise<[MuxStream, MuxStream]> {
  const opened = nextOpen(p.bridge);
  const pending = p.client.open(T);
  const b = (await opened).accept();
  return [await pending, b];
}
function codeOf(err: unknown): string | undefined {
  return (err as PosternError | undefined)?.code;
}
const ofType = <K extends Frame['type']>(frames: Frame[], type: K) => frames.filter((f): f is Extract<Frame, { type: K }> => f.type === type);

describe('opening streams (protocol.md §5.1)', () => {
  it('§5.1: a client opens a stream, the bridge accepts it, and data flows both ways', async () => {
    const p = pair();
    const opened = nextOpen(p.bridge);
    const pending = p.client.open(T);
    const inc = await opened;
    expect(inc.streamId).toBe(1);
    expect(inc.target).toEqual(T);
    const b = inc.accept();
    const c = await pending;
    expect(c.id).toBe(1);
    expect(c.state).toBe('open');
    const atBridge = outcome(b);
    const atClient = outcome(c);
    c.end('ping from app');
    b.end('pong from destination');
    expect((await atBridge).data.toString()).toBe('ping from app');
    expect((await atClient).data.toString()).toBe('pong from destination');
    await until(() => p.client.streamCount === 0 && p.bridge.streamCount === 0, 2_000, 'streams to close');
    expect(c.state).toBe('closed');
    expect(b.state).toBe('closed');
  });

  it('§5.1: stream ids are odd, start at 1 and increase; OPEN carries our window (§5.3)', async () => {
    const p = pair();
    echo(p.bridge);
    const streams = await Promise.all([p.client.open(T), p.client.open(T), p.client.open(T)]);
    expect(streams.map((s) => s.id)).toEqual([1, 3, 5]);
    const opens = ofType(framesSent(p, 'c2b'), FrameType.OPEN);
    expect(opens.map((f) => [f.streamId, f.window, f.cmd])).toEqual([
      [1, p.limits.STREAM_WINDOW_BYTES, 1],
      [3, p.limits.STREAM_WINDOW_BYTES, 1],
      [5, p.limits.STREAM_WINDOW_BYTES, 1],
    ]);
    const results = ofType(framesSent(p, 'b2c'), FrameType.OPEN_RESULT);
    expect(results.every((f) => f.code === 0 && f.window === p.limits.STREAM_WINDOW_BYTES)).toBe(true);
  });

  it.each([
    ['E_CONN_REFUSED', 0x05],
    ['E_NOT_ALLOWED', 0x02],
    ['E_DNS', 0x07],
    ['E_TIMEOUT', 0x06],
    ['E_NET_UNREACHABLE', 0x03],
  ] as const)('§6: a bridge rejecting with %s sends OPEN_RESULT 0x%s and window 0; the opener gets the same error', async (code, wire) => {
    const p = pair();
    p.bridge.on('open', (inc) => inc.reject(new PosternError(code)));
    await expect(p.client.open(T)).rejects.toMatchObject({ code });
    const [res] = ofType(framesSent(p, 'b2c'), FrameType.OPEN_RESULT);
    expect(res).toEqual({ type: FrameType.OPEN_RESULT, streamId: 1, code: wire, window: 0 });
    expect(p.client.streamCount).toBe(0);
    expect(p.bridge.streamCount).toBe(0);
  });

  it('§6: an unknown code in OPEN_RESULT is treated as 0x01 (E_GENERAL)', async () => {
    const p = pair();
    p.bridge.on('open', () => p.ct.inject(encodeFrame({ type: FrameType.OPEN_RESULT, streamId: 1, code: 0x7f, window: 0 })));
    await expect(p.client.open(T)).rejects.toMatchObject({ code: 'E_GENERAL' });
  });

  it('§5.1: an open with no OPEN_RESULT within STREAM_OPEN_TIMEOUT_MS fails with E_TIMEOUT and sends RESET 0x0a', async () => {
    const p = pair({ STREAM_OPEN_TIMEOUT_MS: 50 });
    let held: IncomingOpen | undefined;
    p.bridge.on('open', (inc) => (held = inc));
    const started = Date.now();
    await expect(p.client.open(T)).rejects.toMatchObject({ code: 'E_TIMEOUT' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    await until(() => ofType(framesSent(p, 'c2b'), FrameType.RESET).length > 0, 2_000, 'RESET');
    expect(ofType(framesSent(p, 'c2b'), FrameType.RESET)).toEqual([{ type: FrameType.RESET, streamId: 1, code: WireCode.CANCELLED }]);
    await until(() => held?.signal.aborted === true, 2_000, 'the bridge to see the cancel');
    expect(codeOf(held?.signal.reason)).toBe('E_CANCELLED');
    expect(() => held?.accept()).toThrow(expect.objectContaining({ code: 'E_CANCELLED' }));
    expect(p.bridge.streamCount).toBe(0);
    expect(p.client.streamCount).toBe(0);
  });

  it('§5.1: a late OPEN_RESULT for a timed-out open is ignored', async () => {
    const p = pair({ STREAM_OPEN_TIMEOUT_MS: 30 });
    await expect(p.client.open(T)).rejects.toMatchObject({ code: 'E_TIMEOUT' });
    p.ct.inject(encodeFrame({ type: FrameType.OPEN_RESULT, streamId: 1, code: 0, window: 1000 }));
    await tick();
    await tick();
    expect(p.client.closed).toBe(false);
    expect(ofType(framesSent(p, 'c2b'), FrameType.RESET)).toHaveLength(1); // only the cancel
  });

  it('§5.1: aborting an open rejects with E_CANCELLED and sends RESET 0x0a', async () => {
    const p = pair();
    const ac = new AbortController();
    p.bridge.on('open', () => ac.abort());
    await expect(p.client.open(T, { signal: ac.signal })).rejects.toMatchObject({ code: 'E_CANCELLED' });
    await until(() => ofType(framesSent(p, 'c2b'), FrameType.RESET).length > 0, 2_000, 'RESET');
    expect(ofType(framesSent(p, 'c2b'), FrameType.RESET)).toEqual([{ type: FrameType.RESET, streamId: 1, code: WireCode.CANCELLED }]);
    await expect(p.client.open(T, { signal: ac.signal })).rejects.toMatchObject({ code: 'E_CANCELLED' });
  });

  it('§5.1: the bridge answers OPEN_RESULT 0x09 once SESSION_MAX_STREAMS streams are open', async () => {
    const p = pair({}, { SESSION_MAX_STREAMS: 2 });
    echo(p.bridge);
    const a = await p.client.open(T);
    await p.client.open(T);
    await expect(p.client.open(T)).rejects.toMatchObject({ code: 'E_STREAM_LIMIT' });
    expect(ofType(framesSent(p, 'b2c'), FrameType.OPEN_RESULT).at(-1)).toMatchObject({ streamId: 5, code: 0x09, window: 0 });
    const done = outcome(a);
    a.end();
    await done;
    await until(() => p.bridge.streamCount === 1, 2_000, 'stream 1 to close at the bridge');
    await expect(p.client.open(T)).resolves.toMatchObject({ id: 7 });
  });

  it('§4.1: an OPEN with an unknown command or address type gets OPEN_RESULT 0x08 and the session goes on', async () => {
    const p = pair();
    echo(p.bridge);
    const s = await p.client.open(T);
    p.bt.inject(hex('01 00 00000065 00000007 | 00080000 02 | 0102')); // stream 101, cmd 2
    p.bt.inject(hex('01 00 00000067 0000000a | 00080000 01 | 05 01020304')); // stream 103, atyp 5
    await until(() => ofType(framesSent(p, 'b2c'), FrameType.OPEN_RESULT).length === 3, 2_000, 'two refusals');
    const refusals = ofType(framesSent(p, 'b2c'), FrameType.OPEN_RESULT).slice(1);
    expect(refusals).toEqual([
      { type: FrameType.OPEN_RESULT, streamId: 101, code: 0x08, window: 0 },
      { type: FrameType.OPEN_RESULT, streamId: 103, code: 0x08, window: 0 },
    ]);
    expect(p.bridge.closed).toBe(false);
    const back = outcome(s);
    s.end('still here');
    expect((await back).data.toString()).toBe('still here');
  });

  it('§5.1: a client that receives OPEN ends the session with 1002', async () => {
    const p = pair();
    const closed = new Promise((r) => p.client.once('close', r));
    p.ct.inject(encodeFrame({ type: FrameType.OPEN, streamId: 2, window: 1, cmd: 1, target: T }));
    expect(await closed).toMatchObject({ code: 1002, reason: 'unexpected-open' });
    expect(p.ct.closeCalls).toEqual([{ code: 1002, reason: 'unexpected-open' }]);
  });

  it.each([
    ['an id not above the previous one', [1, 1], 'stream-id-order'],
    ['a lower id', [5, 3], 'stream-id-order'],
    ['an even id', [2], 'stream-id-parity'],
  ] as const)('§5.1: an OPEN with %s ends the session with 1002', async (_name, ids, reason) => {
    const p = pair();
    p.bridge.on('open', (inc) => inc.reject(new PosternError('E_NOT_ALLOWED')));
    const closed = new Promise((r) => p.bridge.once('close', r));
    for (const id of ids) p.bt.inject(encodeFrame({ type: FrameType.OPEN, streamId: id, window: 1, cmd: 1, target: T }));
    expect(await closed).toMatchObject({ code: 1002, reason });
  });
});

describe('stream lifetime (protocol.md §5.2)', () => {
  it("§5.2: the client's FIN ends only the client→bridge direction", async () => {
    const p = pair();
    const [c, b] = await openPair(p);
    const atBridge = outcome(b);
    c.end('request');
    expect(await atBridge).toMatchObject({ how: 'end' });
    expect(b.state).toBe('remoteClosed');
    const atClient = outcome(c);
    b.write('response 1 ');
    b.end('response 2');
    const got = await atClient;
    expect(got).toMatchObject({ how: 'end' });
    expect(got.data.toString()).toBe('response 1 response 2');
    await until(() => b.state === 'closed' && c.state === 'closed', 2_000, 'both closed');
  });

  it("§5.2: the bridge's FIN ends only the bridge→client direction", async () => {
    const p = pair();
    const [c, b] = await openPair(p);
    const atClient = outcome(c);
    b.end('banner');
    expect((await atClient).data.toString()).toBe('banner');
    expect(c.state).toBe('remoteClosed');
    const atBridge = outcome(b);
    c.write('still ');
    c.end('talking');
    expect((await atBridge).data.toString()).toBe('still talking');
    expect(ofType(framesSent(p, 'c2b'), FrameType.FIN)).toHaveLength(1);
    expect(ofType(framesSent(p, 'b2c'), FrameType.FIN)).toHaveLength(1);
  });

  it.each([
    ['a PosternError', new PosternError('E_CONN_RESET'), WireCode.CONNECTION_RESET, 'E_CONN_RESET'],
    ['a socket error (ECONNRESET)', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), WireCode.CONNECTION_RESET, 'E_CONN_RESET'],
    ['no error', undefined, WireCode.CANCELLED, 'E_CANCELLED'],
    ['an unknown error', new Error('boom'), WireCode.GENERAL_FAILURE, 'E_GENERAL'],
  ])('§5.2: destroy with %s sends RESET and the peer sees an error, never an end', async (_name, err, wire, code) => {
    const p = pair();
    const [c, b] = await openPair(p);
    const atClient = outcome(c);
    b.write('partial');
    await until(() => c.readableLength > 0 || c.readableFlowing === true, 2_000, 'data');
    b.destroy(err);
    const got = await atClient;
    expect(got.how).toBe('error');
    expect(codeOf(got.err)).toBe(code);
    expect(ofType(framesSent(p, 'b2c'), FrameType.RESET)).toEqual([{ type: FrameType.RESET, streamId: 1, code: wire }]);
    expect(c.state).toBe('closed');
    expect(p.client.streamCount).toBe(0);
    expect(p.bridge.streamCount).toBe(0);
  });

  it('§5.2: a RESET after the peer\'s FIN still reaches the app as an error', async () => {
    const p = pair();
    const [c, b] = await openPair(p);
    c.end();
    await until(() => b.state === 'remoteClosed', 2_000, 'FIN');
    const atClient = new Promise<Error>((r) => c.once('error', r));
    c.resume();
    b.destroy(new PosternError('E_CONN_RESET'));
    expect(codeOf(await atClient)).toBe('E_CONN_RESET');
  });

  it('§5.2: a write waiting for credit fails when the stream is reset', async () => {
    const p = pair();
    const [c, b] = await openPair(p);
    c.on('error', () => undefined);
    const big = Buffer.alloc(p.limits.STREAM_WINDOW_BYTES + 1000);
    const cb = new Promise<Error | null | undefined>((r) => c.write(big, r));
    await until(() => ofType(framesSent(p, 'c2b'), FrameType.DATA).length > 0, 2_000, 'data');
    b.destroy(new PosternError('E_CONN_REFUSED'));
    expect(codeOf(await cb)).toBe('E_CONN_REFUSED');
  });

  it('§5.2: DATA after the peer\'s FIN resets the stream with 0x08', async () => {
    const p = pair();
    const [c, b] = await openPair(p);
    const atBridge = outcome(b);
    c.on('error', () => undefined);
    c.end();
    await until(() => b.state === 'remoteClosed', 2_000, 'FIN');
    p.bt.inject(encodeFrame({ type: FrameType.DATA, streamId: 1, payload: Buffer.from('late') }));
    const got = await atBridge;
    // 'end' was already emitted for the FIN; the violation then aborts the stream.
    await until(() => b.destroyed, 2_000, 'bridge stream destroyed');
    expect(got.how).toBe('end');
    expect(codeOf(b.errored)).toBe('E_PROTOCOL');
    expect(ofType(framesSent(p, 'b2c'), FrameType.RESET)).toEqual([{ type: FrameType.RESET, streamId: 1, code: 0x08 }]);
    await until(() => c.destroyed, 2_000, 'client stream reset');
    expect(codeOf(c.errored)).toBe('E_PROTOCOL');
  });

  it('§5.2: frames for a closed stream are ignored; non-OPEN frames for a never-opened id get RESET 0x08 (never a RESET for a RESET)', async () => {
    const p = pair();
    echo(p.bridge);
    const c = await p.client.open(T);
    const done = outcome(c);
    c.end('x');
    await done;
    await until(() => p.bridge.streamCount === 0 && p.client.streamCount === 0, 2_000, 'closed');
    const before = ofType(framesSent(p, 'b2c'), FrameType.RESET).length;
    p.bt.inject(encodeFrame({ type: FrameType.DATA, streamId: 1, payload: Buffer.from('late') }));
    p.bt.inject(encodeFrame({ type: FrameType.WINDOW, streamId: 1, increment: 5 }));
    p.bt.inject(encodeFrame({ type: FrameType.DATA, streamId: 9, payload: Buffer.from('who?') }));
    p.bt.inject(encodeFrame({ type: FrameType.FIN, streamId: 4 }));
    p.bt.inject(encodeFrame({ type: FrameType.RESET, streamId: 11, code: 1 }));
    p.ct.inject(encodeFrame({ type: FrameType.WINDOW, streamId: 1, increment: 5 }));
    p.ct.inject(encodeFrame({ type: FrameType.FIN, streamId: 3 }));
    await until(() => ofType(framesSent(p, 'c2b'), FrameType.RESET).length === 1, 2_000, 'client RESET');
    await until(() => ofType(framesSent(p, 'b2c'), FrameType.RESET).length === before + 2, 2_000, 'bridge RESETs');
    await tick();
    expect(ofType(framesSent(p, 'b2c'), FrameType.RESET).slice(before)).toEqual([
      { type: FrameType.RESET, streamId: 9, code: 0x08 },
      { type: FrameType.RESET, streamId: 4, code: 0x08 },
    ]);
    expect(ofType(framesSent(p, 'c2b'), FrameType.RESET)).toEqual([{ type: FrameType.RESET, streamId: 3, code: 0x08 }]);
    expect(p.client.closed || p.bridge.closed).toBe(false);
  });

  it('§5.1: the opener must not send FIN before OPEN_RESULT: the bridge answers RESET 0x08 and cancels the offer', async () => {
    const p = pair();
    let held: IncomingOpen | undefined;
    p.bridge.on('open', (inc) => (held = inc));
    const pending = p.client.open(T);
    await until(() => held !== undefined, 2_000, 'open');
    p.bt.inject(encodeFrame({ type: FrameType.FIN, streamId: 1 }));
    await expect(pending).rejects.toMatchObject({ code: 'E_PROTOCOL' });
    expect(held?.signal.aborted).toBe(true);
    expect(codeOf(held?.signal.reason)).toBe('E_PROTOCOL');
    expect(() => held?.accept()).toThrow();
  });
});

describe('early data: the optimistic open (protocol.md §5.1)', () => {
  /** Holds every OPEN at the bridge until the test settles it. */
  function holdOpens(bridge: MuxSession): IncomingOpen[] {
    const held: IncomingOpen[] = [];
    bridge.on('open', (inc) => held.push(inc));
    return held;
  }

  it('§5.1: the app writes at once; its first bytes follow the OPEN with no reply between and reach the destination first, in order', async () => {
    const p = pair();
    const held = holdOpens(p.bridge);
    const c = p.client.openEarly(T);
    expect(c.state).toBe('opening');
    const atClient = outcome(c);
    c.write('GET / HTTP/1.1\r\n');
    c.write('Host: x\r\n\r\n');
    await until(() => held.length === 1, 2_000, 'open');
    // The OPEN, then the early DATA, before anything from the bridge.
    expect(framesSent(p, 'b2c')).toEqual([]);
    const c2b = p.wire.filter((w) => w.dir === 'c2b').flatMap((w) => w.frames.map((f) => f.type));
    expect(c2b.slice(0, 2)).toEqual([FrameType.OPEN, FrameType.DATA]);
    await tick();
    const b = held[0]!.accept();
    const atBridge = outcome(b);
    c.end('body');
    b.end('answer');
    expect((await atBridge).data.toString()).toBe('GET / HTTP/1.1\r\nHost: x\r\n\r\nbody');
    expect((await atClient).data.toString()).toBe('answer');
    expect(c.state).toBe('closed');
  });

  it('§5.1: at most STREAM_EARLY_DATA_BYTES go before OPEN_RESULT; the rest waits for it, and the window counts the early bytes', async () => {
    const early = 16 * 1024;
    const window = 64 * 1024;
    const p = pair({ STREAM_EARLY_DATA_BYTES: early, STREAM_WINDOW_BYTES: window });
    const held = holdOpens(p.bridge);
    const c = p.client.openEarly(T);
    const payload = Buffer.alloc(window + 10_000, 7);
    const writeDone = new Promise<void>((r) => c.write(payload, () => r()));
    await until(() => held.length === 1, 2_000, 'open');
    await tick();
    await tick();
    const sentEarly = ofType(framesSent(p, 'c2b'), FrameType.DATA).reduce((n, f) => n + f.payload.length, 0);
    expect(sentEarly).toBe(early);
    const b = held[0]!.accept();
    // The bridge reads nothing yet: the client may send only the window, early bytes included.
    await until(() => ofType(framesSent(p, 'c2b'), FrameType.DATA).reduce((n, f) => n + f.payload.length, 0) === window, 2_000, 'window filled');
    await tick();
    await tick();
    expect(ofType(framesSent(p, 'c2b'), FrameType.DATA).reduce((n, f) => n + f.payload.length, 0)).toBe(window);
    expect(ofType(framesSent(p, 'b2c'), FrameType.RESET)).toEqual([]);
    const got = outcome(b);
    await writeDone;
    c.end();
    expect((await got).data.equals(payload)).toBe(true);
  });

  it('§5.1: early DATA held for an open not yet accepted counts in the bridge session\'s heldBytes (the user\'s budget), and leaves it on accept', async () => {
    const p = pair();
    const held = holdOpens(p.bridge);
    const before = p.bridge.heldBytes;
    const c = p.client.openEarly(T);
    c.write(Buffer.alloc(3_000, 1));
    await until(() => held.length === 1, 2_000, 'open');
    await until(() => p.bridge.heldBytes - before === 3_000, 2_000, 'early bytes counted');
    const b = held[0]!.accept();
    expect(p.bridge.heldBytes - before).toBeLessThan(100); // only the OPEN_RESULT being sent
    const got = outcome(b);
    c.end();
    expect((await got).data.length).toBe(3_000);
  });

  it('§5.1: a refused early open destroys the app\'s stream with the bridge\'s code; the early data is never forwarded', async () => {
    const p = pair();
    const held = holdOpens(p.bridge);
    const c = p.client.openEarly(T);
    const atClient = outcome(c);
    c.write('secret request');
    await until(() => held.length === 1, 2_000, 'open');
    await tick();
    held[0]!.reject(new PosternError('E_CONN_REFUSED'));
    const o = await atClient;
    expect(o.how).toBe('error');
    expect(codeOf(o.err)).toBe('E_CONN_REFUSED');
    expect(o.data.length).toBe(0);
    expect(ofType(framesSent(p, 'b2c'), FrameType.OPEN_RESULT)).toEqual([{ type: FrameType.OPEN_RESULT, streamId: 1, code: WireCode.CONNECTION_REFUSED, window: 0 }]);
    await until(() => p.client.streamCount === 0 && p.bridge.streamCount === 0, 2_000, 'forgotten');
    expect(p.logs.some((l) => l.includes('open failed') && l.includes('E_CONN_REFUSED'))).toBe(true);
  });

  it('§5.1: early DATA over the allowance is answered with RESET 0x0c and cancels the offer', async () => {
    const p = pair({ STREAM_EARLY_DATA_BYTES: 16 * 1024 });
    let held: IncomingOpen | undefined;
    p.bridge.on('open', (inc) => (held = inc));
    const pending = p.client.open(T);
    pending.catch(() => undefined);
    await until(() => held !== undefined, 2_000, 'open');
    p.bt.inject(encodeFrame({ type: FrameType.DATA, streamId: 1, payload: Buffer.alloc(10 * 1024) }));
    p.bt.inject(encodeFrame({ type: FrameType.DATA, streamId: 1, payload: Buffer.alloc(7 * 1024) }));
    await until(() => held?.signal.aborted === true, 2_000, 'offer aborted');
    expect(codeOf(held?.signal.reason)).toBe('E_FLOW_CONTROL');
    await until(() => ofType(framesSent(p, 'b2c'), FrameType.RESET).length > 0, 2_000, 'RESET on the wire');
    expect(ofType(framesSent(p, 'b2c'), FrameType.RESET)).toEqual([{ type: FrameType.RESET, streamId: 1, code: WireCode.FLOW_CONTROL_ERROR }]);
    await expect(pending).rejects.toMatchObject({ code: 'E_FLOW_CONTROL' });
    expect(p.bridge.streamCount).toBe(0);
  });

  it('§10: early DATA on a UDP association is a stream protocol error (RESET 0x08)', async () => {
    const p = pair();
    let held: IncomingOpen | undefined;
    p.bridge.on('open', (inc) => (held = inc));
    const pending = p.client.openAssociation();
    pending.catch(() => undefined);
    await until(() => held !== undefined, 2_000, 'open');
    p.bt.inject(encodeFrame({ type: FrameType.DATA, streamId: 1, payload: Buffer.from('x') }));
    await until(() => held?.signal.aborted === true, 2_000, 'offer aborted');
    expect(codeOf(held?.signal.reason)).toBe('E_PROTOCOL');
  });

  it('§5.1: an app that gives up while its early open is pending cancels it (RESET 0x0a) and the bridge drops the offer and its data', async () => {
    const p = pair();
    const held = holdOpens(p.bridge);
    const c = p.client.openEarly(T);
    c.on('error', () => undefined);
    c.write('x');
    await until(() => held.length === 1, 2_000, 'open');
    c.destroy();
    await until(() => held[0]!.signal.aborted, 2_000, 'offer aborted');
    expect(codeOf(held[0]!.signal.reason)).toBe('E_CANCELLED');
    expect(ofType(framesSent(p, 'c2b'), FrameType.RESET)).toEqual([{ type: FrameType.RESET, streamId: 1, code: WireCode.CANCELLED }]);
    expect(p.client.streamCount).toBe(0);
    expect(p.bridge.streamCount).toBe(0);
  });

  it('§5.1: an early open with no OPEN_RESULT in time fails the app\'s stream with E_TIMEOUT and sends RESET 0x0a', async () => {
    const p = pair({ STREAM_OPEN_TIMEOUT_MS: 50 });
    holdOpens(p.bridge);
    const c = p.client.openEarly(T);
    const o = await outcome(c);
    expect(o.how).toBe('error');
    expect(codeOf(o.err)).toBe('E_TIMEOUT');
    await until(() => ofType(framesSent(p, 'c2b'), FrameType.RESET).length > 0, 2_000, 'RESET on the wire');
    expect(ofType(framesSent(p, 'c2b'), FrameType.RESET)).toEqual([{ type: FrameType.RESET, streamId: 1, code: WireCode.CANCELLED }]);
    expect(p.client.streamCount).toBe(0);
  });

  it('§5.1: a session that ends during an early open fails the stream with E_SESSION_CLOSED; a closed session refuses openEarly at once', async () => {
    const p = pair();
    holdOpens(p.bridge);
    const c = p.client.openEarly(T);
    const o = outcome(c);
    p.client.close();
    expect(codeOf((await o).err)).toBe('E_SESSION_CLOSED');
    expect(() => p.client.openEarly(T)).toThrow(expect.objectContaining({ code: 'E_SESSION_CLOSED' }));
  });
});

describe('session end (protocol.md §4, §8)', () => {
  it('§4: a session protocol error closes the WebSocket with 1002 and aborts every stream with E_SESSION_CLOSED', async () => {
    const p = pair();
    const accepted = echo(p.bridge);
    const streams = await Promise.all([p.client.open(T), p.client.open(T)]);
    const outcomes = [...streams, ...accepted].map(outcome);
    const closed = new Promise((r) => p.client.once('close', r));
    p.ct.inject(hex('0b 00 00000001 00000000'));
    expect(await closed).toMatchObject({ code: 1002, reason: 'unknown-type' });
    expect(p.ct.closeCalls).toEqual([{ code: 1002, reason: 'unknown-type' }]);
    for (const o of await Promise.all(outcomes)) {
      expect(o.how).toBe('error');
      expect(codeOf(o.err)).toBe('E_SESSION_CLOSED');
    }
    expect(p.client.closed).toBe(true);
    await until(() => p.bridge.closed, 2_000, 'bridge to see the close');
    await expect(p.client.open(T)).rejects.toMatchObject({ code: 'E_SESSION_CLOSED' });
    expect(p.logs.some((l) => l.includes('session protocol error') && l.includes('unknown-type'))).toBe(true);
  });

  it('§4: a message larger than WS_MAX_MESSAGE_BYTES closes the session with 1009', async () => {
    const p = pair();
    const closed = new Promise((r) => p.client.once('close', r));
    p.ct.inject(Buffer.alloc(p.limits.WS_MAX_MESSAGE_BYTES + 1));
    expect(await closed).toMatchObject({ code: 1009, reason: 'message-too-large' });
  });

  it("§4: the bound is the transport's maxMessageBytes, not a WebSocket limit", async () => {
    const p = pair();
    p.ct.maxMessageBytes = 4096;
    const closed = new Promise((r) => p.client.once('close', r));
    p.ct.inject(encodeFrame({ type: FrameType.PING, data: Buffer.alloc(8) })); // small: accepted
    p.ct.inject(Buffer.alloc(4097));
    expect(await closed).toMatchObject({ code: 1009, reason: 'message-too-large' });
  });

  it('§8: close() aborts open streams and pending opens with E_SESSION_CLOSED and reports the code', async () => {
    const p = pair();
    const accepted = echo(p.bridge);
    const s = await p.client.open(T);
    p.bridge.removeAllListeners('open');
    let held: IncomingOpen | undefined;
    p.bridge.on('open', (inc) => (held = inc));
    const pending = p.client.open(T);
    await until(() => held !== undefined, 2_000, 'second open');
    const atClient = outcome(s);
    const atBridge = outcome(accepted[0] as MuxStream);
    const closeInfo = new Promise((r) => p.client.once('close', r));
    p.client.close(1000, 'bye');
    await expect(pending).rejects.toMatchObject({ code: 'E_SESSION_CLOSED' });
    expect(await closeInfo).toEqual({ code: 1000, reason: 'bye' });
    expect(codeOf((await atClient).err)).toBe('E_SESSION_CLOSED');
    expect(codeOf((await atBridge).err)).toBe('E_SESSION_CLOSED');
    await until(() => held?.signal.aborted === true, 2_000, 'bridge offer cleaned up');
    expect(codeOf(held?.signal.reason)).toBe('E_SESSION_CLOSED');
    expect(() => held?.accept()).toThrow(expect.objectContaining({ code: 'E_SESSION_CLOSED' }));
    expect(p.bridge.streamCount).toBe(0);
    await expect(p.client.ping()).rejects.toMatchObject({ code: 'E_SESSION_CLOSED' });
  });

  it('§8: after GOAWAY no new stream opens, an OPEN already in flight gets 0x0e, and open streams go on', async () => {
    const p = pair();
    echo(p.bridge);
    const s = await p.client.open(T);
    const goaway = new Promise((r) => p.client.once('goaway', r));
    p.bridge.goAway();
    const inFlight = p.client.open(T); // sent before the GOAWAY arrives
    await expect(inFlight).rejects.toMatchObject({ code: 'E_GOING_AWAY' });
    expect(ofType(framesSent(p, 'b2c'), FrameType.OPEN_RESULT).at(-1)).toMatchObject({ streamId: 3, code: 0x0e, window: 0 });
    expect(await goaway).toBe(0x0e);
    expect(ofType(framesSent(p, 'b2c'), FrameType.GOAWAY)).toEqual([{ type: FrameType.GOAWAY, code: 0x0e }]);
    await expect(p.client.open(T)).rejects.toMatchObject({ code: 'E_GOING_AWAY' });
    expect(p.client.goingAway).toBe(true);
    const back = outcome(s);
    const idle = new Promise<void>((r) => p.bridge.once('idle', () => r()));
    s.end('draining');
    expect((await back).data.toString()).toBe('draining');
    await idle;
    expect(p.bridge.streamCount).toBe(0);
  });

  it('§8: ping() resolves with the round-trip time and the PONG echoes the PING bytes', async () => {
    const p = pair();
    const rtt = await p.client.ping();
    expect(rtt).toBeGreaterThanOrEqual(0);
    expect(rtt).toBeLessThan(1_000);
    const [ping] = ofType(framesSent(p, 'c2b'), FrameType.PING);
    const [pong] = ofType(framesSent(p, 'b2c'), FrameType.PONG);
    expect(pong?.data.equals(ping?.data as Buffer)).toBe(true);
    await expect(p.bridge.ping()).resolves.toBeGreaterThanOrEqual(0);
  });

  it('§5.3: one PONG answers every PING of a message, with the latest PING’s bytes', async () => {
    const p = pair();
    const pings = Array.from({ length: 100 }, (_, i) => encodeFrame({ type: FrameType.PING, data: Buffer.alloc(8, i) }));
    p.bt.inject(Buffer.concat(pings));
    await until(() => ofType(framesSent(p, 'b2c'), FrameType.PONG).length > 0, 2_000, 'a PONG');
    await tick();
    const pongs = ofType(framesSent(p, 'b2c'), FrameType.PONG);
    expect(pongs).toHaveLength(1);
    expect(pongs[0]?.data.equals(Buffer.alloc(8, 99))).toBe(true);
  });

  it('§5.3: while the transport is congested PINGs are not answered one by one: one PONG, for the latest, on drain', async () => {
    const p = pair({ SESSION_WRITE_HIGH_WATER_BYTES: 64 * 1024 });
    const [c, b] = await openPair(p);
    c.resume();
    p.bt.stalled = true;
    b.write(Buffer.alloc(200 * 1024)); // queued: 200 KiB > the high water
    await tick();
    expect(p.bt.bufferedBytes).toBeGreaterThan(64 * 1024);
    for (let i = 1; i <= 5; i++) p.bt.inject(encodeFrame({ type: FrameType.PING, data: Buffer.alloc(8, i) }));
    await new Promise((r) => setTimeout(r, 20));
    p.bt.unstall();
    await until(() => ofType(framesSent(p, 'b2c'), FrameType.PONG).length > 0, 2_000, 'a PONG');
    await new Promise((r) => setTimeout(r, 20));
    const pongs = ofType(framesSent(p, 'b2c'), FrameType.PONG);
    expect(pongs.map((f) => f.data[0])).toEqual([5]);
  });

  it('§5.1: refusals past SESSION_REFUSED_OPEN_BURST_COUNT (and the rate) end the session with 1002 refused-open-flood', async () => {
    const p = pair({}, { SESSION_REFUSED_OPEN_BURST_COUNT: 16, SESSION_REFUSED_OPENS_PER_SECOND: 1 });
    const closed = new Promise<{ code: number; reason: string }>((r) => p.bridge.once('close', r));
    // Unknown cmd: each is answered OPEN_RESULT 0x08 by the session itself.
    const bad = (id: number) => hex(`01 00 ${id.toString(16).padStart(8, '0')} 00000007 | 00080000 7f | 0102`);
    p.bt.inject(Buffer.concat(Array.from({ length: 16 }, (_, i) => bad(2 * i + 1))));
    await until(() => ofType(framesSent(p, 'b2c'), FrameType.OPEN_RESULT).length === 16, 2_000, '16 refusals');
    expect(p.bridge.closed).toBe(false);
    p.bt.inject(bad(33));
    const info = await closed;
    expect(info).toMatchObject({ code: 1002, reason: 'refused-open-flood' });
    expect(p.bt.closeCalls).toEqual([{ code: 1002, reason: 'refused-open-flood' }]);
    expect(p.logs.some((l) => l.includes('"reason":"refused-open-flood"'))).toBe(true);
  });

  it('§8: a session whose peer goes silent pings after KEEPALIVE_INTERVAL_MS and closes after KEEPALIVE_TIMEOUT_MS', async () => {
    const p = pair({ KEEPALIVE_INTERVAL_MS: 40, KEEPALIVE_TIMEOUT_MS: 120 });
    echo(p.bridge);
    const s = await p.client.open(T);
    const atClient = outcome(s);
    p.bt.stalled = true; // nothing reaches the client any more
    const started = Date.now();
    const info = await new Promise((r) => p.client.once('close', r));
    const elapsed = Date.now() - started;
    expect(info).toEqual({ code: 1001, reason: 'keepalive timeout' });
    expect(elapsed).toBeGreaterThanOrEqual(100);
    expect(elapsed).toBeLessThan(1_000);
    expect(ofType(framesSent(p, 'c2b'), FrameType.PING).length).toBeGreaterThanOrEqual(1);
    expect(p.ct.terminated).toBe(true);
    expect(codeOf((await atClient).err)).toBe('E_SESSION_CLOSED');
  });

  it('§8: keepalive PINGs keep an idle session with a live peer open', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const p = pair({ KEEPALIVE_INTERVAL_MS: 1_000, KEEPALIVE_TIMEOUT_MS: 2_000 });
      for (let ms = 0; ms < 10_000; ms += 100) {
        vi.advanceTimersByTime(100);
        await tick(); // deliveries run on real setImmediate
        await tick();
      }
      expect(p.client.closed).toBe(false);
      expect(p.bridge.closed).toBe(false);
      const pings = ofType(framesSent(p, 'c2b'), FrameType.PING).length;
      expect(pings).toBeGreaterThanOrEqual(4); // about one per interval of silence
      expect(pings).toBeLessThanOrEqual(10);
    } finally {
      vi.useRealTimers();
    }
  });

  it('§8: with fake time, a silent peer is pinged at KEEPALIVE_INTERVAL_MS and dropped at KEEPALIVE_TIMEOUT_MS', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const p = pair({ KEEPALIVE_INTERVAL_MS: 1_000, KEEPALIVE_TIMEOUT_MS: 2_000 });
      p.bt.stalled = true;
      p.ct.stalled = true;
      let closedAt = -1;
      p.client.once('close', () => (closedAt = performance.now()));
      const start = performance.now();
      vi.advanceTimersByTime(999);
      expect(p.ct.bufferedBytes).toBe(0);
      vi.advanceTimersByTime(1);
      expect(p.ct.bufferedBytes).toBe(18); // one PING frame
      vi.advanceTimersByTime(998);
      expect(p.client.closed).toBe(false);
      vi.advanceTimersByTime(2);
      expect(p.client.closed).toBe(true);
      expect(closedAt - start).toBe(2_000);
      expect(p.ct.terminated).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('§8: one keepalive timer per session and one per pending open, all cleared on close', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const p = sessionPair();
      p.bridge.on('open', () => undefined); // never answers: the open timer stays armed
      const pending = p.client.open(T).catch((e: unknown) => e);
      const more = [p.client.open(T).catch(() => undefined), p.client.open(T).catch(() => undefined)];
      expect(vi.getTimerCount()).toBe(2 + 3);
      p.client.close();
      p.bridge.close();
      expect(codeOf(await pending)).toBe('E_SESSION_CLOSED');
      await Promise.all(more);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('§8: session timers never keep the process alive', async () => {
    const alive = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = alive();
    const p = pair({ STREAM_OPEN_TIMEOUT_MS: 60_000 });
    p.bridge.on('open', () => undefined);
    const pending = p.client.open(T).catch(() => undefined);
    await tick();
    expect(alive()).toBe(before);
    p.client.close();
    await pending;
  });

  it('never logs a destination: stream ids and codes only', async () => {
    const p = pair();
    const secretName = 'very-private-destination.example';
    p.bridge.on('open', (inc) => {
      if (inc.target.kind === 'domain') inc.reject(new PosternError('E_NOT_ALLOWED'));
      else inc.accept().destroy(new PosternError('E_CONN_RESET'));
    });
    await expect(p.client.open({ kind: 'domain', host: secretName, port: 8443 })).rejects.toThrow();
    const s = await p.client.open({ kind: 'ipv4', host: '198.51.100.77', port: 8443 });
    await new Promise((r) => s.once('error', r));
    await expect(p.client.open({ kind: 'domain', host: 'x'.repeat(300), port: 1 })).rejects.toMatchObject({ code: 'E_PROTOCOL' });
    p.ct.inject(hex('0b 00 00000001 00000000'));
    await until(() => p.client.closed, 2_000, 'close');
    const all = p.logs.join('\n');
    expect(p.logs.length).toBeGreaterThan(3);
    for (const needle of [secretName, '198.51.100.77', '8443']) expect(all).not.toContain(needle);
  });
});
