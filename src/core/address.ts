import net from 'node:net';

/** A destination as the app named it. Domain names stay unresolved until the bridge. */
export interface Target {
  readonly kind: 'ipv4' | 'ipv6' | 'domain';
  /** Dotted IPv4, IPv6 without brackets (canonical, RFC 5952), or the domain name. */
  readonly host: string;
  readonly port: number;
}

/** Longest domain name carried (RFC 1928 uses a one-byte length). */
export const MAX_DOMAIN_BYTES = 255;

export function targetFromHost(host: string, port: number): Target {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const family = net.isIP(bare);
  if (family === 4) return { kind: 'ipv4', host: bare, port };
  if (family === 6) {
    const bytes = parseIPv6(bare);
    if (bytes) return { kind: 'ipv6', host: formatIPv6(bytes), port };
  }
  return { kind: 'domain', host: bare, port };
}

/** host:port, with IPv6 bracketed. Only for operator-enabled debug logs (destinations are private). */
export function formatTarget(t: Target): string {
  return t.kind === 'ipv6' ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/** A host (name or IP literal; IPv6 without brackets) and a TCP port. */
export interface HostPort {
  host: string;
  port: number;
}

/** Parses "host:port", "[v6]:port"; returns null when malformed. */
/** `host:port`, an IPv6 host in brackets: the inverse of parseHostPort. */
export function formatHostPort(hp: HostPort): string {
  return `${net.isIPv6(hp.host) ? `[${hp.host}]` : hp.host}:${hp.port}`;
}

export function parseHostPort(s: string): HostPort | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return null;
  const host = (m[1] ?? m[2]) as string;
  if (m[1] !== undefined && net.isIPv6(host) === false) return null;
  return { host, port };
}

export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') ? host.slice(1, -1) : host;
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) return h === '::1' || /^::ffff:127\./i.test(h);
  return false;
}

// ── IP address text ↔ bytes (own implementation, kept pure) ──────────────────

/** Dotted-quad IPv4 (no leading zeros, each 0..255) → 4 bytes, or null. */
export function parseIPv4(s: string): number[] | null {
  const m = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/.exec(s);
  if (!m) return null;
  const out = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  return out.every((n) => n <= 255) ? out : null;
}

/** IPv6 text (RFC 4291 §2.2 forms, no zone id) → 16 bytes, or null. */
export function parseIPv6(s: string): Uint8Array | null {
  if (s.length < 2 || s.length > 45) return null;
  let text = s;
  let v4: number[] | null = null;
  const lastColon = s.lastIndexOf(':');
  if (lastColon >= 0 && s.indexOf('.', lastColon) >= 0) {
    v4 = parseIPv4(s.slice(lastColon + 1));
    if (v4 === null) return null;
    text = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let words: number[];
  const dbl = text.indexOf('::');
  if (dbl >= 0) {
    if (text.indexOf('::', dbl + 1) >= 0) return null;
    const head = groups(text.slice(0, dbl));
    const tail = groups(text.slice(dbl + 2));
    if (head === null || tail === null || head.length + tail.length > 7) return null;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = groups(text);
    if (all === null || all.length !== 8) return null;
    words = all;
  }
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  if (v4 !== null) out.set(v4, 12);
  return out;
}

/** 16 bytes (at `offset`) → canonical IPv6 text (RFC 5952 §4; IPv4-mapped in mixed notation, §5). */
export function formatIPv6(bytes: Uint8Array, offset = 0): string {
  const b = offset === 0 ? bytes : bytes.subarray(offset, offset + 16);
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  // Longest run of zero words, at least two long; the first one on a tie (RFC 5952 §4.2.3).
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (bestAt < 0) return hex(words);
  return `${hex(words.slice(0, bestAt))}::${hex(words.slice(bestAt + bestLen))}`;
}

/** "IP", "IP:PORT" or "[IPv6]:PORT", as dns.setServers takes them; null when malformed. */
export function parseDnsServer(s: string): { host: string; port: number } | null {
  if (net.isIP(s) !== 0) return { host: s, port: 53 };
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(s) ?? /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(s);
  if (m === null) return null;
  const host = m[1] as string;
  const port = Number(m[2]);
  if (net.isIP(host) === 0 || port < 1 || port > 65535) return null;
  return { host, port };
}
