/**
 * The upgrade credential of docs/protocol.md §3: key derivation, token construction and the
 * bridge-side verifier with its bounded replay cache. Pure crypto: no sockets, no timers.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { PosternError } from '../core/errors.js';

/** Token layout (protocol.md §3). Offsets and sizes in bytes. */
export const TOKEN_VERSION = 0x01;
export const KEY_ID_BYTES = 8;
export const NONCE_BYTES = 16;
export const MAC_BYTES = 32;
const OFF_KEY_ID = 1;
const OFF_TIME = OFF_KEY_ID + KEY_ID_BYTES; // 9
const OFF_NONCE = OFF_TIME + 8; // 17
const OFF_MAC = OFF_NONCE + NONCE_BYTES; // 33
export const TOKEN_BYTES = OFF_MAC + MAC_BYTES; // 65
/** Length of a token in base64url without padding. */
export const TOKEN_CHARS = Math.ceil((TOKEN_BYTES * 4) / 3); // 87

/** Size of a secret made by generateSecret (protocol.md §1: `postern init` makes 32 bytes). */
export const SECRET_BYTES = 32;
export const SECRET_MIN_BYTES = 16;
export const SECRET_MAX_BYTES = 64;

/** The upgrade header naming a resumable session (protocol.md §9.2), and its value's form. */
export const SESSION_HEADER = 'Postern-Session';
export const SESSION_ID_BYTES = 16;
export const SESSION_ID_RE = /^[A-Za-z0-9_-]{21}[AQgw]$/;

/**
 * The 101's header listing what this bridge accepts beyond version 1 (protocol.md §2.3), and the
 * feature a client needs before it sends early data (§5.1). A bridge without the header has none.
 */
export const FEATURES_HEADER = 'Postern-Features';
export const FEATURE_EARLY_DATA = 'early-data';
/** The bridge answers a client's TALLY with what it counted on the client's previous connection (§9.8.1). */
export const FEATURE_TALLY = 'tally';
export const BRIDGE_FEATURES: readonly string[] = [FEATURE_EARLY_DATA, FEATURE_TALLY];

/** The features named by a Postern-Features value (comma-separated tokens; unknown ones kept). */
export function parseFeatures(value: string | string[] | undefined): ReadonlySet<string> {
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(text.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''));
}

/**
 * The upgrade header of a resume (protocol.md §9.2): proof that the client holds the session's
 * resume secret, bound to this upgrade's token. 32 bytes, base64url (43 characters).
 */
export const RESUME_HEADER = 'Postern-Resume';
export const RESUME_PROOF_BYTES = 32;
export const RESUME_PROOF_RE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const RESUME_PROOF_LABEL = 'postern resume v1';

const KEY_ID_LABEL = 'postern key id v1';
const AUTH_KEY_LABEL = 'postern auth key v1';

const BASE64URL_RE = /^[A-Za-z0-9_-]*$/;

/** base64url without padding (RFC 4648 §5). */
export function toBase64Url(buf: Uint8Array): string {
  return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('base64url');
}

/**
 * Strict base64url decoding: only the URL-safe alphabet, no padding, and the canonical encoding
 * (unused trailing bits zero), so that exactly one string stands for each byte string.
 * Returns null for anything else.
 */
export function fromBase64Url(s: string): Buffer | null {
  if (!BASE64URL_RE.test(s) || s.length % 4 === 1) return null;
  const buf = Buffer.from(s, 'base64url');
  if (buf.toString('base64url') !== s) return null;
  return buf;
}

/** 32 random bytes: a new user secret. */
export function generateSecret(): Buffer {
  return randomBytes(SECRET_BYTES);
}

/** key_id = HMAC-SHA256(S, "postern key id v1")[0..8]; auth_key = HMAC-SHA256(S, "postern auth key v1"). */
export function deriveKeys(secret: Buffer): { keyId: Buffer; authKey: Buffer } {
  const keyId = createHmac('sha256', secret).update(KEY_ID_LABEL, 'utf8').digest().subarray(0, KEY_ID_BYTES);
  const authKey = createHmac('sha256', secret).update(AUTH_KEY_LABEL, 'utf8').digest();
  return { keyId, authKey };
}

/**
 * mac = HMAC(auth_key, head ‖ path), or HMAC(auth_key, head ‖ path ‖ 0x00 ‖ bound) when the upgrade
 * carries a session id (`bound`, the Postern-Session header value, protocol.md §9.2): a path never
 * holds a 0x00, so the two forms cannot collide.
 */
function computeMac(authKey: Buffer, head: Buffer, path: string, bound?: string): Buffer {
  const h = createHmac('sha256', authKey).update(head).update(path, 'utf8');
  if (bound !== undefined) h.update(Buffer.from([0])).update(bound, 'latin1');
  return h.digest();
}

/**
 * Builds the 65-byte token for one upgrade to `path` and returns it as base64url (87 chars).
 * `nonce` is for tests only: in use every call needs fresh random bytes (the default).
 */
export function makeToken(secret: Buffer, path: string, nowMs: number, nonce?: Buffer, bound?: string): string {
  if (!Number.isSafeInteger(nowMs) || nowMs < 0) throw new RangeError('nowMs must be a non-negative integer');
  const n = nonce ?? randomBytes(NONCE_BYTES);
  if (n.length !== NONCE_BYTES) throw new RangeError(`nonce must be ${NONCE_BYTES} bytes`);
  const { keyId, authKey } = deriveKeys(secret);
  const token = Buffer.allocUnsafe(TOKEN_BYTES);
  token[0] = TOKEN_VERSION;
  keyId.copy(token, OFF_KEY_ID);
  token.writeBigUInt64BE(BigInt(nowMs), OFF_TIME);
  n.copy(token, OFF_NONCE);
  computeMac(authKey, token.subarray(0, OFF_MAC), path, bound).copy(token, OFF_MAC);
  return token.toString('base64url');
}

/**
 * proof = HMAC-SHA256(resume_secret, "postern resume v1" ‖ token bytes 0..33) (protocol.md §9.2):
 * the token's head holds a fresh nonce and the time, so a proof is good for one upgrade only.
 */
export function resumeProof(resumeSecret: Buffer, tokenHead: Buffer): Buffer {
  return createHmac('sha256', resumeSecret).update(RESUME_PROOF_LABEL, 'utf8').update(tokenHead).digest();
}

/** The head (bytes 0..33: version, key id, time, nonce) of a base64url token, or null. */
export function tokenHead(token: string): Buffer | null {
  const buf = fromBase64Url(token);
  return buf === null || buf.length !== TOKEN_BYTES ? null : buf.subarray(0, OFF_MAC);
}

/** Checks a Postern-Resume header value against the session's secret and the upgrade's token head, in constant time. */
export function checkResumeProof(resumeSecret: Buffer, head: Buffer, proof: string): boolean {
  if (!RESUME_PROOF_RE.test(proof)) return false;
  const got = fromBase64Url(proof);
  if (got === null || got.length !== RESUME_PROOF_BYTES) return false;
  return timingSafeEqual(resumeProof(resumeSecret, head), got);
}

/** 'cache_full': the user's replay cache holds AUTH_REPLAY_CACHE_PER_USER_COUNT live nonces; new tokens wait until some expire. */
export type VerifyFailure = 'missing' | 'malformed' | 'unknown_key' | 'bad_mac' | 'skew' | 'replay' | 'cache_full';
/** `head`: the token's bytes 0..33, for a resume proof (§9.2). */
export type VerifyResult = { ok: true; user: string; head: Buffer } | { ok: false; reason: VerifyFailure };

export interface TokenUser {
  name: string;
  secret: Buffer;
}

export interface TokenVerifierOptions {
  /** Accepted |bridge time − token time| in ms (limits.AUTH_WINDOW_MS). */
  windowMs: number;
  /**
   * Most nonces remembered at once per user (limits.AUTH_REPLAY_CACHE_PER_USER_COUNT). Nothing is
   * ever evicted before it expires: a user whose cache is full is refused ('cache_full').
   */
  replayCacheCount: number;
  /** Clock in Unix ms; default Date.now. */
  now?: () => number;
}

interface UserKey {
  readonly name: string;
  readonly authKey: Buffer;
}

/**
 * Checks upgrade tokens in the order protocol.md §3 gives. Accepted nonces are remembered, per
 * user, for 2 × windowMs (long enough that a token cannot be valid again once forgotten), at most
 * replayCacheCount of them per user; a full cache refuses that user's new tokens, so that one user
 * can neither make another's recorded token valid again nor its own.
 */
export class TokenVerifier {
  readonly #windowMs: number;
  readonly #cacheCount: number;
  readonly #now: () => number;
  #users = new Map<string, UserKey>();
  /** user → (nonce (hex) → expiry time, ms). Map iteration order is insertion order: oldest first. */
  readonly #seen = new Map<string, Map<string, number>>();
  #seenCount = 0;

  constructor(users: TokenUser[], opts: TokenVerifierOptions) {
    if (!(opts.windowMs > 0)) throw new RangeError('windowMs must be positive');
    if (!(opts.replayCacheCount >= 1)) throw new RangeError('replayCacheCount must be at least 1');
    this.#windowMs = opts.windowMs;
    this.#cacheCount = Math.floor(opts.replayCacheCount);
    this.#now = opts.now ?? Date.now;
    this.setUsers(users);
  }

  /** Replaces the user list (config reload). The replay cache is kept. */
  setUsers(users: TokenUser[]): void {
    const next = new Map<string, UserKey>();
    for (const u of users) {
      const { keyId, authKey } = deriveKeys(u.secret);
      const id = keyId.toString('hex');
      const other = next.get(id);
      if (other !== undefined) {
        throw new PosternError('E_CONFIG', `users "${other.name}" and "${u.name}" have the same secret`);
      }
      next.set(id, { name: u.name, authKey });
    }
    this.#users = next;
  }

  /** Number of nonces currently remembered, over all users (for tests and metrics). */
  get replayCacheSize(): number {
    return this.#seenCount;
  }

  /** `bound`: the Postern-Session header value when the upgrade carries one (§9.2), else undefined. */
  verify(token: string | undefined, path: string, bound?: string): VerifyResult {
    if (token === undefined || token === '') return { ok: false, reason: token === undefined ? 'missing' : 'malformed' };
    if (token.length !== TOKEN_CHARS) return { ok: false, reason: 'malformed' };
    const buf = fromBase64Url(token);
    if (buf === null || buf.length !== TOKEN_BYTES || buf[0] !== TOKEN_VERSION) return { ok: false, reason: 'malformed' };

    const user = this.#users.get(buf.toString('hex', OFF_KEY_ID, OFF_TIME));
    if (user === undefined) return { ok: false, reason: 'unknown_key' };

    const expected = computeMac(user.authKey, buf.subarray(0, OFF_MAC), path, bound);
    if (!timingSafeEqual(expected, buf.subarray(OFF_MAC))) return { ok: false, reason: 'bad_mac' };

    const now = this.#now();
    const time = Number(buf.readBigUInt64BE(OFF_TIME));
    if (Math.abs(now - time) > this.#windowMs) return { ok: false, reason: 'skew' };

    let seen = this.#seen.get(user.name);
    if (seen !== undefined) this.#expire(seen, now);
    const nonce = buf.toString('hex', OFF_NONCE, OFF_MAC);
    if (seen?.has(nonce) === true) return { ok: false, reason: 'replay' };
    // Never forget a live nonce to make room: that would make a recorded token valid again.
    if (seen !== undefined && seen.size >= this.#cacheCount) return { ok: false, reason: 'cache_full' };

    if (seen === undefined) {
      seen = new Map();
      this.#seen.set(user.name, seen);
    }
    seen.set(nonce, now + 2 * this.#windowMs);
    this.#seenCount++;
    return { ok: true, user: user.name, head: Buffer.from(buf.subarray(0, OFF_MAC)) };
  }

  /** Drops a user's expired nonces from the front (oldest first); stops at the first live one. */
  #expire(seen: Map<string, number>, now: number): void {
    for (const [nonce, expiresAt] of seen) {
      if (expiresAt >= now) break; // kept through its last valid instant
      seen.delete(nonce);
      this.#seenCount--;
    }
  }
}
