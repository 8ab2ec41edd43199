/**
 * UDP associations and DATAGRAM frames at the mux level (docs/protocol.md §10).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Target } from '../../../src/core/address.js';
import { PosternError, WireCode } from '../../../src/core/errors.js';
import { defaultLimits } from '../../../src/core/limits.js';
import { encodeFrame } from '../../../src/mux/codec.js';
import { FrameType, OpenCommand } from '../../../src/mux/frame.js';
import { MuxSession, type IncomingOpen } from '../../../src/mux/session.js';
import type { MuxStream } from '../../../src/mux/stream.js';
import { framesSent, linkedPair, tick, trackedPairs, until, type SessionPair } from './helpers.js';

const DNS: Target = { kind: 'ipv4', host: '192.0.2.53', port: 53 };
const V6: Target = { kind: 'ipv6', host: '2001:db8::1', port: 3478 };
const NAME: Target = { kind: 'domain', host: 'stun.example', port: 3478 };

const { pair, closeAll } = trackedPairs();
afterEach(closeAll);

type Got = { addr: Target; data: Buffer };

/** Opens an association and accepts it at the bridge: [client stream, bridge stream, bridge's IncomingOpen]. */
async function associate(p: SessionPair): Promise<[MuxStream, MuxStream, IncomingOpen]> {
  const opened = new Promise<IncomingOpen>((r) => p.bridge.once('open', r));
  const pending = p.client.openAssociation();
  const inc = await opened;
  const b = inc.accept();
  const c = await pending;
  c.on('error', () => undefined);
  return [c, b, inc];
}

function collect(session: MuxSession, id: number): Got[] {
  const got: Got[] = [];
  session.setDatagramHandler(id, (addr, data) => got.push({ addr, data: Buffer.from(data) }));
  return got;
}

describe('UDP associations (protocol.md §10)', () => {
  it('§10: OPEN carries cmd 0x03 and 0.0.0.0:0; the bridge sees command udp-associate', async () => {
    const p = pair();
    const [c, , inc] = await associate(p);
    expect(inc.command).toBe('udp-associate');
    const open = framesSent(p, 'c2b').find((f) => f.type === FrameType.OPEN);
    expect(open).toMatchObject({ cmd: OpenCommand.UDP_ASSOCIATE, target: { kind: 'ipv4', host: '0.0.0.0', port: 0 } });
    expect(c.state).toBe('open');
  });

  it('§10: a TCP open is still command connect', async () => {
    const p = pair();
    const opened = new Promise<IncomingOpen>((r) => p.bridge.once('open', r));
    void p.client.open(DNS).catch(() => undefined);
    expect((await opened).command).toBe('connect');
  });

  it('§10: datagrams flow both ways with their addresses, including empty ones, each alone in its message', async () => {
    const p = pair();
    const [c, b] = await associate(p);
    const atBridge = collect(p.bridge, b.id);
    const atClient = collect(p.client, c.id);
    expect(p.client.sendDatagram(c.id, DNS, Buffer.from('query'))).toBe(true);
    expect(p.client.sendDatagram(c.id, NAME, Buffer.alloc(0))).toBe(true);
    expect(p.bridge.sendDatagram(b.id, V6, Buffer.from('answer'))).toBe(true);
    await until(() => atBridge.length === 2 && atClient.length === 1);
    expect(atBridge).toEqual([
      { addr: DNS, data: Buffer.from('query') },
      { addr: NAME, data: Buffer.alloc(0) },
    ]);
    expect(atClient).toEqual([{ addr: V6, data: Buffer.from('answer') }]);
    for (const w of p.wire) if (w.frames.some((f) => f.type === FrameType.DATAGRAM)) expect(w.frames).toHaveLength(1);
    expect(p.client.datagramCounts).toMatchObject({ sent: 1 + 1, received: 1 });
    expect(p.bridge.datagramCounts).toMatchObject({ sent: 1, received: 2 });
  });

  it('§10: sendDatagram refuses a plain stream, an unknown id, an oversize datagram, and a closed session', async () => {
    const p = pair({ UDP_MAX_DATAGRAM_BYTES: 1_000 });
    p.bridge.on('open', (inc) => inc.accept());
    const tcp = await p.client.open(DNS);
    const c = await p.client.openAssociation();
    c.on('error', () => undefined);
    expect(p.client.sendDatagram(tcp.id, DNS, Buffer.from('x'))).toBe(false);
    expect(p.client.sendDatagram(99, DNS, Buffer.from('x'))).toBe(false);
    expect(p.client.sendDatagram(c.id, DNS, Buffer.alloc(1_001))).toBe(false);
    expect(p.client.sendDatagram(c.id, DNS, Buffer.alloc(1_000))).toBe(true);
    expect(p.client.sendDatagram(c.id, { kind: 'ipv4', host: 'not an address', port: 1 }, Buffer.from('x'))).toBe(false);
    p.client.close();
    expect(p.client.sendDatagram(c.id, DNS, Buffer.from('x'))).toBe(false);
    expect(p.client.datagramCounts.droppedOnSend).toBe(5);
    expect(p.client.datagramCounts.sent).toBe(1);
  });

  it('§10: a datagram that would not fit one frame with its address is dropped, not split', async () => {
    const p = pair();
    const [c] = await associate(p);
    const longName: Target = { kind: 'domain', host: 'a'.repeat(200), port: 1 };
    expect(p.client.sendDatagram(c.id, longName, Buffer.alloc(65_507))).toBe(false);
    expect(p.client.sendDatagram(c.id, DNS, Buffer.alloc(65_507))).toBe(true);
  });

  it('§10: datagrams are dropped, never queued, while the transport is congested; other traffic is unaffected', async () => {
    const p = pair({ SESSION_WRITE_HIGH_WATER_BYTES: 64 * 1024, UDP_SEND_HEADROOM_BYTES: 16 * 1024 });
    const [c, b] = await associate(p);
    const atBridge = collect(p.bridge, b.id);
    p.ct.stalled = true;
    let accepted = 0;
    for (let i = 0; i < 200; i++) if (p.client.sendDatagram(c.id, DNS, Buffer.alloc(1_000, i))) accepted++;
    // Up to high water + headroom (80 KiB) is accepted; the rest is dropped at once.
    expect(accepted).toBeGreaterThanOrEqual(80);
    expect(accepted).toBeLessThanOrEqual(82);
    expect(p.ct.bufferedBytes).toBeLessThanOrEqual(80 * 1024 + 1_100);
    expect(p.client.datagramCounts.droppedOnSend).toBe(200 - accepted);
    p.ct.unstall();
    await until(() => atBridge.length === accepted, 2_000, 'accepted datagrams to arrive');
    expect(atBridge.every((g, i) => g.data[0] === i)).toBe(true);
  });

  it('§10: a datagram with no handler set, or an unservable address, is dropped quietly; the session goes on', async () => {
    const p = pair();
    const [c, b] = await associate(p);
    expect(p.client.sendDatagram(c.id, DNS, Buffer.from('early'))).toBe(true);
    await until(() => p.bridge.datagramCounts.droppedOnReceive === 1);
    const atBridge = collect(p.bridge, b.id);
    // An unknown address type (0x05) from a buggy peer, and a datagram for a stream never opened.
    p.bt.inject(Buffer.concat([Buffer.from([FrameType.DATAGRAM, 0, 0, 0, 0, c.id, 0, 0, 0, 3]), Buffer.from([5, 1, 2])]));
    p.bt.inject(encodeFrame({ type: FrameType.DATAGRAM, streamId: 41, target: DNS, data: Buffer.from('stray') }));
    expect(p.client.sendDatagram(c.id, DNS, Buffer.from('late'))).toBe(true);
    await until(() => atBridge.length === 1);
    expect(atBridge[0]?.data.toString()).toBe('late');
    expect(p.bridge.datagramCounts.droppedOnReceive).toBe(3);
    expect(p.bridge.closed).toBe(false);
  });

  it('§10: DATA on an association is a stream violation: RESET 0x08, the session goes on', async () => {
    const p = pair();
    const [c, b] = await associate(p);
    b.on('error', () => undefined);
    const err = new Promise<Error>((r) => c.once('error', r));
    c.write('not allowed');
    expect(((await err) as PosternError).code).toBe('E_PROTOCOL');
    const resets = framesSent(p, 'b2c').filter((f) => f.type === FrameType.RESET);
    expect(resets).toEqual([{ type: FrameType.RESET, streamId: c.id, code: WireCode.PROTOCOL_ERROR }]);
    await until(() => p.bridge.streamCount === 0);
    expect(p.client.closed || p.bridge.closed).toBe(false);
  });

  it('§10: ending the stream ends the association: handlers go, later datagrams are dropped', async () => {
    const p = pair();
    const [c, b] = await associate(p);
    const atBridge = collect(p.bridge, b.id);
    b.resume();
    b.on('end', () => b.end());
    c.resume();
    c.end();
    await until(() => p.client.streamCount === 0 && p.bridge.streamCount === 0, 2_000, 'association to close');
    expect(p.client.sendDatagram(c.id, DNS, Buffer.from('x'))).toBe(false);
    p.bt.inject(encodeFrame({ type: FrameType.DATAGRAM, streamId: c.id, target: DNS, data: Buffer.from('late') }));
    await tick();
    await tick();
    expect(atBridge).toEqual([]);
  });

  it('§10: endAssociations() resets every association (GOING_AWAY) and leaves TCP streams open', async () => {
    const p = pair();
    const [c, b] = await associate(p);
    b.on('error', () => undefined);
    const opened = new Promise<IncomingOpen>((r) => p.bridge.once('open', r));
    const pendingTcp = p.client.open(DNS);
    (await opened).accept();
    const tcp = await pendingTcp;
    const bridgeErr = new Promise<Error>((r) => b.once('error', r));
    p.client.endAssociations();
    expect(((await bridgeErr) as PosternError).code).toBe('E_GOING_AWAY');
    expect(c.destroyed).toBe(true);
    await until(() => p.bridge.streamCount === 1 && p.client.streamCount === 1, 2_000, 'only the TCP stream left');
    expect(tcp.state).toBe('open');
    expect(framesSent(p, 'c2b').filter((f) => f.type === FrameType.RESET)).toEqual([
      { type: FrameType.RESET, streamId: c.id, code: WireCode.GOING_AWAY },
    ]);
  });

  it('§10: a bridge RESET (idle timeout) reaches the client as E_TIMEOUT', async () => {
    const p = pair();
    const [c, b] = await associate(p);
    const err = new Promise<Error>((r) => c.once('error', r));
    b.on('error', () => undefined);
    b.destroy(new PosternError('E_TIMEOUT', 'association idle'));
    expect(((await err) as PosternError).code).toBe('E_TIMEOUT');
  });
});

describe('DATAGRAM over a resumable link (protocol.md §9, §10)', () => {
  const limits = defaultLimits({ SESSION_RESUME_TIMEOUT_MS: 2_000, RESUME_ACK_DELAY_MS: 5 });
  const sessions: MuxSession[] = [];
  afterEach(() => {
    for (const s of sessions.splice(0)) s.close();
  });

  function linked() {
    const l = linkedPair(limits, sessions);
    l.connect();
    return { ...l, drop: () => l.current()?.client.terminate() };
  }

  it('§10: datagrams are not numbered or kept for resending, and are dropped while detached', async () => {
    const l = linked();
    l.bridge.on('open', (inc) => inc.accept().on('error', () => undefined));
    const c = await l.client.openAssociation();
    c.on('error', () => undefined);
    const got: string[] = [];
    l.bridge.setDatagramHandler(c.id, (_a, d) => got.push(d.toString()));
    await until(() => l.cl.unacknowledged.messages === 0, 2_000, 'OPEN to be acknowledged');
    expect(l.client.sendDatagram(c.id, DNS, Buffer.from('one'))).toBe(true);
    expect(l.cl.unacknowledged.messages).toBe(0);
    await until(() => got.length === 1);
    l.drop();
    await until(() => l.cl.state === 'detached' && l.bl.state === 'detached', 2_000, 'both links detached');
    expect(l.client.sendDatagram(c.id, DNS, Buffer.from('lost'))).toBe(false);
    l.connect();
    await until(() => l.cl.state === 'live' && l.bl.state === 'live', 2_000, 'resumed');
    expect(l.client.sendDatagram(c.id, DNS, Buffer.from('two'))).toBe(true);
    await until(() => got.length === 2);
    expect(got).toEqual(['one', 'two']);
    expect(l.cl.unacknowledged.messages).toBe(0);
  });
});
