import ipaddr from 'ipaddr.js';

/**
 * Egress policy: may the bridge connect to this IP address? Pure: no DNS, no sockets.
 * The bridge calls it on every resolved address and connects only to an address it approved,
 * so a name cannot be re-resolved to something else between check and connect.
 */
export interface EgressPolicy {
  /** Operator opt-in: allow loopback, private, link-local, CGNAT and ULA destinations. */
  readonly allowPrivate: boolean;
}

export type PolicyDecision = { readonly allowed: true } | { readonly allowed: false; readonly range: string };

/** Ranges only `allowPrivate` opens (ipaddr.js range names). */
const PRIVATE_RANGES: ReadonlySet<string> = new Set([
  'loopback',
  'private',
  'linkLocal',
  'carrierGradeNat',
  'uniqueLocal',
]);

/** IPv6 ranges whose low 32 bits (or, for 6to4, bits 16..48) embed an IPv4 address to check instead. */
function embeddedIPv4(addr: ipaddr.IPv6): ipaddr.IPv4 | null {
  const p = addr.parts;
  const tail = (hi: number, lo: number) => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  if (addr.isIPv4MappedAddress()) return addr.toIPv4Address();
  // IPv4-compatible (deprecated, RFC 4291 §2.5.5.1): ::a.b.c.d, but not :: or ::1
  if (p.slice(0, 6).every((x) => x === 0) && !(p[6] === 0 && (p[7] ?? 0) <= 1)) return tail(p[6] ?? 0, p[7] ?? 0);
  const range = addr.range();
  // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052) and SIIT ::ffff:0:a.b.c.d (RFC 6145)
  if (range === 'rfc6052' || range === 'rfc6145') return tail(p[6] ?? 0, p[7] ?? 0);
  // 6to4 2002:AABB:CCDD::/48 carries a.b.c.d in bits 16..48
  if (range === '6to4') return tail(p[1] ?? 0, p[2] ?? 0);
  return null;
}

/** Decides for one IP literal. Anything that does not parse as an IP is refused. */
export function checkAddress(ip: string, policy: EgressPolicy): PolicyDecision {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip);
  } catch {
    return { allowed: false, range: 'invalid' };
  }
  if (addr.kind() === 'ipv6') {
    const v4 = embeddedIPv4(addr as ipaddr.IPv6);
    if (v4) addr = v4;
  }
  const range = addr.range();
  if (range === 'unicast') return { allowed: true };
  if (policy.allowPrivate && PRIVATE_RANGES.has(range)) return { allowed: true };
  return { allowed: false, range };
}
