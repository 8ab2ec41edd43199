/**
 * The client's one routing decision, in front of every stream and datagram: SOCKS, HTTP and
 * forward listeners call `connector(...)`'s function; the UDP relay calls `decideDatagram`.
 *
 * - tunnel: the stream opens on the tunnel; the name goes to the bridge unresolved.
 * - direct: the client connects from this machine, as any app would; a name is looked up
 *   locally then (and only then). From a LAN listener, an address in a loopback, private,
 *   link-local or other special range is refused unless `allowLanPrivate`.
 * - block: refused with E_ROUTE_BLOCKED (SOCKS reply 0x02, HTTP 403).
 * Counters per action (connections, datagrams, bytes each way) and of local lookups; never a
 * destination.
 */
import dns from 'node:dns';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { MuxStream } from '../mux/stream.js';
import type { Target } from '../core/address.js';
import { connectTcp } from '../core/dial.js';
import { PosternError } from '../core/errors.js';
import { PRIVATE_RANGES, addressRange } from '../core/ip-class.js';
import type { Limits } from '../core/limits.js';
import type { RouteAction, RouteDecision, Router } from '../route/rules.js';

/** Looks a name up on this machine; the addresses in the order to try. */
export type LocalResolver = (name: string) => Promise<string[]>;

export const systemLocalResolver: LocalResolver = async (name) => (await dns.promises.lookup(name, { all: true, verbatim: true })).map((a) => a.address);

export interface ActionCounters {
  connections: number;
  datagrams: number;
  /** App → destination. */
  bytesUp: number;
  /** Destination → app. */
  bytesDown: number;
}

export class RouteStats {
  readonly tunnel: ActionCounters = { connections: 0, datagrams: 0, bytesUp: 0, bytesDown: 0 };
  readonly direct: ActionCounters = { connections: 0, datagrams: 0, bytesUp: 0, bytesDown: 0 };
  readonly block: ActionCounters = { connections: 0, datagrams: 0, bytesUp: 0, bytesDown: 0 };
  /** Local lookups made for routing (direct destinations and address rules). */
  lookups = 0;

  snapshot(): { tunnel: ActionCounters; direct: ActionCounters; block: ActionCounters; lookups: number } {
    return { tunnel: { ...this.tunnel }, direct: { ...this.direct }, block: { ...this.block }, lookups: this.lookups };
  }
}

/** What a route decided, and the addresses looked up to decide it (reused to connect: one lookup). */
export interface Routed {
  readonly decision: RouteDecision;
  readonly addresses: readonly string[] | null;
}

export interface ClientRouteOptions {
  readonly router: Router;
  readonly resolver: LocalResolver;
  readonly limits: Pick<Limits, 'DIRECT_CONNECT_TIMEOUT_MS' | 'ROUTE_DNS_TIMEOUT_MS' | 'ROUTE_DNS_MAX_CONCURRENT'>;
  /** Let a direct route from a LAN listener reach loopback and private networks. */
  readonly allowLanPrivate: boolean;
}

/**
 * Counts a stream's bytes once it closes, from the counts the stream keeps anyway (a direct
 * net.Socket's bytesWritten/bytesRead, a tunnel MuxStream's bytesSent/bytesReceived): nothing is
 * added to the data path.
 */
function countBytes(stream: Duplex, c: ActionCounters): void {
  const counts = (): { up: number; down: number } | null =>
    stream instanceof net.Socket
      ? { up: stream.bytesWritten, down: stream.bytesRead }
      : stream instanceof MuxStream
        ? { up: stream.bytesSent, down: stream.bytesReceived }
        : null;
  stream.once('close', () => {
    const n = counts();
    if (n === null) return;
    c.bytesUp += n.up;
    c.bytesDown += n.down;
  });
}

export class ClientRoute {
  readonly stats = new RouteStats();
  readonly router: Router;
  #lookupsInFlight = 0;

  constructor(private readonly opts: ClientRouteOptions) {
    this.router = opts.router;
  }

  /** A local lookup under the timeout and the concurrency bound; E_DNS on failure. */
  async lookup(name: string, signal: AbortSignal): Promise<string[]> {
    if (this.#lookupsInFlight >= this.opts.limits.ROUTE_DNS_MAX_CONCURRENT) throw new PosternError('E_DNS', 'too many local lookups in progress');
    this.#lookupsInFlight++;
    this.stats.lookups++;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      const found = await Promise.race([
        this.opts.resolver(name),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new PosternError('E_DNS', 'local lookup timed out')), this.opts.limits.ROUTE_DNS_TIMEOUT_MS);
          onAbort = () => reject(new PosternError('E_CANCELLED'));
          signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
      if (found.length === 0) throw new PosternError('E_DNS', 'no addresses');
      return found;
    } catch (err) {
      if (err instanceof PosternError) throw err;
      throw new PosternError('E_DNS', (err as NodeJS.ErrnoException)?.code, { cause: err });
    } finally {
      this.#lookupsInFlight--;
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * The decision for a destination: by name (no lookup), or — when the router asks — after one
   * local lookup. A failed lookup leaves the address rules unmatched (the default applies).
   */
  async route(target: Target, signal: AbortSignal): Promise<Routed> {
    const first = this.router.byName(target);
    if (first !== 'lookup') return { decision: first, addresses: null };
    let addresses: string[];
    try {
      addresses = await this.lookup(target.host, signal);
    } catch (err) {
      if (err instanceof PosternError && err.code === 'E_CANCELLED') throw err;
      return { decision: this.router.byAddress(target, ''), addresses: null };
    }
    return { decision: this.router.byAddress(target, addresses[0]!), addresses };
  }

  /** The addresses a direct route may use, looked up if need be, checked against the LAN guard. */
  async directAddresses(target: Target, looked: readonly string[] | null, lan: boolean, signal: AbortSignal): Promise<string[]> {
    const all = target.kind !== 'domain' ? [target.host] : (looked ?? (await this.lookup(target.host, signal)));
    return this.allowedDirect(all, lan);
  }

  /** Of `all`, the addresses a direct route may reach; throws E_ROUTE_PRIVATE / E_NOT_ALLOWED when none. */
  allowedDirect(all: readonly string[], lan: boolean): string[] {
    const guard = lan && !this.opts.allowLanPrivate;
    // This machine's own and private networks: closed to LAN clients unless the user allows them.
    const guarded = (range: string) => PRIVATE_RANGES.has(range) || range === 'reserved';
    // Never destinations of a connection (0.0.0.0 would even reach this machine).
    const never = (range: string) => range === 'unspecified' || range === 'multicast' || range === 'broadcast' || range === 'invalid';
    const ok = all.filter((a) => {
      const range = addressRange(a);
      return range === 'unicast' || (!never(range) && !(guard && guarded(range)));
    });
    if (ok.length === 0) {
      const range = addressRange(all[0]!);
      throw new PosternError(guard && guarded(range) ? 'E_ROUTE_PRIVATE' : 'E_NOT_ALLOWED', range);
    }
    return ok;
  }

  /**
   * The connect function for one listener (`lan`: it listens on a non-loopback address).
   * `tunnel` opens a stream to the bridge.
   */
  connector(tunnel: (target: Target, signal: AbortSignal) => Promise<Duplex>, lan: boolean): (target: Target, signal: AbortSignal) => Promise<Duplex> {
    return async (target, signal) => {
      const { decision, addresses } = await this.route(target, signal);
      const c = this.stats[decision.action];
      c.connections++;
      if (decision.action === 'block') throw new PosternError('E_ROUTE_BLOCKED', decision.label);
      let stream: Duplex;
      if (decision.action === 'tunnel') {
        stream = await tunnel(target, signal);
      } else {
        const list = await this.directAddresses(target, addresses, lan, signal);
        stream = await this.#dialDirect(list, target.port, signal);
      }
      countBytes(stream, c);
      return stream;
    };
  }

  async #dialDirect(addresses: readonly string[], port: number, signal: AbortSignal): Promise<net.Socket> {
    const deadline = Date.now() + this.opts.limits.DIRECT_CONNECT_TIMEOUT_MS;
    let last: unknown = null;
    for (const a of addresses) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      try {
        return await connectTcp(a, port, left, signal);
      } catch (err) {
        last = err;
        if (err instanceof PosternError && err.code === 'E_CANCELLED') throw err;
      }
    }
    throw last ?? new PosternError('E_TIMEOUT', 'connect');
  }
}

/** For --explain: the decision in words. */
export function explainLine(target: Target, r: Routed): string {
  const d = r.decision;
  const via = d.by === 'address' && r.addresses ? ` (address ${r.addresses[0]})` : '';
  return `${target.kind === 'ipv6' ? `[${target.host}]` : target.host}:${target.port} → ${d.action} by ${d.label}${via}${d.note ? ` (${d.note})` : ''}`;
}

export type { RouteAction };
