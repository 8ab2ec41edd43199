/**
 * A self-signed RSA-2048 certificate for bridges without a CA-issued one (and for the client's
 * local TLS entry points). Loaded with import() only by the commands that make one: node-forge
 * holds about 3 MiB of heap once loaded, which a running bridge or client should not carry.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import forge from 'node-forge';

/** Validity of a generated certificate unless told otherwise (browsers' current maximum). */
export const SELF_SIGNED_DEFAULT_DAYS = 397;
/** Back-date notBefore so that a client whose clock is a little behind still accepts it. */
const NOT_BEFORE_SLACK_MS = 60 * 60 * 1000;
const RSA_BITS = 2048;

export interface SelfSignedOptions {
  commonName: string;
  /** DNS names or IP literals for subjectAltName. */
  altNames: string[];
  /** Validity in days from now; default SELF_SIGNED_DEFAULT_DAYS. */
  days?: number;
  /**
   * Reuse this RSA private key (PEM) instead of making a new one. Renewing with the same key keeps
   * the SPKI pin, so existing share URIs stay valid.
   */
  keyPem?: string;
}

/** A self-signed server certificate (RSA-2048, SHA-256) with the given names. */
export function generateSelfSigned(opts: SelfSignedOptions): { keyPem: string; certPem: string } {
  const days = opts.days ?? SELF_SIGNED_DEFAULT_DAYS;
  if (!(days > 0)) throw new RangeError('days must be positive');

  let privateKey: forge.pki.rsa.PrivateKey;
  let publicKey: forge.pki.rsa.PublicKey;
  if (opts.keyPem !== undefined) {
    privateKey = forge.pki.privateKeyFromPem(opts.keyPem);
    publicKey = forge.pki.rsa.setPublicKey(privateKey.n, privateKey.e);
  } else {
    // forge uses Node's native key generation when it is available (fast).
    const pair = forge.pki.rsa.generateKeyPair({ bits: RSA_BITS, e: 0x10001 });
    privateKey = pair.privateKey;
    publicKey = pair.publicKey;
  }

  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A positive, non-zero 128-bit serial (RFC 5280 §4.1.2.2).
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01;
  cert.serialNumber = serial.toString('hex');
  const now = Date.now();
  cert.validity.notBefore = new Date(now - NOT_BEFORE_SLACK_MS);
  cert.validity.notAfter = new Date(now + days * 24 * 60 * 60 * 1000);
  const subject = [{ name: 'commonName', value: opts.commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
  ];
  if (opts.altNames.length > 0) {
    // type 7: iPAddress, type 2: dNSName (RFC 5280 §4.2.1.6).
    const altNames = opts.altNames.map((n) => (net.isIP(n) !== 0 ? { type: 7, ip: n } : { type: 2, value: n }));
    extensions.push({ name: 'subjectAltName', altNames });
  }
  cert.setExtensions(extensions);
  cert.sign(privateKey, forge.md.sha256.create());
  return { keyPem: forge.pki.privateKeyToPem(privateKey), certPem: forge.pki.certificateToPem(cert) };
}
