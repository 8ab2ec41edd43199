/**
 * Bridge certificates: the SPKI pin clients check (docs/protocol.md §1, `pin`). Making a
 * self-signed certificate is in self-signed.ts, which the CLI loads only when it makes one (node-forge
 * is large; a running bridge or client never needs it).
 */
import { createHash, timingSafeEqual, X509Certificate } from 'node:crypto';
import type tls from 'node:tls';

/** SHA-256 of a DER SubjectPublicKeyInfo. */
export function sha256(der: Uint8Array): Buffer {
  return createHash('sha256').update(der).digest();
}

/** The pin of the certificate a TLS peer presented (null when it presented none). */
export function peerSpkiSha256(s: tls.TLSSocket): Buffer | null {
  const cert = s.getPeerX509Certificate();
  return cert === undefined ? null : sha256(cert.publicKey.export({ type: 'spki', format: 'der' }));
}

/** True when `got` is `pin`, compared in constant time. */
export function pinMatches(got: Buffer | null, pin: Buffer): boolean {
  return got !== null && got.length === pin.length && timingSafeEqual(got, pin);
}

/** The pin of a certificate: SHA-256 of its DER SubjectPublicKeyInfo (32 bytes). */
export function spkiSha256(certPem: string): Buffer {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return sha256(spki);
}
