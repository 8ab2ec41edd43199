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
  ];

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
});
