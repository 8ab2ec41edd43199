import { describe, expect, it } from 'vitest';
import { checkAddress, checkTarget, compilePolicy, domainMatches, parseCidr, parsePortRange, type EgressSpec } from '../../../src/bridge/policy.js';
import { MESSAGING_PRESET, PRESET_NAMES } from '../../../src/bridge/presets.js';
import { EGRESS_PRESET_NAMES } from '../../../src/config/bridge.js';

// Pure decisions only: nothing here resolves or connects anywhere.
const base: EgressSpec = { allowPrivate: false, allowRanges: [], allowPorts: null, denyPorts: [], allowOnly: null };
const spec = (over: Partial<EgressSpec>) => compilePolicy({ ...base, ...over });
const dom = (host: string, port = 443) => ({ kind: 'domain' as const, host, port });
const v4 = (host: string, port = 443) => ({ kind: 'ipv4' as const, host, port });
const v6 = (host: string, port = 443) => ({ kind: 'ipv6' as const, host, port });

describe('egress ports', () => {
  const p = spec({ allowPorts: [443, '5222', '8000-8100'], denyPorts: [8080] });
  it.each([
    [443, true],
    [5222, true],
    [8000, true],
    [8050, true],
    [8100, true],
    [8080, false], // allowed by the range, denied explicitly: deny wins
    [80, false],
    [25, false],
    [8101, false],
  ])('port %i → allowed %s', (port, allowed) => {
    const d = checkTarget(dom('example.org', port), p);
    expect(d.allowed).toBe(allowed);
    if (!d.allowed) expect(d).toEqual({ allowed: false, reason: 'port' });
  });

  it('a deny list alone refuses only its ports', () => {
    const q = spec({ denyPorts: [25, '135-139'] });
    expect(checkTarget(dom('mail.example', 25), q)).toEqual({ allowed: false, reason: 'port' });
    expect(checkTarget(dom('x.example', 137), q)).toEqual({ allowed: false, reason: 'port' });
    expect(checkTarget(dom('x.example', 443), q)).toEqual({ allowed: true });
  });

  it.each([
    [443, [443, 443]],
    ['22', [22, 22]],
    ['1000-2000', [1000, 2000]],
    [0, null],
    [65536, null],
    ['2000-1000', null],
    ['80,443', null],
    ['x', null],
  ])('parsePortRange(%j)', (input, out) => {
    expect(parsePortRange(input as number | string)).toEqual(out);
  });
});

describe('egress allow-list mode with the messaging preset', () => {
  const p = spec({ allowOnly: { presets: ['messaging'], domains: ['Example.ORG.'], ranges: ['93.184.216.0/24'] } });

  it.each([
    'whatsapp.net',
    'g.whatsapp.net',
    'mmg.whatsapp.net',
    'web.whatsapp.com',
    'wa.me',
    'scontent.xx.fbcdn.net',
    'telegram.org',
    'core.telegram.org',
    'T.ME',
    'telegram.me',
    'tdesktop.com',
    'telesco.pe',
    'chat.signal.org',
    'cdn2.signal.org',
    'textsecure-service.whispersystems.org',
    'signal.art',
    'signal.me',
    'signal.group',
    'telegram.org.', // trailing dot: the same name
    'example.org', // operator's own domain, normalized
    'www.example.org',
  ])('allows the name %s', (host) => {
    expect(checkTarget(dom(host), p)).toEqual({ allowed: true });
  });

  it.each([
    'example.com',
    'google.com',
    'nottelegram.org', // suffix without a label boundary
    'telegram.org.evil.example',
    'evilwhatsapp.net',
    'signal.org.example.com',
    'xt.me',
    'me',
    'org',
    'localhost',
    'metadata.google.internal',
  ])('refuses the unlisted name %s', (host) => {
    expect(checkTarget(dom(host), p)).toEqual({ allowed: false, reason: 'not_listed' });
  });

  it.each([
    v4('149.154.167.50'),
    v4('91.108.56.100'),
    v4('91.105.192.1'),
    v4('185.76.151.9'),
    v6('2001:b28:f23d:f001::a'),
    v6('2001:67c:4e8:f002::a'),
    v6('2a0a:f280:203::1'),
    v6('::ffff:149.154.167.50'), // IPv4-mapped form of a listed address
    v4('93.184.216.34'), // operator's own range
    dom('149.154.167.50'), // an IP sent as a name is treated as the IP
  ])('allows the listed address %j', (t) => {
    expect(checkTarget(t, p)).toEqual({ allowed: true });
  });

  it.each([
    v4('8.8.8.8'),
    v4('157.240.1.1'),
    v4('149.154.176.1'), // just past 149.154.160.0/20
    v6('2606:4700::1111'),
    dom('8.8.8.8'),
    dom('2130706433'), // 127.0.0.1 in the "long" form getaddrinfo accepts
  ])('refuses the unlisted address %j', (t) => {
    expect(checkTarget(t, p)).toEqual({ allowed: false, reason: 'not_listed' });
  });

  it('still refuses special ranges an operator lists, unless private ranges are opened', () => {
    const q = spec({ allowOnly: { presets: [], domains: [], ranges: ['10.0.0.0/8'] } });
    expect(checkTarget(v4('10.1.2.3'), q)).toEqual({ allowed: false, reason: 'range', range: 'private' });
    const r = spec({ allowOnly: { presets: [], domains: [], ranges: ['10.0.0.0/8'] }, allowRanges: ['10.1.0.0/16'] });
    expect(checkTarget(v4('10.1.2.3'), r)).toEqual({ allowed: true });
    expect(checkTarget(v4('10.2.0.1'), r)).toEqual({ allowed: false, reason: 'range', range: 'private' });
  });

  it('the port lists apply in allow-list mode too', () => {
    const q = spec({ allowOnly: { presets: ['messaging'], domains: [], ranges: [] }, allowPorts: [443, 5222] });
    expect(checkTarget(dom('g.whatsapp.net', 5222), q)).toEqual({ allowed: true });
    expect(checkTarget(dom('g.whatsapp.net', 22), q)).toEqual({ allowed: false, reason: 'port' });
  });

  it('holds Telegram’s published ranges and every preset parses', () => {
    for (const r of MESSAGING_PRESET.ranges) expect(parseCidr(r), r).not.toBeNull();
    expect(MESSAGING_PRESET.ranges).toEqual(expect.arrayContaining(['91.108.4.0/22', '149.154.160.0/20', '2001:b28:f23d::/48', '2a0a:f280::/32']));
    expect([...EGRESS_PRESET_NAMES].sort()).toEqual([...PRESET_NAMES].sort());
  });
});

describe('open mode (no allow-list)', () => {
  const p = spec({});
  it('lets names through to DNS (their addresses are checked after resolution)', () => {
    expect(checkTarget(dom('anything.example'), p)).toEqual({ allowed: true });
  });
  it.each([
    [v4('127.0.0.1'), 'loopback'],
    [v4('169.254.169.254'), 'linkLocal'],
    [v6('::ffff:10.0.0.1'), 'private'],
    [dom('127.0.0.2'), 'loopback'],
    [dom('0x7f000001'), 'loopback'],
  ])('refuses the special literal %j (%s)', (t, range) => {
    expect(checkTarget(t, p)).toEqual({ allowed: false, reason: 'range', range });
  });
});

describe('allowRanges opens only the listed private or reserved ranges', () => {
  const p = spec({ allowRanges: ['10.20.0.0/16', 'fd00:1::/32', '198.18.0.0/15', '224.0.0.0/4', '192.168.1.5'] });
  it.each([
    ['10.20.1.1', true],
    ['::ffff:10.20.1.1', true],
    ['10.21.0.1', false],
    ['fd00:1::5', true],
    ['fd00:2::5', false],
    ['198.18.0.1', true],
    ['192.168.1.5', true],
    ['192.168.1.6', false],
    ['224.0.0.1', false], // multicast is never a destination
    ['127.0.0.1', false],
  ])('%s → %s', (ip, allowed) => {
    expect(checkAddress(ip, p).allowed).toBe(allowed);
  });
});

describe('domainMatches', () => {
  it.each([
    ['a.b.example', 'example', true],
    ['example', 'example', true],
    ['xexample', 'example', false],
    ['example.x', 'example', false],
    ['', 'example', false],
  ])('%s under %s → %s', (name, suffix, m) => {
    expect(domainMatches(name, suffix)).toBe(m);
  });
});

describe('compilePolicy', () => {
  it('refuses a malformed range or port with E_CONFIG', () => {
    expect(() => spec({ allowRanges: ['10.0.0.0/33'] })).toThrow(/CIDR/);
    expect(() => spec({ denyPorts: ['0-5'] })).toThrow(/port/);
  });
});
