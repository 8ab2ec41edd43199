import { describe, expect, it } from 'vitest';
import {
  CLIENT_HELLO_MAX_BYTES,
  ClientHelloError,
  EXT,
  TLS_RECORD_MAX_FRAGMENT_BYTES,
  decodeClientHello,
  parseClientHello,
  type ClientHelloErrorCode,
} from '../../helpers/client-hello.js';

/** curl 7.88.1 (OpenSSL 3.0.19, Debian 12) to https://example.com/, recorded on loopback; then 178 zero bytes of padding. */
const CURL_HELLO = Buffer.concat([
  Buffer.from(
    [
      '1603010200010001fc030328c70cbce9eb16f4107879c46ff3812aa8ba1578ecf50be099c41f121891a65220c1e28dbbe34505bf018ef57c782e9990',
      '4fe913617a0c6b5f02700bee6706fa1d003e130213031301c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039',
      'c009c0130033009d009c003d003c0035002f00ff0100017500000010000e00000b6578616d706c652e636f6d000b000403000102000a00160014001d',
      '0017001e00190018010001010102010301040010000e000c02683208687474702f312e31001600000017000000310000000d002a0028040305030603',
      '080708080809080a080b080408050806040105010601030303010302040205020602002b0009080304030303020301002d0002010100330026002400',
      '1d002046e0608c3ad54a05d239a02dab82ff3ecc072c3036be0bfd04a9ede76c65fa05001500b2',
    ].join(''),
    'hex',
  ),
  Buffer.alloc(178),
]);

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const vec16 = (b: Buffer): Buffer => Buffer.concat([u16(b.length), b]);
const vec8 = (b: Buffer): Buffer => Buffer.concat([Buffer.from([b.length]), b]);

/** A ClientHello body from parts (RFC 8446 §4.1.2); `extensions` null: none at all (a TLS 1.2-era hello). */
function helloBody(o: { ciphers?: number[]; extensions?: Array<[number, Buffer]> | null; sessionId?: Buffer } = {}): Buffer {
  const ciphers = Buffer.concat((o.ciphers ?? [0x1301, 0xc02f]).map(u16));
  const parts = [u16(0x0303), Buffer.alloc(32, 0xab), vec8(o.sessionId ?? Buffer.alloc(0)), vec16(ciphers), vec8(Buffer.from([0]))];
  if (o.extensions !== null) parts.push(vec16(Buffer.concat((o.extensions ?? []).map(([t, d]) => Buffer.concat([u16(t), vec16(d)])))));
  return Buffer.concat(parts);
}

/** Handshake header (type 1, u24 length) plus body. */
function handshake(body: Buffer, type = 1): Buffer {
  return Buffer.concat([Buffer.from([type, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
}

/** One TLS record of content type `type` around `fragment`. */
function record(fragment: Buffer, type = 22): Buffer {
  return Buffer.concat([Buffer.from([type, 3, 1]), u16(fragment.length), fragment]);
}

function errorOf(f: () => unknown): ClientHelloError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ClientHelloError);
    return err as ClientHelloError;
  }
  throw new Error('no error');
}

describe('decodeClientHello (RFC 8446 §4.1.2, §5.1)', () => {
  it("reads every field of curl's ClientHello", () => {
    const r = decodeClientHello(CURL_HELLO);
    expect(r.status).toBe('ok');
    if (r.status !== 'ok') return;
    const h = r.hello;
    expect(r.bytesUsed).toBe(517);
    expect(h.recordVersion).toBe(0x0301);
    expect(h.legacyVersion).toBe(0x0303);
    expect(h.sessionId).toHaveLength(32);
    expect(h.cipherSuites).toEqual([
      0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0x009f, 0xcca9, 0xcca8, 0xccaa, 0xc02b, 0xc02f, 0x009e, 0xc024, 0xc028, 0x006b, 0xc023, 0xc027,
      0x0067, 0xc00a, 0xc014, 0x0039, 0xc009, 0xc013, 0x0033, 0x009d, 0x009c, 0x003d, 0x003c, 0x0035, 0x002f, 0x00ff,
    ]);
    expect(h.compressionMethods).toEqual([0]);
    expect(h.extensionTypes).toEqual([0, 11, 10, 16, 22, 23, 49, 13, 43, 45, 51, 21]);
    expect(h.serverName).toBe('example.com');
    expect(h.ecPointFormats).toEqual([0, 1, 2]);
    expect(h.supportedGroups).toEqual([0x1d, 0x17, 0x1e, 0x19, 0x18, 0x100, 0x101, 0x102, 0x103, 0x104]);
    expect(h.signatureAlgorithms).toEqual([
      0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0809, 0x080a, 0x080b, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0303, 0x0301, 0x0302, 0x0402,
      0x0502, 0x0602,
    ]);
    expect(h.alpn).toEqual(['h2', 'http/1.1']);
    expect(h.supportedVersions).toEqual([0x0304, 0x0303, 0x0302, 0x0301]);
    expect(h.pskKeyExchangeModes).toEqual([1]);
    expect(h.keyShares).toEqual([{ group: 0x1d, keyBytes: 32 }]);
    expect(h.paddingBytes).toBe(178);
    expect(h.extensions.get(EXT.post_handshake_auth)).toEqual(Buffer.alloc(0));
  });

  it('asks for more at every prefix, and gives the same hello for the whole', () => {
    for (let n = 0; n < CURL_HELLO.length; n++) expect(decodeClientHello(CURL_HELLO.subarray(0, n)), `prefix ${n}`).toEqual({ status: 'need-more' });
    const r = decodeClientHello(Buffer.concat([CURL_HELLO, record(Buffer.from([1]), 21)]));
    expect(r.status === 'ok' && r.bytesUsed).toBe(CURL_HELLO.length); // what follows is not read
  });

  it('joins a handshake message split across records at every byte', () => {
    const hs = CURL_HELLO.subarray(5);
    const whole = decodeClientHello(CURL_HELLO);
    if (whole.status !== 'ok') throw new Error('whole');
    for (let cut = 1; cut < hs.length; cut++) {
      const two = Buffer.concat([record(hs.subarray(0, cut)), record(hs.subarray(cut))]);
      const r = decodeClientHello(two);
      expect(r.status, `cut ${cut}`).toBe('ok');
      if (r.status === 'ok') {
        expect(r.hello.cipherSuites).toEqual(whole.hello.cipherSuites);
        expect(r.hello.extensionTypes).toEqual(whole.hello.extensionTypes);
        expect(r.bytesUsed).toBe(two.length);
      }
    }
  });

  it('reads a hello without extensions (TLS 1.2 clients may send none)', () => {
    const h = parseClientHello(record(handshake(helloBody({ extensions: null }))));
    expect(h.extensionTypes).toEqual([]);
    expect(h.cipherSuites).toEqual([0x1301, 0xc02f]);
  });

  it.each<[string, () => Buffer, ClientHelloErrorCode, RegExp]>([
    ['a capture that ends inside the hello', () => CURL_HELLO.subarray(0, 300), 'TRUNCATED', /ends inside the ClientHello \(300 bytes\)/],
    ['an empty capture', () => Buffer.alloc(0), 'TRUNCATED', /0 bytes/],
    ['a record over 2^14 bytes', () => Buffer.from([22, 3, 1, 0x40, 0x01]), 'OVERSIZE', new RegExp(`record length 16385 exceeds ${TLS_RECORD_MAX_FRAGMENT_BYTES}`)],
    ['a hello longer than the limit', () => record(Buffer.from([1, 0x01, 0x00, 0x01])), 'OVERSIZE', new RegExp(`ClientHello length 65537 exceeds ${CLIENT_HELLO_MAX_BYTES}`)],
    ['plain HTTP', () => Buffer.from('GET / HTTP/1.1\r\n'), 'NOT_HANDSHAKE', /record content type 71/],
    ['an application-data record', () => record(Buffer.from([1, 2, 3]), 23), 'NOT_HANDSHAKE', /content type 23/],
    ['a ServerHello', () => record(handshake(helloBody(), 2)), 'NOT_CLIENT_HELLO', /handshake type 2, expected 1/],
    ['a zero-length record', () => record(Buffer.alloc(0)), 'MALFORMED', /zero-length handshake fragment/],
    ['a record with bytes after the hello', () => record(Buffer.concat([handshake(helloBody()), Buffer.from([20, 0, 0, 0])])), 'MALFORMED', /4 bytes after the ClientHello/],
    ['a cipher list longer than the hello', () => record(handshake(Buffer.concat([u16(0x0303), Buffer.alloc(32), vec8(Buffer.alloc(0)), u16(200), u16(0x1301)]))), 'MALFORMED', /^MALFORMED: cipher_suites: needs 200 bytes, 2 left/],
    ['an odd cipher list', () => record(handshake(Buffer.concat([u16(0x0303), Buffer.alloc(32), vec8(Buffer.alloc(0)), vec16(Buffer.from([0x13])), vec8(Buffer.from([0])), u16(0)]))), 'MALFORMED', /cipher_suites: odd length 1/],
    ['a session id over 32 bytes', () => record(handshake(helloBody({ sessionId: Buffer.alloc(33) }))), 'MALFORMED', /legacy_session_id: length 33 exceeds 32/],
    ['no compression method', () => record(handshake(Buffer.concat([u16(0x0303), Buffer.alloc(32), vec8(Buffer.alloc(0)), vec16(u16(0x1301)), vec8(Buffer.alloc(0))]))), 'MALFORMED', /legacy_compression_methods: empty/],
    ['an extension longer than the list', () => record(handshake(Buffer.concat([helloBody({ extensions: null }), vec16(Buffer.concat([u16(16), u16(50), Buffer.alloc(3)]))]))), 'MALFORMED', /extensions: extension 16 data: needs 50 bytes, 3 left/],
    ['bytes after the extensions', () => record(handshake(Buffer.concat([helloBody(), Buffer.from([0])]))), 'MALFORMED', /ClientHello: 1 bytes after the end/],
    ['an extension sent twice', () => record(handshake(helloBody({ extensions: [[EXT.extended_master_secret, Buffer.alloc(0)], [EXT.extended_master_secret, Buffer.alloc(0)]] }))), 'MALFORMED', /extension 23: appears twice/],
    ['an empty ALPN name', () => record(handshake(helloBody({ extensions: [[EXT.alpn, vec16(Buffer.from([0]))]] }))), 'MALFORMED', /alpn: empty protocol_name$/],
    ['an ALPN name past its list', () => record(handshake(helloBody({ extensions: [[EXT.alpn, vec16(Buffer.from([5, 0x68, 0x32]))]] }))), 'MALFORMED', /alpn: protocol_name: needs 5 bytes, 2 left/],
    ['a key share past its list', () => record(handshake(helloBody({ extensions: [[EXT.key_share, vec16(Buffer.concat([u16(0x1d), u16(32), Buffer.alloc(8)]))]] }))), 'MALFORMED', /key_share: key_exchange: needs 32 bytes, 8 left/],
    ['an odd supported_versions', () => record(handshake(helloBody({ extensions: [[EXT.supported_versions, vec8(Buffer.from([3, 4, 3]))]] }))), 'MALFORMED', /supported_versions: odd length 3/],
    ['a host_name of another type', () => record(handshake(helloBody({ extensions: [[EXT.server_name, vec16(Buffer.concat([Buffer.from([1]), vec16(Buffer.from('a'))]))]] }))), 'MALFORMED', /server_name: name_type 1/],
    ['non-zero padding', () => record(handshake(helloBody({ extensions: [[EXT.padding, Buffer.from([0, 1])]] }))), 'MALFORMED', /padding: non-zero byte/],
    ['groups with bytes after the list', () => record(handshake(helloBody({ extensions: [[EXT.supported_groups, Buffer.concat([vec16(u16(0x1d)), Buffer.from([0])])]] }))), 'MALFORMED', /supported_groups: 1 bytes after the end/],
  ])('refuses %s with a typed error naming the field', (_name, input, code, message) => {
    const err = errorOf(() => parseClientHello(input()));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });

  it('refuses oversize lengths from the header, before their bytes arrive', () => {
    expect(errorOf(() => decodeClientHello(Buffer.from([22, 3, 1, 0xff, 0xff]))).code).toBe('OVERSIZE');
    expect(errorOf(() => decodeClientHello(Buffer.from([22, 3, 1, 0x40, 0x00, 1, 0xff, 0xff, 0xff]))).code).toBe('OVERSIZE');
    expect(errorOf(() => decodeClientHello(Buffer.from([0x47]))).code).toBe('NOT_HANDSHAKE');
  });
});
