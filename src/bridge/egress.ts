import net from 'node:net';
import type { Target } from '../core/address.js';
import { connectTcp } from '../core/dial.js';
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import type { Resolver } from './dns.js';
import { checkAddress, checkTarget, type EgressPolicy } from './policy.js';

/** Why policy refused a stream (metrics label): its port, not on the allow-list, or a special range. */
export type RefusalReason = 'port' | 'not_listed' | 'range';

/** E_NOT_ALLOWED from egress policy, with the reason for metrics (never the destination). */
export class PolicyRefusal extends PosternError {
  readonly reason: RefusalReason;
  constructor(reason: RefusalReason, detail?: string) {
    super('E_NOT_ALLOWED', detail ?? reason);
    this.reason = reason;
  }
}

export type { Resolver, ResolvedAddress, LookupContext } from './dns.js';

/**
 * A resolver that answers from a table first (a hosts file, the operator's `hosts`), else
 * delegates. A name the table holds never waits for DNS. `onHit` counts such answers.
 */
export function withTable(lookup: (name: string) => readonly string[] | undefined, next: Resolver, onHit?: () => void): Resolver {
  return async (name, ctx) => {
    const fixed = lookup(name);
    if (!fixed) return next(name, ctx);
    onHit?.();
    return fixed.map((address) => ({ address, family: net.isIPv6(address) ? 6 : 4 }));
  };
}

/** A resolver that answers from a fixed table first (operator `hosts` overrides), else delegates. */
export function withHosts(hosts: Readonly<Record<string, readonly string[]>>, next: Resolver, onHit?: () => void): Resolver {
  const table = new Map(Object.entries(hosts).map(([k, v]) => [k.toLowerCase(), v]));
  return withTable((name) => table.get(name.toLowerCase().replace(/\.$/, '')), next, onHit);
}

export interface EgressOptions {
  readonly policy: EgressPolicy;
  readonly resolver: Resolver;
  readonly limits: Pick<Limits, 'EGRESS_CONNECT_TIMEOUT_MS' | 'EGRESS_DNS_TIMEOUT_MS'>;
  /** Whose stream this is: DNS lookups are counted against this user (dns.ts). */
  readonly user?: string;
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms);
    const onAbort = () => reject(new PosternError('E_CANCELLED'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    });
  });
}

/** Resolves a target to the addresses policy allows; throws E_NOT_ALLOWED / E_DNS. */
export async function resolveAllowed(target: Target, opts: EgressOptions, signal: AbortSignal): Promise<string[]> {
  const pre = checkTarget(target, opts.policy);
  if (!pre.allowed) throw new PolicyRefusal(pre.reason, pre.reason === 'range' ? `${pre.range} range` : undefined);
  // An IP literal has been checked by checkTarget (address ranges included): nothing to resolve.
  if (target.kind !== 'domain') return [target.host];
  // The lookup's own signal aborts on timeout and on cancel: the query is cancelled and its DNS
  // slot freed at once (dns.ts), not when a hung resolver finally gives up.
  const lookup = new AbortController();
  const onAbort = (): void => lookup.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  let found;
  try {
    found = await withTimeout(
      opts.resolver(target.host, { ...(opts.user !== undefined ? { user: opts.user } : {}), signal: lookup.signal }).catch((err: NodeJS.ErrnoException) => {
        if (err instanceof PosternError && err.code === 'E_DNS') throw err;
        throw new PosternError('E_DNS', err?.code, { cause: err });
      }),
      opts.limits.EGRESS_DNS_TIMEOUT_MS,
      () => {
        lookup.abort();
        return new PosternError('E_DNS', 'resolution timed out');
      },
      signal,
    );
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  const candidates = found.map((a) => a.address);
  if (candidates.length === 0) throw new PosternError('E_DNS', 'no addresses');
  const allowed = candidates.filter((a) => checkAddress(a, opts.policy).allowed);
  if (allowed.length === 0) {
    const d = checkAddress(candidates[0] as string, opts.policy);
    throw new PolicyRefusal('range', d.allowed ? undefined : `${d.range} range`);
  }
  return allowed;
}

/**
 * Opens a TCP connection to a target for a stream: resolve at the bridge, check every address
 * against policy, connect to exactly a checked address, trying the allowed ones in order
 * within one overall connect timeout. The socket is borrowed-read and paused (src/core/borrowed-read.ts:
 * relay() and ThrottledSocket take its reads).
 */
export async function connectTarget(target: Target, opts: EgressOptions, signal: AbortSignal): Promise<net.Socket> {
  const addresses = await resolveAllowed(target, opts, signal);
  const deadline = Date.now() + opts.limits.EGRESS_CONNECT_TIMEOUT_MS;
  // Made only when needed: an Error captures a stack, too dear for every stream.
  let lastError: unknown = null;
  for (const address of addresses) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      return await connectTcp(address, target.port, left, signal, true);
    } catch (err) {
      lastError = err;
      if (err instanceof PosternError && err.code === 'E_CANCELLED') throw err;
    }
  }
  throw lastError ?? new PosternError('E_TIMEOUT', 'connect');
}
