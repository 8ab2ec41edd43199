/**
 * Share links for the users of a bridge config: the secret from the config, the public host, port
 * and path, and how the client verifies TLS — a pin when the certificate is self-signed (or the
 * operator asks for one), else CA verification with sni=<publicHost>.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { PosternError } from '../core/errors.js';
import { unreadableError } from '../config/file.js';
import { spkiSha256 } from '../transport/certs.js';
import type { HostPort } from '../core/address.js';
import { formatShareUri, parseConnectAddress, type BridgeInfo } from '../transport/uri.js';

/** True when the certificate signs itself (no CA vouches for it, so clients must pin it). */
export function isSelfSigned(certPem: string): boolean {
  const cert = new X509Certificate(certPem);
  return cert.issuer === cert.subject && cert.verify(cert.publicKey);
}

export interface ShareTarget {
  secret: Buffer;
  publicHost: string;
  publicPort: number;
  path: string;
  /** The certificate clients will see, or null when it is not known (then CA verification). */
  certPem: string | null;
  label: string;
  /** A relay (plain TCP forwarder) clients dial instead of publicHost:publicPort; protocol.md §1 `connect`. */
  connect?: HostPort;
}

/** The share URI of one user. */
export function shareUri(t: ShareTarget): string {
  const info: BridgeInfo = { secret: t.secret, host: t.publicHost, port: t.publicPort, path: t.path, plain: false, label: t.label };
  if (t.connect !== undefined) info.connect = t.connect;
  if (t.certPem !== null && isSelfSigned(t.certPem)) {
    info.pin = spkiSha256(t.certPem);
  } else if (net.isIP(t.publicHost) === 0) {
    info.sni = t.publicHost;
  }
  return formatShareUri(info);
}

/** `--connect HOST[:PORT]`: the relay address (port default: the bridge's public port); errors name the option. */
export function parseConnectOption(text: string, publicPort: number): HostPort {
  try {
    return parseConnectAddress(text.trim(), publicPort);
  } catch (err) {
    throw new PosternError('E_CONFIG', `--connect ${text}: ${(err as Error).message.replace(/^.*?connect: /, '')}`);
  }
}

/** Reads a PEM file named on the command line; errors name the option and the file. */
export function readPem(file: string, option: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw unreadableError(file, err) ?? new PosternError('E_CONFIG', `${option} ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!text.includes('-----BEGIN')) throw new PosternError('E_CONFIG', `${option} ${file}: not a PEM file`);
  return text;
}
