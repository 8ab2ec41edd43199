import net from 'node:net';

/** A destination as the app named it. Domain names stay unresolved until the bridge. */
export interface Target {
  readonly kind: 'ipv4' | 'ipv6' | 'domain';
  /** Dotted IPv4, IPv6 without brackets (canonical lower-case), or the domain name. */
  readonly host: string;
  readonly port: number;
}

/** Longest domain name carried (RFC 1928 uses a one-byte length). */
export const MAX_DOMAIN_BYTES = 255;

export function targetFromHost(host: string, port: number): Target {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const family = net.isIP(bare);
  if (family === 4) return { kind: 'ipv4', host: bare, port };
  if (family === 6) return { kind: 'ipv6', host: bare.toLowerCase(), port };
  return { kind: 'domain', host: bare, port };
}

/** host:port, with IPv6 bracketed. Only for operator-enabled debug logs (destinations are private). */
export function formatTarget(t: Target): string {
  return t.kind === 'ipv6' ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/** Parses "host:port", "[v6]:port"; returns null when malformed. */
export function parseHostPort(s: string): { host: string; port: number } | null {
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
