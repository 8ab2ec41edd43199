import dgram from 'node:dgram';
import net from 'node:net';
import { Duplex } from 'node:stream';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { Target } from '../../../src/core/address.js';
import { PosternError, type ErrorCode } from '../../../src/core/errors.js';
import { defaultLimits, type Limits } from '../../../src/core/limits.js';
import { silentLogger } from '../../../src/log/logger.js';
import { AuthMethod, Command, encodeGreeting, encodeRequest, SocksReply } from '../../../src/socks/codec.js';
import { SocksServer, type SocksUdpAssociate } from '../../../src/socks/server.js';
import {
  encodeUdpDatagram,
  encodeUdpHeader,
  parseUdpDatagram,
  UDP_HEADER_MIN_BYTES,
  type UdpParseReason,
} from '../../../src/socks/udp.js';
import { UdpRelay, type DatagramSession, type UdpTunnel } from '../../../src/client/udp.js';
import { TestClient, waitFor } from './helpers.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ascii = (s: string): string => Buffer.from(s, 'utf8').toString('hex');

// ── The codec ────────────────────────────────────────────────────────────────

describe('parseUdpDatagram (RFC 1928 §7 UDP request header)', () => {
  it.each([
    ['an IPv4 target', '0000 00 01 7f000001 0035', { kind: 'ipv4', host: '127.0.0.1', port: 53 }],
    ['an IPv6 target', `0000 00 04 ${'00'.repeat(15)}01 01bb`, { kind: 'ipv6', host: '::1', port: 443 }],
    ['a domain target (left unresolved)', `0000 00 03 0b ${ascii('example.org')} 0035`, { kind: 'domain', host: 'example.org', port: 53 }],
    ['a domain that is an IPv4 literal', `0000 00 03 09 ${ascii('127.0.0.1')} 0035`, { kind: 'ipv4', host: '127.0.0.1', port: 53 }],
    ['a domain that is a bracketed IPv6 literal', `0000 00 03 05 ${ascii('[::1]')} 0035`, { kind: 'ipv6', host: '::1', port: 53 }],
    ['the highest port', '0000 00 01 0a000001 ffff', { kind: 'ipv4', host: '10.0.0.1', port: 65535 }],
  ] as const)('parses a datagram to %s and returns its payload', (_name, head, target) => {
    const header = hex(head);
    const bytes = Buffer.concat([header, Buffer.from('payload')]);
    const r = parseUdpDatagram(bytes);
    expect(r).toEqual({ ok: true, value: { frag: 0, target, data: Buffer.from('payload') } });
    // Every proper prefix of the header is truncated; header alone is a datagram with no payload.
    for (let i = 0; i < header.length; i++) {
      expect(parseUdpDatagram(header.subarray(0, i)), `prefix of ${i} bytes`).toEqual({ ok: false, reason: 'truncated' });
    }
    expect(parseUdpDatagram(header)).toEqual({ ok: true, value: { frag: 0, target, data: Buffer.alloc(0) } });
  });

  it('returns FRAG as received (the relay drops FRAG ≠ 0)', () => {
    for (const frag of [0x01, 0x7f, 0x80, 0x81, 0xff]) {
      const r = parseUdpDatagram(Buffer.concat([hex(`0000 ${frag.toString(16).padStart(2, '0')} 01 7f000001 0035`), Buffer.from('x')]));
      expect(r.ok && r.value.frag).toBe(frag);
    }
  });

  it('returns the payload as a view into the input, not a copy', () => {
    const bytes = hex('0000 00 01 7f000001 0035 aabbcc');
    const r = parseUdpDatagram(bytes);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.data.buffer).toBe(bytes.buffer);
    expect(r.value.data.byteOffset).toBe(bytes.byteOffset + UDP_HEADER_MIN_BYTES);
  });

  it.each([
    ['an empty datagram', '', 'truncated'],
    ['RSV first byte not 0', '0100 00 01 7f000001 0035', 'bad-reserved'],
    ['RSV second byte not 0', '0001 00 01 7f000001 0035', 'bad-reserved'],
    ['RSV alone, not 0', 'ff', 'bad-reserved'],
    ['ATYP 0', '0000 00 00 7f000001 0035', 'unknown-address-type'],
    ['ATYP 2', '0000 00 02 7f000001 0035', 'unknown-address-type'],
    ['ATYP 5', '0000 00 05 7f000001 0035', 'unknown-address-type'],
    ['ATYP 0xff', '0000 00 ff', 'unknown-address-type'],
    ['a domain of length 0', '0000 00 03 00 0035', 'empty-domain'],
    ['a domain with a space', `0000 00 03 03 ${ascii('a b')} 0035`, 'bad-domain'],
    ['a domain with a NUL byte', '0000 00 03 03 610062 0035', 'bad-domain'],
    ['a domain that is not UTF-8', '0000 00 03 02 c328 0035', 'bad-domain'],
    ['a domain with a slash', `0000 00 03 03 ${ascii('a/b')} 0035`, 'bad-domain'],
    ['a domain shorter than its length octet', `0000 00 03 0a ${ascii('abc')}`, 'truncated'],
    ['an IPv4 address cut short', '0000 00 01 7f00', 'truncated'],
    ['an IPv6 address without its port', `0000 00 04 ${'00'.repeat(16)}`, 'truncated'],
    ['an IPv4 address with half a port', '0000 00 01 7f000001 00', 'truncated'],
  ] as const)('refuses %s', (_name, vector, reason: UdpParseReason) => {
    expect(parseUdpDatagram(hex(vector))).toEqual({ ok: false, reason });
  });
});

describe('encodeUdpDatagram / encodeUdpHeader (RFC 1928 §7)', () => {
  it.each([
    [{ kind: 'ipv4', host: '127.0.0.1', port: 53 }, '0000 00 01 7f000001 0035'],
    [{ kind: 'ipv6', host: '::1', port: 443 }, `0000 00 04 ${'00'.repeat(15)}01 01bb`],
    [{ kind: 'ipv6', host: '::ffff:127.0.0.1', port: 1 }, `0000 00 04 ${'00'.repeat(10)}ffff 7f000001 0001`],
    [{ kind: 'domain', host: 'example.org', port: 53 }, `0000 00 03 0b ${ascii('example.org')} 0035`],
  ] as const)('writes the header for %o', (source, head) => {
    expect(encodeUdpHeader(source)).toEqual(hex(head));
    expect(encodeUdpDatagram(source, Buffer.from('abc'))).toEqual(Buffer.concat([hex(head), Buffer.from('abc')]));
    expect(encodeUdpDatagram(source, new Uint8Array(0))).toEqual(hex(head));
  });

  it('writes FRAG when asked (for tests of fragment handling)', () => {
    expect(encodeUdpDatagram({ kind: 'ipv4', host: '1.2.3.4', port: 5 }, Buffer.from('z'), 3)).toEqual(hex('0000 03 01 01020304 0005 7a'));
  });

  it.each([
    ['an invalid IPv4 address', { kind: 'ipv4', host: '1.2.3', port: 1 }],
    ['an invalid IPv6 address', { kind: 'ipv6', host: '1::2::3', port: 1 }],
    ['an empty domain', { kind: 'domain', host: '', port: 1 }],
    ['a 256-byte domain', { kind: 'domain', host: 'a'.repeat(256), port: 1 }],
    ['a port above 65535', { kind: 'ipv4', host: '1.2.3.4', port: 65536 }],
    ['a negative port', { kind: 'ipv4', host: '1.2.3.4', port: -1 }],
  ] as const)('throws RangeError on %s', (_name, t) => {
    expect(() => encodeUdpHeader(t as Target)).toThrow(RangeError);
  });

  it('throws RangeError on a FRAG outside one byte', () => {
    expect(() => encodeUdpHeader({ kind: 'ipv4', host: '1.2.3.4', port: 5 }, 256)).toThrow(RangeError);
    expect(() => encodeUdpHeader({ kind: 'ipv4', host: '1.2.3.4', port: 5 }, -1)).toThrow(RangeError);
  });
});

describe('UDP header properties', () => {
  const port = fc.integer({ min: 0, max: 65535 });
  const target: fc.Arbitrary<Target> = fc.oneof(
    fc.record({ kind: fc.constant('ipv4' as const), host: fc.ipV4(), port }),
    fc.record({ kind: fc.constant('ipv6' as const), host: fc.ipV6(), port }),
    fc.record({ kind: fc.constant('domain' as const), host: fc.domain().filter((d) => Buffer.byteLength(d) <= 255), port }),
  );

  it('encode → parse returns the same FRAG, target (IPv6 canonical) and payload, and re-encodes to the same bytes', () => {
    fc.assert(
      fc.property(target, fc.uint8Array({ maxLength: 2_048 }), fc.integer({ min: 0, max: 255 }), (t, data, frag) => {
        const bytes = encodeUdpDatagram(t, data, frag);
        const r = parseUdpDatagram(bytes);
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        expect(r.value.frag).toBe(frag);
        expect(r.value.target.kind).toBe(t.kind);
        expect(r.value.target.port).toBe(t.port);
        if (t.kind !== 'ipv6') expect(r.value.target.host).toBe(t.host);
        expect(Buffer.from(r.value.data)).toEqual(Buffer.from(data));
        expect(encodeUdpDatagram(r.value.target, r.value.data, r.value.frag)).toEqual(bytes);
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on arbitrary bytes; whatever parses has a payload that ends the datagram', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (raw) => {
        const bytes = Buffer.from(raw);
        const r = parseUdpDatagram(bytes);
        if (r.ok) expect(r.value.data.byteOffset + r.value.data.length).toBe(bytes.byteOffset + bytes.length);
        else expect(['truncated', 'bad-reserved', 'unknown-address-type', 'empty-domain', 'bad-domain']).toContain(r.reason);
      }),
      { numRuns: 2_000 },
    );
  });

  it('a header that parses is truncated at every shorter length (the property behind the vector tests)', () => {
    fc.assert(
      fc.property(target, (t) => {
        const header = encodeUdpHeader(t);
        for (let i = 0; i < header.length; i++) expect(parseUdpDatagram(header.subarray(0, i))).toEqual({ ok: false, reason: 'truncated' });
      }),
      { numRuns: 200 },
    );
  });
});

// ── The SOCKS server's UDP ASSOCIATE and the client relay, in process ────────

/** The mux side of one association, faked: records DATAGRAMs sent, lets the test deliver replies. */
class FakeAssociation implements DatagramSession {
  readonly sent: Array<{ streamId: number; target: Target; data: Buffer }> = [];
  handler: ((addr: Target, data: Buffer) => void) | null = null;
  handlerCalls = 0;
  accept = true;
  readonly stream: Duplex & { id: number };
  resets = 0;

  constructor(id = 7) {
    const self = this;
    this.stream = Object.assign(
      new Duplex({
        read() {},
        write(_c, _e, cb) {
          cb();
        },
        destroy(err, cb) {
          self.resets++;
          cb(err);
        },
      }),
      { id },
    );
  }

  sendDatagram(streamId: number, target: Target, data: Buffer): boolean {
    if (!this.accept) return false;
    this.sent.push({ streamId, target, data: Buffer.from(data) });
    return true;
  }

  setDatagramHandler(_id: number, handler: ((addr: Target, data: Buffer) => void) | null): void {
    this.handlerCalls++;
    this.handler = handler;
  }
}

let servers: SocksServer[] = [];
let apps: TestClient[] = [];
let sockets: dgram.Socket[] = [];

afterEach(async () => {
  for (const a of apps) a.destroy();
  for (const s of sockets) s.close();
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  apps = [];
  sockets = [];
});

interface UdpStarted {
  port: number;
  relays: UdpRelay[];
  fakes: FakeAssociation[];
  signals: AbortSignal[];
}

/** A SOCKS server whose UDP ASSOCIATE opens real relays on a fake tunnel. */
async function startUdp(
  opts: { host?: string; limits?: Partial<Limits>; open?: (signal: AbortSignal) => Promise<FakeAssociation>; noUdp?: boolean } = {},
): Promise<UdpStarted> {
  const relays: UdpRelay[] = [];
  const fakes: FakeAssociation[] = [];
  const signals: AbortSignal[] = [];
  const limits = defaultLimits(opts.limits);
  const tunnel: UdpTunnel = {
    openAssociation: async (signal) => {
      signals.push(signal);
      const fake = opts.open ? await opts.open(signal) : new FakeAssociation();
      fakes.push(fake);
      return { session: fake, stream: fake.stream };
    },
  };
  const udp: SocksUdpAssociate = async (req, signal) => {
    const r = await UdpRelay.open(req, signal, { tunnel, limits, logger: silentLogger() }, relays.length + 1);
    relays.push(r);
    return r;
  };
  const server = new SocksServer({
    host: opts.host ?? '127.0.0.1',
    port: 0,
    auth: null,
    limits,
    logger: silentLogger(),
    connect: () => Promise.reject(new PosternError('E_NOT_ALLOWED')),
    ...(opts.noUdp ? {} : { udp }),
  });
  servers.push(server);
  const { port } = await server.listen();
  return { port, relays, fakes, signals };
}

async function app(port: number, host = '127.0.0.1'): Promise<TestClient> {
  const sock = net.connect({ host, port, noDelay: true });
  const c = new TestClient(sock);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  apps.push(c);
  return c;
}

const ANY4: Target = { kind: 'ipv4', host: '0.0.0.0', port: 0 };

/** Greeting + UDP ASSOCIATE; returns the control connection and the reply. */
async function associate(port: number, requested: Target = ANY4, host = '127.0.0.1') {
  const control = await app(port, host);
  control.write(Buffer.concat([encodeGreeting([AuthMethod.NONE]), encodeRequest(Command.UDP_ASSOCIATE, requested)]));
  expect(await control.read(2)).toEqual(hex('05 00'));
  const reply = await control.readReply();
  return { control, reply };
}

async function udpSocket(type: 'udp4' | 'udp6' = 'udp4', address = '127.0.0.1', port = 0): Promise<dgram.Socket & { got: Buffer[] }> {
  const s = Object.assign(dgram.createSocket(type), { got: [] as Buffer[] });
  s.on('message', (m) => s.got.push(m));
  s.on('error', () => undefined);
  await new Promise<void>((resolve) => s.bind(port, address, resolve));
  sockets.push(s);
  return s;
}

const TO_ECHO: Target = { kind: 'ipv4', host: '127.0.0.1', port: 7 };

/** Sends one datagram to the relay and waits until the relay has counted it. */
async function sendTo(relay: UdpRelay, from: dgram.Socket, bytes: Buffer, port: number, host = '127.0.0.1'): Promise<void> {
  const before = relay.stats.received;
  from.send(bytes, port, host);
  await waitFor(() => relay.stats.received > before, 'the relay to receive a datagram');
}

describe('SOCKS UDP ASSOCIATE with the client relay (RFC 1928 §7)', () => {
  it('replies with the relay address on the control connection’s local address, and relays both ways', async () => {
    const { port, relays, fakes } = await startUdp();
    const { reply } = await associate(port);
    expect(reply.reply).toBe(SocksReply.SUCCEEDED);
    expect(reply.bind.kind).toBe('ipv4');
    expect(reply.bind.host).toBe('127.0.0.1');
    expect(reply.bind.port).toBe(relays[0]!.bind.port);
    const me = await udpSocket();
    await sendTo(relays[0]!, me, encodeUdpDatagram(TO_ECHO, Buffer.from('ping')), reply.bind.port);
    expect(fakes[0]!.sent).toEqual([{ streamId: 7, target: TO_ECHO, data: Buffer.from('ping') }]);
    // A reply from the bridge reaches the pinned app address with the source in the header.
    fakes[0]!.handler!({ kind: 'ipv6', host: '::1', port: 9 }, Buffer.from('pong'));
    await waitFor(() => me.got.length === 1, 'the reply');
    expect(me.got[0]).toEqual(encodeUdpDatagram({ kind: 'ipv6', host: '::1', port: 9 }, Buffer.from('pong')));
    expect(relays[0]!.stats).toMatchObject({ received: 1, forwarded: 1, returned: 1 });
  });

  it('sends a domain target to the bridge unresolved', async () => {
    const { port, relays, fakes } = await startUdp();
    const { reply } = await associate(port);
    const me = await udpSocket();
    const name: Target = { kind: 'domain', host: 'udp-echo.invalid', port: 5353 };
    await sendTo(relays[0]!, me, encodeUdpDatagram(name, Buffer.from('q')), reply.bind.port);
    expect(fakes[0]!.sent[0]!.target).toEqual(name);
  });

  it('binds an IPv6 relay when the control connection came over IPv6', async () => {
    const { port, relays, fakes } = await startUdp({ host: '::1' });
    const { reply } = await associate(port, { kind: 'ipv6', host: '::', port: 0 }, '::1');
    expect(reply.reply).toBe(SocksReply.SUCCEEDED);
    expect(reply.bind).toEqual({ kind: 'ipv6', host: '::1', port: relays[0]!.bind.port });
    const me = await udpSocket('udp6', '::1');
    await sendTo(relays[0]!, me, encodeUdpDatagram(TO_ECHO, Buffer.from('six')), reply.bind.port, '::1');
    expect(fakes[0]!.sent.map((d) => d.data.toString())).toEqual(['six']);
  });

  it('pins the first sender’s port: a stranger on another port is dropped and counted', async () => {
    const { port, relays, fakes } = await startUdp();
    const { reply } = await associate(port);
    const me = await udpSocket();
    const stranger = await udpSocket();
    await sendTo(relays[0]!, me, encodeUdpDatagram(TO_ECHO, Buffer.from('mine')), reply.bind.port);
    await sendTo(relays[0]!, stranger, encodeUdpDatagram(TO_ECHO, Buffer.from('theirs')), reply.bind.port);
    await sendTo(relays[0]!, me, encodeUdpDatagram(TO_ECHO, Buffer.from('mine again')), reply.bind.port);
    expect(fakes[0]!.sent.map((d) => d.data.toString())).toEqual(['mine', 'mine again']);
    expect(relays[0]!.stats.dropped.stranger).toBe(1);
    // Replies go to the pinned sender only.
    fakes[0]!.handler!(TO_ECHO, Buffer.from('back'));
    await waitFor(() => me.got.length === 1, 'the reply');
    await new Promise((r) => setTimeout(r, 50));
    expect(stranger.got).toEqual([]);
  });

  it('with a DST.PORT in the request, takes datagrams only from that port', async () => {
    const wanted = await udpSocket();
    const other = await udpSocket();
    const { port, relays, fakes } = await startUdp();
    const { reply } = await associate(port, { kind: 'ipv4', host: '0.0.0.0', port: wanted.address().port });
    await sendTo(relays[0]!, other, encodeUdpDatagram(TO_ECHO, Buffer.from('early stranger')), reply.bind.port);
    await sendTo(relays[0]!, wanted, encodeUdpDatagram(TO_ECHO, Buffer.from('named')), reply.bind.port);
    expect(fakes[0]!.sent.map((d) => d.data.toString())).toEqual(['named']);
    expect(relays[0]!.stats.dropped.stranger).toBe(1);
  });

  it('with a DST.ADDR other than the app’s address, takes nothing', async () => {
    const { port, relays, fakes } = await startUdp();
    const { reply } = await associate(port, { kind: 'ipv4', host: '127.0.0.2', port: 0 });
    const me = await udpSocket();
    await sendTo(relays[0]!, me, encodeUdpDatagram(TO_ECHO, Buffer.from('x')), reply.bind.port);
    expect(fakes[0]!.sent).toEqual([]);
    expect(relays[0]!.stats.dropped.stranger).toBe(1);
  });

  it('with DST.ADDR equal to the app’s address, relays as usual', async () => {
    const { port, relays, fakes } = await startUdp();
    const { reply } = await associate(port, { kind: 'ipv4', host: '127.0.0.1', port: 0 });
    const me = await udpSocket();
    await sendTo(relays[0]!, me, encodeUdpDatagram(TO_ECHO, Buffer.from('x')), reply.bind.port);
    expect(fakes[0]!.sent.length).toBe(1);
  });

  it('drops FRAG ≠ 0, malformed headers, port 0 and oversize payloads, and keeps relaying', async () => {
    const { port, relays, fakes } = await startUdp({ limits: { UDP_MAX_DATAGRAM_BYTES: 512 } });
    const { reply } = await associate(port);
    const me = await udpSocket();
    const r = relays[0]!;
    await sendTo(r, me, encodeUdpDatagram(TO_ECHO, Buffer.from('frag'), 1), reply.bind.port);
    await sendTo(r, me, encodeUdpDatagram(TO_ECHO, Buffer.from('last frag'), 0x81), reply.bind.port);
    await sendTo(r, me, hex('0100 00 01 7f000001 0007 41'), reply.bind.port);
    await sendTo(r, me, hex('0000 00 09 7f000001 0007 41'), reply.bind.port);
    await sendTo(r, me, hex('0000 00 01 7f00'), reply.bind.port);
    await sendTo(r, me, encodeUdpDatagram({ ...TO_ECHO, port: 0 }, Buffer.from('p0')), reply.bind.port);
    await sendTo(r, me, encodeUdpDatagram(TO_ECHO, Buffer.alloc(513, 1)), reply.bind.port);
    await sendTo(r, me, encodeUdpDatagram(TO_ECHO, Buffer.alloc(512, 2)), reply.bind.port);
    expect(r.stats.dropped).toMatchObject({ fragmented: 2, malformed: 4, oversize: 1, stranger: 0 });
    expect(fakes[0]!.sent.map((d) => d.data.length)).toEqual([512]);
  });

  it('counts a datagram the session refuses (congested) as dropped', async () => {
    const { port, relays, fakes } = await startUdp();
    const { reply } = await associate(port);
    const me = await udpSocket();
    fakes[0]!.accept = false;
    await sendTo(relays[0]!, me, encodeUdpDatagram(TO_ECHO, Buffer.from('x')), reply.bind.port);
    expect(relays[0]!.stats.dropped.congested).toBe(1);
    expect(relays[0]!.stats.forwarded).toBe(0);
  });

  it('drops a reply from the bridge while no app address is pinned', async () => {
    const { port, relays, fakes } = await startUdp();
    await associate(port);
    fakes[0]!.handler!(TO_ECHO, Buffer.from('early'));
    expect(relays[0]!.stats.dropped.unpinned).toBe(1);
  });

  it('discards what the app sends on the control connection and keeps the association', async () => {
    const { port, relays, fakes } = await startUdp();
    const { control, reply } = await associate(port);
    control.write(Buffer.alloc(200_000, 0x41));
    await new Promise((r) => setTimeout(r, 50));
    const me = await udpSocket();
    await sendTo(relays[0]!, me, encodeUdpDatagram(TO_ECHO, Buffer.from('still here')), reply.bind.port);
    expect(fakes[0]!.sent.length).toBe(1);
    expect(control.closed).toBe(false);
    expect(control.pending.length).toBe(0);
  });

  it('ends the association when the control connection closes: stream reset, relay socket closed', async () => {
    const { port, relays, fakes } = await startUdp();
    const { control } = await associate(port);
    control.destroy();
    await waitFor(() => relays[0]!.closed, 'the relay to close');
    expect(fakes[0]!.resets).toBe(1);
    expect(fakes[0]!.handler).toBe(null);
    // The port is free again: binding it succeeds.
    const again = await udpSocket('udp4', '127.0.0.1', relays[0]!.bind.port);
    expect(again.address().port).toBe(relays[0]!.bind.port);
  });

  it('ends the association when the app half-closes the control connection', async () => {
    const { port, relays } = await startUdp();
    const { control } = await associate(port);
    control.sock.end();
    await waitFor(() => relays[0]!.closed, 'the relay to close');
    await control.waitClosed();
  });

  it('closes the control connection when the bridge ends the association (RESET or FIN)', async () => {
    for (const how of ['reset', 'fin'] as const) {
      const { port, relays, fakes } = await startUdp();
      const { control } = await associate(port);
      if (how === 'reset') fakes[0]!.stream.destroy(new PosternError('E_TIMEOUT'));
      else fakes[0]!.stream.push(null);
      await control.waitClosed();
      expect(relays[0]!.closed).toBe(true);
    }
  });

  it.each<[string, ErrorCode, number]>([
    ['an old bridge that does not know the command (E_PROTOCOL)', 'E_PROTOCOL', SocksReply.COMMAND_NOT_SUPPORTED],
    ['a bridge with UDP disabled (E_NOT_ALLOWED)', 'E_NOT_ALLOWED', SocksReply.NOT_ALLOWED],
    ['a bridge at its association limit (E_STREAM_LIMIT)', 'E_STREAM_LIMIT', SocksReply.GENERAL_FAILURE],
    ['no tunnel (E_TUNNEL_DOWN)', 'E_TUNNEL_DOWN', SocksReply.GENERAL_FAILURE],
  ])('answers a refusal by %s with its SOCKS reply', async (_name, code, rep) => {
    const { port } = await startUdp({ open: () => Promise.reject(new PosternError(code)) });
    const { control, reply } = await associate(port);
    expect(reply.reply).toBe(rep);
    await control.waitClosed();
  });

  it('answers UDP ASSOCIATE with 0x07 when the server has no UDP handler', async () => {
    const { port } = await startUdp({ noUdp: true });
    const { reply } = await associate(port);
    expect(reply.reply).toBe(SocksReply.COMMAND_NOT_SUPPORTED);
  });

  it('aborts the pending association when the app leaves before the reply, and releases a late one', async () => {
    let release: (f: FakeAssociation) => void = () => undefined;
    const late = new FakeAssociation();
    const { port, signals } = await startUdp({ open: () => new Promise((resolve) => (release = resolve)) });
    const control = await app(port);
    control.write(Buffer.concat([encodeGreeting([AuthMethod.NONE]), encodeRequest(Command.UDP_ASSOCIATE, ANY4)]));
    await waitFor(() => signals.length === 1, 'the association to be requested');
    control.destroy();
    await waitFor(() => signals[0]!.aborted, 'the abort');
    release(late); // a tunnel that ignored the abort: the relay is closed at once
    await waitFor(() => late.resets === 1, 'the late stream to be reset');
  });

  it('counts an association against the listener’s connection limit', async () => {
    const { port } = await startUdp({ limits: { LOCAL_MAX_CONNECTIONS: 1 } });
    const { reply } = await associate(port);
    expect(reply.reply).toBe(SocksReply.SUCCEEDED);
    const second = await app(port);
    await second.waitClosed();
  });
});
