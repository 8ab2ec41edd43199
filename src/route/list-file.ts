/**
 * Rule lists in the plain format of the common public block lists: one entry a line.
 *
 *   # a comment (also "//" and "!"), blank lines ignored
 *   example.com          the name and every name under it (suffix)
 *   *.example.com        the same; ".example.com" too
 *   full:example.com     this name only (exact)
 *   keyword:tracker      names containing the text
 *   203.0.113.0/24       an IPv4 or IPv6 range (a bare address is one address)
 *   0.0.0.0 example.com  a hosts-file line: the name (suffix), the address ignored
 *
 * Pure: text in, a rule match or an error naming the file and line out.
 */
import { LIMITS } from '../core/limits.js';
import { canonicalDomain } from './domains.js';
import { parseCidrKeys } from './ranges.js';
import { RouteRuleError, type RuleMatchSpec } from './rules.js';


/**
 * Parses a list file. Returns up to two matches — names, then addresses — because one rule with
 * both kinds would need both to match (rules.ts); a list means either.
 */
export function parseRouteList(text: string, file: string, maxEntries: number = LIMITS.ROUTE_LIST_MAX_ENTRIES): RuleMatchSpec[] {
  const suffix: string[] = [];
  const domain: string[] = [];
  const keyword: string[] = [];
  const cidr: string[] = [];
  let count = 0;
  let lineNo = 0;
  let from = 0;
  while (from <= text.length) {
    let nl = text.indexOf('\n', from);
    if (nl < 0) nl = text.length;
    lineNo++;
    let line = text.slice(from, nl);
    from = nl + 1;
    if (lineNo === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    line = line.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('//') || line.startsWith('!')) continue;
    const hash = line.indexOf(' #');
    if (hash >= 0) line = line.slice(0, hash).trim();
    const err = (why: string) => new RouteRuleError(`${file}:${lineNo}: ${why}`);
    if (++count > maxEntries) throw err(`more than ${maxEntries} entries (ROUTE_LIST_MAX_ENTRIES)`);
    if (line.indexOf(' ') >= 0 || line.indexOf('\t') >= 0) {
      const fields = line.split(/\s+/);
      if (fields.length === 2 && parseCidrKeys(fields[0]!) !== null && !fields[0]!.includes('/')) {
        line = fields[1]!; // hosts-file form: "ADDRESS NAME"
      } else {
        throw err(`one domain or CIDR a line, got "${line.slice(0, 80)}"`);
      }
    }
    if (line.startsWith('keyword:')) {
      const k = line.slice(8);
      if (k === '') throw err('empty keyword');
      keyword.push(k);
      continue;
    }
    const exact = line.startsWith('full:');
    const body = exact ? line.slice(5) : line.startsWith('*.') ? line.slice(2) : line;
    if (!exact && (/^[\d.]+(\/\d+)?$/.test(body) || body.includes(':'))) {
      if (parseCidrKeys(body) === null) throw err(`not an IP address or CIDR: "${body.slice(0, 80)}"`);
      cidr.push(body);
      continue;
    }
    const c = canonicalDomain(body);
    if (!c.ok) throw err(c.reason);
    (exact ? domain : suffix).push(c.name);
  }
  if (count === 0) throw new RouteRuleError(`${file}: no entries (one domain or CIDR a line)`);
  const names: { -readonly [K in keyof RuleMatchSpec]: RuleMatchSpec[K] } = {};
  if (suffix.length) names.suffix = suffix;
  if (domain.length) names.domain = domain;
  if (keyword.length) names.keyword = keyword;
  const out: RuleMatchSpec[] = [];
  if (Object.keys(names).length > 0) out.push(names);
  if (cidr.length) out.push({ cidr });
  return out;
}
