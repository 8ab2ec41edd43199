import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
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

const limitsSchema = z
  .object(
    Object.fromEntries(
      (Object.keys(LIMITS) as LimitName[]).map((k) => {
        const [min, max] = LIMIT_BOUNDS[k];
        return [k, z.number().int().min(min).max(max).optional()];
      }),
    ) as Record<LimitName, z.ZodOptional<z.ZodNumber>>,
  )
  .strict();

const userSchema = z
  .object({
    name: z.string().regex(USER_NAME_RE, USER_NAME_RULE),
    secret: z
      .string()
      .regex(BASE64URL, 'base64url characters only')
      .refine((s) => {
        const n = Buffer.from(s, 'base64url').length;
        return n >= 16 && n <= 64;
      }, '16 to 64 bytes, base64url-encoded'),
    /** This user's bandwidth cap in bytes per second, each direction (default: limits.USER_MAX_BYTES_PER_SECOND). */
    maxBytesPerSecond: z.number().int().min(LIMIT_BOUNDS.USER_MAX_BYTES_PER_SECOND[0]).max(LIMIT_BOUNDS.USER_MAX_BYTES_PER_SECOND[1]).optional(),
  })
  .strict();

/** Names of the built-in egress presets (src/bridge/presets.ts; a test keeps the two equal). */
export const EGRESS_PRESET_NAMES = ['messaging'] as const;

const cidrSchema = z.string().refine((s) => (s.includes('/') ? ipaddr.isValidCIDR(s) : ipaddr.isValid(s)), 'a CIDR range such as "10.1.0.0/16" or "fd00::/8"');
const portSchema = z.union([
  z.number().int().min(1).max(65535),
  z.string().refine((s) => {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(s);
    return m !== null && Number(m[1]) >= 1 && Number(m[2]) <= 65535 && Number(m[1]) <= Number(m[2]);
  }, 'a port (443) or a range ("8000-8100")'),
]);

const egressSchema = z
  .object({
    /** Only these ports (numbers or "LO-HI" ranges); absent: any port not denied. */
    allowPorts: z.array(portSchema).max(1_000).optional(),
    /** Ports always refused (wins over allowPorts). */
    denyPorts: z.array(portSchema).max(1_000).default([]),
    /** Private or reserved ranges the bridge may reach anyway (narrower than allowPrivate). */
    allowRanges: z.array(cidrSchema).max(10_000).default([]),
    /** Allow-list mode: only names under these domains and IP literals in these ranges. */
    allowOnly: z
      .object({
        presets: z.array(z.enum(EGRESS_PRESET_NAMES)).default([]),
        domains: z.array(z.string().regex(/^\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$/, 'a domain name such as "example.org"').max(253)).max(10_000).default([]),
        ranges: z.array(cidrSchema).max(10_000).default([]),
      })
      .strict()
      .optional(),
  })
  .strict();

const decoySchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('builtin') }).strict(),
  /** A site folder served like nginx serves it (relative to the config file's folder). */
  z.object({ type: z.literal('static'), root: z.string().min(1) }).strict(),
  /** A reverse proxy to an upstream web server, e.g. "http://127.0.0.1:8080". */
  z.object({ type: z.literal('proxy'), upstream: z.string().regex(/^http:\/\/[^/?#@]+\/?$/, 'http://HOST:PORT') }).strict(),
]);

/** The bridge's JSON config file. Paths are relative to the file's folder. */
export const bridgeConfigSchema = z
  .object({
    $schema: z.string().optional(),
    listen: z.string().refine((s) => parseHostPort(s) !== null, 'HOST:PORT, e.g. "0.0.0.0:443" or "[::]:443"'),
    /** The secret WebSocket path. */
    path: z.string().regex(/^\/[A-Za-z0-9._~\-/]{0,200}$/, 'a URL path starting with "/"'),
    /** Host name (or IP) clients dial; goes into share URIs. */
    publicHost: z.string().min(1).max(253),
    /** Port clients dial; default: the listen port. */
    publicPort: z.number().int().min(1).max(65535).optional(),
    tls: z
      .object({ cert: z.string().min(1), key: z.string().min(1) })
      .strict()
      .nullable(),
    /**
     * The certificate clients see when a TLS front (nginx, a CDN) presents its own, relative to this
     * file: share links are made from it (a pin when self-signed, else sni=publicHost), not from tls.cert.
     */
    shareCert: z.string().min(1).optional(),
    users: z.array(userSchema).min(1).max(10_000),
    allowPrivate: z.boolean().default(false),
    /** Serve HTTP/2 (ALPN h2, h2c behind a proxy) and its transport (protocol.md §12); false: HTTP/1.1 and WebSocket only. */
    http2: z.boolean().default(false),
    egress: egressSchema.default({ denyPorts: [], allowRanges: [] }),
    /** Metrics and health endpoint; absent: none. */
    admin: z
      .object({
        listen: z.string().refine((s) => parseHostPort(s) !== null, 'HOST:PORT, e.g. "127.0.0.1:9090"').default('127.0.0.1:9090'),
        /** Allow a non-loopback admin address (it has no authentication: firewall it). */
        allowNonLoopback: z.boolean().default(false),
      })
      .strict()
      .optional(),
    /** The website everyone without a credential sees (protocol.md §2); default: the built-in page. */
    decoy: decoySchema.default({ type: 'builtin' }),
    /** Fixed name → addresses answers, consulted before DNS. */
    hosts: z.record(z.string(), z.array(z.string().refine((s) => /^[0-9a-fA-F:.]+$/.test(s), 'an IP address')).min(1)).default({}),
    /** The bridge's own name resolution (docs/protocol.md §7). */
    dns: z
      .object({
        /** DNS servers ("IP", "IP:PORT", "[IPv6]:PORT"); default: those in /etc/resolv.conf. */
        servers: z.array(z.string().refine((s) => parseDnsServer(s) !== null, '"IP", "IP:PORT" or "[IPv6]:PORT"')).min(1).max(16).optional(),
        /** The hosts file consulted before DNS (hosts(5)); null: none. Default /etc/hosts. */
        hostsFile: z.string().min(1).nullable().default('/etc/hosts'),
      })
      .strict()
      .default({ hostsFile: '/etc/hosts' }),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        destinations: z.boolean().default(false),
      })
      .strict()
      .default({ level: 'info', destinations: false }),
    limits: limitsSchema.default({}),
  })
  .strict();

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

/** JSON Schema for editors (configs/bridge.schema.json is generated from this). */
export function bridgeJsonSchema(): unknown {
  return z.toJSONSchema(bridgeConfigSchema, { io: 'input' });
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
