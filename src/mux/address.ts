/**
 * The OPEN address (docs/protocol.md §4.1): SOCKS5 layout (RFC 1928 §5), atyp ‖ address ‖ port.
 * Pure. Decoded IPv6 hosts are canonical text (RFC 5952 §4: lower case, no leading zeros,
 * the first longest run of two or more zero groups as '::'; IPv4-mapped addresses in mixed
 * notation '::ffff:192.0.2.1', RFC 5952 §5), matching what src/socks produces.
 */
import { MAX_DOMAIN_BYTES, formatIPv6, parseIPv4, parseIPv6, type Target } from '../core/address.js';

export { formatIPv6, parseIPv4, parseIPv6 };
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
      const b = parseIPv6(t.host);
      if (b === null) throw new RangeError('invalid IPv6 address');
      buf[at++] = AddressType.IPV6;
      buf.set(b, at);
      at += 16;
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
  const r = readAddressPrefix(buf, start, end);
  if (typeof r === 'string') return r;
  if (r.next !== end) throw new MuxProtocolError('address-trailing-bytes', `${end - r.next} bytes after the port`);
  return r.target;
}

/**
 * Reads the address that starts at `start` and may be followed by more bytes (a DATAGRAM's
 * data, §10): the Target and the offset after its port. Same errors as readAddress, except that
 * bytes after the port are allowed.
 */
export function readAddressPrefix(buf: Buffer, start: number, end: number): { target: Target; next: number } | OpenInvalidReason {
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
  return { target: { kind, host, port }, next: at + 2 };
}

function need(upTo: number, end: number): void {
  if (upTo > end) throw new MuxProtocolError('address-truncated');
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError('port must be 0..65535');
}
