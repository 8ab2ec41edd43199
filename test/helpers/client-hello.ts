/**
 * A pure TLS ClientHello parser (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) for the fingerprint test:
 * bytes in, the hello's fields out. It reads TLS records (RFC 8446 §5.1) of content type 22,
 * joins their fragments into one handshake message and decodes the extensions the comparison
 * looks at. No sockets, no timers.
 *
 * decodeClientHello(bytes) answers 'need-more' while the records are incomplete, else the hello
 * and the bytes it used; parseClientHello(bytes) is for a finished capture, where a short input is
 * an error. Malformed or oversize input throws ClientHelloError, whose code says which way and
 * whose message names the field.
 */

/** RFC 8446 §5.1: a record's fragment may not exceed 2^14 bytes. */
export const TLS_RECORD_MAX_FRAGMENT_BYTES = 16_384;
/** Largest ClientHello we accept (handshake body): far above any real client's (~2 KiB with post-quantum shares). */
export const CLIENT_HELLO_MAX_BYTES = 65_536;

const RECORD_HEADER_BYTES = 5;
const HANDSHAKE_HEADER_BYTES = 4;
const CONTENT_TYPE_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;

export type ClientHelloErrorCode = 'NOT_HANDSHAKE' | 'NOT_CLIENT_HELLO' | 'OVERSIZE' | 'TRUNCATED' | 'MALFORMED';

export class ClientHelloError extends Error {
  readonly code: ClientHelloErrorCode;
  constructor(code: ClientHelloErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.name = 'ClientHelloError';
    this.code = code;
  }
}

/** Extension code points (IANA "TLS ExtensionType Values") the comparison names. */
export const EXT = {
  server_name: 0,
  status_request: 5,
  supported_groups: 10,
  ec_point_formats: 11,
  signature_algorithms: 13,
  alpn: 16,
  signed_certificate_timestamp: 18,
  padding: 21,
  encrypt_then_mac: 22,
  extended_master_secret: 23,
  compress_certificate: 27,
  record_size_limit: 28,
  session_ticket: 35,
  pre_shared_key: 41,
  early_data: 42,
  supported_versions: 43,
  psk_key_exchange_modes: 45,
  post_handshake_auth: 49,
  signature_algorithms_cert: 50,
  key_share: 51,
  application_settings: 17_513,
  renegotiation_info: 0xff01,
} as const;

export interface ClientHello {
  /** The record layer's version field (0x0301 from OpenSSL's first flight). */
  recordVersion: number;
  /** legacy_version (0x0303 for TLS 1.2 and 1.3). */
  legacyVersion: number;
  random: Buffer;
  sessionId: Buffer;
  cipherSuites: number[];
  compressionMethods: number[];
  /** Extension types in the order sent. */
  extensionTypes: number[];
  /** Raw data of each extension, by type (a repeated type is a MALFORMED error). */
  extensions: Map<number, Buffer>;
  serverName?: string;
  supportedGroups?: number[];
  ecPointFormats?: number[];
  signatureAlgorithms?: number[];
  signatureAlgorithmsCert?: number[];
  alpn?: string[];
  supportedVersions?: number[];
  pskKeyExchangeModes?: number[];
  /** key_share client_shares: the group of each share and its key length, in order. */
  keyShares?: { group: number; keyBytes: number }[];
  /** Length of the padding extension's data. */
  paddingBytes?: number;
}

export type DecodeResult = { status: 'need-more' } | { status: 'ok'; hello: ClientHello; bytesUsed: number };

/** A bounds-checked reader over one vector; every read names the field for the error. */
class Reader {
  private pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly where: string,
  ) {}
  get left(): number {
    return this.buf.length - this.pos;
  }
  private need(n: number, field: string): void {
    if (n > this.left) throw new ClientHelloError('MALFORMED', `${this.where}${field}: needs ${n} bytes, ${this.left} left`);
  }
  u8(field: string): number {
    this.need(1, field);
    return this.buf[this.pos++] as number;
  }
  u16(field: string): number {
    this.need(2, field);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  bytes(n: number, field: string): Buffer {
    this.need(n, field);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  /** A vector with a 1- or 2-byte length prefix. */
  vec(lenBytes: 1 | 2, field: string): Buffer {
    const n = lenBytes === 1 ? this.u8(`${field} length`) : this.u16(`${field} length`);
    return this.bytes(n, field);
  }
  end(field: string): void {
    if (this.left !== 0) throw new ClientHelloError('MALFORMED', `${this.where}${field}: ${this.left} bytes after the end`);
  }
}

/** A vector of u16 values whose byte length must be even (and, if `nonEmpty`, not zero). */
function u16List(data: Buffer, field: string, nonEmpty = true): number[] {
  if (data.length % 2 !== 0) throw new ClientHelloError('MALFORMED', `${field}: odd length ${data.length}`);
  if (nonEmpty && data.length === 0) throw new ClientHelloError('MALFORMED', `${field}: empty`);
  const out: number[] = [];
  for (let i = 0; i < data.length; i += 2) out.push(data.readUInt16BE(i));
  return out;
}

/** The whole handshake message's length from its first bytes (type checked), or -1 before its header is in. */
function handshakeLength(head: Buffer): number {
  if (head.length >= 1 && head[0] !== HANDSHAKE_CLIENT_HELLO) {
    throw new ClientHelloError('NOT_CLIENT_HELLO', `handshake type ${head[0]}, expected ${HANDSHAKE_CLIENT_HELLO}`);
  }
  if (head.length < HANDSHAKE_HEADER_BYTES) return -1;
  const bodyLen = head.readUIntBE(1, 3);
  if (bodyLen > CLIENT_HELLO_MAX_BYTES) throw new ClientHelloError('OVERSIZE', `ClientHello length ${bodyLen} exceeds ${CLIENT_HELLO_MAX_BYTES}`);
  return HANDSHAKE_HEADER_BYTES + bodyLen;
}

/** Reads records from `bytes` until the handshake message is whole; null when more bytes are needed. */
function joinHandshake(bytes: Uint8Array): { body: Buffer; recordVersion: number; bytesUsed: number } | null {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts: Buffer[] = [];
  let have = 0;
  let pos = 0;
  let recordVersion = -1;
  let want = -1; // whole handshake message length, once its header is in
  for (;;) {
    if (want >= 0 && have >= want) break;
    if (buf.length - pos < RECORD_HEADER_BYTES) {
      if (buf.length - pos >= 1 && buf[pos] !== CONTENT_TYPE_HANDSHAKE) {
        throw new ClientHelloError('NOT_HANDSHAKE', `record content type ${buf[pos]}, expected ${CONTENT_TYPE_HANDSHAKE}`);
      }
      return null;
    }
    const type = buf[pos] as number;
    if (type !== CONTENT_TYPE_HANDSHAKE) throw new ClientHelloError('NOT_HANDSHAKE', `record content type ${type}, expected ${CONTENT_TYPE_HANDSHAKE}`);
    const len = buf.readUInt16BE(pos + 3);
    if (len > TLS_RECORD_MAX_FRAGMENT_BYTES) {
      throw new ClientHelloError('OVERSIZE', `record length ${len} exceeds ${TLS_RECORD_MAX_FRAGMENT_BYTES}`);
    }
    if (len === 0) throw new ClientHelloError('MALFORMED', 'record length: zero-length handshake fragment');
    if (recordVersion < 0) recordVersion = buf.readUInt16BE(pos + 1);
    const avail = Math.min(len, buf.length - pos - RECORD_HEADER_BYTES);
    const frag = buf.subarray(pos + RECORD_HEADER_BYTES, pos + RECORD_HEADER_BYTES + avail);
    // The handshake header is checked as soon as its bytes are in, before the rest is waited for.
    if (want < 0) want = handshakeLength(parts.length === 0 ? frag : Buffer.concat([...parts, frag]));
    if (avail < len) return null;
    pos += RECORD_HEADER_BYTES + len;
    parts.push(frag);
    have += frag.length;
  }
  const all = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  // A record carrying more than the ClientHello (the next handshake message) is not a client's first flight.
  if (all.length !== want) throw new ClientHelloError('MALFORMED', `record: ${all.length - want} bytes after the ClientHello`);
  return { body: all.subarray(HANDSHAKE_HEADER_BYTES), recordVersion, bytesUsed: pos };
}

function decodeExtension(hello: ClientHello, type: number, data: Buffer): void {
  const r = new Reader(data, `extension ${type}: `);
  switch (type) {
    case EXT.server_name: {
      const list = new Reader(r.vec(2, 'server_name_list'), 'server_name: ');
      r.end('server_name');
      const nameType = list.u8('name_type');
      if (nameType !== 0) throw new ClientHelloError('MALFORMED', `server_name: name_type ${nameType}, expected 0 (host_name)`);
      hello.serverName = list.vec(2, 'host_name').toString('latin1');
      list.end('server_name_list');
      break;
    }
    case EXT.supported_groups:
      hello.supportedGroups = u16List(r.vec(2, 'named_group_list'), 'supported_groups');
      r.end('supported_groups');
      break;
    case EXT.ec_point_formats:
      hello.ecPointFormats = [...r.vec(1, 'ec_point_format_list')];
      r.end('ec_point_formats');
      break;
    case EXT.signature_algorithms:
      hello.signatureAlgorithms = u16List(r.vec(2, 'supported_signature_algorithms'), 'signature_algorithms');
      r.end('signature_algorithms');
      break;
    case EXT.signature_algorithms_cert:
      hello.signatureAlgorithmsCert = u16List(r.vec(2, 'supported_signature_algorithms'), 'signature_algorithms_cert');
      r.end('signature_algorithms_cert');
      break;
    case EXT.alpn: {
      const list = new Reader(r.vec(2, 'protocol_name_list'), 'alpn: ');
      r.end('alpn');
      const names: string[] = [];
      while (list.left > 0) {
        const name = list.vec(1, 'protocol_name');
        if (name.length === 0) throw new ClientHelloError('MALFORMED', 'alpn: empty protocol_name');
        names.push(name.toString('latin1'));
      }
      if (names.length === 0) throw new ClientHelloError('MALFORMED', 'alpn: empty protocol_name_list');
      hello.alpn = names;
      break;
    }
    case EXT.supported_versions: {
      const v = r.vec(1, 'versions');
      r.end('supported_versions');
      hello.supportedVersions = u16List(v, 'supported_versions');
      break;
    }
    case EXT.psk_key_exchange_modes:
      hello.pskKeyExchangeModes = [...r.vec(1, 'ke_modes')];
      r.end('psk_key_exchange_modes');
      break;
    case EXT.key_share: {
      const list = new Reader(r.vec(2, 'client_shares'), 'key_share: ');
      r.end('key_share');
      const shares: { group: number; keyBytes: number }[] = [];
      while (list.left > 0) {
        const group = list.u16('group');
        shares.push({ group, keyBytes: list.vec(2, 'key_exchange').length });
      }
      hello.keyShares = shares;
      break;
    }
    case EXT.padding:
      if (data.some((b) => b !== 0)) throw new ClientHelloError('MALFORMED', 'padding: non-zero byte');
      hello.paddingBytes = data.length;
      break;
    default:
      break; // kept raw in `extensions`
  }
}

/** Decodes a client's first flight; see the module comment. */
export function decodeClientHello(bytes: Uint8Array): DecodeResult {
  const joined = joinHandshake(bytes);
  if (joined === null) return { status: 'need-more' };
  const r = new Reader(joined.body, '');
  const legacyVersion = r.u16('legacy_version');
  const random = Buffer.from(r.bytes(32, 'random'));
  const sessionId = Buffer.from(r.vec(1, 'legacy_session_id'));
  if (sessionId.length > 32) throw new ClientHelloError('MALFORMED', `legacy_session_id: length ${sessionId.length} exceeds 32`);
  const cipherSuites = u16List(r.vec(2, 'cipher_suites'), 'cipher_suites');
  const compressionMethods = [...r.vec(1, 'legacy_compression_methods')];
  if (compressionMethods.length === 0) throw new ClientHelloError('MALFORMED', 'legacy_compression_methods: empty');
  const hello: ClientHello = {
    recordVersion: joined.recordVersion,
    legacyVersion,
    random,
    sessionId,
    cipherSuites,
    compressionMethods,
    extensionTypes: [],
    extensions: new Map(),
  };
  if (r.left > 0) {
    const ext = new Reader(r.vec(2, 'extensions'), 'extensions: ');
    r.end('ClientHello');
    while (ext.left > 0) {
      const type = ext.u16('extension_type');
      const data = Buffer.from(ext.vec(2, `extension ${type} data`));
      if (hello.extensions.has(type)) throw new ClientHelloError('MALFORMED', `extension ${type}: appears twice`);
      hello.extensionTypes.push(type);
      hello.extensions.set(type, data);
      decodeExtension(hello, type, data);
    }
  }
  return { status: 'ok', hello, bytesUsed: joined.bytesUsed };
}

/** Decodes a finished capture: a short input is a TRUNCATED error. */
export function parseClientHello(bytes: Uint8Array): ClientHello {
  const res = decodeClientHello(bytes);
  if (res.status === 'need-more') throw new ClientHelloError('TRUNCATED', `capture ends inside the ClientHello (${bytes.length} bytes)`);
  return res.hello;
}

/** `0x1302`-style text for a code point (for readable test failures and tables). */
export function hex16(n: number): string {
  return `0x${n.toString(16).padStart(4, '0')}`;
}
