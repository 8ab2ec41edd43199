import crypto, { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import { formatHostPort } from '../core/address.js';
import path from 'node:path';
import { PosternError } from '../core/errors.js';
import type { BridgeConfigFile } from '../config/bridge.js';
import { generateSecret } from '../transport/auth.js';
import { readPem, shareUri, type LinkOptions } from './share.js';

export interface InitOptions {
  dir: string;
  host: string;
  port: number;
  /** The port clients dial when it differs from the one we listen on (a container's published port, NAT). */
  publicPort?: number;
  listenHost: string;
  user: string;
  force: boolean;
  /** Existing certificate and key (e.g. Let's Encrypt): referenced, not copied, so renewals apply. */
  existing?: { certFile: string; keyFile: string };
  /** The link's relay or CDN address, TLS name and Host (protocol.md §1 connect, sni, host), already checked. */
  front?: LinkOptions;
}

export interface InitResult {
  configFile: string;
  uri: string;
}

export const CONFIG_NAME = 'bridge.json';

/** Writes bridge.json, key.pem, cert.pem and a first user into dir; returns the share URI. */
/** Async only to load the certificate maker (node-forge) when it makes a certificate, never in a daemon. */
export async function initBridge(o: InitOptions): Promise<InitResult> {
  const dir = path.resolve(o.dir);
  const configFile = path.join(dir, CONFIG_NAME);
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  const existing = o.existing ? checkExisting(o.existing) : null;
  if (!o.force) {
    for (const f of existing ? [configFile] : [configFile, keyFile, certFile]) {
      if (fs.existsSync(f)) throw new PosternError('E_FILE_EXISTS', `${f} already exists (use --force to overwrite)`);
    }
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { keyPem, certPem } = existing ?? (await import('../transport/self-signed.js')).generateSelfSigned({ commonName: o.host, altNames: [o.host] });
  const secret = generateSecret();
  const secretPath = `/${crypto.randomBytes(12).toString('base64url')}`;
  const config: BridgeConfigFile = {
    listen: formatHostPort({ host: o.listenHost, port: o.port }),
    path: secretPath,
    publicHost: o.host,
    ...(o.publicPort !== undefined && o.publicPort !== o.port ? { publicPort: o.publicPort } : {}),
    tls: o.existing ? { cert: path.resolve(o.existing.certFile), key: path.resolve(o.existing.keyFile) } : { cert: 'cert.pem', key: 'key.pem' },
    users: [{ name: o.user, secret: secret.toString('base64url') }],
    allowPrivate: false,
    // An h2 link needs a bridge that serves HTTP/2 (off by default: protocol.md §12).
    ...(o.front?.transport === 'h2' ? { http2: true } : {}),
  };
  // Secrets: key and config are 0600; the certificate is public.
  if (!existing) {
    writeFileAtomic(keyFile, keyPem, 0o600);
    writeFileAtomic(certFile, certPem, 0o644);
  }
  writeFileAtomic(configFile, `${JSON.stringify(config, null, 2)}\n`, 0o600);
  // A self-signed certificate is pinned; a CA-issued one is verified by name (sni=host).
  const uri = shareUri({ secret, publicHost: o.host, publicPort: o.publicPort ?? o.port, path: secretPath, certPem, label: o.user, ...o.front });
  return { configFile, uri };
}

/** Reads an existing certificate and key and checks that they belong together. */
function checkExisting(e: { certFile: string; keyFile: string }): { certPem: string; keyPem: string } {
  const certPem = readPem(e.certFile, '--cert');
  const keyPem = readPem(e.keyFile, '--key');
  let matches: boolean;
  try {
    matches = new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch (err) {
    throw new PosternError('E_CONFIG', `--cert/--key: cannot load (${(err as Error).message})`);
  }
  if (!matches) throw new PosternError('E_CONFIG', `--key ${e.keyFile} is not the private key of --cert ${e.certFile}`);
  return { certPem, keyPem };
}

/** Writes a temp file beside `file` (mode set before any byte), fsyncs it, renames it over `file`. */
export function writeFileAtomic(file: string, data: string, mode: number, beforeRename?: (tmp: string) => void): void {
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.fchmodSync(fd, mode);
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  try {
    beforeRename?.(tmp);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
