import { createHash, timingSafeEqual } from 'node:crypto';

function digest(b: Uint8Array): Buffer {
  return createHash('sha256').update(b).digest();
}

/**
 * A constant-time check of a username/password pair against the configured one. Both sides are
 * compared as fixed-length SHA-256 digests, and both comparisons always run: no length or
 * early-exit timing leak.
 */
export function credentialChecker(username: string, password: string): (user: Uint8Array, pass: Uint8Array) => boolean {
  const wantUser = digest(Buffer.from(username, 'utf8'));
  const wantPass = digest(Buffer.from(password, 'utf8'));
  return (user, pass) => {
    const userOk = timingSafeEqual(digest(user), wantUser);
    const passOk = timingSafeEqual(digest(pass), wantPass);
    return userOk && passOk;
  };
}
