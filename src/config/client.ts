/**
 * The client's JSON config file: its schema (configs/client.schema.json is generated from it),
 * loading and validation. Errors name the file, the field path and what was expected. The
 * settings pipeline (flags > environment > file > defaults) is config/client-settings.ts.
 */
import { z } from 'zod';
import { parseHostPort } from '../core/address.js';
import { LIMITS } from '../core/limits.js';
import { parseBudget } from '../core/tunnel-policy.js';
import { parseShareUri } from '../transport/uri.js';
import { parseWith, readJsonFile } from './file.js';
import { parseForward } from './forward.js';
import { routeConfigSchema } from './route.js';
import { whatsappEntries } from './whatsapp.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const hostPort = z.string().refine((s) => parseHostPort(s) !== null, 'HOST:PORT, e.g. "127.0.0.1:1080"');

export const clientConfigSchema = z
  .object({
    $schema: z.string().optional(),
    /** Share URIs (postern://…), in priority order; with several, the client fails over (or spreads). */
    bridges: z
      .array(z.string().refine((s) => uriProblem(s) === null, { error: (iss) => `a postern:// share URI (${uriProblem(String(iss.input)) ?? 'invalid'})` }))
      .min(1, 'at least one share URI')
      .max(16, 'at most 16 share URIs')
      .describe('Share links (postern://…) from bridge operators, in priority order. Keep them secret.'),
    /** SOCKS5 listen address. */
    listen: z.string().refine((s) => parseHostPort(s) !== null, 'HOST:PORT, e.g. "127.0.0.1:1080"').optional().describe('SOCKS5 listen address, HOST:PORT (default 127.0.0.1:1080).'),
    /** Username/password apps must give (SOCKS5 RFC 1929, HTTP Basic); absent: the stored pair (config/local-credentials.ts). */
    auth: z
      .object({ username: z.string().min(1).max(255), password: z.string().min(1).max(255) })
      .strict()
      .nullable()
      .optional()
      .describe('Username and password apps must send (SOCKS5 RFC 1929, HTTP Proxy-Authorization: Basic). Default: a pair made on first start and kept in $XDG_CONFIG_HOME/postern/local-proxy.json.'),
    /** Allow a non-loopback listener without auth (don't). */
    insecureOpenProxy: z.boolean().optional().describe('With --no-auth, allow a non-loopback listener without a password: anyone on the network could use it.'),
    exactReplies: z
      .boolean()
      .optional()
      .describe(
        'Answer SOCKS5 CONNECT and HTTP CONNECT only after the bridge has connected, with the exact reply code (one more round trip per connection). Default false: answer at once while the tunnel is up; a refused destination then resets the connection.',
      ),
    socks: z.array(hostPort).max(16).optional().describe('Extra SOCKS5-only listeners, HOST:PORT each (as --socks).'),
    http: z.array(hostPort).max(16).optional().describe('Extra HTTP-proxy-only listeners, HOST:PORT each (as --http).'),
    forward: z
      .array(z.string().refine((s) => problem(() => parseForward(s, 'forward')) === null, { error: (iss) => problem(() => parseForward(String(iss.input), 'forward')) ?? 'invalid' }))
      .max(64)
      .optional()
      .describe('Fixed-destination forwards, "[HOST:]PORT=DEST:PORT" each, like ssh -L (as --forward).'),
    whatsapp: z.boolean().optional().describe("WhatsApp's proxy entry point for phones on the listen host (as --whatsapp)."),
    whatsappPorts: z
      .string()
      .refine((s) => problem(() => whatsappEntries(s)) === null, { error: (iss) => `e.g. "chat-tls=443,chat=5222,media=587" (${problem(() => whatsappEntries(String(iss.input)))})` })
      .optional()
      .describe('WhatsApp entry ports, e.g. "chat-tls=443,chat=5222,http=80,media=587"; "off" turns a role off (as --whatsapp-ports).'),
    connBudget: z
      .union([
        z.literal('auto'),
        z.literal('off'),
        z.literal(0),
        z.int().min(LIMITS.CONN_BUDGET_MIN_BYTES).max(LIMITS.WALL_MAX_BYTES),
        z
          .string()
          .regex(/^(both:)?[1-9][0-9]{0,9}k?$/)
          .refine((t) => {
            const p = parseBudget(t, LIMITS.CONN_BUDGET_MIN_BYTES);
            return p?.mode === 'fixed' && p.bytes <= LIMITS.WALL_MAX_BYTES;
          }, { error: `bytes ${LIMITS.CONN_BUDGET_MIN_BYTES}..${LIMITS.WALL_MAX_BYTES}` }),
      ])
      .optional()
      .describe(
        `Bytes per tunnel connection before the client moves to a new one, for networks that freeze or reset connections after a few KB: "auto" (default: learned), "off"/0, or bytes ${LIMITS.CONN_BUDGET_MIN_BYTES}..${LIMITS.WALL_MAX_BYTES} ("16k" = 16384) bridge→client, or "both:16k" counting both directions (as --conn-budget).`,
      ),
    lan: z.boolean().optional().describe('Share with phones on this network: listen on 0.0.0.0 (unless listen is set) with a password (as --lan).'),
    log: z.object({ level: z.enum(LOG_LEVELS).optional().describe('Log level (default info).') }).strict().optional(),
    route: routeConfigSchema.optional().describe('Which destinations go through the tunnel, direct, or nowhere (as --route, --route-file).'),
  })
  .strict()
  .refine((c) => c.whatsappPorts === undefined || c.whatsapp === true, { path: ['whatsappPorts'], error: 'goes with "whatsapp": true' });

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

export function clientJsonSchema(): unknown {
  return z.toJSONSchema(clientConfigSchema, { io: 'input' });
}
