import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Edits bridge.json the way tools and editors do: write a temp file in the folder, rename it over. */
export function rewriteConfig(file: string, mutate: (c: Record<string, any>) => void): void {
  const c = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, any>;
  mutate(c);
  const tmp = path.join(path.dirname(file), `.bridge.json.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  fs.writeFileSync(tmp, `${JSON.stringify(c, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** Adds a user with a fresh secret to bridge.json; returns the secret (base64url). */
export function addUserToConfig(file: string, name: string, extra: Record<string, unknown> = {}): string {
  const secret = crypto.randomBytes(32).toString('base64url');
  rewriteConfig(file, (c) => {
    c.users.push({ name, secret, ...extra });
  });
  return secret;
}

/** The same share URI with another user's secret. */
export function uriWithSecret(uri: string, secret: string): string {
  return uri.replace(/^postern:\/\/[^@]+@/, `postern://${secret}@`);
}
