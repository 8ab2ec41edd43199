/**
 * The client's TLS ClientHello (docs/protocol.md §2.4): the one a widespread OpenSSL 3 client
 * sends — curl 7.88.1 with OpenSSL 3.0 on Debian 12 — so that a Postern client's handshake does
 * not stand out from ordinary HTTPS. Every TLS connection the client opens to a bridge (the
 * dialer, `postern doctor`) takes its options from here; whatever the transport, the offer is the
 * same. test/integration/client-hello.test.ts captures both ClientHellos and compares them field
 * by field.
 */
import { constants as cryptoConstants } from 'node:crypto';
import type tls from 'node:tls';

/** ALPN, in curl's order: HTTP/2 first, then HTTP/1.1 — whatever the link's transport. */
export const CLIENT_ALPN: readonly string[] = ['h2', 'http/1.1'];

/**
 * Cipher suites in OpenSSL 3.0's DEFAULT order without the PSK suites (OpenSSL leaves those out
 * of a hello without a PSK callback): the TLS 1.3 three, then TLS 1.2's. OpenSSL appends the
 * renegotiation SCSV (0x00ff) itself, as for curl.
 */
const CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'DHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'DHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-SHA384',
  'ECDHE-RSA-AES256-SHA384',
  'DHE-RSA-AES256-SHA256',
  'ECDHE-ECDSA-AES128-SHA256',
  'ECDHE-RSA-AES128-SHA256',
  'DHE-RSA-AES128-SHA256',
  'ECDHE-ECDSA-AES256-SHA',
  'ECDHE-RSA-AES256-SHA',
  'DHE-RSA-AES256-SHA',
  'ECDHE-ECDSA-AES128-SHA',
  'ECDHE-RSA-AES128-SHA',
  'DHE-RSA-AES128-SHA',
  'AES256-GCM-SHA384',
  'AES128-GCM-SHA256',
  'AES256-SHA256',
  'AES128-SHA256',
  'AES256-SHA',
  'AES128-SHA',
].join(':');

/** supported_groups, OpenSSL 3.0's default order; the key share is for the first (X25519). */
const GROUPS = ['X25519', 'P-256', 'X448', 'P-521', 'P-384', 'ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192'].join(':');

/** signature_algorithms, OpenSSL 3.0's default list and order (SHA-224 and DSA included, as curl sends them). */
const SIGALGS = [
  'ecdsa_secp256r1_sha256',
  'ecdsa_secp384r1_sha384',
  'ecdsa_secp521r1_sha512',
  'ed25519',
  'ed448',
  'rsa_pss_pss_sha256',
  'rsa_pss_pss_sha384',
  'rsa_pss_pss_sha512',
  'rsa_pss_rsae_sha256',
  'rsa_pss_rsae_sha384',
  'rsa_pss_rsae_sha512',
  'rsa_pkcs1_sha256',
  'rsa_pkcs1_sha384',
  'rsa_pkcs1_sha512',
  'ECDSA+SHA224',
  'RSA+SHA224',
  'DSA+SHA224',
  'DSA+SHA256',
  'DSA+SHA384',
  'DSA+SHA512',
].join(':');

/** OpenSSL's SSL_OP_TLSEXT_PADDING (part of SSL_OP_ALL, which curl sets; Node exports no name for it): pad a 256–511-byte hello to 512 bytes (RFC 7685). */
const SSL_OP_TLSEXT_PADDING = 0x10;

/**
 * The protocol versions the hello lists: TLS 1.0 to 1.3, as curl lists them. Postern itself
 * needs TLS 1.2 or newer: a connection that negotiated less is refused right after the handshake
 * (tlsProtocolTooOld), before any byte of ours is sent. TLS 1.3's downgrade sentinel (RFC 8446
 * §4.1.3, checked by OpenSSL) already stops a middlebox from forcing a lower version.
 */
const OFFERED_MIN_VERSION: tls.SecureVersion = 'TLSv1';

/** The lowest TLS version a client connection may use. */
export const CLIENT_TLS_MIN_PROTOCOL = 'TLSv1.2';

/**
 * Options for tls.connect that make the ClientHello: cipher suites, groups, signature algorithms,
 * ALPN, versions, and curl's SSL options (the padding extension; no TLS 1.2 session_ticket
 * extension — TLS 1.3 tickets, which the dialer keeps and offers, still work). The caller adds
 * the socket, servername, identity checks and the session to resume.
 */
export function clientHelloOptions(): tls.ConnectionOptions {
  return {
    ciphers: CIPHERS,
    ecdhCurve: GROUPS,
    sigalgs: SIGALGS,
    ALPNProtocols: [...CLIENT_ALPN],
    minVersion: OFFERED_MIN_VERSION,
    maxVersion: 'TLSv1.3',
    secureOptions: SSL_OP_TLSEXT_PADDING | cryptoConstants.SSL_OP_NO_TICKET,
  };
}

/** True when a finished handshake's protocol (TLSSocket.getProtocol()) is below CLIENT_TLS_MIN_PROTOCOL. */
export function tlsProtocolTooOld(protocol: string | null): boolean {
  return protocol !== 'TLSv1.2' && protocol !== 'TLSv1.3';
}
