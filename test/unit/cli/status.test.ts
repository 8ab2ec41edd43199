import { describe, expect, it } from 'vitest';
import type { BoundListener } from '../../../src/client/client.js';
import { formatBytes, statusSnapshot, type StatusSnapshot } from '../../../src/client/status.js';
import type { BridgeStatus, TunnelStatus } from '../../../src/client/tunnel.js';
import { doctorCommandFor } from '../../../src/cli/client-status.js';
import { qrMatrix, qrSvg } from '../../../src/cli/qr.js';
import { statusLineText, statusLineWanted } from '../../../src/cli/status-line.js';
import { pageLocale, statusPages } from '../../../src/cli/status-page.js';
import { defaultLimits } from '../../../src/core/limits.js';
import type { LocalPageRequest } from '../../../src/http/server.js';
import { english, translator } from '../../../src/i18n/messages.js';

const bridge = (over: Partial<BridgeStatus> = {}): BridgeStatus => ({
  name: 'home',
  health: 'up',
  usable: true,
  rttMs: 42.4,
  streams: 3,
  sentBytes: 1_500,
  receivedBytes: 3 * 1024 * 1024,
  lastError: null,
  ...over,
});

const upStatus: TunnelStatus = { state: 'up', bridges: [bridge()], failedDialsInRow: 0 };
const downStatus: TunnelStatus = {
  state: 'backoff',
  bridges: [bridge({ name: 'a', usable: false, health: 'unreachable', rttMs: null, streams: 0, lastError: { code: 'E_DIAL', at: 2 } }), bridge({ name: 'b', usable: false, health: 'misconfigured', rttMs: null, streams: 0, lastError: { code: 'E_PIN_MISMATCH', at: 1 } })],
  failedDialsInRow: 6,
};

describe('status model', () => {
  it('sums streams and bytes over bridges and names the one in use', () => {
    const s = statusSnapshot({ state: 'up', bridges: [bridge({ name: 'a', usable: false, rttMs: null, streams: 1 }), bridge({ name: 'b' })], failedDialsInRow: 0 });
    expect(s).toMatchObject({ tunnel: 'up', bridge: 'b', rttMs: 42, streams: 4, bytesUp: 3_000, bytesDown: 6 * 1024 * 1024, lastError: null });
  });

  it('while down: the first bridge, no RTT, the latest error', () => {
    const s = statusSnapshot(downStatus);
    expect(s).toMatchObject({ tunnel: 'down', bridge: 'a', rttMs: null, lastError: { code: 'E_DIAL' }, failedDials: 6 });
  });

  it('formats bytes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(12 * 1024 * 1024)).toBe('12 MB');
    expect(formatBytes(2048, 'Б КБ МБ ГБ ТБ'.split(' '))).toBe('2.0 КБ');
  });
});

describe('status line', () => {
  it('shows state, bridge, RTT, streams and bytes in one line', () => {
    expect(statusLineText(statusSnapshot(upStatus), english, 120)).toBe('tunnel up | bridge home | RTT 42 ms | streams 3 | ↑ 1.5 KB ↓ 3.0 MB');
  });

  it('shows the last error while down, in a few words (never a host)', () => {
    expect(statusLineText(statusSnapshot(downStatus), english, 200)).toBe('tunnel down, reconnecting… | bridge a | streams 0 | ↑ 2.9 KB ↓ 6.0 MB | last error: bridge unreachable');
  });

  it('in Russian', () => {
    expect(statusLineText(statusSnapshot(upStatus), translator('ru'), 120)).toBe('туннель: работает | мост home | задержка 42 мс | соединений 3 | ↑ 1.5 КБ ↓ 3.0 МБ');
  });

  it('never wraps: cut to the terminal width, colour codes not counted', () => {
    const text = statusLineText(statusSnapshot(downStatus), english, 40);
    expect([...text].length).toBe(39);
    expect(text.endsWith('…')).toBe(true);
    const coloured = statusLineText(statusSnapshot(upStatus), english, 40, true);
    expect(coloured).toContain('\x1b[32mup\x1b[0m');
    expect([...coloured.replace(/\x1b\[\d+m/g, '')].length).toBe(39);
  });

  it.each([
    [{ isTTY: true }, {}, undefined, true],
    [{ isTTY: false }, {}, undefined, false],
    [{}, {}, undefined, false],
    [{ isTTY: true }, {}, false, false], // --no-status
    [{ isTTY: true }, { POSTERN_NO_STATUS: '1' }, undefined, false],
    [{ isTTY: true }, { POSTERN_NO_STATUS: '0' }, undefined, true],
    [{ isTTY: true }, { TERM: 'dumb' }, undefined, false],
    [{ isTTY: true }, { NO_COLOR: '1' }, undefined, true], // only the colour goes
  ] as const)('shown for %j with env %j and flag %s: %s', (stream, env, flag, shown) => {
    expect(statusLineWanted(stream, env, flag)).toBe(shown);
  });
});

describe('doctor hint', () => {
  it('names the command for where the link came from, never the link', () => {
    expect(doctorCommandFor({ bridgeFile: '/home/u/my links.txt', bridgeFlag: false, bridgeEnv: false }, english)).toBe("postern doctor --bridge-file '/home/u/my links.txt'");
    expect(doctorCommandFor({ bridgeFlag: true, bridgeEnv: false }, english)).toBe("postern doctor '<the link you gave --bridge>'");
    expect(doctorCommandFor({ bridgeFlag: false, bridgeEnv: true }, english)).toBe('postern doctor');
    expect(doctorCommandFor({ bridgeFlag: false, bridgeEnv: false, configFile: '/etc/p/client.json' }, english)).toBe('postern doctor --config /etc/p/client.json');
  });
});

describe('QR as SVG', () => {
  it('draws one square per dark module inside a 4-module quiet zone', () => {
    const text = 'tg://socks?server=192.168.1.20&port=1080&user=u&pass=p';
    const m = qrMatrix(text);
    const dark = m.flat().filter(Boolean).length;
    const svg = qrSvg(text, 200, 'Telegram');
    expect(svg).toContain(`viewBox="0 0 ${m.length + 8} ${m.length + 8}"`);
    expect(svg.match(/h1v1h-1z/g)?.length).toBe(dark);
    expect(svg).not.toMatch(/<script|href=|xlink/);
  });
});

describe('status page', () => {
  const creds = { username: 'pabc', password: 'SeCrEt-pass_123' };
  const mixed: BoundListener = { role: 'mixed', name: 'socks5+http', host: '127.0.0.1', port: 1080 };
  const pages = (auth: typeof creds | null, snap: StatusSnapshot = statusSnapshot(upStatus)) =>
    statusPages({ status: () => snap, auth, listeners: () => [mixed], limits: defaultLimits(), env: { LANG: 'en_US.UTF-8' } });
  const req = (path: string, over: Partial<LocalPageRequest> = {}): LocalPageRequest => ({ method: 'GET', path, headers: [], port: 1080, authRequired: true, authorized: false, ...over });

  it('shows the status and the settings, never the password or the bridge, without credentials', () => {
    const a = pages(creds)(req('/'));
    expect(a?.status).toBe(200);
    expect(a?.body).toContain('<strong class="up">up</strong>');
    expect(a?.body).toContain('127.0.0.1:1080');
    expect(a?.body).toContain('pabc');
    expect(a?.body).not.toContain(creds.password);
    expect(a?.body).not.toContain('home');
    expect(a?.body).toContain('href="/reveal"');
    const headers = Object.fromEntries((a?.headers ?? []).map(([k, v]) => [k.toLowerCase(), v]));
    expect(headers['content-security-policy']).toMatch(/^default-src 'none'; style-src 'nonce-[A-Za-z0-9+/=]+'/);
    expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(Object.keys(headers).filter((k) => k.startsWith('access-control-'))).toEqual([]);
  });

  it('/reveal without credentials asks for them (401), with them shows the password and the bridge', () => {
    const asked = pages(creds)(req('/reveal'));
    expect(asked?.status).toBe(401);
    expect(asked?.headers?.find(([k]) => k === 'WWW-Authenticate')?.[1]).toMatch(/^Basic realm="proxy"/);
    expect(asked?.body).not.toContain(creds.password);
    const shown = pages(creds)(req('/reveal', { authorized: true }));
    expect(shown?.status).toBe(200);
    expect(shown?.body).toContain(creds.password);
    expect(shown?.body).toContain('home');
  });

  it('/status.json: the same figures, the bridge only with credentials', () => {
    const body = JSON.parse(pages(creds)(req('/status.json'))?.body ?? '{}');
    expect(body).toEqual({ tunnel: 'up', bridge: null, rttMs: 42, streams: 3, bytesUp: 1_500, bytesDown: 3 * 1024 * 1024, lastError: null, failedDials: 0 });
    expect(JSON.parse(pages(creds)(req('/status.json', { authorized: true }))?.body ?? '{}').bridge).toBe('home');
  });

  it('with --no-auth there is nothing to reveal: the bridge is shown', () => {
    const a = pages(null)(req('/', { authRequired: false, authorized: true }));
    expect(a?.body).toContain('home');
    expect(a?.body).not.toContain('/reveal');
  });

  it('other paths are not its own (the proxy answers 404)', () => {
    expect(pages(creds)(req('/favicon.ico'))).toBeNull();
    expect(pages(creds)(req('/proxy.pac.bak'))).toBeNull();
  });

  it('speaks the language the browser asks for, else the locale', () => {
    expect(pageLocale([['Accept-Language', 'ru-RU,ru;q=0.9,en;q=0.8']], {})).toBe('ru');
    expect(pageLocale([['Accept-Language', 'de-DE, en;q=0.5, ru;q=0.4']], {})).toBe('en');
    expect(pageLocale([['Accept-Language', 'ru;q=0, en;q=0.1']], {})).toBe('en');
    expect(pageLocale([], { LANG: 'ru_RU.UTF-8' })).toBe('ru');
    const ru = pages(creds)(req('/', { headers: [['Accept-Language', 'ru']] }));
    expect(ru?.body).toContain('<html lang="ru">');
    expect(ru?.body).toContain('Туннель');
  });
});
