/**
 * The OPEN address (docs/protocol.md §4.1): SOCKS5 layout (RFC 1928 §5), atyp ‖ address ‖ port.
 * Pure. Decoded IPv6 hosts are canonical text (RFC 5952 §4: lower case, no leading zeros,
 * the first longest run of two or more zero groups as '::'; IPv4-mapped addresses in mixed
 * notation '::ffff:192.0.2.1', RFC 5952 §5), matching what src/socks produces.
 */
import { MAX_DOMAIN_BYTES, type Target } from '../core/address.js';
import { MuxProtocolError } from './errors.js';
import { AddressType, type OpenInvalidReason } from './frame.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bytes `t` takes on the wire (atyp through port). Throws RangeError if it cannot be encoded. */
export function addressLength(t: Target): number {
  checkPort(t.port);
  switch (t.kind) {
    case 'ipv4':
      if (parseIPv4(t.host) === null) throw new RangeError('invalid IPv4 address');
      return 1 + 4 + 2;
    case 'ipv6':
      if (parseIPv6(t.host) === null) throw new RangeError('invalid IPv6 address');
      return 1 + 16 + 2;
    case 'domain': {
      const n = Buffer.byteLength(t.host, 'utf8');
      if (n < 1 || n > MAX_DOMAIN_BYTES) throw new RangeError(`domain must be 1..${MAX_DOMAIN_BYTES} bytes`);
      return 1 + 1 + n + 2;
    }
    default:
      throw new RangeError('unknown target kind');
  }
}

/** Writes `t` at `offset`; returns the offset after the port. Throws RangeError if invalid. */
export function writeAddress(buf: Buffer, offset: number, t: Target): number {
  checkPort(t.port);
  let at = offset;
  switch (t.kind) {
    case 'ipv4': {
      const b = parseIPv4(t.host);
      if (b === null) throw new RangeError('invalid IPv4 address');
      buf[at++] = AddressType.IPV4;
      for (const x of b) buf[at++] = x;
      break;
    }
    case 'ipv6': {
      const w = parseIPv6(t.host);
      if (w === null) throw new RangeError('invalid IPv6 address');
      buf[at++] = AddressType.IPV6;
      for (const x of w) {
        buf.writeUInt16BE(x, at);
        at += 2;
      }
      break;
    }
    case 'domain': {
      const n = Buffer.byteLength(t.host, 'utf8');
      if (n < 1 || n > MAX_DOMAIN_BYTES) throw new RangeError(`domain must be 1..${MAX_DOMAIN_BYTES} bytes`);
      buf[at++] = AddressType.DOMAIN;
      buf[at++] = n;
      at += buf.write(t.host, at, 'utf8');
      break;
    }
    default:
      throw new RangeError('unknown target kind');
  }
  buf.writeUInt16BE(t.port, at);
  return at + 2;
}

/**
 * Reads the address occupying exactly buf[start, end). Returns the Target, or the reason the
 * OPEN cannot be served (stream-level, OPEN_RESULT 0x08). Throws MuxProtocolError when the
 * bytes are malformed (session-level: the frame's own length contradicts its content).
 */
export function readAddress(buf: Buffer, start: number, end: number): Target | OpenInvalidReason {
  if (start >= end) throw new MuxProtocolError('address-truncated', 'no address type');
  const atyp = buf[start] as number;
  let at = start + 1;
  let kind: Target['kind'];
  let host: string;
  switch (atyp) {
    case AddressType.IPV4:
      need(at + 4 + 2, end);
      kind = 'ipv4';
      host = `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
      at += 4;
      break;
    case AddressType.IPV6:
      need(at + 16 + 2, end);
      kind = 'ipv6';
      host = formatIPv6(buf, at);
      at += 16;
      break;
    case AddressType.DOMAIN: {
      need(at + 1, end);
      const n = buf[at++] as number;
      if (n === 0) throw new MuxProtocolError('empty-domain');
      need(at + n + 2, end);
      kind = 'domain';
      try {
        host = utf8.decode(buf.subarray(at, at + n));
      } catch {
        return 'bad-domain-encoding';
      }
      at += n;
      break;
    }
    default:
      return 'unknown-address-type';
  }
  const port = buf.readUInt16BE(at);
  at += 2;
  if (at !== end) throw new MuxProtocolError('address-trailing-bytes', `${end - at} bytes after the port`);
  return { kind, host, port };
}

function need(upTo: number, end: number): void {
  if (upTo > end) throw new MuxProtocolError('address-truncated');
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError('port must be 0..65535');
}

const DEC_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Dotted-quad IPv4 (no leading zeros) → 4 bytes, or null. */
export function parseIPv4(s: string): number[] | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    if (!DEC_OCTET.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out.push(v);
  }
  return out;
}

/** IPv6 text (RFC 4291 §2.2 forms, no zone id, no brackets) → eight 16-bit groups, or null. */
export function parseIPv6(s: string): number[] | null {
  let str = s;
  const tail: number[] = [];
  const lastColon = str.lastIndexOf(':');
  if (lastColon === -1) return null;
  if (str.includes('.', lastColon)) {
    const v4 = parseIPv4(str.slice(lastColon + 1));
    if (v4 === null) return null;
    tail.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number));
    str = str.slice(0, lastColon + 1);
    if (!str.endsWith('::')) str = str.slice(0, -1);
  }
  const dbl = str.indexOf('::');
  let head: string[];
  let rest: string[];
  if (dbl === -1) {
    head = str.split(':');
    rest = [];
    if (head.length + tail.length !== 8) return null;
  } else {
    if (str.indexOf('::', dbl + 1) !== -1) return null;
    const left = str.slice(0, dbl);
    const right = str.slice(dbl + 2);
    head = left === '' ? [] : left.split(':');
    rest = right === '' ? [] : right.split(':');
    if (head.length + rest.length + tail.length > 7) return null;
  }
  const groups: number[] = [];
  for (const g of head) {
    if (!HEX_GROUP.test(g)) return null;
    groups.push(parseInt(g, 16));
  }
  if (dbl !== -1) {
    const zeros = 8 - head.length - rest.length - tail.length;
    for (let i = 0; i < zeros; i++) groups.push(0);
  }
  for (const g of rest) {
    if (!HEX_GROUP.test(g)) return null;
    groups.push(parseInt(g, 16));
  }
  groups.push(...tail);
  return groups.length === 8 ? groups : null;
}

/** 16 bytes at `offset` → canonical IPv6 text (RFC 5952 §4, IPv4-mapped as §5). */
export function formatIPv6(buf: Uint8Array, offset = 0): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push(((buf[offset + 2 * i] as number) << 8) | (buf[offset + 2 * i + 1] as number));
  if (w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0 && w[4] === 0 && w[5] === 0xffff) {
    const b = offset + 12;
    return `::ffff:${buf[b]}.${buf[b + 1]}.${buf[b + 2]}.${buf[b + 3]}`;
  }
  let bestStart = -1;
  let bestLen = 1; // a single zero group is not compressed (RFC 5952 §4.2.2)
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number, b: number) => w.slice(a, b).map((x) => x.toString(16)).join(':');
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}
