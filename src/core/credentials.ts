import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A username/password pair apps present to a local listener (SOCKS5 RFC 1929, HTTP Basic). */
export interface Credentials {
  username: string;
  password: string;
}

/**
 * Random credentials: URL-safe (they go into tg:// links, curl proxy URLs and QR codes unescaped),
 * easy to type on a phone, and strong enough that guessing is hopeless (96 random bits of password).
 * The password never starts with "-", so that `--pass VALUE` and `curl -U` read it as a value.
 */
export function generateCredentials(random: (n: number) => Buffer = randomBytes): Credentials {
  const username = `p${random(4).toString('hex')}`;
  let password = random(12).toString('base64url');
  if (password.startsWith('-') || password.startsWith('_')) password = `x${password.slice(1)}`;
  return { username, password };
}

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
