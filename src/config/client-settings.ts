/**
 * The client's settings, resolved once and in one place: defaults → config file → environment
 * (POSTERN_*) → command-line flags, each level overriding the one before. The result is one typed
 * object, with where each value came from (`origin`), so that an error names the flag, the
 * variable, or the file and field that holds the bad value, and says what was expected.
 *
 * Effects stay out, except the two reads a setting needs: the config file, and the stored
 * username/password (config/local-credentials.ts) when apps must give one and none is given.
 */
import fs from 'node:fs';
import { formatHostPort, isLoopbackHost, parseHostPort } from '../core/address.js';
import type { Credentials } from '../core/credentials.js';
import { PosternError } from '../core/errors.js';
import { LIMIT_BOUNDS, LIMITS, defaultLimits, type LimitName, type Limits } from '../core/limits.js';
import { BRIDGE_STRATEGIES, parseBudget, type BridgeStrategy, type BudgetPolicy } from '../core/tunnel-policy.js';
import { parseShareUri, type BridgeInfo } from '../transport/uri.js';
import { LOG_LEVELS, loadClientConfig, type ClientConfigFile } from './client.js';
import { parseForward, type ForwardSetting } from './forward.js';
import { localCredentials, type StoredCredentials } from './local-credentials.js';
import { defaultClientConfigFile } from './paths.js';
import { resolveRoute, type RouteSettings } from './route.js';
import { whatsappEntries, type WhatsAppRole } from './whatsapp.js';

export type LogLevel = (typeof LOG_LEVELS)[number];
type HostPort = { host: string; port: number };

/** Defaults, in one literal. */
export const CLIENT_DEFAULTS = { listen: '127.0.0.1:1080', logLevel: 'info', strategy: 'failover' } as const;

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

/** The flags of `postern client`, as commander hands them over (values still text). */
export interface ClientFlags {
  config?: string;
  /** Every --bridge (and the lines of --bridge-file), in order. */
  bridge?: string | string[];
  listen?: string;
  user?: string;
  pass?: string;
  newCredentials?: boolean;
  /** Commander's negatable `--no-auth`: false when given. */
  auth?: boolean;
  insecureOpenProxy?: boolean;
  exactReplies?: boolean;
  logLevel?: string;
  strategy?: string;
  keepaliveMs?: string;
  resumeTimeoutMs?: string;
  rotateBytes?: string;
  rotateMs?: string;
  connBudget?: string;
  dialIntervalMs?: string;
  dialBurst?: string;
  socks?: string[];
  http?: string[];
  forward?: string[];
  whatsapp?: boolean;
  whatsappPorts?: string;
  whatsappTarget?: string;
  lan?: boolean;
  route?: string;
  routeFile?: string;
  allowLanPrivate?: boolean;
}

export interface ClientSources {
  flags: ClientFlags;
  env: NodeJS.ProcessEnv;
}

/** A WhatsApp entry port, bound on the proxy's host (config/whatsapp.ts). */
export interface WhatsAppListener extends ForwardSetting {
  readonly role: WhatsAppRole;
  /** The app speaks TLS to this port (WhatsApp does so to port 443 only). */
  readonly tls: boolean;
}

/** The settings whose origin is recorded (the names of ClientSettings' fields). */
export const CLIENT_SETTING_NAMES = [
  'configFile', 'bridges', 'listen', 'auth', 'insecureOpenProxy', 'exactReplies', 'logLevel', 'strategy', 'keepaliveMs',
  'resumeTimeoutMs', 'dialIntervalMs', 'dialBurst', 'rotateBytes', 'rotateMs', 'connBudget', 'socks', 'http', 'forward', 'whatsapp',
  'whatsappPorts', 'lan',
] as const;
export type ClientSettingName = (typeof CLIENT_SETTING_NAMES)[number];

export interface ClientSettings {
  configFile: string | undefined;
  /** Every bridge from the level that set them (flags > environment > file), in priority order. */
  bridges: BridgeInfo[];
  /** The proxy port (SOCKS5 and HTTP); with --lan and no listen given, 0.0.0.0 and the default port. */
  listen: HostPort;
  /** The username/password apps must give (null: --no-auth). */
  auth: Credentials | null;
  /** Where the pair came from when it is the stored one (null: given, or --no-auth). */
  stored: StoredCredentials | null;
  insecureOpenProxy: boolean;
  exactReplies: boolean;
  logLevel: LogLevel;
  strategy: BridgeStrategy;
  limits: Limits;
  /** Connection rotation budget (0: off). */
  rotate: { bytes: number; ms: number };
  /** The per-connection budget (absent: each share link's, else learned). */
  budget: BudgetPolicy | undefined;
  socks: HostPort[];
  http: HostPort[];
  forwards: ForwardSetting[];
  whatsapp: WhatsAppListener[];
  lan: boolean;
  route: RouteSettings;
  /** Where each value came from: "--flag", "$VARIABLE", "FILE: field", or "default". */
  origin: Record<ClientSettingName, string>;
}

export interface ResolveOptions {
  /** `--explain` needs neither a bridge nor credentials. */
  forExplain?: boolean;
}

/** One level's value and its name for errors. */
interface Found<T> {
  value: T;
  from: string;
}

/** The first level that has a value: flag, then environment, then file, then the default. */
function pick<T>(levels: ReadonlyArray<Found<T | undefined>>, fallback: Found<T>): Found<T> {
  for (const l of levels) if (l.value !== undefined) return l as Found<T>;
  return fallback;
}

function hostPort(text: string, from: string): HostPort {
  const hp = parseHostPort(text);
  if (!hp) throw new PosternError('E_CONFIG', `${from}: expected HOST:PORT, got "${text}"`);
  return hp;
}

function limitValue(from: string, text: string, name: LimitName): number {
  const n = Number(text);
  const [min, max] = LIMIT_BOUNDS[name];
  if (!Number.isInteger(n) || n < min || n > max) throw new PosternError('E_CONFIG', `${from}: expected an integer in ${min}..${max}, got "${text}"`);
  return n;
}

function atLeast(from: string, text: string | undefined, min: number): number {
  if (text === undefined) return 0;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw new PosternError('E_CONFIG', `${from}: expected an integer ≥ ${min}, got "${text}"`);
  return n;
}

/** The default client config file ($XDG_CONFIG_HOME/postern/client.json) when it exists. */
function existingDefaultConfig(env: NodeJS.ProcessEnv): string | undefined {
  const file = defaultClientConfigFile(env);
  return file !== undefined && fs.existsSync(file) ? file : undefined;
}

/**
 * Resolves every client setting: flags > environment > config file > defaults. The file is
 * --config, else $POSTERN_CONFIG, else $XDG_CONFIG_HOME/postern/client.json when it exists.
 */
export function resolveClientSettings(sources: ClientSources, opts: ResolveOptions = {}): ClientSettings {
  const { flags, env } = sources;
  const envValue = (k: keyof typeof CLIENT_ENV): Found<string | undefined> => {
    const v = env[CLIENT_ENV[k]];
    return { value: v === undefined || v === '' ? undefined : v, from: `$${CLIENT_ENV[k]}` };
  };
  const flag = <T>(value: T | undefined, name: string): Found<T | undefined> => ({ value, from: name });
  const dflt = <T>(value: T): Found<T> => ({ value, from: 'default' });

  const config = pick<string | undefined>([flag(flags.config, '--config'), envValue('config')], { value: existingDefaultConfig(env), from: 'default' });
  const configFile = config.value;
  const file: ClientConfigFile | undefined = configFile !== undefined ? loadClientConfig(configFile) : undefined;
  const field = <T>(value: T | undefined, name: string): Found<T | undefined> => ({ value, from: `${configFile}: ${name}` });
  const origin = { configFile: config.from } as Record<ClientSettingName, string>;

  // Bridges: every --bridge, else $POSTERN_BRIDGE, else the file's list (a level replaces the whole list).
  const flagBridges = flags.bridge === undefined ? undefined : Array.isArray(flags.bridge) ? flags.bridge : [flags.bridge];
  const env1 = envValue('bridge');
  const bridgeTexts = pick<Array<{ text: string; from: string }>>(
    [
      flag(flagBridges?.map((text, i) => ({ text, from: i === 0 ? '--bridge' : `--bridge #${i + 1}` })), '--bridge'),
      { value: env1.value !== undefined ? [{ text: env1.value, from: env1.from }] : undefined, from: env1.from },
      field(file?.bridges.map((text, i) => ({ text, from: `${configFile}: bridges[${i}]` })), 'bridges'),
    ],
    dflt([]),
  );
  origin.bridges = bridgeTexts.from;
  if (bridgeTexts.value.length === 0 && opts.forExplain !== true) {
    throw new PosternError('E_CONFIG', `no bridge: pass --bridge URI, set $${CLIENT_ENV.bridge}, or give --config FILE with "bridges"`);
  }
  const bridges = bridgeTexts.value.map(({ text, from }) => {
    try {
      return parseShareUri(text);
    } catch (err) {
      throw new PosternError('E_BAD_URI', `${from}: ${(err as Error).message.replace(/^invalid bridge URI: /, '')}`);
    }
  });

  const logLevel = pick<string>([flag(flags.logLevel, '--log-level'), envValue('logLevel'), field(file?.log?.level, 'log.level')], dflt(CLIENT_DEFAULTS.logLevel));
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel.value)) {
    throw new PosternError('E_CONFIG', `${logLevel.from}: expected one of ${LOG_LEVELS.join(', ')}, got "${logLevel.value}"`);
  }
  origin.logLevel = logLevel.from;

  // Exact replies: the flag turns it on; the variable takes 1 or 0.
  const exactEnv = envValue('exactReplies');
  if (exactEnv.value !== undefined && exactEnv.value !== '0' && exactEnv.value !== '1') {
    throw new PosternError('E_CONFIG', `${exactEnv.from}: expected 1 or 0, got "${exactEnv.value}"`);
  }
  const exactReplies = pick<boolean>(
    [flag(flags.exactReplies === true ? true : undefined, '--exact-replies'), { value: exactEnv.value === undefined ? undefined : exactEnv.value === '1', from: exactEnv.from }, field(file?.exactReplies, 'exactReplies')],
    dflt(false),
  );
  origin.exactReplies = exactReplies.from;
  const insecureOpenProxy = pick<boolean>([flag(flags.insecureOpenProxy === true ? true : undefined, '--insecure-open-proxy'), field(file?.insecureOpenProxy, 'insecureOpenProxy')], dflt(false));
  origin.insecureOpenProxy = insecureOpenProxy.from;

  // Tunnel: strategy and the bounds of keepalive, resume, dialling and rotation (flags only).
  const strategy = pick<string>([flag(flags.strategy, '--strategy')], dflt(CLIENT_DEFAULTS.strategy));
  if (!(BRIDGE_STRATEGIES as readonly string[]).includes(strategy.value)) {
    throw new PosternError('E_CONFIG', `${strategy.from}: expected ${BRIDGE_STRATEGIES.join(' or ')}, got "${strategy.value}"`);
  }
  origin.strategy = strategy.from;
  const over: Partial<Limits> = {};
  origin.keepaliveMs = flags.keepaliveMs !== undefined ? '--keepalive-ms' : 'default';
  if (flags.keepaliveMs !== undefined) {
    // Dead after this long without a byte; a PING goes out after half of it.
    over.KEEPALIVE_TIMEOUT_MS = limitValue('--keepalive-ms', flags.keepaliveMs, 'KEEPALIVE_TIMEOUT_MS');
    over.KEEPALIVE_INTERVAL_MS = Math.max(LIMIT_BOUNDS.KEEPALIVE_INTERVAL_MS[0], Math.floor(over.KEEPALIVE_TIMEOUT_MS / 2));
  }
  origin.dialIntervalMs = flags.dialIntervalMs !== undefined ? '--dial-interval-ms' : 'default';
  if (flags.dialIntervalMs !== undefined) over.DIAL_MIN_INTERVAL_MS = limitValue('--dial-interval-ms', flags.dialIntervalMs, 'DIAL_MIN_INTERVAL_MS');
  origin.dialBurst = flags.dialBurst !== undefined ? '--dial-burst' : 'default';
  if (flags.dialBurst !== undefined) over.DIAL_BURST_MAX = limitValue('--dial-burst', flags.dialBurst, 'DIAL_BURST_MAX');
  origin.resumeTimeoutMs = flags.resumeTimeoutMs !== undefined ? '--resume-timeout-ms' : 'default';
  if (flags.resumeTimeoutMs !== undefined) over.SESSION_RESUME_TIMEOUT_MS = limitValue('--resume-timeout-ms', flags.resumeTimeoutMs, 'SESSION_RESUME_TIMEOUT_MS');
  origin.rotateBytes = flags.rotateBytes !== undefined ? '--rotate-bytes' : 'default';
  origin.rotateMs = flags.rotateMs !== undefined ? '--rotate-ms' : 'default';
  const rotate = { bytes: atLeast('--rotate-bytes', flags.rotateBytes, 64 * 1024), ms: atLeast('--rotate-ms', flags.rotateMs, 1_000) };
  const budgetText = pick<string | number | undefined>([flag(flags.connBudget, '--conn-budget'), field(file?.connBudget, 'connBudget')], dflt(undefined));
  origin.connBudget = budgetText.from;
  let budget: BudgetPolicy | undefined;
  if (budgetText.value !== undefined) {
    const min = LIMITS.CONN_BUDGET_MIN_BYTES;
    const parsed = parseBudget(budgetText.value, min);
    if (parsed === null) throw new PosternError('E_CONFIG', `${budgetText.from}: expected auto, off (or 0), a byte count ≥ ${min} (16384, or 16k), or both: and one to count both directions (both:16k), got "${budgetText.value}"`);
    budget = parsed;
  }

  // Listeners: the flag replaces the file's field of the same name.
  const lan = pick<boolean>([flag(flags.lan, '--lan'), field(file?.lan, 'lan')], dflt(false));
  origin.lan = lan.from;
  const listenText = pick<string>([flag(flags.listen, '--listen'), envValue('listen'), field(file?.listen, 'listen')], dflt(CLIENT_DEFAULTS.listen));
  let listen = hostPort(listenText.value, listenText.from);
  const noAuth = flags.auth === false;
  if (lan.value) {
    // Never an open proxy on a LAN: the opt-outs are refused.
    if (insecureOpenProxy.value) throw new PosternError('E_CONFIG', `--lan never runs an open proxy: drop ${insecureOpenProxy.from === '--insecure-open-proxy' ? '--insecure-open-proxy' : `"insecureOpenProxy" from ${configFile}`}`);
    if (noAuth) throw new PosternError('E_CONFIG', '--no-auth is for loopback listeners only; --lan always asks for the username and password');
    if (listenText.from === 'default') listen = { host: '0.0.0.0', port: listen.port };
  }
  origin.listen = listenText.from;
  const list = (flagValue: string[] | undefined, flagName: string, fileValue: string[] | undefined, fieldName: string): Found<Array<{ text: string; from: string }>> => {
    const l = pick<string[]>([flag(flagValue, flagName), field(fileValue, fieldName)], dflt([]));
    return { value: l.value.map((text, i) => ({ text, from: l.from === flagName ? flagName : `${configFile}: ${fieldName}[${i}]` })), from: l.from };
  };
  const socksList = list(flags.socks, '--socks', file?.socks, 'socks');
  const httpList = list(flags.http, '--http', file?.http, 'http');
  const forwardList = list(flags.forward, '--forward', file?.forward, 'forward');
  origin.socks = socksList.from;
  origin.http = httpList.from;
  origin.forward = forwardList.from;
  const socks = socksList.value.map((s) => hostPort(s.text, s.from));
  const http = httpList.value.map((s) => hostPort(s.text, s.from));
  const forwards = forwardList.value.map((f) => parseForward(f.text, f.from));

  // Username and password travel together: both from the same level, never one from each.
  let auth: Credentials | null = null;
  let stored: StoredCredentials | null = null;
  const pairs: Array<[string | undefined, string | undefined, string]> = [
    [flags.user, flags.pass, '--user and --pass'],
    [envValue('user').value, envValue('pass').value, `$${CLIENT_ENV.user} and $${CLIENT_ENV.pass}`],
  ];
  const pair = pairs.find(([u, p]) => u !== undefined || p !== undefined);
  origin.auth = 'default';
  if (pair) {
    const [u, p, what] = pair;
    if (u === undefined || p === undefined) throw new PosternError('E_CONFIG', `${what} go together`);
    auth = { username: u, password: p };
    origin.auth = what;
  } else if (file?.auth) {
    auth = { username: file.auth.username, password: file.auth.password };
    origin.auth = `${configFile}: auth`;
  }
  if (flags.newCredentials === true && auth !== null) {
    throw new PosternError('E_CONFIG', `--new-credentials: the username and password are given (${origin.auth}), none are stored`);
  }
  if (noAuth) {
    if (auth !== null) {
      throw new PosternError('E_CONFIG', `--no-auth conflicts with the username and password given (${origin.auth}): drop one`);
    }
    const open = [listen, ...socks, ...http].find((l) => !isLoopbackHost(l.host));
    if (open !== undefined && !insecureOpenProxy.value) {
      throw new PosternError('E_CONFIG', `--no-auth is for loopback listeners only, and ${formatHostPort(open)} is not loopback: drop --no-auth, or listen on 127.0.0.1`);
    }
    origin.auth = '--no-auth';
  } else if (auth === null && opts.forExplain !== true) {
    stored = localCredentials(env, { renew: flags.newCredentials === true });
    auth = stored.credentials;
    origin.auth = stored.file;
  }

  // WhatsApp's entry ports, on the proxy's host.
  const whatsappOn = pick<boolean>([flag(flags.whatsapp, '--whatsapp'), field(file?.whatsapp, 'whatsapp')], dflt(false));
  const whatsappPorts = pick<string | undefined>([flag(flags.whatsappPorts, '--whatsapp-ports'), field(file?.whatsappPorts, 'whatsappPorts')], dflt(undefined));
  origin.whatsapp = whatsappOn.from;
  origin.whatsappPorts = whatsappPorts.from;
  let whatsapp: WhatsAppListener[] = [];
  if (whatsappOn.value || whatsappPorts.value !== undefined || flags.whatsappTarget !== undefined) {
    if (!whatsappOn.value) throw new PosternError('E_CONFIG', '--whatsapp-ports and --whatsapp-target go with --whatsapp');
    whatsapp = whatsappEntries(whatsappPorts.value, flags.whatsappTarget).map((e) => ({
      name: `whatsapp ${e.role}`,
      role: e.role,
      tls: e.tls,
      listen: { host: listen.host, port: e.port },
      target: e.target,
    }));
  }
  // Forwards and WhatsApp entry points have no password (their apps cannot send one): off
  // loopback, anyone who can reach the port uses the tunnel (to that one destination).
  if (!lan.value) {
    const open = [...forwards, ...whatsapp].find((f) => !isLoopbackHost(f.listen.host));
    if (open !== undefined) {
      throw new PosternError(
        'E_CONFIG',
        `${open.name} on ${formatHostPort(open.listen)}: a forward or WhatsApp port has no password, so off loopback anyone on the network can use it; add --lan to agree, or listen on 127.0.0.1`,
      );
    }
  }

  return {
    configFile,
    bridges,
    listen,
    auth,
    stored,
    insecureOpenProxy: insecureOpenProxy.value,
    exactReplies: exactReplies.value,
    logLevel: logLevel.value as LogLevel,
    strategy: strategy.value as BridgeStrategy,
    limits: defaultLimits(over),
    rotate,
    budget,
    socks,
    http,
    forwards,
    whatsapp,
    lan: lan.value,
    route: resolveRoute(flags, file?.route, configFile),
    origin,
  };
}
