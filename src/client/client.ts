import { isLoopbackHost } from '../core/address.js';
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import type { Logger } from '../log/logger.js';
import { SocksServer } from '../socks/server.js';
import type { BridgeInfo } from '../transport/uri.js';
import { Tunnel } from './tunnel.js';

export interface ClientOptions {
  readonly bridge: BridgeInfo;
  readonly listen: { host: string; port: number };
  readonly auth: { username: string; password: string } | null;
  /** Explicit opt-in to an unauthenticated listener on a non-loopback address. */
  readonly allowOpenProxy: boolean;
  readonly limits: Limits;
  readonly logger: Logger;
}

/** `postern client`: a local SOCKS5 listener whose connections become streams to the bridge. */
export class Client {
  readonly tunnel: Tunnel;
  private readonly socks: SocksServer;

  constructor(private readonly opts: ClientOptions) {
    if (!opts.auth && !isLoopbackHost(opts.listen.host) && !opts.allowOpenProxy) {
      throw new PosternError(
        'E_CONFIG',
        `refusing to run an open proxy on ${opts.listen.host}: set --user and --pass (or pass --insecure-open-proxy)`,
      );
    }
    this.tunnel = new Tunnel(opts.bridge, opts.limits, opts.logger.child({ component: 'tunnel' }));
    this.socks = new SocksServer({
      host: opts.listen.host,
      port: opts.listen.port,
      auth: opts.auth,
      limits: opts.limits,
      logger: opts.logger.child({ component: 'socks' }),
      allowOpenProxy: opts.allowOpenProxy,
      connect: (target, signal) => this.tunnel.open(target, signal),
    });
  }

  async start(): Promise<{ host: string; port: number }> {
    const addr = await this.socks.listen();
    // Dial eagerly so the first app connection is fast and a bad link is reported at once.
    this.tunnel.connect().catch(() => undefined);
    return addr;
  }

  async stop(drainMs: number): Promise<void> {
    // New SOCKS requests fail fast (tunnel closed) while open streams get drainMs to finish.
    await this.tunnel.drain(drainMs);
    await this.socks.close();
  }
}
