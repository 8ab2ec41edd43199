import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveClientSettings, type ClientFlags, type ClientSettings } from '../../../src/config/client-settings.js';
import { LIMITS } from '../../../src/core/limits.js';
import { ROOT } from '../../helpers/proc.js';

const URI_A = 'postern://AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@a.example.org:443/p?pin=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const URI_B = 'postern://BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA@b.example.org:8443/q';
const URI_C = 'postern://AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8@127.0.0.1:8443/p?plain=1';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'postern-settings-'));

/** A config file with `fields` (and a bridge unless given), and an environment whose config folder is a fresh one. */
function setup(fields: Record<string, unknown> = {}): { file: string; env: NodeJS.ProcessEnv } {
  const dir = tmp();
  const file = path.join(dir, 'client.json');
  fs.writeFileSync(file, JSON.stringify({ bridges: [URI_A], ...fields }));
  return { file, env: { XDG_CONFIG_HOME: path.join(dir, 'xdg') } };
}

const resolve = (flags: ClientFlags, env: NodeJS.ProcessEnv = {}): ClientSettings => resolveClientSettings({ flags, env });

interface Row {
  /** The setting (a key of ClientSettings['origin']). */
  name: keyof ClientSettings['origin'];
  flag?: { flags: ClientFlags; want: unknown; from: string };
  env?: { env: NodeJS.ProcessEnv; want: unknown; from: string };
  file?: { fields: Record<string, unknown>; want: unknown; field: string };
  dflt: unknown;
  /** The value of the setting, in a form the rows compare. */
  get: (s: ClientSettings) => unknown;
}

const ROWS: Row[] = [
  {
    name: 'bridges',
    flag: { flags: { bridge: [URI_C, URI_B] }, want: ['127.0.0.1', 'b.example.org'], from: '--bridge' },
    env: { env: { POSTERN_BRIDGE: URI_B }, want: ['b.example.org'], from: '$POSTERN_BRIDGE' },
    file: { fields: { bridges: [URI_A, URI_B] }, want: ['a.example.org', 'b.example.org'], field: 'bridges' },
    dflt: ['a.example.org'],
    get: (s) => s.bridges.map((b) => b.host),
  },
  {
    name: 'listen',
    flag: { flags: { listen: '127.0.0.1:4000' }, want: 4000, from: '--listen' },
    env: { env: { POSTERN_LISTEN: '127.0.0.1:3000' }, want: 3000, from: '$POSTERN_LISTEN' },
    file: { fields: { listen: '127.0.0.1:2000' }, want: 2000, field: 'listen' },
    dflt: 1080,
    get: (s) => s.listen.port,
  },
  {
    name: 'logLevel',
    flag: { flags: { logLevel: 'error' }, want: 'error', from: '--log-level' },
    env: { env: { POSTERN_LOG_LEVEL: 'debug' }, want: 'debug', from: '$POSTERN_LOG_LEVEL' },
    file: { fields: { log: { level: 'warn' } }, want: 'warn', field: 'log.level' },
    dflt: 'info',
    get: (s) => s.logLevel,
  },
  {
    name: 'auth',
    flag: { flags: { user: 'xu', pass: 'xp' }, want: 'xu', from: '--user and --pass' },
    env: { env: { POSTERN_USER: 'eu', POSTERN_PASS: 'ep' }, want: 'eu', from: '$POSTERN_USER and $POSTERN_PASS' },
    file: { fields: { auth: { username: 'fu', password: 'fp' } }, want: 'fu', field: 'auth' },
    dflt: 'stored',
    get: (s) => (s.stored !== null ? 'stored' : s.auth?.username),
  },
  {
    name: 'exactReplies',
    flag: { flags: { exactReplies: true }, want: true, from: '--exact-replies' },
    env: { env: { POSTERN_EXACT_REPLIES: '0' }, want: false, from: '$POSTERN_EXACT_REPLIES' },
    file: { fields: { exactReplies: true }, want: true, field: 'exactReplies' },
    dflt: false,
    get: (s) => s.exactReplies,
  },
  {
    name: 'insecureOpenProxy',
    flag: { flags: { insecureOpenProxy: true }, want: true, from: '--insecure-open-proxy' },
    file: { fields: { insecureOpenProxy: false }, want: false, field: 'insecureOpenProxy' },
    dflt: false,
    get: (s) => s.insecureOpenProxy,
  },
  {
    name: 'connBudget',
    flag: { flags: { connBudget: 'off' }, want: { mode: 'off' }, from: '--conn-budget' },
    file: { fields: { connBudget: 20_000 }, want: { mode: 'fixed', bytes: 20_000 }, field: 'connBudget' },
    dflt: undefined,
    get: (s) => s.budget,
  },
  {
    name: 'socks',
    flag: { flags: { socks: ['127.0.0.1:1082'] }, want: [1082], from: '--socks' },
    file: { fields: { socks: ['127.0.0.1:1081', '127.0.0.1:1083'] }, want: [1081, 1083], field: 'socks' },
    dflt: [],
    get: (s) => s.socks.map((l) => l.port),
  },
  {
    name: 'http',
    flag: { flags: { http: ['127.0.0.1:8119'] }, want: [8119], from: '--http' },
    file: { fields: { http: ['127.0.0.1:8118'] }, want: [8118], field: 'http' },
    dflt: [],
    get: (s) => s.http.map((l) => l.port),
  },
  {
    name: 'forward',
    flag: { flags: { forward: ['6000=g.example:1'] }, want: [6000], from: '--forward' },
    file: { fields: { forward: ['5222=g.example:5222'] }, want: [5222], field: 'forward' },
    dflt: [],
    get: (s) => s.forwards.map((f) => f.listen.port),
  },
  {
    name: 'whatsapp',
    flag: { flags: { whatsapp: true }, want: ['chat', 'media'], from: '--whatsapp' },
    file: { fields: { whatsapp: false }, want: [], field: 'whatsapp' },
    dflt: [],
    get: (s) => s.whatsapp.map((w) => w.role),
  },
  {
    name: 'whatsappPorts',
    flag: { flags: { whatsapp: true, whatsappPorts: 'chat=5223,media=off' }, want: [5223], from: '--whatsapp-ports' },
    file: { fields: { whatsapp: true, whatsappPorts: 'chat=5224,media=off' }, want: [5224], field: 'whatsappPorts' },
    dflt: [],
    get: (s) => s.whatsapp.map((w) => w.listen.port),
  },
  {
    name: 'lan',
    flag: { flags: { lan: true }, want: '0.0.0.0', from: '--lan' },
    file: { fields: { lan: false }, want: '127.0.0.1', field: 'lan' },
    dflt: '127.0.0.1',
    get: (s) => s.listen.host,
  },
  { name: 'strategy', flag: { flags: { strategy: 'spread' }, want: 'spread', from: '--strategy' }, dflt: 'failover', get: (s) => s.strategy },
  {
    name: 'keepaliveMs',
    flag: { flags: { keepaliveMs: '4000' }, want: [4_000, 2_000], from: '--keepalive-ms' },
    dflt: [LIMITS.KEEPALIVE_TIMEOUT_MS, LIMITS.KEEPALIVE_INTERVAL_MS],
    get: (s) => [s.limits.KEEPALIVE_TIMEOUT_MS, s.limits.KEEPALIVE_INTERVAL_MS],
  },
  { name: 'resumeTimeoutMs', flag: { flags: { resumeTimeoutMs: '5000' }, want: 5_000, from: '--resume-timeout-ms' }, dflt: LIMITS.SESSION_RESUME_TIMEOUT_MS, get: (s) => s.limits.SESSION_RESUME_TIMEOUT_MS },
  { name: 'dialIntervalMs', flag: { flags: { dialIntervalMs: '500' }, want: 500, from: '--dial-interval-ms' }, dflt: LIMITS.DIAL_MIN_INTERVAL_MS, get: (s) => s.limits.DIAL_MIN_INTERVAL_MS },
  { name: 'dialBurst', flag: { flags: { dialBurst: '2' }, want: 2, from: '--dial-burst' }, dflt: LIMITS.DIAL_BURST_MAX, get: (s) => s.limits.DIAL_BURST_MAX },
  { name: 'rotateBytes', flag: { flags: { rotateBytes: '1048576' }, want: 1_048_576, from: '--rotate-bytes' }, dflt: 0, get: (s) => s.rotate.bytes },
  { name: 'rotateMs', flag: { flags: { rotateMs: '60000' }, want: 60_000, from: '--rotate-ms' }, dflt: 0, get: (s) => s.rotate.ms },
];

describe('client settings: one pipeline, flag > environment > file > default', () => {
  it('covers every setting whose origin it records', async () => {
    const { CLIENT_SETTING_NAMES } = await import('../../../src/config/client-settings.js');
    expect(ROWS.map((r) => r.name).sort()).toEqual(CLIENT_SETTING_NAMES.filter((n) => n !== 'configFile').sort());
  });

  it.each(ROWS.map((r) => [r.name, r] as const))('%s: each level overrides the ones below it, and the origin says which', (_name, row) => {
    const { file, env } = setup(row.file?.fields ?? {});
    const levels: Array<{ flags: ClientFlags; env: NodeJS.ProcessEnv; want: unknown; from: string }> = [];
    const allFlags = row.flag?.flags ?? {};
    const allEnv = { ...env, ...(row.env?.env ?? {}) };
    if (row.flag) levels.push({ flags: { config: file, ...allFlags }, env: allEnv, want: row.flag.want, from: row.flag.from });
    if (row.env) levels.push({ flags: { config: file }, env: allEnv, want: row.env.want, from: row.env.from });
    if (row.file) levels.push({ flags: { config: file }, env, want: row.file.want, from: `${file}: ${row.file.field}` });
    // Without the file's field: the default.
    const { file: bare, env: bareEnv } = setup();
    levels.push({ flags: { config: bare }, env: bareEnv, want: row.dflt, from: row.name === 'bridges' ? `${bare}: bridges` : 'default' });
    for (const l of levels) {
      const s = resolveClientSettings({ flags: l.flags, env: l.env });
      expect(row.get(s), `${row.name} from ${l.from}`).toEqual(l.want);
      if (row.name !== 'auth' || l.from !== 'default') expect(s.origin[row.name]).toBe(l.from);
    }
  });

  it('takes the config file from --config, then $POSTERN_CONFIG, then $XDG_CONFIG_HOME/postern/client.json', () => {
    const a = setup({ listen: '127.0.0.1:2001' });
    const b = setup({ listen: '127.0.0.1:2002' });
    const home = tmp();
    fs.mkdirSync(path.join(home, 'postern'));
    fs.writeFileSync(path.join(home, 'postern/client.json'), JSON.stringify({ bridges: [URI_A], listen: '127.0.0.1:2003' }));
    const env = { XDG_CONFIG_HOME: home };
    expect(resolve({ config: a.file }, { ...env, POSTERN_CONFIG: b.file }).listen.port).toBe(2001);
    expect(resolve({}, { ...env, POSTERN_CONFIG: b.file }).listen.port).toBe(2002);
    const s = resolve({}, env);
    expect([s.listen.port, s.origin.configFile, s.configFile]).toEqual([2003, 'default', path.join(home, 'postern/client.json')]);
    expect(() => resolve({}, { XDG_CONFIG_HOME: tmp() })).toThrow(/no bridge/);
  });
});

describe('client settings: errors name the flag, variable or file field', () => {
  it.each<[string, ClientFlags, NodeJS.ProcessEnv, Record<string, unknown> | null, string]>([
    ['listen from the environment', {}, { POSTERN_LISTEN: 'nope' }, {}, '$POSTERN_LISTEN: expected HOST:PORT, got "nope"'],
    ['listen from the flag', { listen: 'x' }, {}, {}, '--listen: expected HOST:PORT, got "x"'],
    ['log level from the environment', {}, { POSTERN_LOG_LEVEL: 'loud' }, {}, '$POSTERN_LOG_LEVEL: expected one of'],
    ['a half pair', {}, { POSTERN_USER: 'u' }, {}, '$POSTERN_USER and $POSTERN_PASS go together'],
    ['exact replies', {}, { POSTERN_EXACT_REPLIES: 'yes' }, {}, '$POSTERN_EXACT_REPLIES: expected 1 or 0, got "yes"'],
    ['a second --bridge', { bridge: [URI_C, 'postern://nope'] }, {}, {}, '--bridge #2: '],
    ['a bad bridge in the file', {}, {}, { bridges: [URI_A, 'http://x'] }, ': bridges[1]'],
    ['keepalive out of bounds', { keepaliveMs: '500' }, {}, {}, '--keepalive-ms: expected an integer in'],
    ['resume timeout', { resumeTimeoutMs: 'x' }, {}, {}, '--resume-timeout-ms'],
    ['strategy', { strategy: 'random' }, {}, {}, '--strategy: expected failover or spread, got "random"'],
    ['rotate bytes', { rotateBytes: '10' }, {}, {}, '--rotate-bytes: expected an integer ≥ 65536'],
    ['conn budget', { connBudget: '12' }, {}, {}, '--conn-budget: expected auto, off (or 0), a byte count'],
    ['conn budget counting something else', { connBudget: 'up:16k' }, {}, {}, '(both:16k), got "up:16k"'],
    ['conn budget in the file', {}, {}, { connBudget: 'both:1k' }, 'connBudget'],
    ['--socks', { socks: ['nowhere'] }, {}, {}, '--socks: expected HOST:PORT, got "nowhere"'],
    ['--forward', { forward: ['9000'] }, {}, {}, '--forward: expected [HOST:]PORT=HOST:PORT, got "9000"'],
    ['--lan with an open proxy from the file', { lan: true }, {}, { insecureOpenProxy: true }, '--lan never runs an open proxy: drop "insecureOpenProxy" from'],
    ['--lan with --no-auth', { lan: true, auth: false }, {}, {}, '--no-auth is for loopback listeners only; --lan always asks'],
    ['--no-auth with a pair from the file', { auth: false }, {}, { auth: { username: 'u', password: 'p' } }, '--no-auth conflicts with the username and password given ('],
    ['--no-auth off loopback', { auth: false, listen: '0.0.0.0:1' }, {}, {}, '--no-auth is for loopback listeners only, and 0.0.0.0:1 is not loopback'],
    ['--new-credentials with a pair', { newCredentials: true, user: 'u', pass: 'p' }, {}, {}, '--new-credentials: the username and password are given (--user and --pass)'],
    ['--whatsapp-ports alone', { whatsappPorts: 'chat=1' }, {}, {}, '--whatsapp-ports and --whatsapp-target go with --whatsapp'],
    ['a WhatsApp port off loopback without --lan', { whatsapp: true, listen: '0.0.0.0:0' }, {}, {}, 'whatsapp chat on 0.0.0.0:5222: a forward or WhatsApp port has no password'],
    ['no bridge anywhere', {}, {}, null, 'no bridge: pass --bridge URI'],
  ])('%s', (_what, flags, env, fields, message) => {
    const base = setup(fields ?? {});
    const config = fields === null ? {} : { config: base.file };
    expect(() => resolveClientSettings({ flags: { ...config, ...flags }, env: { ...base.env, ...env } })).toThrow(message);
  });
});

describe('client settings: a connection budget counting both directions', () => {
  it('reads both:BYTES (and KiB with k) from the flag and from the file', () => {
    const base = setup({ connBudget: 'both:20k' });
    expect(resolve({ config: base.file }, base.env).budget).toEqual({ mode: 'fixed', bytes: 20_480, counts: 'both' });
    expect(resolve({ config: base.file, connBudget: '16k' }, base.env).budget).toEqual({ mode: 'fixed', bytes: 16_384 });
    expect(resolve({ config: base.file, connBudget: 'both:16384' }, base.env).budget).toEqual({ mode: 'fixed', bytes: 16_384, counts: 'both' });
  });
});

describe('client settings: --lan, --no-auth and the stored pair', () => {
  it('--lan listens on 0.0.0.0 unless a listen address is given, and puts the WhatsApp ports on the same host', () => {
    const { file, env } = setup();
    const s = resolve({ config: file, lan: true, whatsapp: true }, env);
    expect(s.listen).toEqual({ host: '0.0.0.0', port: 1080 });
    expect(s.whatsapp.map((w) => [w.name, w.listen.host, w.listen.port, w.tls])).toEqual([
      ['whatsapp chat', '0.0.0.0', 5222, false],
      ['whatsapp media', '0.0.0.0', 7777, false],
    ]);
    expect(resolve({ config: file, lan: true, listen: '127.0.0.1:9' }, env).listen).toEqual({ host: '127.0.0.1', port: 9 });
  });

  it('the stored pair is made once under $XDG_CONFIG_HOME/postern and kept; --no-auth reads nothing', () => {
    const { file, env } = setup();
    const first = resolve({ config: file }, env);
    expect(first.stored?.created).toBe(true);
    expect(first.origin.auth).toBe(path.join(env.XDG_CONFIG_HOME as string, 'postern/local-proxy.json'));
    const again = resolve({ config: file }, env);
    expect(again.auth).toEqual(first.auth);
    expect(again.stored?.created).toBe(false);
    const open = resolve({ config: file, auth: false }, env);
    expect([open.auth, open.stored, open.origin.auth]).toEqual([null, null, '--no-auth']);
    expect(resolve({ config: file, newCredentials: true }, env).auth).not.toEqual(first.auth);
  });

  it('--explain needs neither a bridge nor credentials', () => {
    const home = tmp();
    const s = resolveClientSettings({ flags: { route: 'messaging-only' }, env: { XDG_CONFIG_HOME: home } }, { forExplain: true });
    expect([s.bridges, s.stored, s.auth]).toEqual([[], null, null]);
    expect(fs.existsSync(path.join(home, 'postern'))).toBe(false);
  });
});

describe('layers: config/ stands on core/ (and the pure parsers of route/ and transport/uri)', () => {
  it('no file in src/config imports from client/, decoy/, cli/, bridge/ or any other folder above it', () => {
    const dir = path.join(ROOT, 'src/config');
    const bad: string[] = [];
    for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
      const text = fs.readFileSync(path.join(dir, f), 'utf8');
      for (const m of text.matchAll(/from '(\.\.\/[^']+)'/g)) {
        const target = m[1] as string;
        if (!/^\.\.\/(core|route)\//.test(target) && target !== '../transport/uri.js') bad.push(`${f} → ${target}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
