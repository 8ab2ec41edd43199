/**
 * The bridge side of UDP ASSOCIATE (docs/protocol.md §10) over a real MuxSession pair, with real
 * UDP sockets on loopback only: echo by IPv4, IPv6 and name, policy drops, strangers, idle
 * timeout, release on every kind of end, and the bridge-wide cap.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { bridgeMetrics, type BridgeMetrics } from '../../../src/bridge/metrics.js';
import { compilePolicy, type EgressPolicy } from '../../../src/bridge/policy.js';
import { withHosts, type Resolver } from '../../../src/bridge/egress.js';
import { TokenBucket } from '../../../src/bridge/limiter.js';
import { UdpAssociations, type UdpAssociationsOptions } from '../../../src/bridge/udp.js';
import type { Target } from '../../../src/core/address.js';
import { PosternError } from '../../../src/core/errors.js';
import { defaultLimits, type Limits } from '../../../src/core/limits.js';
import { FrameType } from '../../../src/mux/frame.js';
import type { MuxStream } from '../../../src/mux/stream.js';
import { captureLogger, framesSent, trackedPairs, until, type SessionPair } from '../mux/helpers.js';

const { pair, closeAll } = trackedPairs();
const sockets = new Set<dgram.Socket>();

afterEach(() => {
  closeAll();
  for (const s of sockets) {
    try {
      s.close();
    } catch {
      // closed already
    }
  }
  sockets.clear();
});

const failing: Resolver = () => Promise.reject(Object.assign(new Error('nope'), { code: 'ENOTFOUND' }));

function policy(over: Partial<Parameters<typeof compilePolicy>[0]> = {}): EgressPolicy {
  return compilePolicy({ allowPrivate: true, allowRanges: [], allowPorts: null, denyPorts: [], allowOnly: null, ...over });
}

interface Server {
  readonly sock: dgram.Socket;
  readonly port: number;
  /** Datagrams received, with where they came from. */
  readonly seen: Array<{ data: Buffer; address: string; port: number }>;
}

/** A UDP server on loopback; echoes what it gets unless `echo` is false. */
async function udpServer(host: '127.0.0.1' | '127.0.0.2' | '::1', echo = true): Promise<Server> {
  const sock = dgram.createSocket(host === '::1' ? 'udp6' : 'udp4');
  sockets.add(sock);
  const seen: Server['seen'] = [];
  sock.on('message', (data, rinfo) => {
    seen.push({ data, address: rinfo.address, port: rinfo.port });
    if (echo) sock.send(data, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => sock.bind(0, host, resolve));
  return { sock, port: sock.address().port, seen };
}

interface Rig {
  readonly p: SessionPair;
  readonly udp: UdpAssociations;
  readonly metrics: BridgeMetrics;
  readonly logs: string[];
  /** Sockets the bridge made and has not closed. */
  readonly openSockets: Set<dgram.Socket>;
  socketsMade: number;
}

interface RigOptions {
  readonly limits?: Partial<Limits>;
  /** A function is read for every datagram (as the bridge reads its current, reloadable policy). */
  readonly policy?: EgressPolicy | (() => EgressPolicy);
  readonly resolver?: Resolver;
  readonly logDestinations?: boolean;
  readonly createSocket?: UdpAssociationsOptions['createSocket'];
  readonly bandwidth?: UdpAssociationsOptions['bandwidth'];
}

/** A session pair whose bridge serves 'udp-associate' opens with a UdpAssociations. */
function rig(o: RigOptions = {}): Rig {
  const limits = defaultLimits(o.limits);
  const p = pair(o.limits);
  const metrics = bridgeMetrics();
  const { logger, lines } = captureLogger();
  const openSockets = new Set<dgram.Socket>();
  const r: Rig = { p, udp: null as unknown as UdpAssociations, metrics, logs: lines, openSockets, socketsMade: 0 };
  const udp = new UdpAssociations({
    limits,
    metrics,
    egress: () => ({ policy: typeof o.policy === 'function' ? o.policy() : (o.policy ?? policy()), resolver: o.resolver ?? failing }),
    logDestinations: () => o.logDestinations ?? false,
    ...(o.bandwidth ? { bandwidth: o.bandwidth } : {}),
    createSocket:
      o.createSocket ??
      ((opts) => {
        const s = dgram.createSocket(opts);
        r.socketsMade++;
        openSockets.add(s);
        sockets.add(s);
        s.on('close', () => openSockets.delete(s));
        return s;
      }),
  });
  (r as { udp: UdpAssociations }).udp = udp;
  p.bridge.on('open', (req) => {
    if (req.command !== 'udp-associate') return req.reject(new PosternError('E_GENERAL'));
    void udp.open(req, p.bridge, 'user1', () => logger);
  });
  return r;
}

interface Assoc {
  readonly stream: MuxStream;
  readonly got: Array<{ addr: Target; data: Buffer }>;
  send(addr: Target, data: Buffer | string): boolean;
}

async function associate(r: Rig): Promise<Assoc> {
  const stream = await r.p.client.openAssociation();
  stream.on('error', () => undefined);
  stream.resume(); // no data on an association; flowing lets the bridge's FIN end it
  const got: Assoc['got'] = [];
  r.p.client.setDatagramHandler(stream.id, (addr, data) => got.push({ addr, data: Buffer.from(data) }));
  return { stream, got, send: (addr, data) => r.p.client.sendDatagram(stream.id, addr, Buffer.from(data)) };
}

async function openCode(r: Rig): Promise<string> {
  try {
    const s = await r.p.client.openAssociation();
    s.destroy();
    return 'ok';
  } catch (err) {
    return err instanceof PosternError ? err.code : String(err);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const v4 = (port: number, host = '127.0.0.1'): Target => ({ kind: 'ipv4', host, port });

/** True when nothing else holds this UDP port on 127.0.0.1 (binding it succeeds). */
async function portFree(port: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(port, '127.0.0.1', resolve);
    });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') return false;
    throw err;
  } finally {
    try {
      s.close();
    } catch {
      // never bound
    }
  }
}

describe('bridge UDP associations: relaying', () => {
  it('echoes through an association to an IPv4 target, reporting the source, and counts both ways', async () => {
    const r = rig();
    const echo = await udpServer('127.0.0.1');
    const a = await associate(r);
    expect(r.udp.count).toBe(1);
    for (let i = 0; i < 5; i++) expect(a.send(v4(echo.port), `ping ${i}`)).toBe(true);
    await until(() => a.got.length === 5, 2_000, 'five echoes');
    expect(a.got.map((g) => g.data.toString())).toEqual(['ping 0', 'ping 1', 'ping 2', 'ping 3', 'ping 4']);
    for (const g of a.got) expect(g.addr).toEqual({ kind: 'ipv4', host: '127.0.0.1', port: echo.port });
    const m = r.metrics;
    expect(m.udpDatagrams.get({ direction: 'up' })).toBe(5);
    expect(m.udpDatagrams.get({ direction: 'down' })).toBe(5);
    expect(m.udpBytes.get({ direction: 'up' })).toBe(30);
    expect(m.userBytes.get({ user: 'user1', direction: 'down' })).toBe(30);
    expect(m.udpAssociations.get()).toBe(1);
    expect(m.udpAssociationsTotal.get()).toBe(1);
    expect(r.metrics.registry.render()).toContain('postern_udp_datagrams_dropped_total{reason="stranger"} 0');
  });

  it('drops and counts a datagram to port 0 (IPv4, IPv6, name) and keeps the association (issue 10, item 7)', async () => {
    const r = rig({ resolver: withHosts({ 'echo.test': ['127.0.0.1'] }, failing) });
    const echo = await udpServer('127.0.0.1');
    const a = await associate(r);
    a.send(v4(0), 'nowhere');
    a.send({ kind: 'ipv6', host: '::1', port: 0 }, 'nowhere');
    a.send({ kind: 'domain', host: 'echo.test', port: 0 }, 'nowhere');
    await until(() => r.metrics.udpDropped.get({ reason: 'port_zero' }) === 3, 2_000, 'three port-0 drops');
    // The association is still there and still relays.
    a.send(v4(echo.port), 'still here');
    await until(() => a.got.length === 1, 2_000, 'echo after the drops');
    expect(a.got[0]?.data.toString()).toBe('still here');
    expect(a.stream.destroyed).toBe(false);
    expect(r.udp.count).toBe(1);
    expect(r.metrics.udpAssociationEnds.get({ reason: 'error' })).toBe(0);
    expect(r.logs.filter((l) => l.includes('"level":50'))).toEqual([]);
    expect(r.metrics.registry.render()).toContain('postern_udp_datagrams_dropped_total{reason="port_zero"} 3');
  });

  it('echoes to an IPv6 target ([::1]) over a udp6 socket made on first use', async () => {
    const r = rig();
    const echo = await udpServer('::1');
    const a = await associate(r);
    expect(r.socketsMade).toBe(1); // udp4 only, until an IPv6 destination appears
    a.send({ kind: 'ipv6', host: '::1', port: echo.port }, 'six');
    a.send({ kind: 'ipv6', host: '::1', port: echo.port }, 'six again');
    await until(() => a.got.length === 2, 2_000, 'IPv6 echoes');
    expect(a.got.map((g) => g.data.toString())).toEqual(['six', 'six again']);
    expect(a.got[0]?.addr).toEqual({ kind: 'ipv6', host: '::1', port: echo.port });
    expect(r.socketsMade).toBe(2);
  });

  it('resolves a domain target at the bridge (one lookup for many datagrams) and reports the address', async () => {
    let lookups = 0;
    const resolver = withHosts({}, async (name) => {
      lookups++;
      if (name !== 'echo.test') throw Object.assign(new Error('no'), { code: 'ENOTFOUND' });
      return [{ address: '127.0.0.1', family: 4 }];
    });
    const r = rig({ resolver });
    const echo = await udpServer('127.0.0.1');
    const a = await associate(r);
    for (let i = 0; i < 3; i++) a.send({ kind: 'domain', host: 'echo.test', port: echo.port }, `n${i}`);
    await until(() => a.got.length === 3, 2_000, 'echoes by name');
    expect(a.got.map((g) => g.data.toString())).toEqual(['n0', 'n1', 'n2']);
    expect(a.got[0]?.addr).toEqual({ kind: 'ipv4', host: '127.0.0.1', port: echo.port });
    a.send({ kind: 'domain', host: 'ECHO.test.', port: echo.port }, 'cached');
    await until(() => a.got.length === 4, 2_000, 'cached echo');
    expect(lookups).toBe(1);
    a.send({ kind: 'domain', host: 'nowhere.invalid', port: echo.port }, 'x');
    await until(() => r.metrics.udpDropped.get({ reason: 'dns' }) === 1, 2_000, 'dns drop');
    expect(echo.seen).toHaveLength(4);
  });

  it('sends an IPv4-mapped IPv6 destination over IPv4 and reports replies in that same form', async () => {
    const r = rig();
    const echo = await udpServer('127.0.0.1');
    const a = await associate(r);
    a.send({ kind: 'ipv6', host: '::ffff:127.0.0.1', port: echo.port }, 'mapped');
    await until(() => a.got.length === 1, 2_000, 'mapped echo');
    expect(a.got[0]?.addr).toEqual({ kind: 'ipv6', host: '::ffff:127.0.0.1', port: echo.port });
    expect(r.socketsMade).toBe(1); // no udp6 socket was needed
  });

  it('holds at most UDP_DNS_PENDING_COUNT datagrams waiting on a lookup and drops the rest', async () => {
    let answer: (() => void) | null = null;
    const resolver: Resolver = (name) =>
      new Promise((resolve) => {
        answer = () => resolve(name === 'slow.test' ? [{ address: '127.0.0.1', family: 4 }] : []);
      });
    const r = rig({ resolver, limits: { UDP_DNS_PENDING_COUNT: 4 } });
    const sink = await udpServer('127.0.0.1', false);
    const a = await associate(r);
    for (let i = 0; i < 10; i++) a.send({ kind: 'domain', host: 'slow.test', port: sink.port }, `d${i}`);
    await until(() => r.metrics.udpDropped.get({ reason: 'dns_pending' }) === 6, 2_000, 'pending drops');
    await until(() => answer !== null, 2_000, 'the lookup');
    (answer as unknown as () => void)();
    await until(() => sink.seen.length === 4, 2_000, 'the four that waited');
    expect(sink.seen.map((s) => s.data.toString())).toEqual(['d0', 'd1', 'd2', 'd3']);
  });

  it('drops a datagram larger than UDP_MAX_DATAGRAM_BYTES', async () => {
    const r = rig({ limits: { UDP_MAX_DATAGRAM_BYTES: 65_507 } });
    // The bridge's own limit is smaller than the client's, so the client sends it.
    const small = new UdpAssociations({
      limits: defaultLimits({ UDP_MAX_DATAGRAM_BYTES: 512 }),
      metrics: r.metrics,
      egress: () => ({ policy: policy(), resolver: failing }),
      logDestinations: () => false,
    });
    r.p.bridge.removeAllListeners('open');
    r.p.bridge.on('open', (req) => void small.open(req, r.p.bridge, 'user1', () => captureLogger().logger));
    const echo = await udpServer('127.0.0.1');
    const a = await associate(r);
    a.send(v4(echo.port), Buffer.alloc(600, 1));
    a.send(v4(echo.port), Buffer.alloc(512, 2));
    await until(() => a.got.length === 1, 2_000, 'the small echo');
    expect(a.got[0]?.data.length).toBe(512);
    expect(r.metrics.udpDropped.get({ reason: 'too_large' })).toBe(1);
    expect(echo.seen).toHaveLength(1);
    a.stream.destroy();
    await until(() => small.count === 0, 2_000, 'association end');
  });
});

describe('bridge UDP associations: the user bandwidth cap', () => {
  it('drops datagrams (never delays them) beyond the user cap, each way, and counts them as rate', async () => {
    // 2,000 B burst each way, refilling at 1 B/s: effectively 2,000 bytes for the test.
    const up = new TokenBucket(1, 2_000);
    const down = new TokenBucket(1, 2_000);
    const r = rig({ bandwidth: (user) => (user === 'user1' ? { up, down } : null) });
    const echo = await udpServer('127.0.0.1');
    const a = await associate(r);
    for (let i = 0; i < 5; i++) a.send(v4(echo.port), Buffer.alloc(500, i));
    await until(() => r.metrics.udpDropped.get({ reason: 'rate' }) === 1, 2_000, 'the fifth datagram dropped up');
    await until(() => a.got.length === 4, 2_000, 'four echoes');
    expect(echo.seen.map((x) => x.data[0])).toEqual([0, 1, 2, 3]);
    // The down bucket is spent too: a fifth reply from the same peer would not fit.
    expect(down.tryTake(1)).toBe(false);
    echo.sock.send(Buffer.alloc(100, 9), (echo.seen[0] as { port: number }).port, '127.0.0.1'); // to the bridge's socket, from a known peer
    await until(() => r.metrics.udpDropped.get({ reason: 'rate' }) === 2, 2_000, 'a reply dropped down');
    expect(a.got).toHaveLength(4);
  });
});

describe('bridge UDP associations: egress policy and strangers', () => {
  it('drops datagrams to a forbidden range, port or name; the servers there see nothing', async () => {
    const resolver = withHosts({ 'inside.test': ['127.0.0.2'], 'ok.test': ['127.0.0.1'] }, failing);
    const forbiddenPort = await udpServer('127.0.0.1', false);
    const r = rig({
      resolver,
      policy: policy({ allowPrivate: false, allowRanges: ['127.0.0.1/32'], denyPorts: [forbiddenPort.port] }),
    });
    const forbiddenAddr = await udpServer('127.0.0.2', false);
    const echo = await udpServer('127.0.0.1');
    const a = await associate(r);
    a.send(v4(forbiddenAddr.port, '127.0.0.2'), 'range');
    a.send({ kind: 'domain', host: 'inside.test', port: forbiddenAddr.port }, 'name to range');
    a.send({ kind: 'ipv6', host: '::ffff:127.0.0.2', port: forbiddenAddr.port }, 'mapped range');
    a.send(v4(forbiddenPort.port), 'port');
    a.send({ kind: 'domain', host: 'ok.test', port: forbiddenPort.port }, 'name to port');
    // An allowed datagram after them: once its echo is back, the refused ones have been handled.
    a.send({ kind: 'domain', host: 'ok.test', port: echo.port }, 'allowed');
    await until(() => a.got.length === 1, 2_000, 'the allowed echo');
    await sleep(50);
    expect(forbiddenAddr.seen).toEqual([]);
    expect(forbiddenPort.seen).toEqual([]);
    expect(a.got.map((g) => g.data.toString())).toEqual(['allowed']);
    expect(r.metrics.udpDropped.get({ reason: 'policy_range' })).toBe(3);
    expect(r.metrics.udpDropped.get({ reason: 'policy_port' })).toBe(2);
    expect(r.udp.count).toBe(1); // refusals drop datagrams, not the association
  });

  it('applies a policy reload to the next datagram of an open association', async () => {
    let current = policy();
    const r = rig({ policy: () => current });
    const echo = await udpServer('127.0.0.1');
    const a = await associate(r);
    a.send(v4(echo.port), 'before');
    await until(() => a.got.length === 1, 2_000, 'echo before');
    current = policy({ allowPrivate: false });
    a.send(v4(echo.port), 'after');
    await until(() => r.metrics.udpDropped.get({ reason: 'policy_range' }) === 1, 2_000, 'refused after reload');
    await sleep(30);
    expect(echo.seen.map((s) => s.data.toString())).toEqual(['before']);
  });

  it('with allowPrivate off, a loopback target is refused (no destination in the logs)', async () => {
    const r = rig({ policy: policy({ allowPrivate: false }) });
    const server = await udpServer('127.0.0.1', false);
    const a = await associate(r);
    a.send(v4(server.port), 'no');
    a.send({ kind: 'ipv6', host: '::1', port: server.port }, 'no');
    await until(() => r.metrics.udpDropped.get({ reason: 'policy_range' }) === 2, 2_000, 'refusals');
    await sleep(30);
    expect(server.seen).toEqual([]);
    expect(r.socketsMade).toBe(1); // a refused IPv6 destination does not even open the udp6 socket
    a.stream.destroy();
    await until(() => r.udp.count === 0, 2_000, 'end');
    const text = r.logs.join('\n');
    expect(text).toContain('refused by policy');
    expect(text).not.toContain('127.0.0.1');
    expect(text).not.toContain(String(server.port));
  });

  it('names the destination in the debug log only when the operator enabled log.destinations', async () => {
    const r = rig({ policy: policy({ allowPrivate: false }), logDestinations: true });
    const a = await associate(r);
    a.send(v4(9), 'no');
    await until(() => r.logs.some((l) => l.includes('refused by policy')), 2_000, 'the refusal log');
    expect(r.logs.join('\n')).toContain('127.0.0.1:9');
  });

  it('does not relay a stranger’s datagram to the bridge’s UDP port, nor one from another port of the target host', async () => {
    const r = rig();
    const echo = await udpServer('127.0.0.1');
    const a = await associate(r);
    a.send(v4(echo.port), 'first');
    await until(() => a.got.length === 1, 2_000, 'first echo');
    const bridgePort = echo.seen[0]?.port as number;
    expect(bridgePort).toBeGreaterThan(0);
    const stranger = await udpServer('127.0.0.1', false);
    stranger.sock.send('from a stranger', bridgePort, '127.0.0.1');
    const stranger6 = await udpServer('::1', false);
    // Also to the bridge's udp6 socket once it exists.
    a.send({ kind: 'ipv6', host: '::1', port: stranger6.port }, 'open udp6');
    await until(() => stranger6.seen.length === 1, 2_000, 'udp6 datagram');
    const bridgePort6 = stranger6.seen[0]?.port as number;
    const other6 = await udpServer('::1', false);
    other6.sock.send('stranger over v6', bridgePort6, '::1');
    await until(() => r.metrics.udpDropped.get({ reason: 'stranger' }) === 2, 2_000, 'stranger drops');
    // The known peer still gets through afterwards, and it is the only thing that did.
    stranger6.sock.send('known v6 peer', bridgePort6, '::1');
    a.send(v4(echo.port), 'second');
    await until(() => a.got.length === 3, 2_000, 'second echo and the v6 reply');
    await sleep(30);
    expect(a.got.map((g) => g.data.toString()).sort()).toEqual(['first', 'known v6 peer', 'second']);
  });

  it('remembers at most UDP_ASSOCIATION_MAX_PEERS endpoints, forgetting the oldest', async () => {
    const r = rig({ limits: { UDP_ASSOCIATION_MAX_PEERS: 2 } });
    const s1 = await udpServer('127.0.0.1', false);
    const s2 = await udpServer('127.0.0.1', false);
    const s3 = await udpServer('127.0.0.1', false);
    const a = await associate(r);
    for (const s of [s1, s2, s3]) a.send(v4(s.port), 'hi');
    await until(() => s1.seen.length + s2.seen.length + s3.seen.length === 3, 2_000, 'three sends');
    const bridgePort = s1.seen[0]?.port as number;
    for (const s of [s1, s2, s3]) s.sock.send(`from ${s.port}`, bridgePort, '127.0.0.1');
    await until(() => a.got.length === 2 && r.metrics.udpDropped.get({ reason: 'stranger' }) === 1, 2_000, 'two replies, one drop');
    expect(a.got.map((g) => g.addr.port).sort()).toEqual([s2.port, s3.port].sort());
  });
});

describe('bridge UDP associations: ends and limits', () => {
  it('ends an idle association with RESET TIMEOUT (0x06) and releases its socket', async () => {
    const r = rig({ limits: { UDP_ASSOCIATION_IDLE_MS: 300 } });
    const echo = await udpServer('127.0.0.1');
    const a = await associate(r);
    let err: Error | null = null;
    a.stream.on('error', (e) => (err = e));
    // Traffic keeps it alive past the idle limit…
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) {
      a.send(v4(echo.port), 'keepalive');
      await sleep(100);
    }
    expect(Date.now() - t0).toBeGreaterThan(450);
    expect(r.udp.count).toBe(1);
    // …silence ends it.
    await until(() => r.udp.count === 0, 2_000, 'idle end');
    await until(() => err !== null, 2_000, 'client sees the reset');
    expect((err as unknown as PosternError).code).toBe('E_TIMEOUT');
    expect(framesSent(r.p, 'b2c').some((f) => f.type === FrameType.RESET && f.code === 0x06)).toBe(true);
    expect(r.metrics.udpAssociationEnds.get({ reason: 'idle' })).toBe(1);
    expect(r.openSockets.size).toBe(0);
  });

  it('a FIN from the client is answered with FIN, and the socket is closed (its port is free again)', async () => {
    const r = rig();
    const echo = await udpServer('127.0.0.1');
    const a = await associate(r);
    a.send(v4(echo.port), 'x');
    await until(() => a.got.length === 1, 2_000, 'echo');
    const bridgePort = echo.seen[0]?.port as number;
    expect(await portFree(bridgePort)).toBe(false);
    let closedWith: Error | null | undefined;
    a.stream.on('close', () => (closedWith = a.stream.errored));
    a.stream.end();
    await until(() => closedWith !== undefined, 2_000, 'client stream closed');
    expect(closedWith).toBeNull(); // a clean FIN both ways, no RESET
    expect(framesSent(r.p, 'b2c').some((f) => f.type === FrameType.FIN)).toBe(true);
    await until(() => r.udp.count === 0 && r.openSockets.size === 0, 2_000, 'released');
    expect(await portFree(bridgePort)).toBe(true);
    // A datagram to the old port goes nowhere: no echo comes back through the tunnel.
    echo.sock.send('late', bridgePort, '127.0.0.1');
    await sleep(30);
    expect(a.got).toHaveLength(1);
    expect(r.metrics.udpAssociations.get()).toBe(0);
  });

  it('a RESET from the client and a closed session both release the sockets (udp4 and udp6)', async () => {
    const r = rig();
    const echo6 = await udpServer('::1');
    const a = await associate(r);
    a.send({ kind: 'ipv6', host: '::1', port: echo6.port }, 'v6');
    await until(() => a.got.length === 1, 2_000, 'echo');
    expect(r.openSockets.size).toBe(2);
    a.stream.destroy();
    await until(() => r.udp.count === 0 && r.openSockets.size === 0, 2_000, 'released after RESET');
    const b = await associate(r);
    const c = await associate(r);
    b.send({ kind: 'ipv6', host: '::1', port: echo6.port }, 'v6');
    c.send(v4(9), 'v4');
    await until(() => r.openSockets.size === 3, 2_000, 'three sockets');
    r.p.client.close();
    await until(() => r.udp.count === 0 && r.openSockets.size === 0, 2_000, 'released after session close');
    expect(r.socketsMade).toBe(5);
    expect(r.metrics.udpAssociationEnds.get({ reason: 'closed' })).toBe(3);
  });

  it('enforces UDP_BRIDGE_MAX_ASSOCIATIONS across sessions (E_STREAM_LIMIT) and frees a slot on end', async () => {
    const r = rig({ limits: { UDP_BRIDGE_MAX_ASSOCIATIONS: 2 } });
    const a = await associate(r);
    await associate(r);
    expect(await openCode(r)).toBe('E_STREAM_LIMIT');
    // A second session of the same bridge shares the cap.
    const p2 = pair();
    p2.bridge.on('open', (req) => void r.udp.open(req, p2.bridge, 'user2', () => captureLogger().logger));
    await expect(p2.client.openAssociation()).rejects.toMatchObject({ code: 'E_STREAM_LIMIT' });
    a.stream.destroy();
    await until(() => r.udp.count === 1, 2_000, 'a slot freed');
    const s = await p2.client.openAssociation();
    s.on('error', () => undefined);
    expect(r.udp.count).toBe(2);
    expect(r.metrics.udpAssociationsRefused.get({ code: 'E_STREAM_LIMIT' })).toBe(2);
    p2.client.close();
    await until(() => r.udp.count === 1, 2_000, 'second session gone');
  });

  it('UDP_BRIDGE_MAX_ASSOCIATIONS 0 disables UDP: E_NOT_ALLOWED and no socket made', async () => {
    const r = rig({ limits: { UDP_BRIDGE_MAX_ASSOCIATIONS: 0 } });
    expect(await openCode(r)).toBe('E_NOT_ALLOWED');
    expect(r.socketsMade).toBe(0);
    expect(r.metrics.udpAssociationsRefused.get({ code: 'E_NOT_ALLOWED' })).toBe(1);
  });

  it('a socket that cannot be made or bound refuses the open with E_GENERAL and holds no slot', async () => {
    const r = rig({
      createSocket: () => {
        throw Object.assign(new Error('no sockets today'), { code: 'EMFILE' });
      },
    });
    expect(await openCode(r)).toBe('E_GENERAL');
    expect(r.udp.count).toBe(0);
    let made: dgram.Socket | null = null;
    const r2 = rig({
      createSocket: (opts) => {
        made = dgram.createSocket(opts);
        sockets.add(made);
        const s = made;
        s.bind = (() => {
          setImmediate(() => s.emit('error', Object.assign(new Error('bind failed'), { code: 'EADDRINUSE' })));
          return s;
        }) as typeof s.bind;
        return s;
      },
    });
    expect(await openCode(r2)).toBe('E_GENERAL');
    expect(r2.udp.count).toBe(0);
    expect(made).not.toBeNull();
  });

  it('a socket error ends that association only (RESET GENERAL_FAILURE), never the process', async () => {
    const r = rig();
    const a = await associate(r);
    const b = await associate(r);
    let err: Error | null = null;
    a.stream.on('error', (e) => (err = e));
    const first = [...r.openSockets][0] as dgram.Socket;
    first.emit('error', Object.assign(new Error('boom'), { code: 'EIO' }));
    await until(() => err !== null, 2_000, 'reset');
    expect((err as unknown as PosternError).code).toBe('E_GENERAL');
    expect(r.udp.count).toBe(1);
    expect(r.openSockets.size).toBe(1);
    expect(b.stream.destroyed).toBe(false);
    expect(r.metrics.udpAssociationEnds.get({ reason: 'error' })).toBe(1);
  });

  it('closeAll() ends every association with GOING_AWAY', async () => {
    const r = rig();
    const a = await associate(r);
    let err: Error | null = null;
    a.stream.on('error', (e) => (err = e));
    r.udp.closeAll();
    await until(() => err !== null && r.openSockets.size === 0, 2_000, 'closed');
    expect((err as unknown as PosternError).code).toBe('E_GOING_AWAY');
    expect(r.udp.count).toBe(0);
  });
});
