import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bridgeJsonSchema } from '../../../src/config/json-schema.js';
import { loadBridgeConfig, resolveBridgeSettings, validateBridgeConfig } from '../../../src/config/bridge.js';
import { LIMITS } from '../../../src/core/limits.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-config-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const good = {
  listen: '127.0.0.1:8443',
  path: '/abc',
  publicHost: 'localhost',
  tls: null,
  users: [{ name: 'alice', secret: Buffer.alloc(32, 7).toString('base64url') }],
};

function write(name: string, value: unknown): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, typeof value === 'string' ? value : JSON.stringify(value));
  return f;
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return 'no error';
}

describe('bridge config', () => {
  it('loads a minimal config and fills defaults', () => {
    const c = loadBridgeConfig(write('ok.json', good));
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(c.publicPort).toBe(8443);
    expect(c.allowPrivate).toBe(false);
    expect(c.limits).toEqual(LIMITS);
    expect(c.users[0]!.secret).toEqual(Buffer.alloc(32, 7));
  });

  it('names the file and the field for a wrong type', () => {
    const f = write('type.json', { ...good, allowPrivate: 'yes' });
    expect(errorOf(() => loadBridgeConfig(f))).toMatch(new RegExp(`${f.replace(/[.]/g, '\\.')}: allowPrivate: .*boolean`));
  });

  it('names the file and the field for an unknown field', () => {
    const f = write('unknown.json', { ...good, users: [{ ...good.users[0], pasword: 'x' }] });
    expect(errorOf(() => loadBridgeConfig(f))).toContain(`${f}: users[0].pasword: unknown field`);
  });

  it('names the file for a missing file and for invalid JSON', () => {
    const missing = path.join(dir, 'nope.json');
    expect(errorOf(() => loadBridgeConfig(missing))).toContain(`${missing}: cannot read config file (ENOENT)`);
    const bad = write('bad.json', '{ "listen": ');
    expect(errorOf(() => loadBridgeConfig(bad))).toContain(`${bad}: not valid JSON`);
  });

  it('refuses a limit outside its checked bounds, naming the limit', () => {
    const f = write('limit.json', { ...good, limits: { STREAM_WINDOW_BYTES: 1 } });
    expect(errorOf(() => loadBridgeConfig(f))).toMatch(/limits\.STREAM_WINDOW_BYTES: .*65536/);
  });

  it('refuses a short secret and a duplicate user', () => {
    expect(errorOf(() => validateBridgeConfig({ ...good, users: [{ name: 'a', secret: 'abcd' }] }, 'x.json'))).toContain(
      'x.json: users[0].secret: 16 to 64 bytes',
    );
    expect(errorOf(() => validateBridgeConfig({ ...good, users: [good.users[0], good.users[0]] }, 'x.json'))).toContain('duplicate user');
  });

  it('names the certificate field when the certificate cannot be read', () => {
    const f = write('tls.json', { ...good, tls: { cert: 'missing-cert.pem', key: 'missing-key.pem' } });
    expect(errorOf(() => loadBridgeConfig(f))).toContain(`${f}: tls.cert: cannot read ${path.join(dir, 'missing-cert.pem')}: ENOENT`);
  });

  it('accepts the example config in configs/ apart from its placeholder files', () => {
    const example = JSON.parse(fs.readFileSync(new URL('../../../configs/bridge.example.json', import.meta.url), 'utf8'));
    expect(() => validateBridgeConfig({ ...example, tls: null }, 'configs/bridge.example.json')).not.toThrow();
  });

  it('matches the committed JSON Schema in configs/bridge.schema.json', () => {
    const committed = JSON.parse(fs.readFileSync(new URL('../../../configs/bridge.schema.json', import.meta.url), 'utf8'));
    expect(committed).toEqual(bridgeJsonSchema());
  });
});

describe('bridge config: egress, admin and per-user caps', () => {
  it('defaults to open egress, no admin listener, no caps', () => {
    const c = validateBridgeConfig(good, 'x.json');
    expect(c.egress).toEqual({ allowPorts: null, denyPorts: [], allowRanges: [], allowOnly: null });
    expect(c.admin).toBeNull();
    expect(c.users[0]!.maxBytesPerSecond).toBeUndefined();
  });

  it('reads port lists, ranges, the allow-list and a per-user cap', () => {
    const c = validateBridgeConfig(
      {
        ...good,
        users: [{ ...good.users[0], maxBytesPerSecond: 1048576 }],
        egress: { allowPorts: [443, '5222-5223'], denyPorts: [25], allowRanges: ['10.1.0.0/16', 'fd00::/8'], allowOnly: { presets: ['messaging'] } },
        admin: {},
      },
      'x.json',
    );
    expect(c.users[0]!.maxBytesPerSecond).toBe(1048576);
    expect(c.egress.allowPorts).toEqual([443, '5222-5223']);
    expect(c.egress.allowOnly).toEqual({ presets: ['messaging'], domains: [], ranges: [] });
    expect(c.admin).toEqual({ host: '127.0.0.1', port: 9090 });
  });

  it.each([
    [{ egress: { allowRanges: ['10.0.0.0/40'] } }, 'egress.allowRanges[0]: a CIDR range'],
    [{ egress: { denyPorts: ['9-1'] } }, 'egress.denyPorts[0]'],
    [{ egress: { allowOnly: { presets: ['everything'] } } }, 'egress.allowOnly.presets[0]'],
    [{ egress: { allowOnly: { domains: ['bad domain'] } } }, 'egress.allowOnly.domains[0]'],
    [{ egress: { allowPort: [1] } }, 'egress.allowPort: unknown field'],
    [{ admin: { listen: '0.0.0.0:9090' } }, 'admin.listen: not a loopback address'],
    [{ admin: { listen: '127.0.0.1:8443' } }, 'admin.listen: must not share the public port'],
    [{ users: [{ ...good.users[0], maxBytesPerSecond: -1 }] }, 'users[0].maxBytesPerSecond'],
    [{ limits: { STREAM_IDLE_TIMEOUT_MS: 10 } }, 'limits.STREAM_IDLE_TIMEOUT_MS'],
    [{ limits: { EGRESS_DNS_MAX_CONCURRENT: 0 } }, 'limits.EGRESS_DNS_MAX_CONCURRENT'],
  ])('refuses %j naming the field', (over, msg) => {
    expect(errorOf(() => validateBridgeConfig({ ...good, ...over }, 'x.json'))).toContain(msg);
  });

  it('allows a non-loopback admin address only when asked to', () => {
    const c = validateBridgeConfig({ ...good, admin: { listen: '0.0.0.0:9090', allowNonLoopback: true } }, 'x.json');
    expect(c.admin).toEqual({ host: '0.0.0.0', port: 9090 });
  });
});

describe('bridge settings: flag > file > default, resolved once (resolveBridgeSettings)', () => {
  it.each([
    ['listen', { listen: '127.0.0.1:9000' }, { listen: '127.0.0.1:9001' }, (s: ReturnType<typeof resolveBridgeSettings>) => s.config.listen.port, 9000, 9001, null],
    ['allowPrivate', { allowPrivate: true }, { allowPrivate: false }, (s: ReturnType<typeof resolveBridgeSettings>) => s.config.allowPrivate, true, false, false],
    ['log level', { logLevel: 'debug' }, { log: { level: 'warn' } }, (s: ReturnType<typeof resolveBridgeSettings>) => s.logLevel, 'debug', 'warn', 'info'],
  ] as const)('%s', (_name, flags, fields, get, fromFlag, fromFile, dflt) => {
    const withField = write(`b-${_name}-1.json`, { ...good, ...fields });
    expect(get(resolveBridgeSettings({ config: withField, ...flags }))).toEqual(fromFlag);
    expect(get(resolveBridgeSettings({ config: withField }))).toEqual(fromFile);
    if (dflt !== null) expect(get(resolveBridgeSettings({ config: write(`b-${_name}-2.json`, good) }))).toEqual(dflt);
  });

  it('--plain drops TLS on loopback only, and names the flags of a bad value', () => {
    const f = write('b-plain.json', { ...good, listen: '0.0.0.0:8443' });
    expect(() => resolveBridgeSettings({ config: f, plain: true })).toThrow('--plain: refusing to listen on 0.0.0.0 without TLS');
    expect(resolveBridgeSettings({ config: f, plain: true, listen: '127.0.0.1:8080' }).config.tls).toBeNull();
    expect(resolveBridgeSettings({ config: f, plain: true, insecurePlainListen: true }).config.tls).toBeNull();
    expect(() => resolveBridgeSettings({ config: f, listen: 'nope' })).toThrow('--listen: expected HOST:PORT, got "nope"');
  });
});
