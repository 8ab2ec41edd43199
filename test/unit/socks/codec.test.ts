import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Target } from '../../../src/core/address.js';
import {
  AuthMethod,
  Command,
  encodeAuthStatus,
  encodeGreeting,
  encodeMethodChoice,
  encodeReply,
  encodeRequest,
  encodeUserPass,
  formatIPv6,
  parseGreeting,
  parseIPv6,
  parseReply,
  parseRequest,
  parseUserPass,
  SocksReply,
  type ParseResult,
  type SocksParseReason,
} from '../../../src/socks/codec.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ascii = (s: string): string => Buffer.from(s, 'utf8').toString('hex');
const len = (s: string): string => Buffer.from(s, 'utf8').length.toString(16).padStart(2, '0');

/** Every proper prefix of a complete message asks for more bytes. */
function expectNeedMoreAtEverySplit<T>(parse: (b: Buffer) => ParseResult<T>, bytes: Buffer): void {
  for (let i = 0; i < bytes.length; i++) {
    expect(parse(bytes.subarray(0, i)), `prefix of ${i} bytes`).toEqual({ ok: false, need: 'more' });
  }
}

function expectError<T>(r: ParseResult<T>, reason: SocksParseReason, reply: number | null): void {
  expect(r).toEqual({ ok: false, error: { reason, reply } });
}

describe('parseGreeting (RFC 1928 §3)', () => {
  it.each([
    ['one method, no authentication', '05 01 00', [0x00]],
    ['one method, username/password', '05 01 02', [0x02]],
    ['several methods in the client order', '05 03 00 01 02', [0x00, 0x01, 0x02]],
    ['all 255 possible methods', `05 ff ${Buffer.from(Array.from({ length: 255 }, (_, i) => i)).toString('hex')}`, Array.from({ length: 255 }, (_, i) => i)],
  ])('parses a greeting with %s', (_name, vector, methods) => {
    const bytes = hex(vector);
    expect(parseGreeting(bytes)).toEqual({ ok: true, value: { methods }, used: bytes.length });
    expectNeedMoreAtEverySplit(parseGreeting, bytes);
    // Pipelined bytes after the greeting are left for the caller.
    const r = parseGreeting(Buffer.concat([bytes, hex('05 01 00 01')]));
    expect(r.ok && r.used).toBe(bytes.length);
  });

  it.each([
    ['VER 4 (a SOCKS4 client)', '04 01 00 50 7f 00 00 01 00', 'bad-version'],
    ['VER 0', '00', 'bad-version'],
    ['an HTTP request', ascii('GET / HTTP/1.1\r\n'), 'bad-version'],
    ['NMETHODS 0', '05 00', 'no-methods'],
  ] as const)('refuses %s with no reply', (_name, vector, reason) => {
    expectError(parseGreeting(hex(vector)), reason, null);
  });
});

describe('parseUserPass (RFC 1929 §2)', () => {
  it.each([
    ['user / pass', 'user', 'pass'],
    ['one-byte fields', 'u', 'p'],
    ['255-byte fields', 'u'.repeat(255), 'p'.repeat(255)],
    ['UTF-8 fields', 'jürgen', 'pässwörd'],
  ])('parses credentials %s', (_name, user, pass) => {
    const bytes = hex(`01 ${len(user)} ${ascii(user)} ${len(pass)} ${ascii(pass)}`);
    const r = parseUserPass(bytes);
    expect(r).toEqual({ ok: true, value: { username: Buffer.from(user), password: Buffer.from(pass) }, used: bytes.length });
    expectNeedMoreAtEverySplit(parseUserPass, bytes);
  });

  it('copies the fields so that the caller may wipe or reuse its buffer', () => {
    const bytes = hex(`01 01 ${ascii('u')} 01 ${ascii('p')}`);
    const r = parseUserPass(bytes);
    bytes.fill(0);
    expect(r.ok && r.value.username.toString()).toBe('u');
  });

  it.each([
    ['VER 5 (the SOCKS version, not the sub-negotiation version)', '05 01 61 01 62', 'bad-version'],
    ['ULEN 0', '01 00 01 62', 'empty-username'],
    ['PLEN 0', '01 01 61 00', 'empty-password'],
  ] as const)('refuses %s', (_name, vector, reason) => {
    expectError(parseUserPass(hex(vector)), reason, null);
  });
});

describe('parseRequest (RFC 1928 §4, §5)', () => {
  const full6 = '2001 0db8 85a3 0000 0000 8a2e 0370 7334';
  it.each<[string, string, number, Target]>([
    ['CONNECT to IPv4 127.0.0.1:80', '05 01 00 01 7f000001 0050', Command.CONNECT, { kind: 'ipv4', host: '127.0.0.1', port: 80 }],
    ['CONNECT to IPv4 0.0.0.0:0', '05 01 00 01 00000000 0000', Command.CONNECT, { kind: 'ipv4', host: '0.0.0.0', port: 0 }],
    ['CONNECT to a domain', `05 01 00 03 0b ${ascii('example.com')} 01bb`, Command.CONNECT, { kind: 'domain', host: 'example.com', port: 443 }],
    ['CONNECT to a 255-byte domain', `05 01 00 03 ff ${ascii('a'.repeat(255))} ffff`, Command.CONNECT, { kind: 'domain', host: 'a'.repeat(255), port: 65535 }],
    ['CONNECT to a raw UTF-8 domain', `05 01 00 03 ${len('bücher.invalid')} ${ascii('bücher.invalid')} 0050`, Command.CONNECT, { kind: 'domain', host: 'bücher.invalid', port: 80 }],
    ['CONNECT to IPv6 ::1', '05 01 00 04 00000000000000000000000000000001 1f90', Command.CONNECT, { kind: 'ipv6', host: '::1', port: 8080 }],
    ['CONNECT to IPv6 ::', '05 01 00 04 00000000000000000000000000000000 0050', Command.CONNECT, { kind: 'ipv6', host: '::', port: 80 }],
    ['CONNECT to a full IPv6 address', `05 01 00 04 ${full6} 0050`, Command.CONNECT, { kind: 'ipv6', host: '2001:db8:85a3::8a2e:370:7334', port: 80 }],
    ['CONNECT to IPv6 with no zero run', '05 01 00 04 20010db8000100010001000100010001 0050', Command.CONNECT, { kind: 'ipv6', host: '2001:db8:1:1:1:1:1:1', port: 80 }],
    ['CONNECT to IPv6 with two equal zero runs (the first is compressed)', '05 01 00 04 20010000000000010000000000010001 0050', Command.CONNECT, { kind: 'ipv6', host: '2001::1:0:0:1:1', port: 80 }],
    ['CONNECT to IPv6 with a longer second zero run (the longest is compressed)', '05 01 00 04 20010000000000010000000000000001 0050', Command.CONNECT, { kind: 'ipv6', host: '2001:0:0:1::1', port: 80 }],
    ['CONNECT to IPv4-mapped IPv6', '05 01 00 04 00000000000000000000ffff7f000001 0050', Command.CONNECT, { kind: 'ipv6', host: '::ffff:127.0.0.1', port: 80 }],
    ['CONNECT to a domain that is an IPv4 literal', `05 01 00 03 09 ${ascii('127.0.0.2')} 0050`, Command.CONNECT, { kind: 'ipv4', host: '127.0.0.2', port: 80 }],
    ['CONNECT to a domain that is a bracketed IPv6 literal', `05 01 00 03 05 ${ascii('[::1]')} 0050`, Command.CONNECT, { kind: 'ipv6', host: '::1', port: 80 }],
    ['CONNECT to a domain that is a long-form IPv6 literal', `05 01 00 03 0f ${ascii('0:0:0:0:0:0:0:1')} 0050`, Command.CONNECT, { kind: 'ipv6', host: '::1', port: 80 }],
    ['BIND (parsed; the server answers 0x07)', '05 02 00 01 7f000001 0050', Command.BIND, { kind: 'ipv4', host: '127.0.0.1', port: 80 }],
    ['UDP ASSOCIATE (parsed; the server answers 0x07)', '05 03 00 01 00000000 0000', Command.UDP_ASSOCIATE, { kind: 'ipv4', host: '0.0.0.0', port: 0 }],
  ])('parses %s', (_name, vector, command, target) => {
    const bytes = hex(vector);
    expect(parseRequest(bytes)).toEqual({ ok: true, value: { command, target }, used: bytes.length });
    expectNeedMoreAtEverySplit(parseRequest, bytes);
    const r = parseRequest(Buffer.concat([bytes, Buffer.from('GET / HTTP/1.1\r\n')]));
    expect(r.ok && r.used).toBe(bytes.length);
  });

  it.each<[string, string, SocksParseReason, number | null]>([
    ['VER 4', '04 01 00 01 7f000001 0050', 'bad-version', null],
    ['CMD 0', '05 00 00 01 7f000001 0050', 'unknown-command', SocksReply.COMMAND_NOT_SUPPORTED],
    ['CMD 4', '05 04', 'unknown-command', SocksReply.COMMAND_NOT_SUPPORTED],
    ['CMD 0xff', '05 ff 00', 'unknown-command', SocksReply.COMMAND_NOT_SUPPORTED],
    ['a non-zero RSV', '05 01 01 01 7f000001 0050', 'bad-reserved', SocksReply.GENERAL_FAILURE],
    ['ATYP 0', '05 01 00 00', 'unknown-address-type', SocksReply.ADDRESS_TYPE_NOT_SUPPORTED],
    ['ATYP 2', '05 01 00 02 7f000001 0050', 'unknown-address-type', SocksReply.ADDRESS_TYPE_NOT_SUPPORTED],
    ['ATYP 5', '05 01 00 05 7f000001 0050', 'unknown-address-type', SocksReply.ADDRESS_TYPE_NOT_SUPPORTED],
    ['a domain of length 0', '05 01 00 03 00 0050', 'empty-domain', SocksReply.GENERAL_FAILURE],
    ['a domain with a NUL byte', `05 01 00 03 03 610062 0050`, 'bad-domain', SocksReply.GENERAL_FAILURE],
    ['a domain with CR LF', `05 01 00 03 04 61 0d0a 62 0050`, 'bad-domain', SocksReply.GENERAL_FAILURE],
    ['a domain with a space', `05 01 00 03 03 ${ascii('a b')} 0050`, 'bad-domain', SocksReply.GENERAL_FAILURE],
    ['a domain with a slash', `05 01 00 03 03 ${ascii('a/b')} 0050`, 'bad-domain', SocksReply.GENERAL_FAILURE],
    ['a domain with a port', `05 01 00 03 06 ${ascii('a.b:80')} 0050`, 'bad-domain', SocksReply.GENERAL_FAILURE],
    ['an IPv6 literal with a zone id', `05 01 00 03 0c ${ascii('fe80::1%eth0')} 0050`, 'bad-domain', SocksReply.GENERAL_FAILURE],
    ['brackets around a name', `05 01 00 03 05 ${ascii('[a.b]')} 0050`, 'bad-domain', SocksReply.GENERAL_FAILURE],
    ['invalid UTF-8', '05 01 00 03 02 c328 0050', 'bad-domain', SocksReply.GENERAL_FAILURE],
  ])('refuses %s with its reason and reply', (_name, vector, reason, reply) => {
    expectError(parseRequest(hex(vector)), reason, reply);
  });

  it('rejects a bad header byte as soon as it arrives, before the address', () => {
    expectError(parseRequest(hex('05 09')), 'unknown-command', SocksReply.COMMAND_NOT_SUPPORTED);
    expectError(parseRequest(hex('05 01 00 07')), 'unknown-address-type', SocksReply.ADDRESS_TYPE_NOT_SUPPORTED);
  });
});

describe('encoders (RFC 1928 §3, §6; RFC 1929 §2)', () => {
  it.each([
    ['no authentication', AuthMethod.NONE, '0500'],
    ['username/password', AuthMethod.USER_PASS, '0502'],
    ['no acceptable methods', AuthMethod.NO_ACCEPTABLE, '05ff'],
  ])('encodes the method choice %s', (_n, method, bytes) => {
    expect(encodeMethodChoice(method).toString('hex')).toBe(bytes);
  });

  it('encodes the RFC 1929 status: 0x00 success, 0x01 failure', () => {
    expect(encodeAuthStatus(true).toString('hex')).toBe('0100');
    expect(encodeAuthStatus(false).toString('hex')).toBe('0101');
  });

  it.each<[string, number, Target | undefined, string]>([
    ['success with the default BND 0.0.0.0:0', SocksReply.SUCCEEDED, undefined, '050000 01 00000000 0000'],
    ['connection refused', SocksReply.CONNECTION_REFUSED, undefined, '050500 01 00000000 0000'],
    ['command not supported', SocksReply.COMMAND_NOT_SUPPORTED, undefined, '050700 01 00000000 0000'],
    ['success with an IPv4 BND', SocksReply.SUCCEEDED, { kind: 'ipv4', host: '127.0.0.1', port: 1080 }, '050000 01 7f000001 0438'],
    ['success with an IPv6 BND', SocksReply.SUCCEEDED, { kind: 'ipv6', host: '::1', port: 1080 }, '050000 04 00000000000000000000000000000001 0438'],
    ['success with a domain BND', SocksReply.SUCCEEDED, { kind: 'domain', host: 'a.invalid', port: 80 }, `050000 03 09 ${ascii('a.invalid')} 0050`],
  ])('encodes the reply %s', (_n, reply, bind, bytes) => {
    expect(encodeReply(reply as SocksReply, bind).toString('hex')).toBe(hex(bytes).toString('hex'));
  });

  it('encodes client messages that parse back (greeting, user/pass)', () => {
    expect(encodeGreeting([0, 2]).toString('hex')).toBe('05020002');
    expect(encodeUserPass('user', 'pass').toString('hex')).toBe(hex(`01 04 ${ascii('user')} 04 ${ascii('pass')}`).toString('hex'));
  });

  it.each<[string, () => unknown]>([
    ['an empty greeting', () => encodeGreeting([])],
    ['an empty username', () => encodeUserPass('', 'p')],
    ['a 256-byte password', () => encodeUserPass('u', 'p'.repeat(256))],
    ['an invalid IPv4 bind', () => encodeReply(SocksReply.SUCCEEDED, { kind: 'ipv4', host: '256.0.0.1', port: 1 })],
    ['an invalid IPv6 target', () => encodeRequest(Command.CONNECT, { kind: 'ipv6', host: '1:::2', port: 1 })],
    ['a 256-byte domain', () => encodeRequest(Command.CONNECT, { kind: 'domain', host: 'a'.repeat(256), port: 1 })],
    ['a port above 65535', () => encodeRequest(Command.CONNECT, { kind: 'ipv4', host: '1.2.3.4', port: 65536 })],
  ])('throws RangeError for %s', (_n, f) => {
    expect(f).toThrow(RangeError);
  });
});

describe('IPv6 text (RFC 4291 §2.2 in, RFC 5952 out)', () => {
  it.each([
    ['1:::2'],
    [':1::2'],
    ['1::2::3'],
    ['1:2:3:4:5:6:7'],
    ['1:2:3:4:5:6:7:8:9'],
    ['12345::'],
    ['::g'],
    ['::1.2.3'],
    ['::1.2.3.256'],
    ['fe80::1%eth0'],
  ])('rejects %s', (s) => {
    expect(parseIPv6(s)).toBeNull();
  });

  it('renders RFC 5952 §4 examples canonically', () => {
    expect(formatIPv6(parseIPv6('2001:0db8::0001')!)).toBe('2001:db8::1');
    expect(formatIPv6(parseIPv6('2001:db8:0:0:1:0:0:1')!)).toBe('2001:db8::1:0:0:1');
    expect(formatIPv6(parseIPv6('2001:DB8::AAAA')!)).toBe('2001:db8::aaaa');
    expect(formatIPv6(parseIPv6('2001:db8:0:1:1:1:1:1')!)).toBe('2001:db8:0:1:1:1:1:1');
  });

  it('writes IPv4-mapped addresses in mixed notation (RFC 5952 §5), other embedded IPv4 in hex', () => {
    expect(formatIPv6(parseIPv6('::FFFF:7f00:1')!)).toBe('::ffff:127.0.0.1');
    expect(formatIPv6(parseIPv6('::ffff:1.2.3.4')!)).toBe('::ffff:1.2.3.4');
    // RFC 4291 §2.5.5.1 IPv4-compatible (deprecated): not mapped, so plain hex.
    expect(formatIPv6(parseIPv6('::1.2.3.4')!)).toBe('::102:304');
  });
});

describe('properties', () => {
  const port = fc.integer({ min: 0, max: 65535 });
  const command = fc.constantFrom(Command.CONNECT, Command.BIND, Command.UDP_ASSOCIATE);
  const target: fc.Arbitrary<Target> = fc.oneof(
    fc.record({ kind: fc.constant('ipv4' as const), host: fc.ipV4(), port }),
    fc.record({ kind: fc.constant('ipv6' as const), host: fc.ipV6(), port }),
    fc.record({
      kind: fc.constant('domain' as const),
      host: fc.domain().filter((d) => Buffer.byteLength(d) <= 255),
      port,
    }),
  );

  it('encodeRequest → parseRequest returns the same target (IPv6 canonicalised, RFC 5952)', () => {
    fc.assert(
      fc.property(command, target, fc.uint8Array({ maxLength: 16 }), (cmd, t, trailer) => {
        const bytes = encodeRequest(cmd, t);
        const r = parseRequest(Buffer.concat([bytes, trailer]));
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        expect(r.used).toBe(bytes.length);
        expect(r.value.command).toBe(cmd);
        expect(r.value.target.kind).toBe(t.kind);
        expect(r.value.target.port).toBe(t.port);
        if (t.kind === 'ipv6') {
          // Independent oracle: the WHATWG URL parser's IPv6 serialiser (RFC 5952 compression;
          // it writes IPv4-mapped addresses in hex, where we use mixed notation, RFC 5952 §5).
          const viaUrl = (h: string) => new URL(`http://[${h}]/`).hostname;
          expect(viaUrl(r.value.target.host)).toBe(viaUrl(t.host));
          if (!r.value.target.host.startsWith('::ffff:')) expect(`[${r.value.target.host}]`).toBe(viaUrl(t.host));
        } else {
          expect(r.value.target.host).toBe(t.host);
        }
        // The canonical form encodes to the same bytes.
        expect(encodeRequest(cmd, r.value.target)).toEqual(bytes);
      }),
      { numRuns: 500 },
    );
  });

  it('encodeReply → parseReply returns the reply code and bind address', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8 }), target, (rep, t) => {
        const r = parseReply(encodeReply(rep as SocksReply, t));
        expect(r.ok && r.value.reply).toBe(rep);
        expect(r.ok && r.value.bind.port).toBe(t.port);
      }),
    );
  });

  it('a valid request split at any point needs more bytes until complete', () => {
    fc.assert(
      fc.property(command, target, fc.nat(), (cmd, t, at) => {
        const bytes = encodeRequest(cmd, t);
        expect(parseRequest(bytes.subarray(0, at % bytes.length))).toEqual({ ok: false, need: 'more' });
      }),
    );
  });

  it.each([
    ['parseGreeting', parseGreeting],
    ['parseUserPass', parseUserPass],
    ['parseRequest', parseRequest],
    ['parseReply', parseReply],
  ] as const)('%s never throws on random bytes: only ok, need more or a typed error', (_n, parse) => {
    const reasons = new Set<string>([
      'bad-version', 'no-methods', 'empty-username', 'empty-password', 'unknown-command',
      'bad-reserved', 'unknown-address-type', 'empty-domain', 'bad-domain',
    ]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (arr) => {
        const r = (parse as (b: Uint8Array) => ParseResult<unknown>)(arr);
        if (r.ok) {
          expect(r.used).toBeGreaterThan(0);
          expect(r.used).toBeLessThanOrEqual(arr.length);
        } else if ('need' in r) {
          expect(r.need).toBe('more');
        } else {
          expect(reasons.has(r.error.reason)).toBe(true);
          expect(r.error.reply === null || (r.error.reply >= 0 && r.error.reply <= 8)).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('parseRequest never throws when the bytes start like a valid request', () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 3, 4), fc.uint8Array({ maxLength: 300 }), (atyp, rest) => {
        const r = parseRequest(Buffer.concat([Buffer.from([5, 1, 0, atyp]), rest]));
        expect(r.ok || 'need' in r || 'error' in r).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
