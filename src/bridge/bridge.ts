import type { Socket } from 'node:net';
import { formatTarget } from '../core/address.js';
import { PosternError, errorFromSystem } from '../core/errors.js';
import { relay } from '../core/relay.js';
import type { Logger } from '../log/logger.js';
import { MuxSession, type IncomingOpen } from '../mux/session.js';
import type { FrameTransport } from '../mux/transport.js';
import { CloseCode } from '../mux/transport.js';
import { TokenVerifier } from '../transport/auth.js';
import { createBridgeListener } from '../transport/listener.js';
import type { BridgeConfig } from '../config/bridge.js';
import { connectTarget, systemResolver, withHosts, type Resolver } from './egress.js';

export interface BridgeOptions {
  readonly config: BridgeConfig;
  readonly logger: Logger;
  /** Replaces DNS (tests); the config's `hosts` table is consulted first either way. */
  readonly resolver?: Resolver;
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
  private readonly resolver: Resolver;
  private config: BridgeConfig;
  private sessionSeq = 0;
  private stopping = false;

  constructor(opts: BridgeOptions) {
    this.config = opts.config;
    this.log = opts.logger;
    this.resolver = withHosts(this.config.hosts, opts.resolver ?? systemResolver);
    const { limits } = this.config;
    this.verifier = new TokenVerifier([...this.config.users], {
      windowMs: limits.AUTH_WINDOW_MS,
      replayCacheCount: limits.AUTH_REPLAY_CACHE_COUNT,
    });
    this.listener = createBridgeListener({
      host: this.config.listen.host,
      port: this.config.listen.port,
      tls: this.config.tls ? { keyPem: this.config.tls.keyPem, certPem: this.config.tls.certPem } : null,
      path: this.config.path,
      verifier: this.verifier,
      limits,
      logger: this.log,
      onSession: (transport, user) => this.onSession(transport, user),
    });
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  async start(): Promise<{ host: string; port: number }> {
    return this.listener.listen();
  }

  /** Applies a reloaded config's users and certificate without dropping sessions. */
  reload(next: BridgeConfig): void {
    this.verifier.setUsers([...next.users]);
    if (next.tls) this.listener.setTls(next.tls.keyPem, next.tls.certPem);
    this.config = { ...this.config, users: next.users, tls: next.tls };
    this.log.info({ users: next.users.length }, 'configuration reloaded');
  }

  private onSession(transport: FrameTransport, user: string): void {
    const { limits } = this.config;
    if (this.stopping || this.sessions.size >= limits.BRIDGE_MAX_SESSIONS) {
      transport.close(CloseCode.GOING_AWAY, 'busy');
      return;
    }
    const id = ++this.sessionSeq;
    const log = this.log.child({ session: id, user });
    const session = new MuxSession(transport, { role: 'bridge', limits, logger: log });
    this.sessions.add(session);
    log.info('session open');
    session.on('close', (info: { code: number; reason: string }) => {
      this.sessions.delete(session);
      log.info({ code: info.code }, 'session closed');
    });
    session.on('open', (req) => {
      void this.onOpen(req, log);
    });
  }

  private async onOpen(req: IncomingOpen, sessionLog: Logger): Promise<void> {
    const log = sessionLog.child({ stream: req.streamId });
    let socket: Socket;
    try {
      // req.signal aborts when the client cancels the open or the session ends first.
      socket = await connectTarget(
        req.target,
        { policy: { allowPrivate: this.config.allowPrivate }, resolver: this.resolver, limits: this.config.limits },
        req.signal,
      );
    } catch (err) {
      const e = errorFromSystem(err);
      log.info(
        this.config.log.destinations ? { code: e.code, target: formatTarget(req.target) } : { code: e.code },
        'stream refused',
      );
      req.reject(e);
      return;
    }
    socket.setNoDelay(true);
    let stream;
    try {
      stream = req.accept();
    } catch (err) {
      // The session ended while we were connecting.
      socket.destroy();
      log.debug({ err: (err as Error).message }, 'stream gone before accept');
      return;
    }
    log.debug(this.config.log.destinations ? { target: formatTarget(req.target) } : {}, 'stream open');
    relay(stream, socket, (err) => {
      if (err) log.debug({ code: (err as PosternError).code ?? 'E_CONN_RESET' }, 'stream aborted');
    });
  }

  /** Stops accepting, tells clients to go elsewhere, lets streams drain, then closes. */
  async stop(drainMs = this.config.limits.SHUTDOWN_DRAIN_MS): Promise<void> {
    // New sessions are turned away (stopping); open ones get GOAWAY and drainMs to finish their
    // streams; then the listener closes, which ends whatever is left.
    this.stopping = true;
    for (const s of this.sessions) s.goAway();
    const deadline = Date.now() + drainMs;
    while ([...this.sessions].some((s) => s.streamCount > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const s of this.sessions) s.close(CloseCode.GOING_AWAY, 'shutdown');
    await this.listener.close();
  }
}
