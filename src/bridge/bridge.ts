import type { Socket } from 'node:net';
import { formatTarget } from '../core/address.js';
import { PosternError, errorFromSystem } from '../core/errors.js';
import type { Logger } from '../log/logger.js';
import { MuxSession, type IncomingOpen } from '../mux/session.js';
import type { MuxStream } from '../mux/stream.js';
import type { FrameTransport } from '../mux/transport.js';
import { CloseCode } from '../mux/transport.js';
import { TokenVerifier } from '../transport/auth.js';
import { createBridgeListener } from '../transport/listener.js';
import { createDecoy } from '../decoy/index.js';
import type { BridgeConfig } from '../config/bridge.js';
import { SessionRegistry } from './sessions.js';
import { connectTarget, PolicyRefusal, withHosts, withTable, type Resolver } from './egress.js';
import { caresResolver, dnsMetrics, DnsLimiter, limitResolver, type DnsMetrics } from './dns.js';
import { HostsFile } from './hosts.js';
import { LogSummary } from '../log/summary.js';
import { createAdminServer, type AdminServer } from './admin.js';
import { BudgetRefusal, CountingVerifier, Governor, type StreamLease } from './governor.js';
import type { BridgeMetrics } from './metrics.js';
import { UdpAssociations } from './udp.js';
import { compilePolicy, type EgressPolicy } from './policy.js';

/**
 * `req` with its budget lease released exactly once: when it is rejected, when accept() throws,
 * when the open is cancelled before an answer, or when the accepted stream closes.
 */
function leased(req: IncomingOpen, lease: StreamLease): IncomingOpen {
  const { release } = lease;
  req.signal.addEventListener('abort', release, { once: true });
  return {
    streamId: req.streamId,
    command: req.command,
    target: req.target,
    signal: req.signal,
    accept: (window?: number) => {
      let stream: MuxStream;
      try {
        stream = req.accept(window ?? lease.window);
      } catch (err) {
        release();
        throw err;
      }
      req.signal.removeEventListener('abort', release);
      stream.once('close', release);
      return stream;
    },
    reject: (err) => {
      release();
      req.reject(err);
    },
  };
}

/**
 * The stream's child logger, made only when something is logged (most streams log nothing). Made
 * here, not in onOpen, so that what the relay keeps for the stream's life (it logs through this)
 * is the session's logger and a number, not the open request with its closures and signal.
 */
function lazyStreamLog(sessionLog: Logger, streamId: number): () => Logger {
  let streamLog: Logger | null = null;
  return () => (streamLog ??= sessionLog.child({ stream: streamId }));
}

function policyOf(c: BridgeConfig): EgressPolicy {
  return compilePolicy({ allowPrivate: c.allowPrivate, ...c.egress });
}

export interface BridgeOptions {
  readonly config: BridgeConfig;
  readonly logger: Logger;
  /** Replaces DNS (tests); the config's `hosts` table and the hosts file are consulted first either way. */
  readonly resolver?: Resolver;
  /** Features announced in the 101 (protocol.md §2; default all this version has; tests play an older bridge with []). */
  readonly features?: readonly string[];
}

/**
 * `postern bridge`: accepts authenticated wss sessions and, for each stream a client opens,
 * connects to the target (policy-checked) and relays both ways.
 */
export class Bridge {
  private readonly log: Logger;
  private readonly verifier: TokenVerifier;
  private readonly listener: ReturnType<typeof createBridgeListener>;
  private readonly sessions = new Set<MuxSession>();
  private resolver: Resolver;
  /** DNS (c-ares) with bounded, per-user concurrency (EGRESS_DNS_MAX_*), under the hosts file and the `hosts` table. */
  private readonly dnsResolver: Resolver;
  private hostsFile: HostsFile | null;
  private readonly dnsMetrics: DnsMetrics;
  /** Per-minute info summaries of refused streams and refused upgrades (each one is at debug). */
  private readonly refusedStreams: LogSummary;
  private readonly refusedUpgrades: LogSummary;
  private policy: EgressPolicy;
  /** Per-user sessions, stream limits and metrics. */
  private readonly governor: Governor;
  /** UDP associations (docs/protocol.md §10), bridge-wide. */
  private readonly udp: UdpAssociations;
  private admin: AdminServer | null = null;
  private config: BridgeConfig;
  private sessionSeq = 0;
  /** Resumable sessions by id (docs/protocol.md §9). */
  private readonly registry: SessionRegistry;
  private stopping = false;

  constructor(opts: BridgeOptions) {
    this.config = opts.config;
    this.log = opts.logger;
    this.registry = new SessionRegistry(this.config.limits, this.log);
    const { limits } = this.config;
    this.policy = policyOf(this.config);
    this.governor = new Governor(this.config.users, limits, () => this.sessions.size, this.log);
    this.dnsMetrics = dnsMetrics(this.governor.metrics.registry);
    const cares = caresResolver({ servers: () => this.config.dns.servers, tryTimeoutMs: limits.EGRESS_DNS_TIMEOUT_MS / 2 });
    this.dnsResolver = limitResolver(opts.resolver ?? cares, new DnsLimiter(limits, this.dnsMetrics));
    this.hostsFile = this.makeHostsFile(this.config);
    this.resolver = this.makeResolver(this.config);
    this.refusedStreams = new LogSummary(this.log, 'streams refused', 'byCode', limits.LOG_SUMMARY_INTERVAL_MS);
    this.refusedUpgrades = new LogSummary(this.log, 'upgrades refused', 'byReason', limits.LOG_SUMMARY_INTERVAL_MS);
    this.udp = new UdpAssociations({
      limits,
      metrics: this.governor.metrics,
      egress: () => ({ policy: this.policy, resolver: this.resolver }),
      logDestinations: () => this.config.log.destinations,
      bandwidth: (user) => this.governor.bucketsFor(user),
    });
    this.verifier = new CountingVerifier(
      [...this.config.users],
      { windowMs: limits.AUTH_WINDOW_MS, replayCacheCount: limits.AUTH_REPLAY_CACHE_PER_USER_COUNT },
      (reason) => this.governor.metrics.authFailures.inc({ reason }),
    );
    this.listener = createBridgeListener({
      host: this.config.listen.host,
      port: this.config.listen.port,
      tls: this.config.tls ? { keyPem: this.config.tls.keyPem, certPem: this.config.tls.certPem } : null,
      path: this.config.path,
      verifier: this.verifier,
      limits,
      logger: this.log,
      onSession: (transport, user, resumeId) => this.onSession(transport, user, resumeId),
      onHandshakeTimeout: () => this.metrics.handshakeTimeouts.inc(),
      admitSession: (user, id, proof, head) => this.registry.admit(id, user, proof, head),
      onRefused: (reason) => this.refusedUpgrades.note(reason),
      decoy: createDecoy(this.config.decoy, limits),
      http2: this.config.http2,
      ...(opts.features !== undefined ? { features: opts.features } : {}),
    });
  }

  private makeHostsFile(c: BridgeConfig): HostsFile | null {
    return c.dns.hostsFile === null ? null : new HostsFile(c.dns.hostsFile, c.limits, this.log);
  }

  /** The config's `hosts` table, then the hosts file, then DNS (limited per user). */
  private makeResolver(c: BridgeConfig): Resolver {
    const hit = (): void => this.dnsMetrics.hostsAnswers.inc();
    const file = this.hostsFile;
    const underTable = file === null ? this.dnsResolver : withTable((name) => file.lookup(name), this.dnsResolver, hit);
    return withHosts(c.hosts, underTable, hit);
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  get metrics(): BridgeMetrics {
    return this.governor.metrics;
  }

  /** Starts the public listener and, when configured, the admin listener (metrics, health). */
  async start(): Promise<{ host: string; port: number }> {
    this.reportDescriptorLimit();
    const addr = await this.listener.listen();
    if (this.config.admin) {
      const admin = createAdminServer({ ...this.config.admin, registry: this.metrics.registry, logger: this.log });
      try {
        const a = await admin.listen();
        this.admin = admin;
        this.log.info({ role: 'admin', address: a.host, port: a.port }, 'listening');
      } catch (err) {
        await this.listener.close();
        throw err;
      }
    }
    return addr;
  }

  /**
   * Logs RLIMIT_NOFILE at start (Node has already raised the soft limit to the hard one) and the
   * stream budgets under it; warns when the limit cannot hold what the budgets allow.
   */
  private reportDescriptorLimit(): void {
    const { limits } = this.config;
    const lim = this.governor.descriptors.limit;
    if (lim === null) {
      this.log.info('descriptor limit unknown (no /proc): streams are refused by the stream budgets only');
      return;
    }
    const fmt = (n: number): number | string => (Number.isFinite(n) ? n : 'unlimited');
    const streamsUnder = Math.max(0, lim.soft - limits.BRIDGE_DESCRIPTOR_RESERVE_COUNT);
    this.log.info(
      { soft: fmt(lim.soft), hard: fmt(lim.hard), reserve: limits.BRIDGE_DESCRIPTOR_RESERVE_COUNT, maxStreams: Math.min(limits.BRIDGE_MAX_STREAMS, streamsUnder) },
      'descriptor limit (RLIMIT_NOFILE)',
    );
    if (lim.soft < lim.hard) this.log.warn({ soft: lim.soft, hard: lim.hard }, 'soft descriptor limit below the hard one; raise it (ulimit -n) before starting the bridge');
    const wanted = limits.BRIDGE_MAX_STREAMS + limits.BRIDGE_MAX_SESSIONS + limits.BRIDGE_DESCRIPTOR_RESERVE_COUNT;
    if (lim.soft < wanted) {
      this.log.warn(
        { limit: lim.soft, wanted },
        'descriptor limit below BRIDGE_MAX_STREAMS + BRIDGE_MAX_SESSIONS + reserve: new streams are refused near the limit (raise LimitNOFILE, or lower the budgets)',
      );
    }
  }

  /**
   * Applies a reloaded config without dropping other sessions: users (the sessions of a removed
   * user, or of one whose secret changed, are closed at once), certificate, egress policy,
   * `hosts`, bandwidth caps and log.destinations. Listen address, path, limits and admin take
   * a restart. Throws, having changed nothing, when the new config cannot be applied.
   */
  reload(next: BridgeConfig): void {
    const policy = policyOf(next);
    // Check the user list (e.g. two users sharing a secret) before anything changes.
    new TokenVerifier([...next.users], { windowMs: next.limits.AUTH_WINDOW_MS, replayCacheCount: 1 });
    if (next.tls) this.listener.setTls(next.tls.keyPem, next.tls.certPem);
    this.verifier.setUsers([...next.users]);
    const closed = this.governor.setUsers(next.users);
    const restartOnly = (['listen', 'path', 'limits', 'admin'] as const).filter((k) => JSON.stringify(next[k]) !== JSON.stringify(this.config[k]));
    this.policy = policy;
    if (next.dns.hostsFile !== this.config.dns.hostsFile) this.hostsFile = this.makeHostsFile(next);
    this.resolver = this.makeResolver(next);
    this.config = {
      ...this.config,
      users: next.users,
      tls: next.tls,
      allowPrivate: next.allowPrivate,
      egress: next.egress,
      hosts: next.hosts,
      dns: next.dns,
      log: { ...this.config.log, destinations: next.log.destinations },
    };
    this.metrics.reloads.inc({ result: 'ok' });
    this.log.info({ users: next.users.length, sessionsClosed: closed }, 'configuration reloaded');
    if (restartOnly.length > 0) this.log.warn({ fields: restartOnly }, 'these changes take effect after a restart');
  }

  /** Loads and applies a config (SIGHUP, file change); on failure logs why and keeps the current one. */
  reloadFrom(load: () => BridgeConfig, trigger: string): boolean {
    try {
      this.reload(load());
      return true;
    } catch (err) {
      this.metrics.reloads.inc({ result: 'error' });
      const e = err as Error;
      this.log.error({ trigger, err: e instanceof PosternError ? `${e.code}: ${e.message}` : e.message }, 'reload failed; keeping the previous configuration');
      return false;
    }
  }

  private onSession(transport: FrameTransport, user: string, resumeId: string | null = null): void {
    const { limits } = this.config;
    // A known resumable session takes its new connection even while stopping (its streams drain).
    if (resumeId !== null && this.registry.resume(resumeId, user, transport)) return;
    if (this.stopping || this.sessions.size >= limits.BRIDGE_MAX_SESSIONS) {
      this.metrics.sessionsRefused.inc({ reason: 'busy' });
      transport.close(CloseCode.GOING_AWAY, 'busy');
      return;
    }
    const refusal = this.governor.admit(user);
    if (refusal) {
      this.log.info({ user, limit: limits.BRIDGE_MAX_SESSIONS_PER_USER }, 'session refused: too many sessions for this user');
      transport.close(refusal.code, refusal.reason);
      return;
    }
    const id = ++this.sessionSeq;
    const log = this.log.child({ session: id, user });
    const session =
      resumeId !== null
        ? this.registry.create(resumeId, user, transport, log, () => this.governor.sessionsOverBudget(user))
        : new MuxSession(transport, { role: 'bridge', limits, logger: log });
    this.sessions.add(session);
    this.governor.track(session, user, log);
    log.info('session open');
    session.on('close', (info: { code: number; reason: string }) => {
      this.sessions.delete(session);
      log.info({ code: info.code }, 'session closed');
    });
    session.on('open', (req) => {
      void this.onOpen(req, log, user, session);
    });
  }

  private async onOpen(req: IncomingOpen, sessionLog: Logger, user: string, session: MuxSession): Promise<void> {
    const log = lazyStreamLog(sessionLog, req.streamId);
    const lease = this.governor.admitStream(user, req.command === 'connect');
    if (lease instanceof BudgetRefusal) {
      this.metrics.streamsRefused.inc({ code: lease.code });
      req.reject(lease);
      return;
    }
    req = leased(req, lease);
    if (req.command === 'udp-associate') return this.udp.open(req, session, user, log);
    let socket: Socket;
    try {
      // req.signal aborts when the client cancels the open or the session ends first.
      socket = await connectTarget(
        req.target,
        { policy: this.policy, resolver: this.resolver, limits: this.config.limits, user },
        req.signal,
      );
    } catch (err) {
      const e = errorFromSystem(err);
      this.metrics.streamsRefused.inc({ code: e.code });
      if (e instanceof PolicyRefusal) this.metrics.policyRefusals.inc({ reason: e.reason });
      // A user can make thousands of these a second: one info summary a minute, each one at debug.
      this.refusedStreams.note(e instanceof PolicyRefusal ? `${e.code}/${e.reason}` : e.code);
      if (sessionLog.isLevelEnabled('debug')) log().debug(
        {
          code: e.code,
          ...(e instanceof PolicyRefusal ? { policy: e.reason } : {}),
          ...(this.config.log.destinations ? { target: formatTarget(req.target) } : {}),
        },
        'stream refused',
      );
      req.reject(e);
      return;
    }
    socket.setNoDelay(true);
    let stream;
    try {
      stream = req.accept(lease.window);
    } catch (err) {
      // The session ended while we were connecting.
      socket.destroy();
      log().debug({ err: (err as Error).message }, 'stream gone before accept');
      return;
    }
    if (sessionLog.isLevelEnabled('debug')) log().debug(this.config.log.destinations ? { target: formatTarget(req.target) } : {}, 'stream open');
    this.governor.relayStream(stream, socket, user, log);
  }

  /** Stops accepting, tells clients to go elsewhere, lets streams drain, then closes. */
  async stop(drainMs = this.config.limits.SHUTDOWN_DRAIN_MS): Promise<void> {
    // New sessions are turned away (stopping); open ones get GOAWAY and drainMs to finish their
    // streams; then the listener closes, which ends whatever is left.
    this.stopping = true;
    this.registry.endIdleDetached(CloseCode.GOING_AWAY, 'shutdown');
    for (const s of this.sessions) s.goAway();
    // A call never "finishes": end UDP associations now (RESET 0x0e) instead of holding the drain.
    this.udp.closeAll();
    const deadline = Date.now() + drainMs;
    while (([...this.sessions].some((s) => s.streamCount > 0) || this.registry.unacknowledged > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const s of this.sessions) s.close(CloseCode.GOING_AWAY, 'shutdown');
    await this.listener.close();
    await this.admin?.close();
    this.refusedStreams.close();
    this.refusedUpgrades.close();
  }
}
