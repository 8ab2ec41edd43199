import { describe, expect, it } from 'vitest';
import { PosternError } from '../../../src/core/errors.js';
import { formatShareUri, parseShareUri, type BridgeInfo } from '../../../src/transport/uri.js';

const SECRET = Buffer.alloc(32, 7);
const S = SECRET.toString('base64url'); // 43 chars
const PIN = Buffer.alloc(32, 9);
const P = PIN.toString('base64url');

function badUri(s: string): string {
  try {
    parseShareUri(s);
  } catch (err) {
    expect(err).toBeInstanceOf(PosternError);
    expect((err as PosternError).code).toBe('E_BAD_URI');
    return (err as PosternError).message;
  }
  throw new Error(`parsed: ${s}`);
}

describe('parseShareUri (protocol.md §1)', () => {
  it('applies the defaults: port 443, path "/", verification by CA', () => {
    expect(parseShareUri(`postern://${S}@bridge.example.org`)).toEqual({
      secret: SECRET,
      host: 'bridge.example.org',
      port: 443,
      path: '/',
      plain: false,
    });
  });

  it('reads every part of a full URI', () => {
    expect(parseShareUri(`postern://${S}@203.0.113.5:8443/a/b-c?pin=${P}&sni=cdn.example.com#My%20bridge%20%E2%9C%93`)).toEqual({
      secret: SECRET,
      host: '203.0.113.5',
      port: 8443,
      path: '/a/b-c',
      pin: PIN,
      sni: 'cdn.example.com',
      plain: false,
      label: 'My bridge ✓',
    });
  });

  it('takes an IPv6 host in brackets and stores it bare', () => {
    const info = parseShareUri(`postern://${S}@[2001:DB8::1]:443/x`);
    expect(info.host).toBe('2001:db8::1');
    expect(info.port).toBe(443);
  });

  it('accepts plain=1 for loopback hosts', () => {
    for (const h of ['127.0.0.1', '[::1]', 'localhost']) {
      expect(parseShareUri(`postern://${S}@${h}:8080/p?plain=1`).plain).toBe(true);
    }
  });

  it.each<[string, string, RegExp]>([
    ['wrong scheme', `https://${S}@h.example:443/`, /scheme must be postern/],
    ['no scheme', `${S}@h.example`, /scheme must be postern/],
    ['missing secret', 'postern://h.example:443/', /secret is missing/],
    ['empty secret', 'postern://@h.example:443/', /secret is missing/],
    ['short secret', `postern://${Buffer.alloc(15).toString('base64url')}@h.example`, /too short \(15 bytes/],
    ['long secret', `postern://${Buffer.alloc(65).toString('base64url')}@h.example`, /too long \(65 bytes/],
    ['padded secret', `postern://${Buffer.alloc(32).toString('base64')}@h.example`, /not base64url/],
    ['base64 (not url) secret', `postern://${'+'.repeat(43)}@h.example`, /not base64url/],
    ['non-numeric port', `postern://${S}@h.example:https/`, /port "https"/],
    ['port 0', `postern://${S}@h.example:0/`, /port 0 is not/],
    ['port 65536', `postern://${S}@h.example:65536/`, /port 65536 is not/],
    ['empty port', `postern://${S}@h.example:/`, /port ""/],
    ['short pin', `postern://${S}@h.example/?pin=${Buffer.alloc(31).toString('base64url')}`, /pin must be 32 bytes \(got 31\)/],
    ['long pin', `postern://${S}@h.example/?pin=${Buffer.alloc(33).toString('base64url')}`, /pin must be 32 bytes \(got 33\)/],
    ['garbled pin', `postern://${S}@h.example/?pin=%%%`, /pin is not base64url/],
    ['unknown parameter', `postern://${S}@h.example/?pni=${P}`, /unknown query parameter "pni"/],
    ['repeated parameter', `postern://${S}@h.example/?sni=a.example&sni=b.example`, /appears twice/],
    ['plain other than 1', `postern://${S}@127.0.0.1/?plain=true`, /plain must be "1"/],
    ['plain with a public host', `postern://${S}@203.0.113.5/?plain=1`, /only allowed for a loopback host/],
    ['plain with a name', `postern://${S}@bridge.example.org/?plain=1`, /only allowed for a loopback host/],
    ['plain with a pin', `postern://${S}@127.0.0.1/?plain=1&pin=${P}`, /no meaning with plain=1/],
    ['unbracketed IPv6', `postern://${S}@2001:db8::1/`, /must be in brackets/],
    ['bad IPv6', `postern://${S}@[2001:db8::g]/`, /not a valid IPv6/],
    ['unclosed bracket', `postern://${S}@[::1/`, /closing "]"/],
    ['empty host', `postern://${S}@:443/`, /host is missing/],
    ['bad host name', `postern://${S}@bad_host!.example/`, /not a valid host name/],
    ['numeric non-IPv4 host', `postern://${S}@1.2.3/`, /not a valid IPv4/],
    ['IP literal as sni', `postern://${S}@h.example/?sni=192.0.2.1`, /sni must be a host name/],
    ['dot segment in path', `postern://${S}@h.example/a/../b`, /segments/],
    ['encoded dot segment', `postern://${S}@h.example/a/%2E%2e/b`, /segments/],
    ['space in path', `postern://${S}@h.example/a b`, /contains a space: copy it again/],
    ['line break (a link split when copied)', `postern://${S}@h.exa\nmple/a?pin=x`, /line break: it was split when copied; join it into one line/],
    ['bad path character', `postern://${S}@h.example/a"b`, /percent-encoded/],
    ['bad percent escape', `postern://${S}@h.example/a%zz`, /malformed percent-escape/],
    ['bad label escape', `postern://${S}@h.example/#%E2%9C`, /label/],
  ])('rejects %s with a specific reason', (_name, uri, reason) => {
    expect(badUri(uri)).toMatch(reason);
  });

  it('reads connect= (a relay) apart from the bridge host, keeping the bridge as the TLS name (§1)', () => {
    const info = parseShareUri(`postern://${S}@bridge.example.org:443/p?pin=${P}&connect=relay.example.ru:8443`);
    expect(info.host).toBe('bridge.example.org');
    expect(info.port).toBe(443);
    expect(info.connect).toEqual({ host: 'relay.example.ru', port: 8443 });
    expect(info.sni).toBeUndefined();
    expect(info.pin).toEqual(PIN);
  });

  it.each<[string, string, { host: string; port: number }]>([
    ['an IPv4 relay', '198.51.100.9:80', { host: '198.51.100.9', port: 80 }],
    ['an IPv6 relay', '[2001:DB8::9]:8443', { host: '2001:db8::9', port: 8443 }],
    ['a percent-encoded IPv6 relay', '%5B2001%3Adb8%3A%3A9%5D%3A8443', { host: '2001:db8::9', port: 8443 }],
    ["no port: the link's port", 'relay.example.ru', { host: 'relay.example.ru', port: 9443 }],
  ])('takes connect= as %s', (_name, value, want) => {
    expect(parseShareUri(`postern://${S}@bridge.example.org:9443/?connect=${value}`).connect).toEqual(want);
  });

  it('takes plain=1 with a loopback relay only', () => {
    expect(parseShareUri(`postern://${S}@127.0.0.1:8080/p?plain=1&connect=127.0.0.2:9000`).connect).toEqual({ host: '127.0.0.2', port: 9000 });
    expect(badUri(`postern://${S}@127.0.0.1:8080/p?plain=1&connect=198.51.100.9:9000`)).toMatch(/URI: connect: plain=1 is only allowed through a loopback relay/);
  });

  it.each<[string, string, RegExp]>([
    ['empty', 'connect=', /URI: connect: empty \(expected HOST:PORT/],
    ['port 0', 'connect=relay.example:0', /URI: connect: port 0 is not from 1 to 65535$/],
    ['port 70000', 'connect=relay.example:70000', /URI: connect: port 70000 is not/],
    ['a non-numeric port', 'connect=relay.example:x', /URI: connect: port "x" is not a number/],
    ['a bad name', 'connect=bad!host.example:443', /URI: connect: host "bad!host.example" is not a valid host name/],
    ['a numeric non-IPv4 host', 'connect=1.2.3:443', /URI: connect: host "1.2.3" is not a valid IPv4/],
    ['an unbracketed IPv6', 'connect=2001:db8::9', /URI: connect: an IPv6 host must be in brackets/],
    ['a bad IPv6', 'connect=[2001:db8::g]:443', /URI: connect: host "\[2001:db8::g\]" is not a valid IPv6/],
    ['an unclosed bracket', 'connect=[::1:443', /URI: connect: IPv6 host is missing its closing/],
    ['bad percent-encoding', 'connect=%zz', /URI: connect: not valid percent-encoding/],
    ['twice', 'connect=a.example:1&connect=b.example:2', /query parameter "connect" appears twice/],
  ])('rejects connect= %s, naming the field', (_name, query, reason) => {
    expect(badUri(`postern://${S}@bridge.example.org/?${query}`)).toMatch(reason);
  });

  it('reads transport= (§1): ws is the default and is never stored, h2 is kept', () => {
    expect(parseShareUri(`postern://${S}@bridge.example.org/p?transport=ws`)).toEqual(parseShareUri(`postern://${S}@bridge.example.org/p`));
    expect(parseShareUri(`postern://${S}@bridge.example.org/p`).transport).toBeUndefined();
    expect(parseShareUri(`postern://${S}@bridge.example.org/p?pin=${P}&transport=h2`).transport).toBe('h2');
  });

  it.each<[string, string, RegExp]>([
    ['an unknown name', 'transport=quic', /URI: transport must be one of ws, h2 \(got "quic"\)$/],
    ['an empty value', 'transport=', /URI: transport must be one of ws, h2 \(got ""\)$/],
    ['upper case', 'transport=WS', /transport must be one of ws, h2 \(got "WS"\)/],
    ['twice', 'transport=ws&transport=h2', /query parameter "transport" appears twice/],
  ])('rejects transport= with %s, naming the field', (_name, query, reason) => {
    expect(badUri(`postern://${S}@bridge.example.org/?${query}`)).toMatch(reason);
  });

  it('reads mode= with transport=h2 (§1, §12.3): stream-one is the default and never stored; round trip', () => {
    const pu = parseShareUri(`postern://${S}@bridge.example.org/p?pin=${P}&transport=h2&mode=packet-up`);
    expect(pu).toMatchObject({ transport: 'h2', mode: 'packet-up' });
    expect(parseShareUri(formatShareUri(pu))).toEqual(pu);
    expect(formatShareUri(pu)).toMatch(/&transport=h2&mode=packet-up$/);
    expect(parseShareUri(`postern://${S}@bridge.example.org/p?transport=h2&mode=stream-one`)).toEqual(parseShareUri(`postern://${S}@bridge.example.org/p?transport=h2`));
    expect(parseShareUri(`postern://${S}@bridge.example.org/p?transport=h2`).mode).toBeUndefined();
  });

  it.each<[string, string, RegExp]>([
    ['an unknown mode', 'transport=h2&mode=packet-down', /URI: mode must be one of stream-one, packet-up \(got "packet-down"\)$/],
    ['an empty value', 'transport=h2&mode=', /mode must be one of stream-one, packet-up \(got ""\)/],
    ['no transport=h2', 'mode=packet-up', /URI: mode=packet-up needs transport=h2$/],
    ['transport=ws', 'transport=ws&mode=packet-up', /mode=packet-up needs transport=h2/],
    ['twice', 'transport=h2&mode=packet-up&mode=packet-up', /query parameter "mode" appears twice/],
  ])('rejects mode= with %s, naming the field', (_name, query, reason) => {
    expect(badUri(`postern://${S}@bridge.example.org/?${query}`)).toMatch(reason);
  });

  it('reads address, server name and Host apart: connect=, sni= and host= (§1)', () => {
    const info = parseShareUri(`postern://${S}@bridge.example.org:443/p?pin=${P}&sni=front.example.net&host=origin.example.org&connect=203.0.113.8:443`);
    expect(info).toMatchObject({ host: 'bridge.example.org', port: 443, sni: 'front.example.net', httpHost: 'origin.example.org', connect: { host: '203.0.113.8', port: 443 } });
    expect(parseShareUri(`postern://${S}@bridge.example.org/p`).httpHost).toBeUndefined();
  });

  it.each<[string, string, string]>([
    ['a name', 'origin.example.org', 'origin.example.org'],
    ['a name and port', 'origin.example.org:8443', 'origin.example.org:8443'],
    ['an IPv4 literal', '198.51.100.9', '198.51.100.9'],
    ['a bracketed IPv6 literal, lower-cased', '[2001:DB8::9]:8443', '[2001:db8::9]:8443'],
    ['a percent-encoded IPv6 literal', '%5B2001%3Adb8%3A%3A9%5D', '[2001:db8::9]'],
    ['a name with port 443 (kept as written)', 'origin.example.org:443', 'origin.example.org:443'],
  ])('takes host= as %s', (_name, value, want) => {
    expect(parseShareUri(`postern://${S}@bridge.example.org/p?host=${value}`).httpHost).toBe(want);
  });

  it('takes host= with plain=1 (a loopback bridge behind a local front)', () => {
    expect(parseShareUri(`postern://${S}@127.0.0.1:8080/p?plain=1&host=origin.example.org`).httpHost).toBe('origin.example.org');
  });

  it.each<[string, string, RegExp]>([
    ['empty', 'host=', /URI: host: empty \(expected the Host name to send/],
    ['port 0', 'host=origin.example:0', /URI: host: port 0 is not from 1 to 65535$/],
    ['a non-numeric port', 'host=origin.example:x', /URI: host: port "x" is not a number/],
    ['a bad name', 'host=origin-.example', /URI: host: host "origin-.example" is not a valid host name/],
    ['a name with a slash', 'host=origin.example/x', /URI: host: host "origin.example\/x" is not a valid host name/],
    ['a numeric non-IPv4 host', 'host=1.2.3', /URI: host: host "1.2.3" is not a valid IPv4/],
    ['an unbracketed IPv6', 'host=2001:db8::9', /URI: host: an IPv6 host must be in brackets/],
    ['bad percent-encoding', 'host=%zz', /URI: host: not valid percent-encoding/],
    ['twice', 'host=a.example&host=b.example', /query parameter "host" appears twice/],
  ])('rejects host= %s, naming the field', (_name, query, reason) => {
    expect(badUri(`postern://${S}@bridge.example.org/?${query}`)).toMatch(reason);
  });

  it('never repeats the secret in an error message', () => {
    const msg = badUri(`postern://${S}@203.0.113.5/?plain=1`);
    expect(msg).not.toContain(S);
  });
});

describe('formatShareUri', () => {
  const cases: BridgeInfo[] = [
    { secret: SECRET, host: 'bridge.example.org', port: 443, path: '/', plain: false },
    { secret: Buffer.alloc(16, 1), host: '198.51.100.7', port: 8443, path: '/ws/x_y~z', pin: PIN, plain: false, label: 'home' },
    { secret: Buffer.alloc(64, 2), host: '2001:db8::5', port: 443, path: '/p', pin: PIN, sni: 'cdn.example.net', plain: false, label: 'a b/c#d?é' },
    { secret: SECRET, host: '127.0.0.1', port: 9000, path: '/local', plain: true },
    { secret: SECRET, host: '::1', port: 9000, path: '/local', plain: true },
    { secret: SECRET, host: 'bridge.example.org', port: 443, path: '/p', pin: PIN, connect: { host: 'relay.example.ru', port: 8443 }, plain: false, label: 'via home' },
    { secret: SECRET, host: '198.51.100.7', port: 443, path: '/p', pin: PIN, connect: { host: '2001:db8::9', port: 443 }, plain: false },
    { secret: SECRET, host: '127.0.0.1', port: 9000, path: '/local', connect: { host: '127.0.0.1', port: 9001 }, plain: true },
    { secret: SECRET, host: 'bridge.example.org', port: 443, path: '/p', pin: PIN, plain: false, budget: 65_536, transport: 'h2' },
    { secret: SECRET, host: 'bridge.example.org', port: 443, path: '/p', pin: PIN, plain: false, budget: 16_384, budgetBoth: true },
    { secret: SECRET, host: 'bridge.example.org', port: 443, path: '/p', pin: PIN, sni: 'front.example.net', httpHost: 'origin.example.org', connect: { host: '203.0.113.8', port: 443 }, plain: false, label: 'cdn' },
    { secret: SECRET, host: 'bridge.example.org', port: 443, path: '/p', httpHost: '[2001:db8::9]:8443', plain: false },
    { secret: SECRET, host: '127.0.0.1', port: 9000, path: '/local', httpHost: 'origin.example.org', plain: true },
  ];

  it('reads budget=both:N as a budget counting both directions, and names the field when it is wrong', () => {
    expect(formatShareUri(cases.find((c) => c.budgetBoth === true) as BridgeInfo)).toContain('?pin=' + P + '&budget=both:16384');
    for (const bad of ['both:', 'both:100', 'up:16384', 'both:016384', '16k']) {
      expect(() => parseShareUri(`postern://${S}@bridge.example.org:443/p?budget=${bad}`)).toThrow(/budget must be a byte count/);
    }
  });

  it.each(cases)('round-trips %#', (info) => {
    const uri = formatShareUri(info);
    expect(parseShareUri(uri)).toEqual(info);
    expect(formatShareUri(parseShareUri(uri))).toBe(uri);
  });

  it('brackets an IPv6 host and writes the pin as 43 base64url characters', () => {
    const uri = formatShareUri({ secret: SECRET, host: '2001:db8::5', port: 443, path: '/p', pin: PIN, plain: false });
    expect(uri).toBe(`postern://${S}@[2001:db8::5]:443/p?pin=${P}`);
    expect(P).toHaveLength(43);
  });

  it('writes transport= only for a transport other than the default ws', () => {
    const base: BridgeInfo = { secret: SECRET, host: 'b.example', port: 443, path: '/p', plain: false };
    expect(formatShareUri(base)).toBe(`postern://${S}@b.example:443/p`);
    expect(formatShareUri({ ...base, transport: 'ws' })).toBe(`postern://${S}@b.example:443/p`);
    expect(formatShareUri({ ...base, transport: 'h2' })).toBe(`postern://${S}@b.example:443/p?transport=h2`);
  });

  it('writes connect= as HOST:PORT, an IPv6 relay in brackets', () => {
    const uri = formatShareUri({ secret: SECRET, host: 'b.example', port: 443, path: '/p', connect: { host: '2001:db8::9', port: 8443 }, plain: false });
    expect(uri).toBe(`postern://${S}@b.example:443/p?connect=[2001:db8::9]:8443`);
  });

  it('writes the fronting parameters in one order: pin, sni, host, connect (byte for byte)', () => {
    const uri = formatShareUri({ secret: SECRET, host: 'b.example', port: 443, path: '/p', pin: PIN, sni: 'front.example.net', httpHost: 'origin.example.org:8443', connect: { host: '203.0.113.8', port: 443 }, plain: false });
    expect(uri).toBe(`postern://${S}@b.example:443/p?pin=${P}&sni=front.example.net&host=origin.example.org:8443&connect=203.0.113.8:443`);
  });
});
