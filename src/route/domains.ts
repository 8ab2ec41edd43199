/**
 * Sets of domain names for routing rules. Pure.
 *
 * - exact: the name itself only;
 * - suffix: the name and every name under it, on label boundaries ("example.com" covers
 *   "a.example.com", not "badexample.com"). A lookup tries each of the name's own suffixes in a
 *   hash table — as many probes as the name has labels, whatever the size of the list;
 * - keyword: the name contains the text anywhere (a linear scan: keep keyword lists short).
 *
 * Names are compared lower-case, without a trailing dot, in ASCII (an IDN such as "рф" is stored
 * and looked up as "xn--p1ai").
 */
import { asciiDomain } from '../core/domain.js';

/** Longest domain name (RFC 1035 §2.3.4), also the longest keyword. */
const MAX_NAME_CHARS = 253;
const LABEL = /^(?:\*|[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)$/;
/** A name already in canonical form (lower-case ASCII labels, no trailing dot): the common case, one test. */
const CANONICAL = /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** A rule's domain entry in canonical form, or a reason it is not one. */
export function canonicalDomain(text: string): { ok: true; name: string } | { ok: false; reason: string } {
  if (text.length <= MAX_NAME_CHARS && CANONICAL.test(text)) return { ok: true, name: text };
  const t = text.trim();
  if (t === '') return { ok: false, reason: 'empty domain' };
  const a = asciiDomain(t.replace(/^\.+/, ''));
  if (a === null || a === '') return { ok: false, reason: `not a domain name: "${text}"` };
  if (a.length > MAX_NAME_CHARS) return { ok: false, reason: `domain longer than ${MAX_NAME_CHARS} characters` };
  if (!a.split('.').every((l) => LABEL.test(l) && l !== '*')) return { ok: false, reason: `not a domain name: "${text}"` };
  return { ok: true, name: a };
}

export class DomainSet {
  readonly exact = new Set<string>();
  readonly suffix = new Set<string>();
  readonly keywords: string[] = [];

  get size(): number {
    return this.exact.size + this.suffix.size + this.keywords.length;
  }

  /** `name` must be canonical (canonicalDomain). */
  addExact(name: string): void {
    this.exact.add(name);
  }

  addSuffix(name: string): void {
    this.suffix.add(name);
  }

  addKeyword(text: string): void {
    const k = text.toLowerCase();
    if (k !== '' && !this.keywords.includes(k)) this.keywords.push(k);
  }

  /** `name` as normalised by lookupName(). */
  has(name: string): boolean {
    if (this.exact.has(name)) return true;
    if (this.suffix.size > 0) {
      let from = 0;
      for (;;) {
        if (this.suffix.has(from === 0 ? name : name.slice(from))) return true;
        const dot = name.indexOf('.', from);
        if (dot < 0) break;
        from = dot + 1;
      }
    }
    for (const k of this.keywords) if (name.includes(k)) return true;
    return false;
  }
}

/** A destination name in the form the sets hold; null when it cannot be one. */
export function lookupName(host: string): string | null {
  const a = asciiDomain(host);
  return a === null || a === '' || a.length > MAX_NAME_CHARS ? null : a;
}
