import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parseHostPort } from '../core/address.js';
import { PosternError } from '../core/errors.js';
import { LIMITS, LIMIT_BOUNDS, defaultLimits, type LimitName, type Limits } from '../core/limits.js';

const BASE64URL = /^[A-Za-z0-9_-]+$/;

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
    name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, ".", "_" or "-", 1 to 64 of them'),
    secret: z
      .string()
      .regex(BASE64URL, 'base64url characters only')
      .refine((s) => {
        const n = Buffer.from(s, 'base64url').length;
        return n >= 16 && n <= 64;
      }, '16 to 64 bytes, base64url-encoded'),
  })
  .strict();

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
    users: z.array(userSchema).min(1).max(10_000),
    allowPrivate: z.boolean().default(false),
    /** Fixed name → addresses answers, consulted before DNS. */
    hosts: z.record(z.string(), z.array(z.string().refine((s) => /^[0-9a-fA-F:.]+$/.test(s), 'an IP address')).min(1)).default({}),
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
  readonly users: ReadonlyArray<{ readonly name: string; readonly secret: Buffer }>;
  readonly allowPrivate: boolean;
  readonly hosts: Readonly<Record<string, string[]>>;
  readonly log: { readonly level: string; readonly destinations: boolean };
  readonly limits: Limits;
}

function configError(file: string, field: string, message: string): PosternError {
  return new PosternError('E_CONFIG', `${file}: ${field ? `${field}: ` : ''}${message}`);
}

function fieldPath(p: ReadonlyArray<PropertyKey>): string {
  return p.map((x) => (typeof x === 'number' ? `[${x}]` : `.${String(x)}`)).join('').replace(/^\./, '');
}

/** Validates a parsed JSON value; errors name the file, the field path and what was expected. */
export function validateBridgeConfig(raw: unknown, file: string): BridgeConfig {
  const parsed = bridgeConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    let field = fieldPath(issue.path);
    if (issue.code === 'unrecognized_keys') field = fieldPath([...issue.path, issue.keys[0] ?? '']);
    const message = issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message;
    throw configError(file, field, message);
  }
  const c = parsed.data;
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
    const read = (f: string, field: string) => {
      try {
        return fs.readFileSync(f, 'utf8');
      } catch (err) {
        throw configError(file, field, `cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    };
    tls = { certFile, keyFile, certPem: read(certFile, 'tls.cert'), keyPem: read(keyFile, 'tls.key') };
  }
  const limits = defaultLimits(c.limits as Partial<Limits>);
  return {
    file: path.resolve(file),
    listen,
    path: c.path,
    publicHost: c.publicHost,
    publicPort: c.publicPort ?? listen.port,
    tls,
    users: c.users.map((u) => ({ name: u.name, secret: Buffer.from(u.secret, 'base64url') })),
    allowPrivate: c.allowPrivate,
    hosts: c.hosts,
    log: c.log,
    limits,
  };
}

export function loadBridgeConfig(file: string): BridgeConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw configError(file, '', `cannot read config file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw configError(file, '', `not valid JSON (${(err as Error).message})`);
  }
  return validateBridgeConfig(raw, file);
}

/** JSON Schema for editors (configs/bridge.schema.json is generated from this). */
export function bridgeJsonSchema(): unknown {
  return z.toJSONSchema(bridgeConfigSchema, { io: 'input' });
}
