/**
 * The share URI of docs/protocol.md §1:
 *   postern://<secret>@<host>:<port><path>?pin=<pin>&sni=<name>&host=<name>[:<port>]&connect=<host>:<port>&plain=1&budget=[both:]<bytes>&transport=<ws|h2>&mode=<stream-one|packet-up>#<label>
 * Pure parsing and formatting. Error messages never contain the secret.
 */
import net from 'node:net';
import { PosternError } from '../core/errors.js';
import { formatHostPort, isLoopbackHost, type HostPort } from '../core/address.js';
import { fromBase64Url, toBase64Url, SECRET_MAX_BYTES, SECRET_MIN_BYTES } from './auth.js';

/** The transports a share URI may name (§1 `transport`); src/transport/registry.ts says which this build has. */
export const TRANSPORT_NAMES = ['ws', 'h2'] as const;
export type TransportName = (typeof TRANSPORT_NAMES)[number];
/** The transport of a link without `transport=`. */
export const DEFAULT_TRANSPORT: TransportName = 'ws';

/** The transport `info` names (DEFAULT_TRANSPORT when it names none). */
export function transportOf(info: Pick<BridgeInfo, 'transport'>): TransportName {
  return info.transport ?? DEFAULT_TRANSPORT;
}

export interface BridgeInfo {
  /** The user's secret (16–64 bytes). */
  secret: Buffer;
  /** Host name or IP literal; IPv6 without brackets. */
  host: string;
  port: number;
  /** The secret WebSocket path, starting with '/'. */
  path: string;
  /** SHA-256 of the bridge certificate's DER SubjectPublicKeyInfo (32 bytes). */
  pin?: Buffer;
  /** TLS server name to send and verify. */
  sni?: string;
  /**
   * The HTTP host to ask for — the Host header (HTTP/2 `:authority`) — sent as written:
   * `name`, `IPv4`, `[IPv6]`, each with an optional `:port`. Default: `<sni or host>[:port]` (§2).
   */
  httpHost?: string;
  /**
   * Where to open TCP instead of host:port: a relay (a plain TCP forwarder) in front of the bridge.
   * TLS name, pin and Host header stay those of host:port.
   */
  connect?: HostPort;
  /** No TLS (ws://): loopback hosts only. */
  plain: boolean;
  /** Human name for the bridge; never sent. */
  label?: string;
  /** Bytes the bridge may send on one connection before the client moves to the next (§9.8), for a walled path. */
  budget?: number;
  /** The budget counts both directions (`budget=both:N`, §1); absent: bridge→client bytes only. */
  budgetBoth?: true;
  /** How the session is carried (§1 `transport`); absent: DEFAULT_TRANSPORT, which the parser never sets. */
  transport?: TransportName;
  /** How an h2 session is carried (§12.3 `mode`); absent: stream-one. Only with transport=h2. */
  mode?: H2Mode;
}

/** The h2 transport's modes a share URI may name (§1 `mode`, §12.2, §12.3); the first is the default. */
export const H2_MODES = ['stream-one', 'packet-up'] as const;
export type H2Mode = (typeof H2_MODES)[number];

/** Smallest `budget` a share URI may carry (§1). */
export const URI_BUDGET_MIN_BYTES = 4_096;

export const SHARE_URI_SCHEME = 'postern';
export const DEFAULT_BRIDGE_PORT = 443;
export const PIN_BYTES = 32;

const KNOWN_PARAMS = new Set(['pin', 'sni', 'host', 'connect', 'plain', 'budget', 'transport', 'mode']);
/** RFC 3986 pchar minus '%' (checked apart) plus '/': characters WHATWG URL leaves untouched in a path. */
const PATH_CHARS_RE = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
const PCT_RE = /%(?![0-9A-Fa-f]{2})/;
const LABEL_RE = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

function bad(reason: string): PosternError {
  return new PosternError('E_BAD_URI', reason);
}

/**
 * Why `path` cannot be a bridge path, or null when it can. A valid path is sent byte for byte
 * as written (no character a URL parser would escape or a dot segment it would remove), so the
 * client's MAC input and the bridge's request target are the same string.
 */
export function bridgePathProblem(path: string): string | null {
  if (!path.startsWith('/')) return 'path must start with "/"';
  if (!PATH_CHARS_RE.test(path)) return 'path contains a character that must be percent-encoded';
  if (PCT_RE.test(path)) return 'path contains a malformed percent-escape';
  for (const seg of path.split('/')) {
    const plain = seg.replace(/%2e/gi, '.');
    if (plain === '.' || plain === '..') return 'path must not contain "." or ".." segments';
  }
  return null;
}

/** Why `name` is not a usable DNS host name, or null. Rejects names a URL parser would read as IPv4. */
function hostNameProblem(name: string): string | null {
  if (name.length === 0) return 'host is empty';
  if (name.length > 253) return 'host name is longer than 253 characters';
  const labels = name.endsWith('.') ? name.slice(0, -1).split('.') : name.split('.');
  for (const l of labels) {
    if (!LABEL_RE.test(l)) return `host "${name}" is not a valid host name`;
  }
  const last = labels[labels.length - 1] ?? '';
  if (/^(?:\d+|0x[0-9a-f]*)$/i.test(last)) return `host "${name}" is not a valid IPv4 address`;
  return null;
}

/**
 * `host[:port]` or `[v6][:port]` as written in a share URI's authority (or its `connect` value).
 * Errors start with `field` ("" for the authority itself, "connect: " for the relay address).
 */
function parseHostAndPort(hostPort: string, defaultPort: number, field: string): HostPort {
  const fail = (reason: string): PosternError => bad(`${field}${reason}`);
  let host: string;
  let portText: string | undefined;
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']');
    if (close < 0) throw fail('IPv6 host is missing its closing "]"');
    host = hostPort.slice(1, close);
    if (!net.isIPv6(host)) throw fail(`host "[${host}]" is not a valid IPv6 address`);
    host = host.toLowerCase();
    const after = hostPort.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw fail('unexpected characters after the IPv6 host');
      portText = after.slice(1);
    }
  } else {
    if (hostPort.indexOf(':') !== hostPort.lastIndexOf(':')) throw fail('an IPv6 host must be in brackets');
    const colon = hostPort.indexOf(':');
    host = colon >= 0 ? hostPort.slice(0, colon) : hostPort;
    if (colon >= 0) portText = hostPort.slice(colon + 1);
    if (host === '') throw fail('host is missing');
    if (!net.isIPv4(host)) {
      const problem = hostNameProblem(host);
      if (problem !== null) throw fail(problem);
    }
  }
  let port = defaultPort;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText)) throw fail(`port "${portText}" is not a number from 1 to 65535`);
    port = Number(portText);
    if (port < 1 || port > 65535) throw fail(`port ${port} is not from 1 to 65535`);
  }
  return { host, port };
}

/** A relay address as the `connect` parameter takes it: HOST[:PORT] (IPv6 in brackets), the port defaulting to `defaultPort`. */
export function parseConnectAddress(text: string, defaultPort: number): HostPort {
  if (text === '') throw bad('connect: empty (expected HOST:PORT of a relay)');
  return parseHostAndPort(text, defaultPort, 'connect: ');
}

/**
 * A `host` parameter (the Host header / `:authority` to send): NAME, IPv4 or [IPv6], optional
 * `:PORT`; returned in canonical form (an IPv6 literal lower-case, in brackets; the port only when
 * given). Errors start with "host: ".
 */
export function parseHttpHost(text: string): string {
  if (text === '') throw bad('host: empty (expected the Host name to send, NAME[:PORT])');
  const noPort = parseHostAndPort(text, 0, 'host: ');
  const port = noPort.port === 0 ? '' : `:${noPort.port}`;
  return `${net.isIPv6(noPort.host) ? `[${noPort.host}]` : noPort.host}${port}`;
}

/** An `sni` value: a DNS host name (not an IP literal). Errors start with "sni". */
export function parseSni(value: string): string {
  if (net.isIP(value) !== 0) throw bad('sni must be a host name, not an IP address');
  const problem = hostNameProblem(value);
  if (problem !== null) throw bad(`sni: ${problem}`);
  return value;
}

/** A HOST[:PORT] parameter's value, whose "[", "]" and ":" may arrive percent-encoded. */
function decodeAddressParam(value: string, key: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw bad(`${key}: not valid percent-encoding`);
  }
}

/** Parses and checks a share URI. Throws PosternError('E_BAD_URI', reason). */
export function parseShareUri(s: string): BridgeInfo {
  const input = s.trim();
  // A link copied out of a chat or an e-mail is often split across lines or indented: say so,
  // rather than report the first odd character as bad percent-encoding.
  if (/\s/.test(input)) {
    throw bad(
      /[\r\n]/.test(input)
        ? 'the link contains a line break: it was split when copied; join it into one line (no spaces) and try again'
        : 'the link contains a space: copy it again as one piece, with nothing inside it',
    );
  }
  const schemeEnd = input.indexOf('://');
  if (schemeEnd < 0 || input.slice(0, schemeEnd).toLowerCase() !== SHARE_URI_SCHEME) {
    throw bad(`scheme must be ${SHARE_URI_SCHEME}://`);
  }
  let rest = input.slice(schemeEnd + 3);

  let label: string | undefined;
  const hashAt = rest.indexOf('#');
  if (hashAt >= 0) {
    const raw = rest.slice(hashAt + 1);
    rest = rest.slice(0, hashAt);
    try {
      label = decodeURIComponent(raw);
    } catch {
      throw bad('label is not valid percent-encoding');
    }
    if (label === '') label = undefined;
  }

  let query: string | undefined;
  const qAt = rest.indexOf('?');
  if (qAt >= 0) {
    query = rest.slice(qAt + 1);
    rest = rest.slice(0, qAt);
  }

  const slashAt = rest.indexOf('/');
  const authority = slashAt >= 0 ? rest.slice(0, slashAt) : rest;
  const path = slashAt >= 0 ? rest.slice(slashAt) : '/';

  // ── secret ──
  const atAt = authority.lastIndexOf('@');
  if (atAt < 0) throw bad('secret is missing (expected postern://<secret>@<host>)');
  const secretText = authority.slice(0, atAt);
  if (secretText === '') throw bad('secret is missing (expected postern://<secret>@<host>)');
  const secret = fromBase64Url(secretText);
  if (secret === null) throw bad('secret is not base64url without padding');
  if (secret.length < SECRET_MIN_BYTES) throw bad(`secret is too short (${secret.length} bytes, at least ${SECRET_MIN_BYTES})`);
  if (secret.length > SECRET_MAX_BYTES) throw bad(`secret is too long (${secret.length} bytes, at most ${SECRET_MAX_BYTES})`);

  // ── host and port ──
  const { host, port } = parseHostAndPort(authority.slice(atAt + 1), DEFAULT_BRIDGE_PORT, '');

  // ── path ──
  const pathProblem = bridgePathProblem(path);
  if (pathProblem !== null) throw bad(pathProblem);

  // ── query ──
  const info: BridgeInfo = { secret, host, port, path, plain: false };
  if (query !== undefined && query !== '') {
    const seen = new Set<string>();
    for (const part of query.split('&')) {
      const eq = part.indexOf('=');
      const key = eq >= 0 ? part.slice(0, eq) : part;
      const value = eq >= 0 ? part.slice(eq + 1) : '';
      if (!KNOWN_PARAMS.has(key)) throw bad(`unknown query parameter "${key}"`);
      if (seen.has(key)) throw bad(`query parameter "${key}" appears twice`);
      seen.add(key);
      if (key === 'pin') {
        const pin = fromBase64Url(value);
        if (pin === null) throw bad('pin is not base64url without padding');
        if (pin.length !== PIN_BYTES) throw bad(`pin must be ${PIN_BYTES} bytes (got ${pin.length})`);
        info.pin = pin;
      } else if (key === 'sni') {
        info.sni = parseSni(value);
      } else if (key === 'host') {
        info.httpHost = parseHttpHost(decodeAddressParam(value, key));
      } else if (key === 'budget') {
        const m = /^(both:)?([1-9][0-9]{0,9})$/.exec(value);
        const n = m === null ? Number.NaN : Number(m[2]);
        if (!(n >= URI_BUDGET_MIN_BYTES)) throw bad(`budget must be a byte count of at least ${URI_BUDGET_MIN_BYTES}, or both: and one (both directions counted)`);
        info.budget = n;
        if (m?.[1] !== undefined) info.budgetBoth = true;
      } else if (key === 'connect') {
        info.connect = parseConnectAddress(decodeAddressParam(value, key), port);
      } else if (key === 'mode') {
        const mode = H2_MODES.find((m) => m === value);
        if (mode === undefined) throw bad(`mode must be one of ${H2_MODES.join(', ')} (got "${value.slice(0, 16)}")`);
        if (mode !== H2_MODES[0]) info.mode = mode;
      } else if (key === 'transport') {
        const name = TRANSPORT_NAMES.find((n) => n === value);
        if (name === undefined) throw bad(`transport must be one of ${TRANSPORT_NAMES.join(', ')} (got "${value.slice(0, 16)}")`);
        if (name !== DEFAULT_TRANSPORT) info.transport = name;
      } else {
        if (value !== '1') throw bad('plain must be "1" when present');
        info.plain = true;
      }
    }
  }
  if (info.plain) {
    if (!isLoopbackHost(host)) throw bad(`plain=1 is only allowed for a loopback host, not "${host}"`);
    if (info.pin !== undefined || info.sni !== undefined) throw bad('pin and sni have no meaning with plain=1');
    if (info.connect !== undefined && !isLoopbackHost(info.connect.host)) {
      throw bad(`connect: plain=1 is only allowed through a loopback relay, not "${info.connect.host}"`);
    }
  }
  if (info.mode !== undefined && info.transport !== 'h2') throw bad(`mode=${info.mode} needs transport=h2`);
  if (label !== undefined) info.label = label;
  return info;
}


/** Formats a share URI; parseShareUri(formatShareUri(x)) gives x back. The port is always written. */
export function formatShareUri(info: BridgeInfo): string {
  const params: string[] = [];
  if (info.pin !== undefined) params.push(`pin=${toBase64Url(info.pin)}`);
  if (info.sni !== undefined) params.push(`sni=${info.sni}`);
  if (info.httpHost !== undefined) params.push(`host=${info.httpHost}`);
  if (info.connect !== undefined) params.push(`connect=${formatHostPort(info.connect)}`);
  if (info.plain) params.push('plain=1');
  if (info.budget !== undefined) params.push(`budget=${info.budgetBoth === true ? 'both:' : ''}${info.budget}`);
  if (transportOf(info) !== DEFAULT_TRANSPORT) params.push(`transport=${transportOf(info)}`);
  if (info.mode !== undefined) params.push(`mode=${info.mode}`);
  const query = params.length > 0 ? `?${params.join('&')}` : '';
  const label = info.label !== undefined && info.label !== '' ? `#${encodeURIComponent(info.label)}` : '';
  return `${SHARE_URI_SCHEME}://${toBase64Url(info.secret)}@${formatHostPort(info)}${info.path}${query}${label}`;
}
