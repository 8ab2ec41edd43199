import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { curl, freePort, run } from '../helpers/ops.js';
import { Postern, stopAll, tempDir } from '../helpers/proc.js';
import { httpServer, type Local } from '../helpers/servers.js';
import { init, startBridge, withPort } from '../helpers/stack.js';

let web: Local<import('node:http').Server>;
beforeAll(async () => {
  web = await httpServer();
});
afterEach(stopAll);
afterAll(async () => {
  await web?.close();
});

const URI = 'postern://AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@127.0.0.1:1/p?pin=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

function write(raw: unknown): string {
  const f = path.join(tempDir(), 'client.json');
  fs.writeFileSync(f, typeof raw === 'string' ? raw : JSON.stringify(raw));
  return f;
}

describe('postern client --config', () => {
  it.each([
    ['a wrong type', { bridges: [URI], listen: 1080 }, 'listen: Invalid input: expected string, received number'],
    ['an unknown field', { bridges: [URI], sock: ['127.0.0.1:1080'] }, 'sock: unknown field'],
    ['a listener list given as a string', { bridges: [URI], socks: '127.0.0.1:1080' }, 'socks: Invalid input: expected array, received string'],
    ['a bad forward', { bridges: [URI], forward: ['8080:127.0.0.1:80'] }, 'forward[0]: expected [HOST:]PORT=HOST:PORT, got "8080:127.0.0.1:80"'],
    ['a bad share link', { bridges: ['postern://x@y'] }, 'bridges[0]: a postern:// share URI'],
  ])('exits 78 (EX_CONFIG) naming the file and the field for %s', async (_what, raw, msg) => {
    const f = write(raw);
    const r = await run(['client', '--config', f]);
    expect(r.code).toBe(78);
    expect(r.stderr.trim()).toBe(`postern: E_CONFIG: invalid configuration: ${f}: ${r.stderr.includes('bridges[0]') ? r.stderr.trim().split(`${f}: `)[1] : msg}`);
    expect(r.stderr).toContain(`${f}: ${msg}`);
  });

  it('exits 78 naming a missing file and invalid JSON', async () => {
    const missing = path.join(tempDir(), 'nope.json');
    const r = await run(['client', '--config', missing]);
    expect(r.code).toBe(78);
    expect(r.stderr.trim()).toBe(`postern: E_CONFIG: invalid configuration: ${missing}: cannot read config file (ENOENT)`);
    const viaEnv = await run(['client'], { POSTERN_CONFIG: missing });
    expect(viaEnv.stderr).toContain(`${missing}: cannot read config file (ENOENT)`);
    const bad = write('{ "bridges": [');
    const j = await run(['client', '--config', bad]);
    expect(j.stderr).toContain(`${bad}: not valid JSON`);
  });

  it('loads the example client config in configs/ (its placeholder link parses)', async () => {
    const example = path.resolve('configs/client.example.json');
    const c = new Postern(['client', '--config', example, '--listen', '127.0.0.1:0']);
    expect(await c.listening('socks')).toBeGreaterThan(0);
  });

  it('takes forwards and extra listeners from the file; a flag replaces the file\'s list', async () => {
    const { config, uri } = await init();
    const { port: bport } = await startBridge(config);
    const [pf, ph, pf2] = [await freePort(), await freePort(), await freePort()];
    const f = write({ bridges: [withPort(uri, bport)], listen: '127.0.0.1:0', forward: [`127.0.0.1:${pf}=127.0.0.1:${web.port}`], http: [`127.0.0.1:${ph}`] });
    const c = new Postern(['client', '--config', f, '--no-auth']);
    await c.listening('socks');
    await c.waitFor((l) => l.msg === 'listening' && l.role === 'forward' && l.port === pf, 10_000, 'forward listening');
    await c.waitFor((l) => l.msg === 'listening' && l.role === 'http' && l.port === ph, 10_000, 'http listening');
    const viaForward = await curl([`http://127.0.0.1:${pf}/page`]);
    expect(viaForward.stdout, viaForward.stderr).toContain('hello through postern');
    const viaHttp = await curl(['-x', `http://127.0.0.1:${ph}`, `http://127.0.0.1:${web.port}/page`]);
    expect(viaHttp.stdout, viaHttp.stderr).toContain('hello through postern');
    await c.stop();

    const flag = new Postern(['client', '--config', f, '--no-auth', '--forward', `127.0.0.1:${pf2}=127.0.0.1:${web.port}`]);
    await flag.waitFor((l) => l.msg === 'listening' && l.role === 'forward' && l.port === pf2, 10_000, 'the flag\'s forward');
    expect(flag.lines.some((l) => l.msg === 'listening' && l.role === 'forward' && l.port === pf)).toBe(false);
  });

  it('runs from a config file, with the environment overriding the file and a flag overriding both', async () => {
    const { config, uri } = await init();
    const { port: bport } = await startBridge(config);
    const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
    const f = write({ $schema: '../configs/client.schema.json', bridges: [withPort(uri, bport)], listen: `127.0.0.1:${p1}`, log: { level: 'info' } });

    const fromFile = new Postern(['client', '--config', f, '--no-auth']);
    expect(await fromFile.listening('socks')).toBe(p1);
    const got = await curl(['--socks5-hostname', `127.0.0.1:${p1}`, `http://127.0.0.1:${web.port}/page`]);
    expect(got.stdout, `${got.stderr}\n${fromFile.stdout}`).toContain('hello through postern');
    await fromFile.stop();

    const fromEnv = new Postern(['client', '--config', f], { POSTERN_LISTEN: `127.0.0.1:${p2}`, POSTERN_LOG_LEVEL: 'debug' });
    expect(await fromEnv.listening('socks')).toBe(p2);
    await fromEnv.waitFor((l) => l.level === 20, 10_000, 'a debug line');
    await fromEnv.stop();

    const fromFlag = new Postern(['client', '--config', f, '--listen', `127.0.0.1:${p3}`], { POSTERN_LISTEN: `127.0.0.1:${p2}` });
    expect(await fromFlag.listening('socks')).toBe(p3);
  });
});
