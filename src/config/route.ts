/**
 * The client's route settings — `--route PRESET`, `--route-file FILE`, `--allow-lan-private` and
 * the config file's `route` object — made into a Router. Errors name the flag, or the file and
 * the rule (`client.json: route.rules[2] ("name"): match.cidr[0]: …`), or the list file and line.
 */
import fs from 'node:fs';
import * as z from './zod.js';
import { PosternError } from '../core/errors.js';
import { LIMITS } from '../core/limits.js';
import { loadCountryTable } from '../route/country.js';
import { parseRouteList } from '../route/list-file.js';
import { ROUTE_PRESETS, routePreset, type RoutePresetName } from '../route/presets.js';
import { ROUTE_ACTIONS, RouteRuleError, Router, type RuleSpec } from '../route/rules.js';

const list = (what: string) => z.optional(z.array(z.string().check(z.minLength(1), z.maxLength(253))).check(z.minLength(1), z.maxLength(1_000_000))).check(z.describe(what));

export const routeRuleSchema = z.strictObject({
  name: z.optional(z.string().check(z.minLength(1), z.maxLength(64))).check(z.describe('A name for --explain and errors.')),
  match: z.strictObject({
    domain: list('Exact names.'),
    suffix: list('Names and every name under them ("example.com" covers "a.example.com").'),
    keyword: list('Names containing this text.'),
    cidr: list('IPv4/IPv6 ranges, e.g. "203.0.113.0/24", "2001:db8::/32".'),
    country: list('Countries of the destination address, ISO 3166-1 alpha-2 ("RU").'),
    port: z.optional(z.array(z.union([z.int(), z.string()])).check(z.minLength(1), z.maxLength(1024))).check(z.describe('Ports, or ranges "LO-HI".')),
  }),
  action: z.enum(ROUTE_ACTIONS),
});

export const routeConfigSchema = z.strictObject({
  preset: z.optional(z.enum(ROUTE_PRESETS)).check(z.describe('all (default), messaging-only, domestic-direct, blocked-only (with file).')),
  file: z.optional(z.string().check(z.minLength(1))).check(z.describe('blocked-only: a list file, one domain or CIDR a line.')),
  rules: z.optional(z.array(routeRuleSchema).check(z.maxLength(1024))).check(z.describe('Rules tried in order before the preset\'s; the first match wins.')),
  default: z.optional(z.enum(ROUTE_ACTIONS)).check(z.describe('Action when no rule matches (default: the preset\'s; tunnel for all).')),
  allowLanPrivate: z.optional(z.boolean()).check(z.describe('Let direct routes from a LAN listener reach this computer and private networks.')),
});

export type RouteConfig = z.infer<typeof routeConfigSchema>;

export interface RouteSettings {
  readonly router: Router;
  readonly allowLanPrivate: boolean;
}

/**
 * Builds the router. `flags` win over the file's `route` (a preset or list given by flag replaces
 * the file's; the file's own rules stay in front). `file` names the config file for errors.
 */
export function resolveRoute(
  flags: { route?: string; routeFile?: string; allowLanPrivate?: boolean },
  fileRoute: RouteConfig | undefined,
  configFile: string | undefined,
): RouteSettings {
  const where = (field: string) => (configFile !== undefined ? `${configFile}: route.${field}` : `route.${field}`);
  const presetText = flags.route ?? fileRoute?.preset ?? 'all';
  if (!(ROUTE_PRESETS as readonly string[]).includes(presetText)) {
    throw new PosternError('E_CONFIG', `--route: expected one of ${ROUTE_PRESETS.join(', ')}, got "${presetText}"`);
  }
  const preset = presetText as RoutePresetName;
  const listFile = flags.routeFile ?? fileRoute?.file;
  if (preset === 'blocked-only' && listFile === undefined) {
    throw new PosternError('E_CONFIG', `${flags.route !== undefined ? '--route blocked-only' : where('preset')}: needs a list file (--route-file FILE, or route.file)`);
  }
  if (preset !== 'blocked-only' && listFile !== undefined) {
    throw new PosternError('E_CONFIG', `${flags.routeFile !== undefined ? '--route-file' : where('file')}: goes with the blocked-only preset`);
  }
  try {
    let matches;
    if (listFile !== undefined) {
      let text: string;
      try {
        const size = fs.statSync(listFile).size;
        if (size > LIMITS.ROUTE_LIST_MAX_BYTES) throw new RouteRuleError(`${listFile}: larger than ${LIMITS.ROUTE_LIST_MAX_BYTES} bytes (ROUTE_LIST_MAX_BYTES)`);
        text = fs.readFileSync(listFile, 'utf8');
      } catch (err) {
        if (err instanceof RouteRuleError) throw err;
        throw new RouteRuleError(`${listFile}: cannot read the list file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
      matches = parseRouteList(text, listFile);
    }
    const p = routePreset(preset, matches);
    const own: readonly RuleSpec[] = fileRoute?.rules ?? [];
    const router = new Router(
      [
        ...Router.compile(own, 'tunnel', (i) => where(`rules[${i}]`)).rules,
        ...Router.compile(p.rules, 'tunnel', () => `--route ${preset}`).rules.map((r, i) => ({ ...r, index: own.length + i, label: `${r.label.replace(/^rule \d+/, `rule ${own.length + i + 1}`)} (${preset})` })),
      ],
      fileRoute?.default ?? p.defaultAction,
    );
    if (router.needsCountry) router.setCountryLookup(countryLookup());
    return { router, allowLanPrivate: flags.allowLanPrivate === true || fileRoute?.allowLanPrivate === true };
  } catch (err) {
    if (err instanceof RouteRuleError) throw new PosternError('E_CONFIG', err.message);
    throw err;
  }
}

function countryLookup(): (k: Parameters<ReturnType<typeof loadCountryTable>['get']>[0]) => string | undefined {
  let table: ReturnType<typeof loadCountryTable>;
  try {
    table = loadCountryTable();
  } catch (err) {
    throw new PosternError('E_CONFIG', (err as Error).message);
  }
  return (k) => table.get(k);
}
