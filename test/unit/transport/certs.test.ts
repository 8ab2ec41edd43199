import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { beforeAll, describe, expect, it } from 'vitest';
import { spkiSha256 } from '../../../src/transport/certs.js';
import { generateSelfSigned } from '../../../src/transport/self-signed.js';

/** SHA-256 of the SPKI re-encoded by node-forge's ASN.1 code, independent of node:crypto's X509 parser. */
function forgeSpkiSha256(certPem: string): Buffer {
  const cert = forge.pki.certificateFromPem(certPem);
  const der = forge.asn1.toDer(forge.pki.publicKeyToAsn1(cert.publicKey)).getBytes();
  return createHash('sha256').update(Buffer.from(der, 'binary')).digest();
}

describe('generateSelfSigned', () => {
  let pair: { keyPem: string; certPem: string };
  beforeAll(() => {
    pair = generateSelfSigned({ commonName: 'bridge.example', altNames: ['bridge.example', '127.0.0.1', '::1'], days: 30 });
  });

  it('makes a self-signed RSA-2048 certificate with the names as subjectAltName', () => {
    const x = new X509Certificate(pair.certPem);
    expect(x.subject).toBe('CN=bridge.example');
    expect(x.issuer).toBe('CN=bridge.example');
    expect(x.subjectAltName).toContain('DNS:bridge.example');
    expect(x.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(x.subjectAltName).toMatch(/IP Address:(0:0:0:0:0:0:0:1|::1)/);
    expect(x.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.checkPrivateKey(createPrivateKey(pair.keyPem))).toBe(true);
  });

  it('is valid from before now until the requested number of days', () => {
    const x = new X509Certificate(pair.certPem);
    const now = Date.now();
    expect(Date.parse(x.validFrom)).toBeLessThan(now);
    const days = (Date.parse(x.validTo) - now) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThan(30.1);
  });

  it('keeps the same pin when renewed with the same key', () => {
    const renewed = generateSelfSigned({ commonName: 'other', altNames: [], keyPem: pair.keyPem });
    expect(renewed.certPem).not.toBe(pair.certPem);
    expect(spkiSha256(renewed.certPem).equals(spkiSha256(pair.certPem))).toBe(true);
  });

  it('gives spkiSha256 equal to an independent hash of the forge-encoded SubjectPublicKeyInfo', () => {
    const pin = spkiSha256(pair.certPem);
    expect(pin).toHaveLength(32);
    expect(pin.equals(forgeSpkiSha256(pair.certPem))).toBe(true);
    const other = generateSelfSigned({ commonName: 'x', altNames: ['x.example'] });
    expect(spkiSha256(other.certPem).equals(pin)).toBe(false);
  });
});
