import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { clientJsonSchema, loadClientConfig, resolveClientSettings, validateClientConfig } from '../../../src/config/client.js';

const EXAMPLE = new URL('../../../configs/client.example.json', import.meta.url).pathname;
const URI_A = 'postern://AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@a.example.org:443/p?pin=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const URI_B = 'postern://BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA@b.example.org:8443/q';

describe('client config file', () => {
  it('loads the example in configs/', () => {
    const c = loadClientConfig(EXAMPLE);
    expect(c.bridges).toHaveLength(1);
    expect(c.listen).toBe('127.0.0.1:1080');
  });

  it('matches the committed JSON Schema in configs/client.schema.json', () => {
    const committed = JSON.parse(fs.readFileSync(new URL('../../../configs/client.schema.json', import.meta.url), 'utf8'));
    expect(committed).toEqual(JSON.parse(JSON.stringify(clientJsonSchema())));
  });

  it.each([
    [{ bridges: [URI_A], listen: 1080 }, 'f.json: listen: '],
    [{ bridges: [URI_A], colour: 'red' }, 'f.json: colour: unknown field'],
    [{ bridges: [URI_A], log: { level: 'loud' } }, 'f.json: log.level: '],
    [{ bridges: ['http://x'] }, 'f.json: bridges[0]: a postern:// share URI (invalid bridge URI: scheme must be postern://)'],
    [{ bridges: [] }, 'f.json: bridges: at least one share URI'],
    [{ bridges: [URI_A], auth: { username: 'u' } }, 'f.json: auth.password: '],
    [{ bridges: Array(17).fill(URI_A) }, 'f.json: bridges: at most 16 share URIs'],
    [{ bridges: [URI_A], socks: ['nowhere'] }, 'f.json: socks[0]: HOST:PORT'],
    [{ bridges: [URI_A], http: ['127.0.0.1:1', 'x:'] }, 'f.json: http[1]: HOST:PORT'],
    [{ bridges: [URI_A], forward: ['8080=127.0.0.1:80', '9000'] }, 'f.json: forward[1]: expected [HOST:]PORT=HOST:PORT, got "9000"'],
    [{ bridges: [URI_A], forward: ['9000=example.org'] }, 'f.json: forward[0]: expected HOST:PORT after "=", got "example.org"'],
    [{ bridges: [URI_A], whatsapp: true, whatsappPorts: 'chat=99999' }, 'f.json: whatsappPorts: e.g. "chat-tls=443,chat=5222,media=587" (bad port "99999" for chat)'],
    [{ bridges: [URI_A], whatsapp: true, whatsappPorts: 'voice=1' }, 'unknown role "voice"'],
    [{ bridges: [URI_A], whatsappPorts: 'chat=5222' }, 'f.json: whatsappPorts: goes with "whatsapp": true'],
    [{ bridges: [URI_A], lan: 'yes' }, 'f.json: lan: '],
  ])('names the file and field (case %#)', (raw, msg) => {
    expect(() => validateClientConfig(raw, 'f.json')).toThrow(msg);
  });
});

describe('client settings: listeners from the file', () => {
  it('hands the file\'s listener fields on, and says whether listen was given', () => {
    const f = `${fs.mkdtempSync('/tmp/postern-cfg-')}/client.json`;
    const listeners = { socks: ['127.0.0.1:1081'], http: ['127.0.0.1:8118'], forward: ['5222=g.example:5222'], whatsapp: true, whatsappPorts: 'chat=5223', lan: true };
    fs.writeFileSync(f, JSON.stringify({ bridges: [URI_A], ...listeners }));
    const s = resolveClientSettings({ config: f }, {});
    expect(s.fileListeners).toEqual(listeners);
    expect(s.listenGiven).toBe(false);
    expect(resolveClientSettings({ config: f, listen: '127.0.0.1:1080' }, {}).listenGiven).toBe(true);
    expect(resolveClientSettings({ config: f }, { POSTERN_LISTEN: '127.0.0.1:9' }).listenGiven).toBe(true);
    fs.writeFileSync(f, JSON.stringify({ bridges: [URI_A], listen: '127.0.0.1:1080' }));
    const plain = resolveClientSettings({ config: f }, {});
    expect(plain.listenGiven).toBe(true);
    expect(plain.fileListeners).toEqual({});
  });
});

describe('client settings: several bridges', () => {
  it('keeps every bridge of the file in priority order, and a flag replaces them all', () => {
    const f = `${fs.mkdtempSync('/tmp/postern-cfg-')}/client.json`;
    fs.writeFileSync(f, JSON.stringify({ bridges: [URI_A, URI_B] }));
    const fromFile = resolveClientSettings({ config: f }, {});
    expect(fromFile.bridges.map((b) => b.host)).toEqual(['a.example.org', 'b.example.org']);
    expect(fromFile.bridge.host).toBe('a.example.org');
    const fromFlag = resolveClientSettings({ config: f, bridge: URI_B }, {});
    expect(fromFlag.bridges.map((b) => b.host)).toEqual(['b.example.org']);
  });

  it('names the index of a bad bridge in the file', () => {
    const f = `${fs.mkdtempSync('/tmp/postern-cfg-')}/client.json`;
    fs.writeFileSync(f, JSON.stringify({ bridges: [URI_A, 'http://x'] }));
    expect(() => resolveClientSettings({ config: f }, {})).toThrow(`${f}: bridges[1]`);
  });
});

describe('client settings precedence: flags > environment > file > defaults', () => {
  const file = (): string => {
    const f = `${fs.mkdtempSync('/tmp/postern-cfg-')}/client.json`;
    fs.writeFileSync(f, JSON.stringify({ bridges: [URI_A], listen: '127.0.0.1:2000', log: { level: 'warn' }, auth: { username: 'fu', password: 'fp' } }));
    return f;
  };

  it('takes the file over the defaults', () => {
    const s = resolveClientSettings({ config: file() }, {});
    expect(s.bridge.host).toBe('a.example.org');
    expect(s.listen).toEqual({ host: '127.0.0.1', port: 2000 });
    expect(s.logLevel).toBe('warn');
    expect(s.auth).toEqual({ username: 'fu', password: 'fp' });
  });

  it('takes the environment over the file, and flags over both', () => {
    const env = { POSTERN_BRIDGE: URI_B, POSTERN_LISTEN: '127.0.0.1:3000', POSTERN_LOG_LEVEL: 'debug', POSTERN_USER: 'eu', POSTERN_PASS: 'ep' };
    const s = resolveClientSettings({ config: file() }, env);
    expect([s.bridge.host, s.listen.port, s.logLevel, s.auth?.username]).toEqual(['b.example.org', 3000, 'debug', 'eu']);
    const f = resolveClientSettings({ config: file(), bridge: URI_A, listen: '127.0.0.1:4000', logLevel: 'error', user: 'xu', pass: 'xp' }, env);
    expect([f.bridge.host, f.listen.port, f.logLevel, f.auth?.username]).toEqual(['a.example.org', 4000, 'error', 'xu']);
  });

  it('uses defaults and $POSTERN_CONFIG, and names the variable of a bad value', () => {
    const s = resolveClientSettings({ bridge: URI_A }, {});
    expect([s.listen.port, s.logLevel, s.auth]).toEqual([1080, 'info', null]);
    expect(resolveClientSettings({}, { POSTERN_CONFIG: file() }).listen.port).toBe(2000);
    expect(() => resolveClientSettings({ bridge: URI_A }, { POSTERN_LISTEN: 'nope' })).toThrow('$POSTERN_LISTEN: expected HOST:PORT, got "nope"');
    expect(() => resolveClientSettings({}, {})).toThrow('no bridge');
    expect(() => resolveClientSettings({ bridge: URI_A }, { POSTERN_USER: 'u' })).toThrow('$POSTERN_USER and $POSTERN_PASS go together');
  });
});

describe('the default client config file', () => {
  it('is read from $XDG_CONFIG_HOME/postern/client.json when present, and loses to --config and $POSTERN_CONFIG', async () => {
    const os = await import('node:os');
    const path = await import('node:path');
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-xdg-'));
    expect(() => resolveClientSettings({}, { XDG_CONFIG_HOME: home })).toThrow(/no bridge/);
    fs.mkdirSync(path.join(home, 'postern'));
    const file = path.join(home, 'postern/client.json');
    fs.writeFileSync(file, JSON.stringify({ bridges: [URI_A], listen: '127.0.0.1:1090' }));
    const s = resolveClientSettings({}, { XDG_CONFIG_HOME: home });
    expect(s.bridge.host).toBe('a.example.org');
    expect(s.listen.port).toBe(1090);
    const other = path.join(home, 'other.json');
    fs.writeFileSync(other, JSON.stringify({ bridges: [URI_B] }));
    expect(resolveClientSettings({ config: other }, { XDG_CONFIG_HOME: home }).bridge.host).toBe('b.example.org');
    expect(resolveClientSettings({}, { XDG_CONFIG_HOME: home, POSTERN_CONFIG: other }).bridge.host).toBe('b.example.org');
    // Without XDG_CONFIG_HOME it is $HOME/.config/postern/client.json.
    fs.mkdirSync(path.join(home, 'h/.config/postern'), { recursive: true });
    fs.copyFileSync(other, path.join(home, 'h/.config/postern/client.json'));
    expect(resolveClientSettings({}, { HOME: path.join(home, 'h') }).bridge.host).toBe('b.example.org');
  });
});

describe('client settings: exact replies (issue 12)', () => {
  it('is off by default; the flag, POSTERN_EXACT_REPLIES=1 or "exactReplies": true turn it on; the variable overrides the file', () => {
    const f = `${fs.mkdtempSync('/tmp/postern-cfg-')}/client.json`;
    fs.writeFileSync(f, JSON.stringify({ bridges: [URI_A] }));
    expect(resolveClientSettings({ config: f }, {}).exactReplies).toBe(false);
    expect(resolveClientSettings({ config: f, exactReplies: true }, {}).exactReplies).toBe(true);
    expect(resolveClientSettings({ config: f }, { POSTERN_EXACT_REPLIES: '1' }).exactReplies).toBe(true);
    fs.writeFileSync(f, JSON.stringify({ bridges: [URI_A], exactReplies: true }));
    expect(resolveClientSettings({ config: f }, {}).exactReplies).toBe(true);
    expect(resolveClientSettings({ config: f }, { POSTERN_EXACT_REPLIES: '0' }).exactReplies).toBe(false);
  });

  it('names the variable and what it takes when POSTERN_EXACT_REPLIES is neither 1 nor 0', () => {
    expect(() => resolveClientSettings({ bridge: URI_A }, { POSTERN_EXACT_REPLIES: 'yes' })).toThrow('$POSTERN_EXACT_REPLIES: expected 1 or 0, got "yes"');
  });
});
