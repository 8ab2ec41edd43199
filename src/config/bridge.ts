import fs from 'node:fs';
import path from 'node:path';
import * as z from './zod.js';
import ipaddr from 'ipaddr.js';
import { isLoopbackHost, parseDnsServer, parseHostPort } from '../core/address.js';
import { LIMITS, LIMIT_BOUNDS, defaultLimits, type LimitName, type Limits } from '../core/limits.js';
import type { DecoyConfig } from '../core/decoy-config.js';
import { configError, parseWith, readJsonFile, unreadableError } from './file.js';
import { PosternError } from '../core/errors.js';

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** A user name: letters of any alphabet (with their combining marks), digits, ".", "_", "-". */
export const USER_NAME_RE = /^[\p{L}\p{M}\p{N}._-]{1,64}$/u;
export const USER_NAME_RULE = 'letters (any alphabet), digits, ".", "_" or "-", 1 to 64 of them';

const limitsSchema = z.strictObject(
  Object.fromEntries(
    (Object.keys(LIMITS) as LimitName[]).map((k) => {
      const [min, max] = LIMIT_BOUNDS[k];
      return [k, z.optional(z.int().check(z.gte(min), z.lte(max)))];
    }),
  ) as Record<LimitName, z.ZodMiniOptional<z.ZodMiniNumberFormat>>,
);

const userSchema = z.strictObject({
  name: z.string().check(z.regex(USER_NAME_RE, USER_NAME_RULE)),
  secret: z.string().check(
    z.regex(BASE64URL, 'base64url characters only'),
    z.refine((s) => {
      const n = Buffer.from(s, 'base64url').length;
      return n >= 16 && n <= 64;
    }, '16 to 64 bytes, base64url-encoded'),
  ),
  /** This user's bandwidth cap in bytes per second, each direction (default: limits.USER_MAX_BYTES_PER_SECOND). */
  maxBytesPerSecond: z.optional(z.int().check(z.gte(LIMIT_BOUNDS.USER_MAX_BYTES_PER_SECOND[0]), z.lte(LIMIT_BOUNDS.USER_MAX_BYTES_PER_SECOND[1]))),
});

/** Names of the built-in egress presets (src/bridge/presets.ts; a test keeps the two equal). */
export const EGRESS_PRESET_NAMES = ['messaging'] as const;

const cidrSchema = z.string().check(z.refine((s) => (s.includes('/') ? ipaddr.isValidCIDR(s) : ipaddr.isValid(s)), 'a CIDR range such as "10.1.0.0/16" or "fd00::/8"'));
const portSchema = z.union([
  z.int().check(z.gte(1), z.lte(65535)),
  z.string().check(
    z.refine((s) => {
      const m = /^(\d{1,5})-(\d{1,5})$/.exec(s);
      return m !== null && Number(m[1]) >= 1 && Number(m[2]) <= 65535 && Number(m[1]) <= Number(m[2]);
    }, 'a port (443) or a range ("8000-8100")'),
  ),
]);

const egressSchema = z.strictObject({
  /** Only these ports (numbers or "LO-HI" ranges); absent: any port not denied. */
  allowPorts: z.optional(z.array(portSchema).check(z.maxLength(1_000))),
  /** Ports always refused (wins over allowPorts). */
  denyPorts: z._default(z.array(portSchema).check(z.maxLength(1_000)), []),
  /** Private or reserved ranges the bridge may reach anyway (narrower than allowPrivate). */
  allowRanges: z._default(z.array(cidrSchema).check(z.maxLength(10_000)), []),
  /** Allow-list mode: only names under these domains and IP literals in these ranges. */
  allowOnly: z.optional(
    z.strictObject({
      presets: z._default(z.array(z.enum(EGRESS_PRESET_NAMES)), []),
      domains: z._default(z.array(z.string().check(z.regex(/^\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$/, 'a domain name such as "example.org"'), z.maxLength(253))).check(z.maxLength(10_000)), []),
      ranges: z._default(z.array(cidrSchema).check(z.maxLength(10_000)), []),
    }),
  ),
});

const decoySchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('builtin') }),
  /** A site folder served like nginx serves it (relative to the config file's folder). */
  z.strictObject({ type: z.literal('static'), root: z.string().check(z.minLength(1)) }),
  /** A reverse proxy to an upstream web server, e.g. "http://127.0.0.1:8080". */
  z.strictObject({ type: z.literal('proxy'), upstream: z.string().check(z.regex(/^http:\/\/[^/?#@]+\/?$/, 'http://HOST:PORT')) }),
]);

/** The bridge's JSON config file. Paths are relative to the file's folder. */
export const bridgeConfigSchema = z.strictObject({
  $schema: z.optional(z.string()),
  listen: z.string().check(z.refine((s) => parseHostPort(s) !== null, 'HOST:PORT, e.g. "0.0.0.0:443" or "[::]:443"')),
  /** The secret WebSocket path. */
  path: z.string().check(z.regex(/^\/[A-Za-z0-9._~\-/]{0,200}$/, 'a URL path starting with "/"')),
  /** Host name (or IP) clients dial; goes into share URIs. */
  publicHost: z.string().check(z.minLength(1), z.maxLength(253)),
  /** Port clients dial; default: the listen port. */
  publicPort: z.optional(z.int().check(z.gte(1), z.lte(65535))),
  tls: z.nullable(z.strictObject({ cert: z.string().check(z.minLength(1)), key: z.string().check(z.minLength(1)) })),
  /**
   * The certificate clients see when a TLS front (nginx, a CDN) presents its own, relative to this
   * file: share links are made from it (a pin when self-signed, else sni=publicHost), not from tls.cert.
   */
  shareCert: z.optional(z.string().check(z.minLength(1))),
  users: z.array(userSchema).check(z.minLength(1), z.maxLength(10_000)),
  allowPrivate: z._default(z.boolean(), false),
  /** Serve HTTP/2 (ALPN h2, h2c behind a proxy) and its transport (protocol.md §12); false: HTTP/1.1 and WebSocket only. */
  http2: z._default(z.boolean(), false),
  egress: z._default(egressSchema, { denyPorts: [], allowRanges: [] }),
  /** Metrics and health endpoint; absent: none. */
  admin: z.optional(
    z.strictObject({
      listen: z._default(z.string().check(z.refine((s) => parseHostPort(s) !== null, 'HOST:PORT, e.g. "127.0.0.1:9090"')), '127.0.0.1:9090'),
      /** Allow a non-loopback admin address (it has no authentication: firewall it). */
      allowNonLoopback: z._default(z.boolean(), false),
    }),
  ),
  /** The website everyone without a credential sees (protocol.md §2); default: the built-in page. */
  decoy: z._default(decoySchema, { type: 'builtin' }),
  /** Fixed name → addresses answers, consulted before DNS. */
  hosts: z._default(z.record(z.string(), z.array(z.string().check(z.refine((s) => /^[0-9a-fA-F:.]+$/.test(s), 'an IP address'))).check(z.minLength(1))), {}),
  /** The bridge's own name resolution (docs/protocol.md §7). */
  dns: z._default(
    z.strictObject({
      /** DNS servers ("IP", "IP:PORT", "[IPv6]:PORT"); default: those in /etc/resolv.conf. */
      servers: z.optional(z.array(z.string().check(z.refine((s) => parseDnsServer(s) !== null, '"IP", "IP:PORT" or "[IPv6]:PORT"'))).check(z.minLength(1), z.maxLength(16))),
      /** The hosts file consulted before DNS (hosts(5)); null: none. Default /etc/hosts. */
      hostsFile: z._default(z.nullable(z.string().check(z.minLength(1))), '/etc/hosts'),
    }),
    { hostsFile: '/etc/hosts' },
  ),
  log: z._default(
    z.strictObject({
      level: z._default(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'info'),
      destinations: z._default(z.boolean(), false),
    }),
    { level: 'info', destinations: false },
  ),
  limits: z._default(limitsSchema, {}),
});

export type BridgeConfigFile = z.input<typeof bridgeConfigSchema>;

export interface BridgeConfig {
  readonly file: string;
  readonly listen: { host: string; port: number };
  readonly path: string;
  readonly publicHost: string;
  readonly publicPort: number;
  readonly tls: { readonly certFile: string; readonly keyFile: string; readonly certPem: string; readonly keyPem: string } | null;
  /** shareCert's PEM (the front's certificate), or null: links are then made from tls. */
  readonly shareCertPem: string | null;
  readonly users: ReadonlyArray<{ readonly name: string; readonly secret: Buffer; readonly maxBytesPerSecond?: number }>;
  readonly allowPrivate: boolean;
  /** Serve HTTP/2 and its transport (protocol.md §12). */
  readonly http2: boolean;
  readonly egress: {
    readonly allowPorts: ReadonlyArray<number | string> | null;
    readonly denyPorts: ReadonlyArray<number | string>;
    readonly allowRanges: readonly string[];
    readonly allowOnly: { readonly presets: ReadonlyArray<(typeof EGRESS_PRESET_NAMES)[number]>; readonly domains: readonly string[]; readonly ranges: readonly string[] } | null;
  };
  readonly admin: { readonly host: string; readonly port: number } | null;
  readonly hosts: Readonly<Record<string, string[]>>;
  /** DNS servers (null: the system's) and the hosts file (null: none), absolute. */
  readonly dns: { readonly servers: readonly string[] | null; readonly hostsFile: string | null };
  /** Built-in page dated by the config file's mtime; static root resolved to an absolute path. */
  readonly decoy: DecoyConfig;
  readonly log: { readonly level: string; readonly destinations: boolean };
  readonly limits: Limits;
}

/** Validates a parsed JSON value; errors name the file, the field path and what was expected. */
/** A file a config names (certificate, key): errors name the config, the field and the file. */
function readConfigFile(configFile: string, f: string, field: string): string {
  try {
    return fs.readFileSync(f, 'utf8');
  } catch (err) {
    const denied = unreadableError(f, err);
    if (denied) throw new PosternError('E_CONFIG_UNREADABLE', `${configFile}: ${field}: ${denied.message.replace(/^cannot read a file: /, '')}`);
    throw configError(configFile, field, `cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function validateBridgeConfig(raw: unknown, file: string): BridgeConfig {
  const c = parseWith(bridgeConfigSchema, raw, file);
  const dir = path.dirname(path.resolve(file));
  const names = new Set<string>();
  c.users.forEach((u, i) => {
    if (names.has(u.name)) throw configError(file, `users[${i}].name`, `duplicate user "${u.name}"`);
    names.add(u.name);
  });
  const listen = parseHostPort(c.listen)!;
  let tls: BridgeConfig['tls'] = null;
  if (c.tls) {
    const certFile = path.resolve(dir, c.tls.cert);
    const keyFile = path.resolve(dir, c.tls.key);
    tls = { certFile, keyFile, certPem: readConfigFile(file, certFile, 'tls.cert'), keyPem: readConfigFile(file, keyFile, 'tls.key') };
  }
  const shareCertPem = c.shareCert !== undefined ? readConfigFile(file, path.resolve(dir, c.shareCert), 'shareCert') : null;
  const limits = defaultLimits(c.limits as Partial<Limits>);
  let decoy: DecoyConfig;
  if (c.decoy.type === 'static') {
    const root = path.resolve(dir, c.decoy.root);
    let isDir = false;
    try {
      isDir = fs.statSync(root).isDirectory();
    } catch (err) {
      throw configError(file, 'decoy.root', `cannot read ${root}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!isDir) throw configError(file, 'decoy.root', `${root} is not a folder`);
    decoy = { type: 'static', root };
  } else if (c.decoy.type === 'proxy') {
    decoy = { type: 'proxy', upstream: c.decoy.upstream };
  } else {
    let siteTimeMs = 0;
    try {
      siteTimeMs = fs.statSync(file).mtimeMs;
    } catch {
      // a config given as a value (demo, tests): date the page at the epoch of this process
      siteTimeMs = Date.now();
    }
    decoy = { type: 'builtin', siteTimeMs };
  }
  let admin: BridgeConfig['admin'] = null;
  if (c.admin) {
    admin = parseHostPort(c.admin.listen)!;
    if (!c.admin.allowNonLoopback && !isLoopbackHost(admin.host)) {
      throw configError(file, 'admin.listen', 'not a loopback address; the admin endpoint has no authentication (set admin.allowNonLoopback to allow it)');
    }
    if (admin.port !== 0 && admin.port === listen.port) throw configError(file, 'admin.listen', 'must not share the public port');
  }
  return {
    file: path.resolve(file),
    listen,
    path: c.path,
    publicHost: c.publicHost,
    publicPort: c.publicPort ?? listen.port,
    tls,
    shareCertPem,
    users: c.users.map((u) => ({
      name: u.name,
      secret: Buffer.from(u.secret, 'base64url'),
      ...(u.maxBytesPerSecond !== undefined ? { maxBytesPerSecond: u.maxBytesPerSecond } : {}),
    })),
    allowPrivate: c.allowPrivate,
    http2: c.http2,
    egress: {
      allowPorts: c.egress.allowPorts ?? null,
      denyPorts: c.egress.denyPorts,
      allowRanges: c.egress.allowRanges,
      allowOnly: c.egress.allowOnly ?? null,
    },
    admin,
    hosts: c.hosts,
    dns: { servers: c.dns.servers ?? null, hostsFile: c.dns.hostsFile === null ? null : path.resolve(dir, c.dns.hostsFile) },
    decoy,
    log: c.log,
    limits,
  };
}

export function loadBridgeConfig(file: string): BridgeConfig {
  return validateBridgeConfig(readJsonFile(file), file);
}

/** The flags of `postern bridge` and `postern decoy` that override the config file. */
export interface BridgeFlags {
  config: string;
  allowPrivate?: boolean;
  listen?: string;
  plain?: boolean;
  insecurePlainListen?: boolean;
  logLevel?: string;
  /** --http2 / --no-http2: override the file's "http2" (protocol.md §12). */
  http2?: boolean;
}

/**
 * The bridge's settings, resolved in one place: the config file (defaults filled in by its
 * schema), then the flags. Called again on every reload, so a flag keeps overriding the file.
 */
export function resolveBridgeSettings(flags: BridgeFlags): { config: BridgeConfig; logLevel: string } {
  let c = loadBridgeConfig(flags.config);
  if (flags.allowPrivate === true) c = { ...c, allowPrivate: true };
  if (flags.http2 !== undefined) c = { ...c, http2: flags.http2 };
  if (flags.listen !== undefined) {
    const hp = parseHostPort(flags.listen);
    if (!hp) throw new PosternError('E_CONFIG', `--listen: expected HOST:PORT, got "${flags.listen}"`);
    c = { ...c, listen: hp };
  }
  if (flags.plain === true) {
    // Behind a TLS-terminating proxy (configs/nginx/postern.conf): plain ws, on loopback only,
    // because anything else would carry the users' tokens unencrypted over a network.
    if (!isLoopbackHost(c.listen.host) && flags.insecurePlainListen !== true) {
      throw new PosternError('E_CONFIG', `--plain: refusing to listen on ${c.listen.host} without TLS; use a loopback address (e.g. --listen 127.0.0.1:8080) or pass --insecure-plain-listen`);
    }
    c = { ...c, tls: null };
  }
  return { config: c, logLevel: flags.logLevel ?? c.log.level };
}
