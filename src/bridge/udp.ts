/**
 * The bridge side of SOCKS5 UDP ASSOCIATE (docs/protocol.md §10): one association per mux
 * stream opened with `udp-associate`, holding a UDP socket (udp4 at once, udp6 the first time an
 * IPv6 destination is used).
 *
 * Client → target: every datagram is checked against the egress policy exactly as a TCP stream
 * is (checkTarget on the name or literal, checkAddress on every resolved address) and sent to the
 * checked address; names are resolved here, with a small per-association cache and a bound on the
 * datagrams waiting for a lookup. Target → client: only datagrams from an endpoint this
 * association has sent to are relayed. Nothing is ever queued beyond those bounds: a datagram that
 * cannot go now is dropped and counted.
 *
 * The association ends with its stream (client FIN or RESET, session closed), after
 * UDP_ASSOCIATION_IDLE_MS without a datagram either way (RESET TIMEOUT), or on a socket error
 * (RESET GENERAL_FAILURE); its sockets and timer go with it.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { formatIPv6, formatTarget, parseIPv6, type Target } from '../core/address.js';
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import type { Logger } from '../log/logger.js';
import type { IncomingOpen, MuxSession } from '../mux/session.js';
import type { MuxStream } from '../mux/stream.js';
import type { Resolver } from './egress.js';
import type { TokenBucket } from './limiter.js';
import type { BridgeMetrics } from './metrics.js';
import { checkAddress, checkTarget, normalizeDomain, type EgressPolicy } from './policy.js';

/** Why a datagram was dropped at the bridge (metrics label `reason`). */
export const UDP_DROP_REASONS = [
  /** Larger than UDP_MAX_DATAGRAM_BYTES (either direction). */
  'too_large',
  /** Egress policy: the port, not on the allow-list, or a special address range. */
  'policy_port',
  'policy_not_listed',
  'policy_range',
  /** The name did not resolve (error, no address, timeout). */
  'dns',
  /** UDP_DNS_PENDING_COUNT datagrams were already waiting on lookups (or on the IPv6 socket). */
  'dns_pending',
  /** An IPv6 destination, and this host could not open an IPv6 UDP socket. */
  'no_ipv6',
  /** The kernel refused the send (e.g. network unreachable). */
  'send_error',
  /** A reply from an endpoint this association never sent to. */
  'stranger',
  /** The tunnel would not take the reply (congested, closing). */
  'tunnel',
  /** The user's bandwidth cap (maxBytesPerSecond) had no room for it. */
  'rate',
  /** The socket already had UDP_LOCAL_SEND_QUEUE_BYTES waiting to be sent. */
  'send_queue',
  /** Destination port 0: nothing can be sent there (RFC 768 source-only). */
  'port_zero',
] as const;
export type UdpDropReason = (typeof UDP_DROP_REASONS)[number];

/** Why an association ended (metrics label `reason`). */
export type UdpEndReason = 'closed' | 'idle' | 'error';

/** The part of a session an association uses. */
export type DatagramSession = Pick<MuxSession, 'sendDatagram' | 'setDatagramHandler'>;

/** What egress checks run against; read for every datagram, so a reload applies at once. */
export interface UdpEgress {
  readonly policy: EgressPolicy;
  readonly resolver: Resolver;
}

export interface UdpAssociationsOptions {
  readonly limits: Limits;
  readonly metrics: BridgeMetrics;
  readonly egress: () => UdpEgress;
  /** Operator opt-in (config log.destinations): destinations may appear in debug logs. */
  readonly logDestinations: () => boolean;
  /** The user's bandwidth buckets (Governor.bucketsFor), null for no cap; read per datagram. */
  readonly bandwidth?: (user: string) => { readonly up: TokenBucket; readonly down: TokenBucket } | null;
  /** Makes a UDP socket (tests use it to count sockets). Default: dgram.createSocket. */
  readonly createSocket?: (opts: dgram.SocketOptions) => dgram.Socket;
}

/**
 * dgram's name lookup, limited to IP literals: every address handed to send() was checked by
 * policy, and this makes sure it is used as it is (no DNS behind the policy's back).
 */
function literalLookup(
  host: string,
  _opts: unknown,
  cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const family = net.isIP(host);
  if (family === 0) cb(Object.assign(new Error('not an IP literal'), { code: 'EINVAL' }), '', 0);
  else cb(null, host, family);
}

const noop = (): void => undefined;

function closeQuietly(sock: dgram.Socket): void {
  try {
    sock.close();
  } catch {
    // already closed
  }
}

/** Canonical text (RFC 5952) of an IPv6 literal, or null. */
function canonicalIPv6(host: string): string | null {
  const bytes = parseIPv6(host);
  return bytes === null ? null : formatIPv6(bytes);
}

/** `::ffff:a.b.c.d` → `a.b.c.d` (an IPv4 destination written as IPv6), else null. */
function mappedIPv4(canonical: string): string | null {
  return canonical.startsWith('::ffff:') && net.isIPv4(canonical.slice(7)) ? canonical.slice(7) : null;
}

interface Counters {
  readonly user: string;
  readonly up: { inc(n?: number): void };
  readonly down: { inc(n?: number): void };
  readonly upBytes: { inc(n?: number): void };
  readonly downBytes: { inc(n?: number): void };
  readonly userUp: { inc(n?: number): void };
  readonly userDown: { inc(n?: number): void };
  readonly allUp: { inc(n?: number): void };
  readonly allDown: { inc(n?: number): void };
}

/** All UDP associations of one bridge: the bridge-wide cap, sockets, metrics. */
export class UdpAssociations {
  private readonly limits: Limits;
  private readonly metrics: BridgeMetrics;
  private readonly opts: UdpAssociationsOptions;
  /** Associations open or binding their socket (the cap counts both). */
  private active = 0;
  private readonly live = new Set<Association>();
  private readonly drops = new Map<UdpDropReason, { inc(n?: number): void }>();
  private readonly userCounters = new Map<string, Counters>();

  constructor(opts: UdpAssociationsOptions) {
    this.opts = opts;
    this.limits = opts.limits;
    this.metrics = opts.metrics;
    for (const reason of UDP_DROP_REASONS) this.drops.set(reason, this.metrics.udpDropped.labels({ reason }));
    this.metrics.udpAssociations.set(0);
  }

  /** Associations open now (including any still binding their socket). */
  get count(): number {
    return this.active;
  }

  /**
   * Serves an OPEN with command 'udp-associate': refuses it when UDP is disabled
   * (UDP_BRIDGE_MAX_ASSOCIATIONS 0 → E_NOT_ALLOWED) or the bridge holds that many associations
   * (E_STREAM_LIMIT); otherwise binds the udp4 socket (failure → E_GENERAL), then accepts.
   * Never throws.
   */
  async open(req: IncomingOpen, session: DatagramSession, user: string, log: () => Logger): Promise<void> {
    const max = this.limits.UDP_BRIDGE_MAX_ASSOCIATIONS;
    if (max === 0 || this.active >= max) {
      const err = max === 0 ? new PosternError('E_NOT_ALLOWED', 'UDP is disabled on this bridge') : new PosternError('E_STREAM_LIMIT', 'too many UDP associations');
      this.metrics.udpAssociationsRefused.inc({ code: err.code });
      log().info({ code: err.code }, 'udp association refused');
      req.reject(err);
      return;
    }
    this.active++;
    this.metrics.udpAssociations.set(this.active);
    let sock4: dgram.Socket;
    try {
      sock4 = await this.bind('udp4', req.signal);
    } catch (err) {
      this.release();
      if (req.signal.aborted) return; // the client cancelled or the session ended: nobody to answer
      this.metrics.udpAssociationsRefused.inc({ code: 'E_GENERAL' });
      log().warn({ code: 'E_GENERAL', err: (err as NodeJS.ErrnoException).code ?? (err as Error).message }, 'udp association refused: cannot bind a UDP socket');
      req.reject(new PosternError('E_GENERAL', 'cannot open a UDP socket'));
      return;
    }
    let stream: MuxStream;
    try {
      stream = req.accept();
    } catch (err) {
      closeQuietly(sock4);
      this.release();
      log().debug({ err: (err as Error).message }, 'udp association gone before accept');
      return;
    }
    this.metrics.udpAssociationsTotal.inc();
    const a = new Association(this, stream, session, sock4, this.countersFor(user), log);
    this.live.add(a);
    a.start();
  }

  /** Ends every association (RESET with `err`'s code, default GOING_AWAY), e.g. on shutdown. */
  closeAll(err: PosternError = new PosternError('E_GOING_AWAY')): void {
    for (const a of [...this.live]) a.fail(err, 'closed');
  }

  // ── for Association ─────────────────────────────────────────────────────

  /** @internal */
  get config(): UdpAssociationsOptions {
    return this.opts;
  }

  /** @internal */
  drop(reason: UdpDropReason): void {
    this.drops.get(reason)?.inc();
  }

  /** @internal An association ended. */
  ended(a: Association, reason: UdpEndReason): void {
    if (!this.live.delete(a)) return;
    this.metrics.udpAssociationEnds.inc({ reason });
    this.release();
  }

  /** @internal Creates and binds a socket: udp4 on 0.0.0.0:0, udp6 on [::]:0 (IPv6 only). */
  bind(type: 'udp4' | 'udp6', signal?: AbortSignal): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new PosternError('E_CANCELLED'));
      const make = this.opts.createSocket ?? dgram.createSocket;
      let sock: dgram.Socket;
      try {
        sock = make({ type, lookup: literalLookup as never, ...(type === 'udp6' ? { ipv6Only: true } : {}) });
      } catch (err) {
        return reject(err);
      }
      // Errors after binding are handled by the association; until then, this keeps one from crashing us.
      sock.on('error', noop);
      const cleanup = (): void => {
        sock.off('error', onError);
        sock.off('listening', onListening);
        signal?.removeEventListener('abort', onAbort);
      };
      const onError = (err: Error): void => {
        cleanup();
        closeQuietly(sock);
        reject(err);
      };
      const onAbort = (): void => {
        cleanup();
        closeQuietly(sock);
        reject(new PosternError('E_CANCELLED'));
      };
      const onListening = (): void => {
        cleanup();
        resolve(sock);
      };
      sock.once('error', onError);
      sock.once('listening', onListening);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        sock.bind({ address: type === 'udp4' ? '0.0.0.0' : '::', port: 0, exclusive: true });
      } catch (err) {
        onError(err as Error);
      }
    });
  }

  private release(): void {
    this.active--;
    this.metrics.udpAssociations.set(this.active);
  }

  private countersFor(user: string): Counters {
    let c = this.userCounters.get(user);
    if (!c) {
      const m = this.metrics;
      c = {
        user,
        up: m.udpDatagrams.labels({ direction: 'up' }),
        down: m.udpDatagrams.labels({ direction: 'down' }),
        upBytes: m.udpBytes.labels({ direction: 'up' }),
        downBytes: m.udpBytes.labels({ direction: 'down' }),
        userUp: m.userBytes.labels({ user, direction: 'up' }),
        userDown: m.userBytes.labels({ user, direction: 'down' }),
        allUp: m.bytesUp.labels({}),
        allDown: m.bytesDown.labels({}),
      };
      this.userCounters.set(user, c);
    }
    return c;
  }
}

interface CachedName {
  readonly addresses: readonly string[];
  readonly expiresAt: number;
}

/** One association: its stream, sockets, peers, name cache and idle timer. */
class Association {
  private readonly limits: Limits;
  private sock6: dgram.Socket | null = null;
  /** The udp6 socket being bound (datagrams wait on it like on a lookup), or null. */
  private sock6Binding: Promise<dgram.Socket | null> | null = null;
  private sock6Failed = false;
  /**
   * Endpoints sent to, oldest first: key "address|port" as the socket sees it → the source
   * address to report for replies from there (in the form the client used: an IPv4 address the
   * client wrote as ::ffff:a.b.c.d is reported that way).
   */
  private readonly peers = new Map<string, Target>();
  private readonly names = new Map<string, CachedName>();
  private readonly lookups = new Map<string, Promise<readonly string[] | null>>();
  /** Datagrams waiting on a lookup or on the udp6 socket. */
  private waiting = 0;
  private readonly abort = new AbortController();
  private lastActivity = performance.now();
  private idleTimer: NodeJS.Timeout | null = null;
  private done = false;
  /** Refusals are logged once per association (a flow can send thousands). */
  private refusalLogged = false;
  private readonly dropped: Partial<Record<UdpDropReason, number>> = {};
  private upCount = 0;
  private downCount = 0;

  constructor(
    private readonly owner: UdpAssociations,
    private readonly stream: MuxStream,
    private readonly session: DatagramSession,
    private readonly sock4: dgram.Socket,
    private readonly counters: Counters,
    private readonly log: () => Logger,
  ) {
    this.limits = owner.config.limits;
  }

  start(): void {
    const { stream } = this;
    stream.on('error', noop); // the reason arrives with 'close' handling below; never unhandled
    stream.on('end', () => {
      // The client's FIN: answer with ours; the stream closes once both are through.
      if (!stream.writableEnded) stream.end();
      this.finish('closed');
    });
    stream.on('close', () => this.finish('closed'));
    stream.resume(); // no data flows on an association; this lets 'end' (FIN) through
    this.watch(this.sock4);
    this.session.setDatagramHandler(stream.id, (addr, data) => this.fromClient(addr, data));
    this.armIdle(this.limits.UDP_ASSOCIATION_IDLE_MS);
    const log = this.log();
    if (log.isLevelEnabled('debug')) log.debug({ port: this.sock4.address().port }, 'udp association open');
  }

  /** Ends the association and its stream with `err` (RESET with its wire code). */
  fail(err: PosternError, reason: UdpEndReason): void {
    if (this.done) return;
    this.finish(reason);
    if (!this.stream.destroyed) this.stream.destroy(err);
  }

  // ── client → target ─────────────────────────────────────────────────────

  private fromClient(addr: Target, data: Buffer): void {
    if (this.done) return;
    try {
      this.lastActivity = performance.now();
      if (data.length > this.limits.UDP_MAX_DATAGRAM_BYTES) return this.drop('too_large');
      // Port 0 is no destination (dgram.send would throw): drop and count, the association goes on.
      if (addr.port === 0) return this.drop('port_zero');
      const { policy, resolver } = this.owner.config.egress();
      const pre = checkTarget(addr, policy);
      if (!pre.allowed) return this.refuse(pre.reason, addr);
      if (addr.kind !== 'domain' || net.isIP(addr.host) !== 0) {
        // checkTarget has checked the literal itself (and allow-list ranges).
        return this.sendTo(addr.host, addr.port, addr.kind === 'domain' ? (net.isIPv6(addr.host) ? 'ipv6' : 'ipv4') : addr.kind, data);
      }
      const name = normalizeDomain(addr.host);
      const cached = this.names.get(name);
      if (cached !== undefined) {
        if (cached.expiresAt > performance.now()) return this.sendResolved(cached.addresses, addr, data, policy);
        this.names.delete(name);
      }
      if (this.waiting >= this.limits.UDP_DNS_PENDING_COUNT) return this.drop('dns_pending');
      const copy = Buffer.from(data); // `data` lives in the tunnel's message buffer
      this.waiting++;
      void this.resolve(name, resolver).then((addresses) => {
        this.waiting--;
        if (this.done) return;
        if (addresses === null) return this.drop('dns');
        // Policy as it is now (a reload may have come in while the name was looked up).
        this.guarded(() => this.sendResolved(addresses, addr, copy, this.owner.config.egress().policy));
      });
    } catch (err) {
      this.internalError(err);
    }
  }

  /** Looks a name up once at a time per association (others wait on the same lookup); null on failure. */
  private resolve(name: string, resolver: Resolver): Promise<readonly string[] | null> {
    let p = this.lookups.get(name);
    if (p) return p;
    const signal = this.abort.signal;
    // The lookup's own signal: aborted at the timeout or when the association ends, which cancels
    // the query and frees the user's DNS slot at once (dns.ts).
    const lookup = new AbortController();
    p = new Promise<readonly string[] | null>((resolve) => {
      const timer = setTimeout(() => {
        lookup.abort();
        resolve(null);
      }, this.limits.EGRESS_DNS_TIMEOUT_MS);
      const onAbort = (): void => {
        lookup.abort();
        resolve(null);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      Promise.resolve()
        .then(() => resolver(name, { user: this.counters.user, signal: lookup.signal }))
        .then(
        (found) => resolve(found.map((a) => a.address)),
        () => resolve(null),
      ).finally(() => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      });
    }).then((addresses) => {
      this.lookups.delete(name);
      if (addresses !== null && addresses.length === 0) return null;
      if (addresses !== null && !this.done) this.remember(name, addresses);
      return addresses;
    });
    this.lookups.set(name, p);
    return p;
  }

  private remember(name: string, addresses: readonly string[]): void {
    const max = this.limits.UDP_DNS_CACHE_COUNT;
    if (max === 0 || this.limits.UDP_DNS_CACHE_MS === 0) return;
    this.names.delete(name);
    while (this.names.size >= max) {
      const oldest = this.names.keys().next().value as string;
      this.names.delete(oldest);
    }
    this.names.set(name, { addresses, expiresAt: performance.now() + this.limits.UDP_DNS_CACHE_MS });
  }

  /** Sends to the first resolved address policy allows (and this host can reach by family). */
  private sendResolved(addresses: readonly string[], target: Target, data: Buffer, policy: EgressPolicy): void {
    let refusedOnly = true;
    for (const address of addresses) {
      if (!checkAddress(address, policy).allowed) continue;
      refusedOnly = false;
      const v6 = net.isIPv6(address);
      if (v6 && this.sock6Failed && mappedIPv4(canonicalIPv6(address) ?? '') === null) continue;
      return this.sendTo(address, target.port, v6 ? 'ipv6' : 'ipv4', data);
    }
    if (refusedOnly) this.refuse('range', target);
    else this.drop('no_ipv6');
  }

  /**
   * Sends to exactly `host` (an IP literal already approved by policy). `kind` is the form the
   * source of replies is reported in.
   */
  private sendTo(host: string, port: number, kind: 'ipv4' | 'ipv6', data: Buffer): void {
    if (kind === 'ipv4') return this.sendOn(this.sock4, host, port, { kind, host, port }, data);
    const canonical = canonicalIPv6(host);
    if (canonical === null) return this.refuse('range', { kind, host, port });
    const v4 = mappedIPv4(canonical);
    // An IPv4 address in IPv6 dress goes out over IPv4 (the udp6 socket is IPv6-only).
    if (v4 !== null) return this.sendOn(this.sock4, v4, port, { kind: 'ipv6', host: canonical, port }, data);
    if (this.sock6 !== null) return this.sendOn(this.sock6, canonical, port, { kind, host: canonical, port }, data);
    if (this.sock6Failed) return this.drop('no_ipv6');
    if (this.waiting >= this.limits.UDP_DNS_PENDING_COUNT) return this.drop('dns_pending');
    const copy = Buffer.from(data);
    this.waiting++;
    void this.openSock6().then((sock) => {
      this.waiting--;
      if (this.done) return;
      if (sock === null) return this.drop('no_ipv6');
      this.guarded(() => this.sendOn(sock, canonical, port, { kind, host: canonical, port }, copy));
    });
  }

  private openSock6(): Promise<dgram.Socket | null> {
    this.sock6Binding ??= this.owner.bind('udp6', this.abort.signal).then(
      (sock) => {
        this.sock6Binding = null;
        if (this.done) {
          closeQuietly(sock);
          return null;
        }
        this.sock6 = sock;
        this.watch(sock);
        return sock;
      },
      (err: NodeJS.ErrnoException) => {
        this.sock6Binding = null;
        if (!this.done) {
          this.sock6Failed = true;
          this.log().warn({ err: err.code ?? err.message }, 'udp: cannot open an IPv6 socket; IPv6 destinations are dropped');
        }
        return null;
      },
    );
    return this.sock6Binding;
  }

  private sendOn(sock: dgram.Socket, host: string, port: number, reported: Target, data: Buffer): void {
    const key = `${host}|${port}`;
    // Most recently used last; the oldest goes beyond UDP_ASSOCIATION_MAX_PEERS.
    this.peers.delete(key);
    this.peers.set(key, reported);
    if (this.peers.size > this.limits.UDP_ASSOCIATION_MAX_PEERS) this.peers.delete(this.peers.keys().next().value as string);
    const n = data.length;
    if (sock.getSendQueueSize() + n > this.limits.UDP_LOCAL_SEND_QUEUE_BYTES) return this.drop('send_queue');
    if (this.owner.config.bandwidth?.(this.counters.user)?.up.tryTake(n) === false) return this.drop('rate');
    sock.send(data, port, host, (err) => {
      if (err) return this.drop('send_error');
      const c = this.counters;
      this.upCount++;
      c.up.inc();
      c.upBytes.inc(n);
      c.userUp.inc(n);
      c.allUp.inc(n);
    });
  }

  // ── target → client ─────────────────────────────────────────────────────

  private watch(sock: dgram.Socket): void {
    sock.on('message', (msg, rinfo) => this.fromTarget(msg, rinfo));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (this.done) return;
      this.log().warn({ err: err.code ?? err.message }, 'udp socket error; association ended');
      this.fail(new PosternError('E_GENERAL', 'UDP socket error'), 'error');
    });
  }

  private fromTarget(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.done) return;
    try {
      let reported = this.peers.get(`${rinfo.address}|${rinfo.port}`);
      if (reported === undefined && rinfo.family === 'IPv6') {
        const canonical = canonicalIPv6(rinfo.address);
        if (canonical !== null) reported = this.peers.get(`${canonical}|${rinfo.port}`);
      }
      if (reported === undefined) return this.drop('stranger');
      if (msg.length > this.limits.UDP_MAX_DATAGRAM_BYTES) return this.drop('too_large');
      this.lastActivity = performance.now();
      if (this.owner.config.bandwidth?.(this.counters.user)?.down.tryTake(msg.length) === false) return this.drop('rate');
      if (!this.session.sendDatagram(this.stream.id, reported, msg)) return this.drop('tunnel');
      const c = this.counters;
      this.downCount++;
      c.down.inc();
      c.downBytes.inc(msg.length);
      c.userDown.inc(msg.length);
      c.allDown.inc(msg.length);
    } catch (err) {
      this.internalError(err);
    }
  }

  // ── bookkeeping ─────────────────────────────────────────────────────────

  private drop(reason: UdpDropReason): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + 1;
    this.owner.drop(reason);
  }

  private refuse(reason: 'port' | 'not_listed' | 'range', target: Target): void {
    this.drop(`policy_${reason}`);
    if (this.refusalLogged) return;
    this.refusalLogged = true;
    const log = this.log();
    if (log.isLevelEnabled('debug')) {
      log.debug({ policy: reason, ...(this.owner.config.logDestinations() ? { target: formatTarget(target) } : {}) }, 'udp datagram refused by policy (logged once per association)');
    }
  }

  /** Runs a step that continues after an await: a bug ends this association, never the process. */
  private guarded(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.internalError(err);
    }
  }

  private internalError(err: unknown): void {
    this.log().error({ err: (err as Error)?.message }, 'internal error in udp association');
    this.fail(new PosternError('E_INTERNAL'), 'error');
  }

  /** One timer per association, re-armed for the remainder rather than per datagram. */
  private armIdle(ms: number): void {
    this.idleTimer = setTimeout(() => this.onIdleTimer(), Math.max(1, Math.ceil(ms)));
    this.idleTimer.unref();
  }

  private onIdleTimer(): void {
    this.idleTimer = null;
    if (this.done) return;
    const idleMs = this.limits.UDP_ASSOCIATION_IDLE_MS;
    const quiet = performance.now() - this.lastActivity;
    if (quiet < idleMs) return this.armIdle(idleMs - quiet);
    this.log().debug({ idleMs }, 'udp association idle; reset');
    this.fail(new PosternError('E_TIMEOUT', 'UDP association idle'), 'idle');
  }

  /** Releases everything once: handler, timer, lookups, sockets, the bridge-wide slot. */
  private finish(reason: UdpEndReason): void {
    if (this.done) return;
    this.done = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.abort.abort();
    this.session.setDatagramHandler(this.stream.id, null);
    closeQuietly(this.sock4);
    if (this.sock6) closeQuietly(this.sock6);
    this.sock6 = null;
    this.peers.clear();
    this.names.clear();
    this.owner.ended(this, reason);
    const log = this.log();
    if (log.isLevelEnabled('debug')) log.debug({ reason, up: this.upCount, down: this.downCount, dropped: this.dropped }, 'udp association closed');
  }
}
