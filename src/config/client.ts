/**
 * The client's JSON config file: its schema (configs/client.schema.json is generated from it),
 * loading and validation. Errors name the file, the field path and what was expected. The
 * settings pipeline (flags > environment > file > defaults) is config/client-settings.ts.
 */
import * as z from './zod.js';
import { parseHostPort } from '../core/address.js';
import { LIMITS } from '../core/limits.js';
import { parseBudget } from '../core/tunnel-policy.js';
import { parseShareUri } from '../transport/uri.js';
import { parseWith, readJsonFile } from './file.js';
import { parseForward } from './forward.js';
import { routeConfigSchema } from './route.js';
import { whatsappEntries } from './whatsapp.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const hostPort = z.string().check(z.refine((s) => parseHostPort(s) !== null, 'HOST:PORT, e.g. "127.0.0.1:1080"'));

export const clientConfigSchema = z
  .strictObject({
    $schema: z.optional(z.string()),
    /** Share URIs (postern://…), in priority order; with several, the client fails over (or spreads). */
    bridges: z
      .array(z.string().check(z.refine((s) => uriProblem(s) === null, { error: (iss) => `a postern:// share URI (${uriProblem(String(iss.input)) ?? 'invalid'})` })))
      .check(
        z.minLength(1, 'at least one share URI'),
        z.maxLength(16, 'at most 16 share URIs'),
        z.describe('Share links (postern://…) from bridge operators, in priority order. Keep them secret.'),
      ),
    /** SOCKS5 listen address. */
    listen: z.optional(z.string().check(z.refine((s) => parseHostPort(s) !== null, 'HOST:PORT, e.g. "127.0.0.1:1080"'))).check(z.describe('SOCKS5 listen address, HOST:PORT (default 127.0.0.1:1080).')),
    /** Username/password apps must give (SOCKS5 RFC 1929, HTTP Basic); absent: the stored pair (config/local-credentials.ts). */
    auth: z
      .optional(z.nullable(z.strictObject({ username: z.string().check(z.minLength(1), z.maxLength(255)), password: z.string().check(z.minLength(1), z.maxLength(255)) })))
      .check(
        z.describe(
          'Username and password apps must send (SOCKS5 RFC 1929, HTTP Proxy-Authorization: Basic). Default: a pair made on first start and kept in $XDG_CONFIG_HOME/postern/local-proxy.json.',
        ),
      ),
    /** Allow a non-loopback listener without auth (don't). */
    insecureOpenProxy: z.optional(z.boolean()).check(z.describe('With --no-auth, allow a non-loopback listener without a password: anyone on the network could use it.')),
    exactReplies: z
      .optional(z.boolean())
      .check(
        z.describe(
          'Answer SOCKS5 CONNECT and HTTP CONNECT only after the bridge has connected, with the exact reply code (one more round trip per connection). Default false: answer at once while the tunnel is up; a refused destination then resets the connection.',
        ),
      ),
    socks: z.optional(z.array(hostPort).check(z.maxLength(16))).check(z.describe('Extra SOCKS5-only listeners, HOST:PORT each (as --socks).')),
    http: z.optional(z.array(hostPort).check(z.maxLength(16))).check(z.describe('Extra HTTP-proxy-only listeners, HOST:PORT each (as --http).')),
    forward: z
      .optional(
        z
          .array(z.string().check(z.refine((s) => problem(() => parseForward(s, 'forward')) === null, { error: (iss) => problem(() => parseForward(String(iss.input), 'forward')) ?? 'invalid' })))
          .check(z.maxLength(64)),
      )
      .check(z.describe('Fixed-destination forwards, "[HOST:]PORT=DEST:PORT" each, like ssh -L (as --forward).')),
    whatsapp: z.optional(z.boolean()).check(z.describe("WhatsApp's proxy entry point for phones on the listen host (as --whatsapp).")),
    whatsappPorts: z
      .optional(
        z.string().check(z.refine((s) => problem(() => whatsappEntries(s)) === null, { error: (iss) => `e.g. "chat-tls=443,chat=5222,media=587" (${problem(() => whatsappEntries(String(iss.input)))})` })),
      )
      .check(z.describe('WhatsApp entry ports, e.g. "chat-tls=443,chat=5222,http=80,media=587"; "off" turns a role off (as --whatsapp-ports).')),
    connBudget: z
      .optional(
        z.union([
          z.literal('auto'),
          z.literal('off'),
          z.literal(0),
          z.int().check(z.gte(LIMITS.CONN_BUDGET_MIN_BYTES), z.lte(LIMITS.WALL_MAX_BYTES)),
          z.string().check(
            z.regex(/^(both:)?[1-9][0-9]{0,9}k?$/),
            z.refine((t) => {
              const p = parseBudget(t, LIMITS.CONN_BUDGET_MIN_BYTES);
              return p?.mode === 'fixed' && p.bytes <= LIMITS.WALL_MAX_BYTES;
            }, { error: `bytes ${LIMITS.CONN_BUDGET_MIN_BYTES}..${LIMITS.WALL_MAX_BYTES}` }),
          ),
        ]),
      )
      .check(
        z.describe(
          `Bytes per tunnel connection before the client moves to a new one, for networks that freeze or reset connections after a few KB: "auto" (default: learned), "off"/0, or bytes ${LIMITS.CONN_BUDGET_MIN_BYTES}..${LIMITS.WALL_MAX_BYTES} ("16k" = 16384) bridge→client, or "both:16k" counting both directions (as --conn-budget).`,
        ),
      ),
    lan: z.optional(z.boolean()).check(z.describe('Share with phones on this network: listen on 0.0.0.0 (unless listen is set) with a password (as --lan).')),
    log: z.optional(z.strictObject({ level: z.optional(z.enum(LOG_LEVELS)).check(z.describe('Log level (default info).')) })),
    route: z.optional(routeConfigSchema).check(z.describe('Which destinations go through the tunnel, direct, or nowhere (as --route, --route-file).')),
  })
  .check(z.refine((c) => c.whatsappPorts === undefined || c.whatsapp === true, { path: ['whatsappPorts'], error: 'goes with "whatsapp": true' }));

export type ClientConfigFile = z.input<typeof clientConfigSchema>;

/** What `f` throws, without the catalogue's prefix and the flag name (the field is named by the caller), or null. */
function problem(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (err) {
    return (err as Error).message.replace(/^invalid configuration: /, '').replace(/^(forward|--whatsapp-ports): /, '');
  }
}

function uriProblem(s: string): string | null {
  try {
    parseShareUri(s);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Validates a parsed JSON value; errors name the file, the field path and what was expected. */
export function validateClientConfig(raw: unknown, file: string): ClientConfigFile {
  return parseWith(clientConfigSchema, raw, file);
}

export function loadClientConfig(file: string): ClientConfigFile {
  return validateClientConfig(readJsonFile(file), file);
}
