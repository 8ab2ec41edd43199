import { domainToASCII } from 'node:url';

/** Lower-case, without a trailing dot: the form names are compared in. */
export function normalizeDomain(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/**
 * normalizeDomain, and a name with non-ASCII labels in its ASCII (punycode, RFC 3492) form, so
 * "рф" and "xn--p1ai" are one name. Returns null when the name cannot be converted.
 */
export function asciiDomain(name: string): string | null {
  const n = normalizeDomain(name);
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(n)) return n;
  const a = domainToASCII(n);
  return a === '' ? null : a;
}

/** True when `name` is `suffix` or ends in "." + `suffix` (a match on label boundaries only). */
export function domainMatches(name: string, suffix: string): boolean {
  return name === suffix || (name.length > suffix.length && name.endsWith(suffix) && name[name.length - suffix.length - 1] === '.');
}
