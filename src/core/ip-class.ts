/**
 * What kind of address an IP literal is (ipaddr.js range names: 'unicast', 'loopback', 'private',
 * …), looking through IPv6 forms that embed an IPv4 address. Shared by the bridge's egress policy
 * and the client's direct-route guard. Pure.
 */
import ipaddr from 'ipaddr.js';

/** Ranges only `allowPrivate` opens (ipaddr.js range names). */
export const PRIVATE_RANGES: ReadonlySet<string> = new Set([
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

/** Ranges `allowRanges` may open (never unspecified, multicast or broadcast: not destinations). */
export const OPENABLE_RANGES: ReadonlySet<string> = new Set([...PRIVATE_RANGES, 'reserved']);

/** Parses an IP literal (brackets allowed), unwrapping IPv6 forms that embed an IPv4 address. */
export function parseIp(ip: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip);
  } catch {
    return null;
  }
  if (addr.kind() === 'ipv6') {
    const v4 = embeddedIPv4(addr as ipaddr.IPv6);
    if (v4) addr = v4;
  }
  return addr;
}

/** The range name of an IP literal ('invalid' when it does not parse). */
export function addressRange(ip: string): string {
  const a = parseIp(ip);
  return a === null ? 'invalid' : a.range();
}
