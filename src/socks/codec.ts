/**
 * SOCKS5 wire codec: RFC 1928 (greeting, request, reply) and RFC 1929 (username/password).
 *
 * Pure: bytes in, a value plus the bytes it used, "need more", or a typed error out. No
 * sockets, timers or I/O; parsers never throw on any input. `used` lets the caller keep
 * bytes a pipelining client sent after the message.
 *
 * Decisions where the RFCs leave room:
 * - RSV (RFC 1928 §4) must be X'00'. A non-zero RSV is rejected (reason 'bad-reserved',
 *   reply 0x01): the field has no meaning we could honour, and a client that sets it speaks
 *   something other than the RFC, so we refuse rather than guess.
 * - A DOMAINNAME (ATYP 3) that is an IPv4 or IPv6 literal (optionally in brackets) becomes an
 *   'ipv4' / 'ipv6' Target, so that address policy further on sees the address for what it is.
 * - A DOMAINNAME must be 1..255 bytes of valid UTF-8 made of ASCII letters, digits, '-', '.',
 *   '_' or code points from U+00A1 (raw IDN). Anything else (control bytes, spaces, '/', '%',
 *   '@', ':' outside an IPv6 literal, …) is 'bad-domain' with reply 0x01, so that no odd
 *   string reaches a resolver or a log.
 * - IPv6 addresses are rendered canonically (RFC 5952 §4: lower case, no leading zeros,
 *   longest zero run as '::'); IPv4-mapped ones in mixed notation ('::ffff:127.0.0.1', §5).
 */
import { formatIPv6, parseIPv4, parseIPv6, MAX_DOMAIN_BYTES, type Target } from '../core/address.js';

/** The IP text helpers live in core (shared with the mux); re-exported for this codec's users. */
export { formatIPv6, parseIPv4, parseIPv6 };
import { SocksReply } from '../core/errors.js';

export { SocksReply };

/** VER of every RFC 1928 message. */
export const SOCKS_VERSION = 0x05;
/** VER of the RFC 1929 username/password sub-negotiation (not the SOCKS version). */
export const USERPASS_VERSION = 0x01;

/** Authentication methods, RFC 1928 §3. */
export const AuthMethod = {
  NONE: 0x00,
  GSSAPI: 0x01,
  USER_PASS: 0x02,
  NO_ACCEPTABLE: 0xff,
} as const;
export type AuthMethod = (typeof AuthMethod)[keyof typeof AuthMethod];

/** RFC 1929 §2 STATUS: 0x00 success; any other value is failure and the server closes. */
export const AuthStatus = {
  SUCCESS: 0x00,
  FAILURE: 0x01,
} as const;
export type AuthStatus = (typeof AuthStatus)[keyof typeof AuthStatus];

/** Request commands, RFC 1928 §4. */
export const Command = {
  CONNECT: 0x01,
  BIND: 0x02,
  UDP_ASSOCIATE: 0x03,
} as const;
export type Command = (typeof Command)[keyof typeof Command];

/** Address types, RFC 1928 §5. */
export const AddressType = {
  IPV4: 0x01,
  DOMAIN: 0x03,
  IPV6: 0x04,
} as const;
export type AddressType = (typeof AddressType)[keyof typeof AddressType];

/** Longest messages (bytes) the RFCs allow; useful to size buffers and limits. */
export const MAX_GREETING_BYTES = 2 + 255;
export const MAX_USERPASS_BYTES = 3 + 255 + 255;
export const MAX_REQUEST_BYTES = 4 + 1 + MAX_DOMAIN_BYTES + 2;

/** Why a message was refused. Stable strings: tests and logs use them. */
export type SocksParseReason =
  /** VER is not 5 (RFC 1928) or not 1 (RFC 1929 sub-negotiation). */
  | 'bad-version'
  /** NMETHODS is 0 (RFC 1928 §3 requires at least one method). */
  | 'no-methods'
  /** ULEN is 0 (RFC 1929 §2: UNAME is 1..255 bytes). */
  | 'empty-username'
  /** PLEN is 0 (RFC 1929 §2: PASSWD is 1..255 bytes). */
  | 'empty-password'
  /** CMD is not CONNECT, BIND or UDP ASSOCIATE (RFC 1928 §4). */
  | 'unknown-command'
  /** RSV is not X'00' (RFC 1928 §4). */
  | 'bad-reserved'
  /** ATYP is not 1, 3 or 4 (RFC 1928 §5). */
  | 'unknown-address-type'
  /** ATYP 3 with a length octet of 0. */
  | 'empty-domain'
  /** ATYP 3 with bytes that are not a host name (see the module comment). */
  | 'bad-domain';

export interface SocksParseError {
  readonly reason: SocksParseReason;
  /** The reply (RFC 1928 §6) the server should send before closing; null: no reply exists, just close. */
  readonly reply: SocksReply | null;
}

export type ParseResult<T> =
  | { readonly ok: true; readonly value: T; readonly used: number }
  | { readonly ok: false; readonly need: 'more' }
  | { readonly ok: false; readonly error: SocksParseError };

export interface SocksGreeting {
  /** The methods offered, in the client's order (duplicates kept). */
  readonly methods: readonly number[];
}

export interface SocksUserPass {
  /** Raw bytes (RFC 1929 does not name an encoding); compare them, do not log them. */
  readonly username: Buffer;
  readonly password: Buffer;
}

export interface SocksRequest {
  readonly command: Command;
  readonly target: Target;
}

export interface SocksReplyMessage {
  /** REP as received (RFC 1928 §6); not restricted to the codes we know. */
  readonly reply: number;
  readonly bind: Target;
}

const NEED_MORE = { ok: false, need: 'more' } as const;

function fail(reason: SocksParseReason, reply: SocksReply | null): { ok: false; error: SocksParseError } {
  return { ok: false, error: { reason, reply } };
}

// ── Parsers ──────────────────────────────────────────────────────────────────

/** RFC 1928 §3 method-selection message: VER NMETHODS METHODS… */
export function parseGreeting(buf: Uint8Array): ParseResult<SocksGreeting> {
  if (buf.length < 1) return NEED_MORE;
  if (buf[0] !== SOCKS_VERSION) return fail('bad-version', null);
  if (buf.length < 2) return NEED_MORE;
  const n = buf[1]!;
  if (n === 0) return fail('no-methods', null);
  const used = 2 + n;
  if (buf.length < used) return NEED_MORE;
  return { ok: true, value: { methods: Array.from(buf.subarray(2, used)) }, used };
}

/** RFC 1929 §2 request: VER=1 ULEN UNAME PLEN PASSWD. */
export function parseUserPass(buf: Uint8Array): ParseResult<SocksUserPass> {
  if (buf.length < 1) return NEED_MORE;
  if (buf[0] !== USERPASS_VERSION) return fail('bad-version', null);
  if (buf.length < 2) return NEED_MORE;
  const ulen = buf[1]!;
  if (ulen === 0) return fail('empty-username', null);
  if (buf.length < 3 + ulen) return NEED_MORE;
  const plen = buf[2 + ulen]!;
  if (plen === 0) return fail('empty-password', null);
  const used = 3 + ulen + plen;
  if (buf.length < used) return NEED_MORE;
  return {
    ok: true,
    value: {
      username: Buffer.from(buf.subarray(2, 2 + ulen)),
      password: Buffer.from(buf.subarray(3 + ulen, used)),
    },
    used,
  };
}

/**
 * RFC 1928 §4 request: VER CMD RSV ATYP DST.ADDR DST.PORT. BIND and UDP ASSOCIATE parse
 * successfully (the server answers them with 0x07); an unknown CMD is an error with 0x07.
 */
export function parseRequest(buf: Uint8Array): ParseResult<SocksRequest> {
  if (buf.length < 1) return NEED_MORE;
  if (buf[0] !== SOCKS_VERSION) return fail('bad-version', null);
  if (buf.length < 2) return NEED_MORE;
  const command = buf[1]!;
  if (!isCommand(command)) return fail('unknown-command', SocksReply.COMMAND_NOT_SUPPORTED);
  if (buf.length < 3) return NEED_MORE;
  if (buf[2] !== 0x00) return fail('bad-reserved', SocksReply.GENERAL_FAILURE);
  const addr = parseAddress(buf, 3);
  if (!addr.ok) return addr;
  return { ok: true, value: { command, target: addr.value }, used: addr.used };
}

/** RFC 1928 §6 reply: VER REP RSV ATYP BND.ADDR BND.PORT (the client side; errors carry reply null). */
export function parseReply(buf: Uint8Array): ParseResult<SocksReplyMessage> {
  if (buf.length < 1) return NEED_MORE;
  if (buf[0] !== SOCKS_VERSION) return fail('bad-version', null);
  if (buf.length < 3) return NEED_MORE;
  if (buf[2] !== 0x00) return fail('bad-reserved', null);
  const addr = parseAddress(buf, 3);
  if (!addr.ok) return 'error' in addr ? fail(addr.error.reason, null) : addr;
  return { ok: true, value: { reply: buf[1]!, bind: addr.value }, used: addr.used };
}

function isCommand(b: number): b is Command {
  return b === Command.CONNECT || b === Command.BIND || b === Command.UDP_ASSOCIATE;
}

/** ATYP ADDR PORT starting at `at`; `used` counts from the start of buf (shared with the UDP header codec, udp.ts). */
export function parseAddress(buf: Uint8Array, at: number): ParseResult<Target> {
  if (buf.length < at + 1) return NEED_MORE;
  const atyp = buf[at]!;
  let hostEnd: number;
  let host: Target | null = null;
  switch (atyp) {
    case AddressType.IPV4:
      hostEnd = at + 1 + 4;
      if (buf.length < hostEnd + 2) return NEED_MORE;
      host = { kind: 'ipv4', host: buf.subarray(at + 1, hostEnd).join('.'), port: 0 };
      break;
    case AddressType.IPV6:
      hostEnd = at + 1 + 16;
      if (buf.length < hostEnd + 2) return NEED_MORE;
      host = { kind: 'ipv6', host: formatIPv6(buf.subarray(at + 1, hostEnd)), port: 0 };
      break;
    case AddressType.DOMAIN: {
      if (buf.length < at + 2) return NEED_MORE;
      const len = buf[at + 1]!;
      if (len === 0) return fail('empty-domain', SocksReply.GENERAL_FAILURE);
      hostEnd = at + 2 + len;
      if (buf.length < hostEnd + 2) return NEED_MORE;
      host = targetFromDomainBytes(buf.subarray(at + 2, hostEnd));
      if (host === null) return fail('bad-domain', SocksReply.GENERAL_FAILURE);
      break;
    }
    default:
      return fail('unknown-address-type', SocksReply.ADDRESS_TYPE_NOT_SUPPORTED);
  }
  const port = (buf[hostEnd]! << 8) | buf[hostEnd + 1]!;
  return { ok: true, value: { kind: host.kind, host: host.host, port }, used: hostEnd + 2 };
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });
/** Host-name characters we pass on: ASCII letters, digits, '.', '_', '-', and code points from U+00A1 (raw IDN). */
const DOMAIN_CHARS = /^[A-Za-z0-9._\-\u{a1}-\u{10ffff}]+$/u;

/** A DOMAINNAME field as a Target (port 0), or null when it is not an acceptable host name. */
function targetFromDomainBytes(bytes: Uint8Array): Target | null {
  let s: string;
  try {
    s = UTF8.decode(bytes);
  } catch {
    return null;
  }
  if (s.startsWith('[') && s.endsWith(']')) {
    const v6 = parseIPv6(s.slice(1, -1));
    return v6 === null ? null : { kind: 'ipv6', host: formatIPv6(v6), port: 0 };
  }
  if (s.includes(':')) {
    const v6 = parseIPv6(s);
    return v6 === null ? null : { kind: 'ipv6', host: formatIPv6(v6), port: 0 };
  }
  if (parseIPv4(s) !== null) return { kind: 'ipv4', host: s, port: 0 };
  if (!DOMAIN_CHARS.test(s)) return null;
  return { kind: 'domain', host: s, port: 0 };
}

// ── Encoders ─────────────────────────────────────────────────────────────────

/** RFC 1928 §3 server choice: VER METHOD. */
export function encodeMethodChoice(method: AuthMethod): Buffer {
  return Buffer.from([SOCKS_VERSION, method]);
}

/** RFC 1929 §2 server response: VER=1 STATUS. */
export function encodeAuthStatus(ok: boolean): Buffer {
  return Buffer.from([USERPASS_VERSION, ok ? AuthStatus.SUCCESS : AuthStatus.FAILURE]);
}

const ANY_BIND: Target = { kind: 'ipv4', host: '0.0.0.0', port: 0 };

/** RFC 1928 §6 reply: VER REP RSV ATYP BND.ADDR BND.PORT (default BND 0.0.0.0:0). Throws RangeError on an invalid bind. */
export function encodeReply(reply: SocksReply, bind: Target = ANY_BIND): Buffer {
  return Buffer.concat([Buffer.from([SOCKS_VERSION, reply, 0x00]), encodeAddress(bind)]);
}

/** RFC 1928 §3 client greeting (client side and tests). Throws RangeError unless 1..255 methods. */
export function encodeGreeting(methods: readonly number[]): Buffer {
  if (methods.length < 1 || methods.length > 255) throw new RangeError('a greeting carries 1..255 methods');
  return Buffer.from([SOCKS_VERSION, methods.length, ...methods]);
}

/** RFC 1929 §2 client request. Throws RangeError unless each field is 1..255 bytes. */
export function encodeUserPass(username: string | Uint8Array, password: string | Uint8Array): Buffer {
  const u = typeof username === 'string' ? Buffer.from(username, 'utf8') : Buffer.from(username);
  const p = typeof password === 'string' ? Buffer.from(password, 'utf8') : Buffer.from(password);
  if (u.length < 1 || u.length > 255 || p.length < 1 || p.length > 255) {
    throw new RangeError('username and password are 1..255 bytes each');
  }
  return Buffer.concat([Buffer.from([USERPASS_VERSION, u.length]), u, Buffer.from([p.length]), p]);
}

/** RFC 1928 §4 client request (client side and tests). Throws RangeError on an invalid target. */
export function encodeRequest(command: Command, target: Target): Buffer {
  return Buffer.concat([Buffer.from([SOCKS_VERSION, command, 0x00]), encodeAddress(target)]);
}

/** ATYP ADDR PORT for a Target (shared with the UDP header codec, udp.ts). Throws RangeError on an invalid target. */
export function encodeAddress(t: Target): Buffer {
  if (!Number.isInteger(t.port) || t.port < 0 || t.port > 0xffff) throw new RangeError('port out of range');
  const port = [t.port >> 8, t.port & 0xff];
  switch (t.kind) {
    case 'ipv4': {
      const b = parseIPv4(t.host);
      if (b === null) throw new RangeError('invalid IPv4 address');
      return Buffer.from([AddressType.IPV4, ...b, ...port]);
    }
    case 'ipv6': {
      const b = parseIPv6(t.host);
      if (b === null) throw new RangeError('invalid IPv6 address');
      return Buffer.from([AddressType.IPV6, ...b, ...port]);
    }
    case 'domain': {
      const b = Buffer.from(t.host, 'utf8');
      if (b.length < 1 || b.length > MAX_DOMAIN_BYTES) throw new RangeError('domain must be 1..255 bytes');
      return Buffer.concat([Buffer.from([AddressType.DOMAIN, b.length]), b, Buffer.from(port)]);
    }
  }
}
