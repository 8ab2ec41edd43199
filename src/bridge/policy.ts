import ipaddr from 'ipaddr.js';
import { domainMatches, normalizeDomain } from '../core/domain.js';
import { OPENABLE_RANGES, PRIVATE_RANGES, parseIp } from '../core/ip-class.js';
import { PosternError } from '../core/errors.js';
import { PRESETS, type PresetName } from './presets.js';

/**
 * Egress policy: may the bridge connect to this IP address? Pure: no DNS, no sockets.
 * The bridge calls it on every resolved address and connects only to an address it approved,
 * so a name cannot be re-resolved to something else between check and connect.
 */
export interface EgressPolicy {
  /** Operator opt-in: allow loopback, private, link-local, CGNAT and ULA destinations. */
  readonly allowPrivate: boolean;
  /** Operator opt-in for chosen private or reserved ranges only (`egress.allowRanges`). */
  readonly allowRanges?: readonly Cidr[];
  /** Ports a target may have; absent or null: any port not denied. */
  readonly allowPorts?: readonly PortRange[] | null;
  /** Ports refused whatever else says (wins over allowPorts). */
  readonly denyPorts?: readonly PortRange[];
  /** Allow-list mode: only names under these domains and IP literals inside these ranges. */
  readonly allowOnly?: { readonly domains: readonly string[]; readonly ranges: readonly Cidr[] } | null;
}

export type Cidr = readonly [ipaddr.IPv4 | ipaddr.IPv6, number];
/** Inclusive port range. */
export type PortRange = readonly [lo: number, hi: number];

export type PolicyDecision = { readonly allowed: true } | { readonly allowed: false; readonly range: string };

function inRanges(addr: ipaddr.IPv4 | ipaddr.IPv6, ranges: readonly Cidr[] | undefined): boolean {
  if (!ranges) return false;
  for (const [net, bits] of ranges) {
    if (net.kind() === addr.kind() && addr.match(net as never, bits)) return true;
  }
  return false;
}

/** Decides for one IP literal. Anything that does not parse as an IP is refused. */
export function checkAddress(ip: string, policy: EgressPolicy): PolicyDecision {
  const addr = parseIp(ip);
  if (addr === null) return { allowed: false, range: 'invalid' };
  const range = addr.range();
  if (range === 'unicast') return { allowed: true };
  if (policy.allowPrivate && PRIVATE_RANGES.has(range)) return { allowed: true };
  if (OPENABLE_RANGES.has(range) && inRanges(addr, policy.allowRanges)) return { allowed: true };
  return { allowed: false, range };
}

/** Why a target was refused before any DNS: its port, or (allow-list mode) it is not listed. */
export type TargetDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: 'port' | 'not_listed' }
  | { readonly allowed: false; readonly reason: 'range'; readonly range: string };

function portIn(port: number, list: readonly PortRange[]): boolean {
  return list.some(([lo, hi]) => port >= lo && port <= hi);
}

export { normalizeDomain, domainMatches };

/**
 * Decides for a target as the client named it, before any DNS: the port lists, then (allow-list
 * mode) the name against the listed domains or the IP literal against the listed ranges, then an
 * IP literal against the special ranges. A name that passes is resolved, and every resolved
 * address still goes through checkAddress.
 */
export function checkTarget(target: { readonly kind: 'ipv4' | 'ipv6' | 'domain'; readonly host: string; readonly port: number }, policy: EgressPolicy): TargetDecision {
  if (policy.denyPorts && portIn(target.port, policy.denyPorts)) return { allowed: false, reason: 'port' };
  if (policy.allowPorts && !portIn(target.port, policy.allowPorts)) return { allowed: false, reason: 'port' };
  // A "domain" that is an IP in text is treated as the IP literal it is.
  const ip = parseIp(target.host);
  const only = policy.allowOnly;
  if (ip === null) {
    if (target.kind !== 'domain') return { allowed: false, reason: 'range', range: 'invalid' };
    if (only) {
      const name = normalizeDomain(target.host);
      if (!only.domains.some((d) => domainMatches(name, d))) return { allowed: false, reason: 'not_listed' };
    }
    return { allowed: true };
  }
  if (only && !inRanges(ip, only.ranges)) return { allowed: false, reason: 'not_listed' };
  const d = checkAddress(target.host, policy);
  return d.allowed ? d : { allowed: false, reason: 'range', range: d.range };
}

/** Parses "a.b.c.d/n" or "v6/n"; null when malformed. A bare address is a /32 or /128. */
export function parseCidr(s: string): Cidr | null {
  try {
    if (!s.includes('/')) {
      const a = ipaddr.parse(s);
      return [a, a.kind() === 'ipv4' ? 32 : 128];
    }
    const [a, bits] = ipaddr.parseCIDR(s);
    return [a, bits];
  } catch {
    return null;
  }
}

/** Parses 443 or "8000-8100"; null when malformed or out of 1..65535. */
export function parsePortRange(p: number | string): PortRange | null {
  if (typeof p === 'number') return Number.isInteger(p) && p >= 1 && p <= 65535 ? [p, p] : null;
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(p.trim());
  if (!m) return null;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  return lo >= 1 && hi <= 65535 && lo <= hi ? [lo, hi] : null;
}

/** The egress part of a bridge config, as plain data (see src/config/bridge.ts). */
export interface EgressSpec {
  readonly allowPrivate: boolean;
  readonly allowRanges: readonly string[];
  readonly allowPorts: readonly (number | string)[] | null;
  readonly denyPorts: readonly (number | string)[];
  readonly allowOnly: { readonly presets: readonly PresetName[]; readonly domains: readonly string[]; readonly ranges: readonly string[] } | null;
}

function mustCidr(s: string): Cidr {
  const c = parseCidr(s);
  if (c === null) throw new PosternError('E_CONFIG', `not a CIDR range: "${s}"`);
  return c;
}

function mustPorts(list: readonly (number | string)[]): PortRange[] {
  return list.map((p) => {
    const r = parsePortRange(p);
    if (r === null) throw new PosternError('E_CONFIG', `not a port or port range: "${p}"`);
    return r;
  });
}

/** Turns config data into a policy (presets merged, ranges parsed once). Throws E_CONFIG on bad input. */
export function compilePolicy(spec: EgressSpec): EgressPolicy {
  let allowOnly: EgressPolicy['allowOnly'] = null;
  if (spec.allowOnly) {
    const domains = new Set<string>();
    const ranges: Cidr[] = [];
    for (const name of spec.allowOnly.presets) {
      const preset = PRESETS[name];
      if (!preset) throw new PosternError('E_CONFIG', `unknown egress preset "${name}"`);
      for (const d of preset.domains) domains.add(d);
      for (const r of preset.ranges) ranges.push(mustCidr(r));
    }
    for (const d of spec.allowOnly.domains) domains.add(normalizeDomain(d.replace(/^\.+/, '')));
    for (const r of spec.allowOnly.ranges) ranges.push(mustCidr(r));
    allowOnly = { domains: [...domains], ranges };
  }
  return {
    allowPrivate: spec.allowPrivate,
    allowRanges: spec.allowRanges.map(mustCidr),
    allowPorts: spec.allowPorts === null ? null : mustPorts(spec.allowPorts),
    denyPorts: mustPorts(spec.denyPorts),
    allowOnly,
  };
}
