import { isLoopbackHost } from '../core/address.js';
import { AuthThrottle } from '../core/auth-throttle.js';
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import type { Logger } from '../log/logger.js';
import { HttpProxyServer, type LocalPages } from '../http/server.js';
import { SocksServer } from '../socks/server.js';
import { bridgeDialer } from '../transport/registry.js';
import type { Dialer } from '../transport/types.js';
import type { BridgeInfo } from '../transport/uri.js';
import type { BridgeStrategy, BudgetPolicy } from '../core/tunnel-policy.js';
import { Tunnel, type OpenMode } from './tunnel.js';
import type { WallStore } from './wall.js';
import { ForwardListener, MixedListener, type ListenAddress } from './listeners.js';
import { udpAssociator } from './udp.js';
import type { Target } from '../core/address.js';
import { pacProxy, routePac } from '../route/pac.js';
import { Router } from '../route/rules.js';
import { ClientRoute, systemLocalResolver, type LocalResolver } from './route.js';

/** A fixed-destination listener (--forward, the WhatsApp entry point). */
export interface ForwardSpec {
  readonly name: string;
  readonly listen: { host: string; port: number };
  readonly target: Target;
  readonly tls?: { keyPem: string; certPem: string };
}

/** A bound listener, for the startup lines. */
export interface BoundListener {
  readonly role: 'mixed' | 'socks' | 'http' | 'forward';
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

export interface ClientOptions {
  readonly bridge: BridgeInfo;
  /** Several bridges (the first is usually `bridge`); when given, `bridge` is ignored. */
  readonly bridges?: readonly BridgeInfo[];
  /** How new streams pick a bridge among several (default failover). */
  readonly strategy?: BridgeStrategy;
  /** Connection rotation budget (absent or 0: off), see TunnelOptions. */
  readonly rotate?: { readonly bytes: number; readonly ms: number };
  /** Per-connection budget of bridge→client bytes (docs/protocol.md §9.8); absent: share link's, else learned. */
  readonly budget?: BudgetPolicy;
  /** Where learned budgets are remembered (absent/null: not remembered). */
  readonly wallStore?: WallStore | null;
  /** Opens the tunnel's connections (default: transport/registry.ts bridgeDialer). */
  readonly dialer?: Dialer;
  /** The mixed port: SOCKS5 and HTTP proxy on one listener. */
  readonly listen: { host: string; port: number };
  /** Extra SOCKS5-only and HTTP-proxy-only listeners. */
  readonly socksListen?: readonly { host: string; port: number }[];
  readonly httpListen?: readonly { host: string; port: number }[];
  readonly forwards?: readonly ForwardSpec[];
  readonly auth: { username: string; password: string } | null;
  /** Explicit opt-in to an unauthenticated listener on a non-loopback address. */
  readonly allowOpenProxy: boolean;
  /**
   * Answer SOCKS CONNECT / HTTP CONNECT only after the bridge's result, with its exact code
   * (--exact-replies). Default false: with the tunnel up, the app gets success at once and its
   * first bytes travel with the open (docs/protocol.md §5.1); a refusal then resets its connection.
   */
  readonly exactReplies?: boolean;
  readonly limits: Limits;
  readonly logger: Logger;
  /** The status page (and anything else) the HTTP proxy ports serve to this machine's browser; absent: 404. */
  readonly localPages?: LocalPages;
  /** Route rules (absent: everything through the tunnel, today's behaviour). */
  readonly route?: {
    readonly router: Router;
    /** Let a direct route from a LAN listener reach loopback and private networks. */
    readonly allowLanPrivate?: boolean;
    /** Local lookups for direct routes and address rules (default: the system's). */
    readonly resolver?: LocalResolver;
  };
}

/**
 * `postern client`: local listeners whose connections become streams to the bridge, all sharing
 * one Tunnel — the mixed port (SOCKS5 + HTTP), optional SOCKS-only and HTTP-only ports, and
 * fixed-destination forwards.
 */
export class Client {
  readonly tunnel: Tunnel;
  /** The one routing decision every listener and the UDP relay go through. */
  readonly route: ClientRoute;
  private readonly socks: SocksServer;
  private readonly http: HttpProxyServer;
  private readonly mixed: MixedListener;
  private readonly extra: Array<{ role: BoundListener['role']; name: string; server: SocksServer | HttpProxyServer | ForwardListener }> = [];
  /** Every listener bound by start(), mixed port first. */
  readonly listeners: BoundListener[] = [];
  /** Failed logins, limited and counted per source across every SOCKS and HTTP listener. */
  readonly authThrottle: AuthThrottle;

  constructor(private readonly opts: ClientOptions) {
    for (const l of [opts.listen, ...(opts.socksListen ?? []), ...(opts.httpListen ?? [])]) {
      if (!opts.auth && !isLoopbackHost(l.host) && !opts.allowOpenProxy) {
        throw new PosternError(
          'E_CONFIG',
          `refusing to run an open proxy on ${l.host}: set --user and --pass (or pass --insecure-open-proxy)`,
        );
      }
    }
    this.authThrottle = new AuthThrottle(opts.limits);
    this.tunnel = new Tunnel(opts.bridges ?? [opts.bridge], opts.limits, opts.logger.child({ component: 'tunnel' }), {
      strategy: opts.strategy ?? 'failover',
      rotateBytes: opts.rotate?.bytes ?? 0,
      rotateMs: opts.rotate?.ms ?? 0,
      ...(opts.budget !== undefined ? { budget: opts.budget } : {}),
      wallStore: opts.wallStore ?? null,
      dialer: opts.dialer ?? bridgeDialer,
    });
    this.route = new ClientRoute({
      router: opts.route?.router ?? new Router([], 'tunnel'),
      resolver: opts.route?.resolver ?? systemLocalResolver,
      limits: opts.limits,
      allowLanPrivate: opts.route?.allowLanPrivate === true,
    });
    // Optimistic ('early') unless --exact-replies: the app is answered at once while the tunnel is up.
    const mode: OpenMode = opts.exactReplies === true ? 'exact' : 'early';
    const open = (target: Target, signal: AbortSignal) => this.tunnel.open(target, signal, mode);
    // A listener on a non-loopback address serves the LAN: its direct routes are guarded.
    const connectFor = (host: string) => this.route.connector(open, !isLoopbackHost(host));
    const udpFor = (host: string) =>
      udpAssociator({ tunnel: this.tunnel, limits: opts.limits, logger: opts.logger.child({ component: 'udp' }), route: this.route, lan: !isLoopbackHost(host) });
    const router = this.route.router;
    const pac = router.rules.length === 0 ? undefined : (host: string, port: number) => routePac(router, pacProxy(host, port));
    const socksOpts = (l: { host: string; port: number }) => ({
      host: l.host,
      port: l.port,
      auth: opts.auth,
      limits: opts.limits,
      logger: opts.logger.child({ component: 'socks' }),
      allowOpenProxy: opts.allowOpenProxy,
      authThrottle: this.authThrottle,
      connect: connectFor(l.host),
      udp: udpFor(l.host),
    });
    this.socks = new SocksServer(socksOpts(opts.listen));
    const httpOpts = (l: { host: string; port: number }) => ({
      host: l.host,
      port: l.port,
      auth: opts.auth,
      limits: opts.limits,
      logger: opts.logger.child({ component: 'http' }),
      allowOpenProxy: opts.allowOpenProxy,
      authThrottle: this.authThrottle,
      connect: connectFor(l.host),
      pac,
      ...(opts.localPages !== undefined ? { localPages: opts.localPages } : {}),
    });
    this.http = new HttpProxyServer(httpOpts(opts.listen));
    this.mixed = new MixedListener({
      host: opts.listen.host,
      port: opts.listen.port,
      socks: this.socks,
      http: this.http,
      limits: opts.limits,
      logger: opts.logger.child({ component: 'mixed' }),
    });
    for (const l of opts.socksListen ?? []) this.extra.push({ role: 'socks', name: 'socks', server: new SocksServer(socksOpts(l)) });
    for (const l of opts.httpListen ?? []) this.extra.push({ role: 'http', name: 'http', server: new HttpProxyServer(httpOpts(l)) });
    for (const f of opts.forwards ?? []) {
      const server = new ForwardListener({
        name: f.name,
        host: f.listen.host,
        port: f.listen.port,
        target: f.target,
        tls: f.tls,
        limits: opts.limits,
        logger: opts.logger.child({ component: 'forward', name: f.name }),
        connect: connectFor(f.listen.host),
      });
      this.extra.push({ role: 'forward', name: f.name, server });
    }
  }

  /** Binds every listener (the mixed port first); resolves with the mixed port's address. */
  async start(): Promise<{ host: string; port: number }> {
    const addr: ListenAddress = await this.mixed.listen();
    this.listeners.push({ role: 'mixed', name: 'socks5+http', ...addr });
    try {
      for (const e of this.extra) this.listeners.push({ role: e.role, name: e.name, ...(await e.server.listen()) });
    } catch (err) {
      await this.closeListeners();
      throw err;
    }
    // Dial eagerly so the first app connection is fast and a bad link is reported at once.
    this.tunnel.connect().catch(() => undefined);
    return addr;
  }

  private async closeListeners(): Promise<void> {
    await Promise.all([this.mixed.close(), this.socks.close(), this.http.close(), ...this.extra.map((e) => e.server.close())]);
  }

  async stop(drainMs: number): Promise<void> {
    // New SOCKS requests fail fast (tunnel closed) while open streams get drainMs to finish.
    await this.tunnel.drain(drainMs);
    await this.closeListeners();
  }
}
