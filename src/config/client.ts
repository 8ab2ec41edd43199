/**
 * The client's JSON config file (configs/client.schema.json is generated from this schema) and the
 * precedence of settings: command-line flags > environment (POSTERN_*) > config file > defaults.
 * Errors name where the bad value came from — the file and field path, the variable, or the flag —
 * and what was expected.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { defaultClientConfigFile } from './paths.js';
import { parseHostPort } from '../core/address.js';
import { PosternError } from '../core/errors.js';
import { parseForward } from '../client/forward.js';
import { whatsappEntries } from '../client/whatsapp.js';
import { parseBudget, type BudgetPolicy } from '../client/wall.js';
import { LIMITS } from '../core/limits.js';
import { parseShareUri, type BridgeInfo } from '../transport/uri.js';
import { parseWith, readJsonFile } from './file.js';
import { routeConfigSchema, type RouteConfig } from './route.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const CLIENT_DEFAULTS = { listen: '127.0.0.1:1080', logLevel: 'info' } as const;

/** Environment variables the client reads (each overrides the file, and a flag overrides it). */
export const CLIENT_ENV = {
  config: 'POSTERN_CONFIG',
  bridge: 'POSTERN_BRIDGE',
  listen: 'POSTERN_LISTEN',
  user: 'POSTERN_USER',
  pass: 'POSTERN_PASS',
  logLevel: 'POSTERN_LOG_LEVEL',
  exactReplies: 'POSTERN_EXACT_REPLIES',
} as const;

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
      .union([z.literal('auto'), z.literal('off'), z.literal(0), z.int().min(LIMITS.CONN_BUDGET_MIN_BYTES).max(LIMITS.WALL_MAX_BYTES)])
      .optional()
      .describe(
        `Bridge→client bytes per tunnel connection before the client moves to a new one, for networks that freeze connections after a few KB: "auto" (default: learned), "off"/0, or bytes ${LIMITS.CONN_BUDGET_MIN_BYTES}..${LIMITS.WALL_MAX_BYTES} (as --conn-budget).`,
      ),
    lan: z.boolean().optional().describe('Share with phones on this network: listen on 0.0.0.0 (unless listen is set) with a password (as --lan).'),
    log: z.object({ level: z.enum(LOG_LEVELS).optional().describe('Log level (default info).') }).strict().optional(),
    route: routeConfigSchema.optional().describe('Which destinations go through the tunnel, direct, or nowhere (as --route, --route-file).'),
  })
  .strict()
  .refine((c) => c.whatsappPorts === undefined || c.whatsapp === true, { path: ['whatsappPorts'], error: 'goes with "whatsapp": true' });

export type ClientConfigFile = z.input<typeof clientConfigSchema>;

/** The listener settings a config file may hold (each overridden by its flag). */
export type FileListeners = Pick<ClientConfigFile, 'socks' | 'http' | 'forward' | 'whatsapp' | 'whatsappPorts' | 'lan'>;

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

export interface ClientFlags {
  config?: string;
  bridge?: string;
  listen?: string;
  user?: string;
  pass?: string;
  insecureOpenProxy?: boolean;
  exactReplies?: boolean;
  logLevel?: string;
}

export interface ClientSettings {
  /** The first of `bridges`. */
  bridge: BridgeInfo;
  /** Every bridge from the level that set them (flags > environment > file), in priority order. */
  bridges: BridgeInfo[];
  listen: { host: string; port: number };
  /** True when listen came from a flag, the environment or the file (not the default). */
  listenGiven: boolean;
  auth: { username: string; password: string } | null;
  insecureOpenProxy: boolean;
  /** Wait for the bridge's result before answering CONNECT (see ClientOptions.exactReplies). */
  exactReplies: boolean;
  logLevel: string;
  /** Listener settings from the config file ({} without one). */
  fileListeners: FileListeners;
  /** The config file's connBudget, if any. */
  connBudget: BudgetPolicy | undefined;
  /** The config file's `route` object, and the file's name (for errors). */
  fileRoute: RouteConfig | undefined;
  configFile: string | undefined;
}

/** The default client config file ($XDG_CONFIG_HOME/postern/client.json) when it exists. */
function existingDefaultConfig(env: NodeJS.ProcessEnv): string | undefined {
  const file = defaultClientConfigFile(env);
  return file !== undefined && fs.existsSync(file) ? file : undefined;
}

/**
 * Merges flags > environment > config file > defaults. The file is `flags.config`, else
 * $POSTERN_CONFIG, else $XDG_CONFIG_HOME/postern/client.json when it exists, else none.
 */
export function resolveClientSettings(flags: ClientFlags, env: NodeJS.ProcessEnv): ClientSettings {
  const fromEnv = (k: keyof typeof CLIENT_ENV): string | undefined => {
    const v = env[CLIENT_ENV[k]];
    return v === undefined || v === '' ? undefined : v;
  };
  const configFile = flags.config ?? fromEnv('config') ?? existingDefaultConfig(env);
  const file = configFile !== undefined ? loadClientConfig(configFile) : undefined;
  const where = (flag: string, envKey: keyof typeof CLIENT_ENV, field: string): string =>
    flags[envKey as keyof ClientFlags] !== undefined ? flag : fromEnv(envKey) !== undefined ? `$${CLIENT_ENV[envKey]}` : `${configFile}: ${field}`;

  const single = flags.bridge ?? fromEnv('bridge');
  const bridgeTexts = single !== undefined ? [single] : (file?.bridges ?? []);
  if (bridgeTexts.length === 0) {
    throw new PosternError('E_CONFIG', `no bridge: pass --bridge URI, set $${CLIENT_ENV.bridge}, or give --config FILE with "bridges"`);
  }
  const bridges = bridgeTexts.map((text, i) => {
    try {
      return parseShareUri(text);
    } catch (err) {
      throw new PosternError('E_BAD_URI', `${where('--bridge', 'bridge', `bridges[${i}]`)}: ${(err as Error).message.replace(/^invalid bridge URI: /, '')}`);
    }
  });
  const bridge = bridges[0] as BridgeInfo;

  const listenText = flags.listen ?? fromEnv('listen') ?? file?.listen ?? CLIENT_DEFAULTS.listen;
  const listen = parseHostPort(listenText);
  if (!listen) throw new PosternError('E_CONFIG', `${where('--listen', 'listen', 'listen')}: expected HOST:PORT, got "${listenText}"`);

  const logLevel = flags.logLevel ?? fromEnv('logLevel') ?? file?.log?.level ?? CLIENT_DEFAULTS.logLevel;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new PosternError('E_CONFIG', `${where('--log-level', 'logLevel', 'log.level')}: expected one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }

  // User and password travel together: both from the same level, never one from each.
  let auth: ClientSettings['auth'] = null;
  const pairs: Array<[string | undefined, string | undefined, string]> = [
    [flags.user, flags.pass, '--user and --pass'],
    [fromEnv('user'), fromEnv('pass'), `$${CLIENT_ENV.user} and $${CLIENT_ENV.pass}`],
  ];
  const pair = pairs.find(([u, p]) => u !== undefined || p !== undefined);
  if (pair) {
    const [u, p, what] = pair;
    if (u === undefined || p === undefined) throw new PosternError('E_CONFIG', `${what} go together`);
    auth = { username: u, password: p };
  } else if (file?.auth) {
    auth = { username: file.auth.username, password: file.auth.password };
  }

  const exactEnv = fromEnv('exactReplies');
  if (exactEnv !== undefined && exactEnv !== '0' && exactEnv !== '1') {
    throw new PosternError('E_CONFIG', `$${CLIENT_ENV.exactReplies}: expected 1 or 0, got "${exactEnv}"`);
  }
  const exactReplies = flags.exactReplies === true || (exactEnv !== undefined ? exactEnv === '1' : file?.exactReplies === true);

  const fileListeners: FileListeners = {};
  if (file !== undefined) {
    for (const k of ['socks', 'http', 'forward', 'whatsapp', 'whatsappPorts', 'lan'] as const) {
      if (file[k] !== undefined) (fileListeners as Record<string, unknown>)[k] = file[k];
    }
  }
  return {
    bridge,
    bridges,
    listen,
    listenGiven: flags.listen !== undefined || fromEnv('listen') !== undefined || file?.listen !== undefined,
    auth,
    insecureOpenProxy: flags.insecureOpenProxy === true || file?.insecureOpenProxy === true,
    exactReplies,
    logLevel,
    fileListeners,
    connBudget: file?.connBudget === undefined ? undefined : (parseBudget(file.connBudget, LIMITS.CONN_BUDGET_MIN_BYTES) ?? undefined),
    fileRoute: file?.route,
    configFile,
  };
}
