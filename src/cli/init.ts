import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PosternError } from '../core/errors.js';
import type { BridgeConfigFile } from '../config/bridge.js';
import { generateSecret } from '../transport/auth.js';
import { generateSelfSigned, spkiSha256 } from '../transport/certs.js';
import { formatShareUri } from '../transport/uri.js';

export interface InitOptions {
  dir: string;
  host: string;
  port: number;
  listenHost: string;
  user: string;
  force: boolean;
}

export interface InitResult {
  configFile: string;
  uri: string;
}

export const CONFIG_NAME = 'bridge.json';

/** Writes bridge.json, key.pem, cert.pem and a first user into dir; returns the share URI. */
export function initBridge(o: InitOptions): InitResult {
  const dir = path.resolve(o.dir);
  const configFile = path.join(dir, CONFIG_NAME);
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  if (!o.force) {
    for (const f of [configFile, keyFile, certFile]) {
      if (fs.existsSync(f)) throw new PosternError('E_CONFIG', `${f} already exists (use --force to overwrite)`);
    }
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { keyPem, certPem } = generateSelfSigned({ commonName: o.host, altNames: [o.host] });
  const secret = generateSecret();
  const secretPath = `/${crypto.randomBytes(12).toString('base64url')}`;
  const config: BridgeConfigFile = {
    listen: `${net.isIPv6(o.listenHost) ? `[${o.listenHost}]` : o.listenHost}:${o.port}`,
    path: secretPath,
    publicHost: o.host,
    tls: { cert: 'cert.pem', key: 'key.pem' },
    users: [{ name: o.user, secret: secret.toString('base64url') }],
    allowPrivate: false,
  };
  // Secrets: key and config are 0600; the certificate is public.
  writeFileAtomic(keyFile, keyPem, 0o600);
  writeFileAtomic(certFile, certPem, 0o644);
  writeFileAtomic(configFile, `${JSON.stringify(config, null, 2)}\n`, 0o600);
  const uri = formatShareUri({
    secret,
    host: o.host,
    port: o.port,
    path: secretPath,
    pin: spkiSha256(certPem),
    plain: false,
    label: o.user,
  });
  return { configFile, uri };
}

export function writeFileAtomic(file: string, data: string, mode: number): void {
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, data, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}
