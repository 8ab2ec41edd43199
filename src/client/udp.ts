/**
 * The client's UDP relay for one SOCKS5 UDP ASSOCIATE (RFC 1928 §7; docs/protocol.md §10).
 *
 * One association = one local UDP socket + one association stream on the tunnel:
 * - The socket is bound on the local address the SOCKS control connection arrived on (same
 *   family), port 0; its address is the reply's BND.ADDR/BND.PORT.
 * - Only the app that asked may use it: a datagram is taken only from the control connection's
 *   IP, and, if the request named a non-zero DST.ADDR and/or DST.PORT, only from that. The first
 *   datagram taken pins the app's address and port; from then on only that address and port.
 * - Each datagram taken (FRAG 0, well-formed, payload ≤ UDP_MAX_DATAGRAM_BYTES) goes where the
 *   client's route rules say (client/route.ts, docs/protocol.md §11): `tunnel` — one DATAGRAM on
 *   the association, a domain name unresolved (no DNS query here); `direct` — sent from this
 *   machine (a name looked up locally), replies taken only from endpoints sent to; `block` —
 *   dropped. Without rules, everything goes through the tunnel.
 * - A datagram from the bridge goes to the pinned address with the SOCKS UDP header naming its
 *   source; before a pin there is nobody to send it to.
 * - Everything else is dropped and counted (never queued, never logged with an address).
 * - The association ends when the control connection closes (the stream is reset, the socket
 *   closed), and when the stream ends from the bridge's side or the session dies (the socket is
 *   closed and the control connection destroyed). The bridge times out idle associations.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { targetFromHost, type Target } from '../core/address.js';
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import type { Logger } from '../log/logger.js';
import type { RouteAction } from '../route/rules.js';
import type { ClientRoute } from './route.js';
import type { SocksUdpAssociate, SocksUdpAssociation, SocksUdpRequest } from '../socks/server.js';
import { encodeUdpHeader, joinUdpDatagram, parseUdpDatagram } from '../socks/udp.js';

/** What the relay needs of a mux session (MuxSession provides it). */
export interface DatagramSession {
  sendDatagram(streamId: number, target: Target, data: Buffer): boolean;
  setDatagramHandler(streamId: number, handler: ((addr: Target, data: Buffer) => void) | null): void;
}

/** An association stream: carries no data; its end is the association's end. */
export type AssociationStream = Duplex & { readonly id: number };

/** What the relay needs of the tunnel (Tunnel provides it). */
export interface UdpTunnel {
  openAssociation(signal: AbortSignal): Promise<{ session: DatagramSession; stream: AssociationStream }>;
}

/** Why a datagram was dropped. Stable names: counters and tests use them. */
export type UdpDropReason =
  /** App → bridge: not from the app that opened the association. */
  | 'stranger'
  /** App → bridge: the SOCKS UDP header did not parse, or named port 0 / an address the tunnel cannot carry. */
  | 'malformed'
  /** App → bridge: FRAG ≠ 0 (no reassembly, RFC 1928 §7 allows that). */
  | 'fragmented'
  /** App → bridge: payload larger than UDP_MAX_DATAGRAM_BYTES. */
  | 'oversize'
  /** App → bridge: the session refused it (congested transport, association closing). */
  | 'congested'
  /** Bridge → app: no app address pinned yet. */
  | 'unpinned'
  /** Bridge → app: the local socket already queues UDP_LOCAL_SEND_QUEUE_BYTES. */
  | 'local-queue-full'
  /** Bridge → app: the local send failed. */
  | 'send-failed'
  /** App → destination: a route rule says block. */
  | 'blocked'
  /** App → destination: a direct route to an address it may not reach (E_ROUTE_PRIVATE), or the name did not resolve locally. */
  | 'unroutable'
  /** App → destination: more datagrams waiting on local lookups than UDP_DNS_PENDING_COUNT. */
  | 'lookup-queue-full';

export interface UdpRelayStats {
  /** Datagrams received on the relay socket. */
  received: number;
  /** …of which sent on (as DATAGRAMs, or from this machine on a direct route). */
  forwarded: number;
  /** Datagrams from the bridge sent to the app. */
  returned: number;
  dropped: Record<UdpDropReason, number>;
}

export interface UdpRelayOptions {
  readonly tunnel: UdpTunnel;
  readonly limits: Limits;
  readonly logger: Logger;
  /** Route rules per datagram (absent: every datagram through the tunnel). */
  readonly route?: ClientRoute;
  /** The SOCKS listener serves the LAN (direct routes are guarded; see ClientRoute). */
  readonly lan?: boolean;
}

/** The SOCKS server's UDP ASSOCIATE handler for a client: each request gets its own UdpRelay. */
export function udpAssociator(opts: UdpRelayOptions): SocksUdpAssociate {
  let nextId = 0;
  return (request, signal) => UdpRelay.open(request, signal, opts, ++nextId);
}

/** 'a.b.c.d' for an IPv4-mapped IPv6 address; other addresses as given. */
function unmapV4(address: string): string {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address) ? address.slice(7) : address;
}

/** An IP address in the one text form the relay compares (IPv4-mapped → IPv4, IPv6 canonical, no zone); null if not an IP. */
function canonicalIp(address: string | undefined): string | null {
  if (address === undefined) return null;
  const bare = unmapV4(address.split('%')[0]!);
  const t = targetFromHost(bare, 0);
  return t.kind === 'domain' ? null : t.host;
}

function isUnspecified(t: Target): boolean {
  return (t.kind === 'ipv4' && t.host === '0.0.0.0') || (t.kind === 'ipv6' && t.host === '::');
}

export class UdpRelay implements SocksUdpAssociation {
  readonly bind: Target;
  readonly stats: UdpRelayStats = {
    received: 0,
    forwarded: 0,
    returned: 0,
    dropped: {
      stranger: 0,
      malformed: 0,
      fragmented: 0,
      oversize: 0,
      congested: 0,
      unpinned: 0,
      'local-queue-full': 0,
      'send-failed': 0,
      blocked: 0,
      unroutable: 0,
      'lookup-queue-full': 0,
    },
  };
  /** Direct-route sockets (one per family, made on first use) and the endpoints sent to (only they may answer). */
  #direct: { 4: dgram.Socket | null; 6: dgram.Socket | null } = { 4: null, 6: null };
  readonly #directPeers = new Map<string, true>();
  /** Names looked up for direct datagrams: addresses until a time. */
  readonly #names = new Map<string, { addresses: string[]; until: number }>();
  #pendingLookups = 0;

  /** The app's address and port, pinned by the first datagram taken. */
  #peer: { readonly address: string; readonly port: number } | null = null;
  #closed = false;
  #ended: (() => void) | null = null;
  #endedEarly = false;
  /** The SOCKS header for the last reply source (most replies come from the same peer). */
  #lastSource: Target | null = null;
  #lastHeader: Buffer | null = null;

  /**
   * Binds the relay socket, then opens the association on the tunnel. Rejects with a PosternError
   * (the bridge's refusal, E_CANCELLED on abort, E_GENERAL when the socket cannot be bound).
   */
  static async open(request: SocksUdpRequest, signal: AbortSignal, opts: UdpRelayOptions, id: number): Promise<UdpRelay> {
    const local = request.localAddress === undefined ? undefined : unmapV4(request.localAddress);
    const clientIp = canonicalIp(request.remoteAddress);
    if (local === undefined || clientIp === null) throw new PosternError('E_GENERAL', 'control connection has no address');
    if (signal.aborted) throw new PosternError('E_CANCELLED');
    const socket = dgram.createSocket({ type: net.isIPv6(local) ? 'udp6' : 'udp4' });
    socket.on('error', () => undefined); // until the relay takes over (bind errors reject below)
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind({ address: local, port: 0, exclusive: true }, () => {
          socket.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      socket.close();
      const code = (err as NodeJS.ErrnoException | undefined)?.code;
      throw new PosternError('E_GENERAL', `cannot bind a UDP relay socket (${code ?? 'unknown'})`);
    }
    let opened: { session: DatagramSession; stream: AssociationStream };
    try {
      if (signal.aborted) throw new PosternError('E_CANCELLED');
      opened = await opts.tunnel.openAssociation(signal);
    } catch (err) {
      socket.close();
      throw err;
    }
    return new UdpRelay(socket, opened.session, opened.stream, clientIp, request.requested, opts, id);
  }

  readonly #log: Logger;
  readonly #requiredIp: string | null;
  readonly #requiredPort: number;
  /** The request named an address other than the control connection's: no datagram can qualify. */
  readonly #impossible: boolean;

  private constructor(
    private readonly socket: dgram.Socket,
    private readonly session: DatagramSession,
    private readonly stream: AssociationStream,
    private readonly clientIp: string,
    requested: Target,
    private readonly opts: UdpRelayOptions,
    id: number,
  ) {
    this.#log = opts.logger.child({ udp: id });
    // A domain DST.ADDR is not resolved (no DNS query from the client); only its port counts.
    this.#requiredIp = requested.kind !== 'domain' && !isUnspecified(requested) ? canonicalIp(requested.host) : null;
    this.#requiredPort = requested.port;
    this.#impossible = this.#requiredIp !== null && this.#requiredIp !== clientIp;
    const a = socket.address();
    const host = a.address.split('%')[0]!;
    this.bind = { kind: net.isIPv6(host) ? 'ipv6' : 'ipv4', host: targetFromHost(host, 0).host, port: a.port };

    socket.removeAllListeners('error');
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.#log.debug({ code: err.code ?? err.name }, 'udp relay socket error');
      this.#end('socket error');
    });
    socket.on('message', this.#onMessage);
    stream.on('error', () => undefined); // a RESET from the bridge, or the session ending: 'close' follows
    stream.on('end', () => this.#end('ended by the bridge'));
    stream.on('close', () => this.#end('association closed'));
    stream.resume(); // an association carries no DATA; reading lets its FIN be seen
    session.setDatagramHandler(stream.id, this.#onReply);
    if (stream.destroyed) this.#end('association closed');
  }

  /** SocksUdpAssociation: called just before the success reply. */
  start(ended: () => void): void {
    this.#ended = ended;
    if (this.#endedEarly) setImmediate(ended);
  }

  /** SocksUdpAssociation: the control connection closed. */
  close(): void {
    this.#end('control connection closed');
  }

  get closed(): boolean {
    return this.#closed;
  }

  #drop(reason: UdpDropReason): void {
    this.stats.dropped[reason]++;
  }

  /** A datagram from the app side. */
  readonly #onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    if (this.#closed) return;
    this.stats.received++;
    const peer = this.#peer;
    if (peer !== null) {
      if (rinfo.port !== peer.port || rinfo.address !== peer.address) return this.#drop('stranger');
    } else if (!this.#admissible(rinfo)) {
      return this.#drop('stranger');
    }
    const r = parseUdpDatagram(msg);
    if (!r.ok) return this.#drop('malformed');
    const d = r.value;
    if (d.frag !== 0) return this.#drop('fragmented');
    if (d.target.port === 0) return this.#drop('malformed');
    if (d.data.length > this.opts.limits.UDP_MAX_DATAGRAM_BYTES) return this.#drop('oversize');
    if (peer === null) this.#peer = { address: rinfo.address, port: rinfo.port };
    const route = this.opts.route;
    if (route === undefined) return this.#viaTunnel(d.target, d.data);
    const decision = route.router.byName(d.target);
    if (decision !== 'lookup') return this.#routed(decision.action, d.target, d.data, null);
    // An address rule needs the name's address: look it up (cached, bounded), then decide.
    this.#resolve(d.target.host, (addresses) => {
      if (this.#closed) return;
      const after = addresses === null ? route.router.byAddress(d.target, '') : route.router.byAddress(d.target, addresses[0]!);
      this.#routed(after.action, d.target, d.data, addresses);
    });
  };

  #viaTunnel(target: Target, data: Buffer): void {
    let sent: boolean;
    try {
      sent = this.session.sendDatagram(this.stream.id, target, data);
    } catch {
      return this.#drop('malformed'); // e.g. a target the frame codec refuses
    }
    if (sent) {
      this.stats.forwarded++;
      const c = this.opts.route?.stats.tunnel;
      if (c) {
        c.datagrams++;
        c.bytesUp += data.length;
      }
    } else this.#drop('congested');
  }

  #routed(action: RouteAction, target: Target, data: Buffer, looked: string[] | null): void {
    const route = this.opts.route!;
    if (action === 'tunnel') return this.#viaTunnel(target, data);
    if (action === 'block') {
      route.stats.block.datagrams++;
      return this.#drop('blocked');
    }
    if (target.kind !== 'domain') return this.#sendDirect([target.host], target.port, data);
    if (looked !== null) return this.#sendDirect(looked, target.port, data);
    this.#resolve(target.host, (addresses) => {
      if (this.#closed) return;
      if (addresses === null) return this.#drop('unroutable');
      this.#sendDirect(addresses, target.port, data);
    });
  }

  /** Looks a name up locally for a datagram: from the cache, or one lookup (bounded by UDP_DNS_PENDING_COUNT). */
  #resolve(name: string, then: (addresses: string[] | null) => void): void {
    const hit = this.#names.get(name);
    if (hit !== undefined && hit.until > Date.now()) return then(hit.addresses);
    const limits = this.opts.limits;
    if (this.#pendingLookups >= limits.UDP_DNS_PENDING_COUNT) return this.#drop('lookup-queue-full');
    this.#pendingLookups++;
    const ac = new AbortController();
    this.opts.route!.lookup(name, ac.signal).then(
      (addresses) => {
        this.#pendingLookups--;
        if (limits.UDP_DNS_CACHE_COUNT > 0) {
          if (this.#names.size >= limits.UDP_DNS_CACHE_COUNT) this.#names.delete(this.#names.keys().next().value!);
          this.#names.set(name, { addresses, until: Date.now() + limits.UDP_DNS_CACHE_MS });
        }
        then(addresses);
      },
      () => {
        this.#pendingLookups--;
        then(null);
      },
    );
  }

  /** Sends one datagram from this machine (a direct route), to the first address the LAN guard allows. */
  #sendDirect(addresses: readonly string[], port: number, data: Buffer): void {
    const route = this.opts.route!;
    let address: string;
    try {
      address = route.allowedDirect(addresses, this.opts.lan === true)[0]!;
    } catch {
      return this.#drop('unroutable');
    }
    const family = net.isIPv6(address) ? 6 : 4;
    let sock = this.#direct[family];
    if (sock === null) {
      sock = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
      sock.on('error', (err: NodeJS.ErrnoException) => this.#log.debug({ code: err.code ?? err.name }, 'direct udp socket error'));
      sock.on('message', this.#onDirectReply);
      sock.bind(0);
      this.#direct[family] = sock;
    }
    const key = `${canonicalIp(address)}|${port}`;
    if (!this.#directPeers.has(key)) {
      if (this.#directPeers.size >= this.opts.limits.UDP_ASSOCIATION_MAX_PEERS) this.#directPeers.delete(this.#directPeers.keys().next().value!);
      this.#directPeers.set(key, true);
    }
    if (sock.getSendQueueSize() > this.opts.limits.UDP_LOCAL_SEND_QUEUE_BYTES) return this.#drop('congested');
    sock.send(data, port, address, this.#onSent);
    this.stats.forwarded++;
    route.stats.direct.datagrams++;
    route.stats.direct.bytesUp += data.length;
  }

  /** A datagram to a direct socket: only from an endpoint this association sent to. */
  readonly #onDirectReply = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    if (this.#closed) return;
    const ip = canonicalIp(rinfo.address);
    if (ip === null || !this.#directPeers.has(`${ip}|${rinfo.port}`)) return this.#drop('stranger');
    this.opts.route!.stats.direct.bytesDown += msg.length;
    this.#toApp(targetFromHost(ip, rinfo.port), msg);
  };

  /** Before the pin: from the control connection's IP, and from what the request named. */
  #admissible(rinfo: dgram.RemoteInfo): boolean {
    if (this.#impossible) return false;
    if (this.#requiredPort !== 0 && rinfo.port !== this.#requiredPort) return false;
    return canonicalIp(rinfo.address) === this.clientIp;
  }

  /** A datagram from the bridge: to the app, with the SOCKS UDP header naming its source. */
  readonly #onReply = (source: Target, data: Buffer): void => {
    if (this.#closed) return;
    const c = this.opts.route?.stats.tunnel;
    if (c) c.bytesDown += data.length;
    this.#toApp(source, data);
  };

  #toApp(source: Target, data: Buffer): void {
    const peer = this.#peer;
    if (peer === null) return this.#drop('unpinned');
    if (this.socket.getSendQueueSize() > this.opts.limits.UDP_LOCAL_SEND_QUEUE_BYTES) return this.#drop('local-queue-full');
    let header = this.#lastHeader;
    const last = this.#lastSource;
    if (header === null || last === null || last.port !== source.port || last.host !== source.host || last.kind !== source.kind) {
      try {
        header = encodeUdpHeader(source);
      } catch {
        return this.#drop('malformed');
      }
      this.#lastSource = { kind: source.kind, host: source.host, port: source.port };
      this.#lastHeader = header;
    }
    // One copy: `data` is a view into the session's message, which must not be kept.
    this.socket.send(joinUdpDatagram(header, data), peer.port, peer.address, this.#onSent);
    this.stats.returned++;
  }

  readonly #onSent = (err: Error | null): void => {
    if (err) this.#drop('send-failed');
  };

  /** Releases everything once; tells the SOCKS connection when the end came from the far side. */
  #end(why: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.session.setDatagramHandler(this.stream.id, null);
    this.socket.off('message', this.#onMessage);
    for (const sock of [this.socket, this.#direct[4], this.#direct[6]]) {
      try {
        sock?.close();
      } catch {
        // already closed
      }
    }
    // A RESET ends both sides at once: the bridge releases its socket, no reply is awaited.
    if (!this.stream.destroyed) this.stream.destroy();
    if (this.opts.logger.isLevelEnabled('debug')) {
      const s = this.stats;
      this.#log.debug({ why, received: s.received, forwarded: s.forwarded, returned: s.returned, dropped: s.dropped }, 'udp association ended');
    }
    if (why === 'control connection closed') return;
    if (this.#ended !== null) this.#ended();
    else this.#endedEarly = true;
  }
}
