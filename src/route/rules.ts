/**
 * Routing rules for the client: an ordered list, first match wins, then a default action. Pure:
 * no sockets and no DNS — the caller looks a name up when (and only when) the router asks.
 *
 * A rule matches when every kind of condition it has matches:
 * - name: `domain` (exact), `suffix` (the name and names under it), `keyword` (substring) — any one;
 * - address: `cidr` (IPv4/IPv6 ranges), `country` (ISO 3166-1 alpha-2 of the address) — any one;
 * - `port`: numbers or "LO-HI" ranges — any one.
 *
 * Order of evaluation (docs/protocol.md §11):
 * - An IP-literal destination goes through every rule in order.
 * - A named destination first goes through the rules without an address condition, in order
 *   (name rules decide before any lookup). If none matches and some rule has an address
 *   condition, the name is looked up locally only when every outcome still possible (those
 *   rules' actions and the default) is `direct` or `block`: a name that may end up in the tunnel
 *   is never looked up by the client. Otherwise the default applies.
 */
import type { Target } from '../core/address.js';
import { DomainSet, canonicalDomain, lookupName } from './domains.js';
import { IpRangeSet, ipKey, type IpKey } from './ranges.js';

export const ROUTE_ACTIONS = ['tunnel', 'direct', 'block'] as const;
export type RouteAction = (typeof ROUTE_ACTIONS)[number];

export interface RuleMatchSpec {
  readonly domain?: readonly string[];
  readonly suffix?: readonly string[];
  readonly keyword?: readonly string[];
  readonly cidr?: readonly string[];
  readonly country?: readonly string[];
  readonly port?: readonly (number | string)[];
}

export interface RuleSpec {
  /** A name for --explain and errors (else "rule N"). */
  readonly name?: string;
  readonly match: RuleMatchSpec;
  readonly action: RouteAction;
}

/** Where a rule's entries came from, for errors: a config path ("route.rules[2]") or a file:line per entry. */
export type RuleOrigin = string;

export class RouteRuleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RouteRuleError';
  }
}

/** Maps an IP address to its country code (ISO 3166-1 alpha-2), or undefined. */
export type CountryLookup = (key: IpKey) => string | undefined;

interface Rule {
  readonly index: number;
  readonly label: string;
  readonly action: RouteAction;
  readonly names: DomainSet | null;
  readonly ranges: IpRangeSet | null;
  readonly countries: ReadonlySet<string> | null;
  readonly ports: readonly (readonly [number, number])[] | null;
}

export interface RouteDecision {
  readonly action: RouteAction;
  /** The index of the rule that matched (0-based), or -1 for the default. */
  readonly rule: number;
  /** "rule 3 \"ru direct\"" or "default". */
  readonly label: string;
  /** What decided: the destination's name (or port), its address, or nothing (the default). */
  readonly by: 'name' | 'address' | 'default';
  /** Why address rules were not tried for a name, when that is why the default applied. */
  readonly note?: string;
}

export const SKIPPED_ADDRESS_RULES =
  'address rules not tried: a name that may go through the tunnel is never looked up locally';

function ruleLabel(i: number, name: string | undefined): string {
  return name ? `rule ${i + 1} "${name}"` : `rule ${i + 1}`;
}

/** "443" or "8000-9000" or 443 → an inclusive range; null when malformed. */
export function parsePort(p: number | string): readonly [number, number] | null {
  const ok = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;
  if (typeof p === 'number') return ok(p) ? [p, p] : null;
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(p.trim());
  if (!m) return null;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  return ok(lo) && ok(hi) && lo <= hi ? [lo, hi] : null;
}

/** Compiles one rule; errors name the rule (`where`, e.g. "route.rules[2]") and the entry. */
export function compileRule(spec: RuleSpec, index: number, where: RuleOrigin): Rule {
  const m = spec.match;
  const at = (field: string, i: number) => `${where}${spec.name ? ` ("${spec.name}")` : ''}: match.${field}[${i}]`;
  let names: DomainSet | null = null;
  const domains = (field: 'domain' | 'suffix', list: readonly string[] | undefined) => {
    list?.forEach((d, i) => {
      const c = canonicalDomain(d);
      if (!c.ok) throw new RouteRuleError(`${at(field, i)}: ${c.reason}`);
      names ??= new DomainSet();
      if (field === 'domain') names.addExact(c.name);
      else names.addSuffix(c.name);
    });
  };
  domains('domain', m.domain);
  domains('suffix', m.suffix);
  m.keyword?.forEach((k, i) => {
    if (k.trim() === '' || k.length > 253) throw new RouteRuleError(`${at('keyword', i)}: a keyword is 1 to 253 characters`);
    names ??= new DomainSet();
    names.addKeyword(k.trim());
  });
  let ranges: IpRangeSet | null = null;
  if (m.cidr && m.cidr.length > 0) {
    m.cidr.forEach((c, i) => {
      if (ipKeyOfCidr(c) === null) throw new RouteRuleError(`${at('cidr', i)}: not an IP address or CIDR: "${c}"`);
    });
    ranges = IpRangeSet.fromCidrs(m.cidr);
  }
  let countries: Set<string> | null = null;
  m.country?.forEach((c, i) => {
    const u = c.trim().toUpperCase();
    if (!/^[A-Z]{2}$/.test(u)) throw new RouteRuleError(`${at('country', i)}: a two-letter country code (ISO 3166-1), e.g. "RU", got "${c}"`);
    (countries ??= new Set()).add(u);
  });
  let ports: Array<readonly [number, number]> | null = null;
  m.port?.forEach((p, i) => {
    const r = parsePort(p);
    if (r === null) throw new RouteRuleError(`${at('port', i)}: a port 1-65535 or a range "LO-HI", got ${JSON.stringify(p)}`);
    (ports ??= []).push(r);
  });
  if (names === null && ranges === null && countries === null && ports === null) {
    throw new RouteRuleError(`${where}${spec.name ? ` ("${spec.name}")` : ''}: match has no condition (give domain, suffix, keyword, cidr, country or port)`);
  }
  if (!(ROUTE_ACTIONS as readonly string[]).includes(spec.action)) {
    throw new RouteRuleError(`${where}: action must be one of ${ROUTE_ACTIONS.join(', ')}, got ${JSON.stringify(spec.action)}`);
  }
  return { index, label: ruleLabel(index, spec.name), action: spec.action, names, ranges, countries, ports };
}

function ipKeyOfCidr(c: string): IpKey | null {
  const slash = c.indexOf('/');
  const k = ipKey(slash < 0 ? c : c.slice(0, slash));
  if (k === null) return null;
  if (slash >= 0) {
    const bits = c.slice(slash + 1);
    const max = c.indexOf(':') >= 0 ? 128 : 32;
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return null;
  }
  return k;
}

/** The compiled rule list. */
export class Router {
  readonly rules: readonly Rule[];
  readonly defaultAction: RouteAction;
  /** Rules without an address condition (decide by name and port), in order. */
  readonly #nameRules: readonly Rule[];
  /** Rules with an address condition, in order. */
  readonly #addressRules: readonly Rule[];
  /** True when looking a name up cannot end in the tunnel (see the module comment). */
  readonly #mayLookUp: boolean;
  #country: CountryLookup | null = null;
  readonly #plain: RouteDecision;

  constructor(rules: readonly Rule[], defaultAction: RouteAction) {
    this.rules = rules;
    this.defaultAction = defaultAction;
    this.#nameRules = rules.filter((r) => r.ranges === null && r.countries === null);
    this.#addressRules = rules.filter((r) => r.ranges !== null || r.countries !== null);
    this.#plain = { action: defaultAction, rule: -1, label: 'default', by: 'default' };
    this.#mayLookUp = this.#addressRules.length > 0 && defaultAction !== 'tunnel' && this.#addressRules.every((r) => r.action !== 'tunnel');
  }

  /** Compiles specs ("where" names each rule in errors, e.g. `route.rules[${i}]`). Throws RouteRuleError. */
  static compile(specs: readonly RuleSpec[], defaultAction: RouteAction, where: (i: number) => RuleOrigin): Router {
    return new Router(
      specs.map((s, i) => compileRule(s, i, where(i))),
      defaultAction,
    );
  }

  /** True when some rule matches by country: the caller must attach a country table first. */
  get needsCountry(): boolean {
    return this.rules.some((r) => r.countries !== null);
  }

  /** Attaches the IP-to-country table (loaded only for rules that need it). */
  setCountryLookup(lookup: CountryLookup): void {
    this.#country = lookup;
  }

  /** True when some rule has an address condition and a name may be looked up for it. */
  get mayLookUp(): boolean {
    return this.#mayLookUp;
  }

  #default(note?: string): RouteDecision {
    return note === undefined
      ? { action: this.defaultAction, rule: -1, label: 'default', by: 'default' }
      : { action: this.defaultAction, rule: -1, label: 'default', by: 'default', note };
  }

  #matches(r: Rule, name: string | null, key: IpKey | null, port: number): boolean {
    if (r.ports !== null && !r.ports.some(([lo, hi]) => port >= lo && port <= hi)) return false;
    if (r.names !== null && (name === null || !r.names.has(name))) return false;
    if (r.ranges !== null || r.countries !== null) {
      if (key === null) return false;
      const inRange = r.ranges !== null && r.ranges.has(key);
      if (!inRange) {
        if (r.countries === null) return false;
        const cc = this.#country?.(key);
        if (cc === undefined || !r.countries.has(cc)) return false;
      }
    }
    return true;
  }

  /**
   * Decides without any lookup, or answers 'lookup' when the destination is a name that must be
   * looked up first (then call byAddress with one of its addresses).
   */
  byName(target: Target): RouteDecision | 'lookup' {
    if (this.rules.length === 0) return this.#plain; // `all`: nothing to parse per stream or datagram
    // A "domain" that is an IP in text is the IP literal it is.
    const key = ipKey(target.host);
    if (key !== null) {
      for (const r of this.rules) {
        if (this.#matches(r, null, key, target.port)) return { action: r.action, rule: r.index, label: r.label, by: r.ranges || r.countries ? 'address' : 'name' };
      }
      return this.#default();
    }
    const name = lookupName(target.host);
    for (const r of this.#nameRules) {
      if (this.#matches(r, name, null, target.port)) return { action: r.action, rule: r.index, label: r.label, by: 'name' };
    }
    if (this.#addressRules.length === 0) return this.#default();
    return this.#mayLookUp ? 'lookup' : this.#default(SKIPPED_ADDRESS_RULES);
  }

  /** The second step for a name byName sent to a lookup: the address rules with `address`. */
  byAddress(target: Target, address: string): RouteDecision {
    const name = lookupName(target.host);
    const key = ipKey(address);
    for (const r of this.#addressRules) {
      if (this.#matches(r, name, key, target.port)) return { action: r.action, rule: r.index, label: r.label, by: 'address' };
    }
    return this.#default();
  }
}

/** A rule as the PAC generator needs it (exported for src/route/pac.ts). */
export type CompiledRule = Rule;
