import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  checkResumeProof,
  resumeProof,
  tokenHead,
  deriveKeys,
  fromBase64Url,
  generateSecret,
  makeToken,
  toBase64Url,
  TokenVerifier,
  parseFeatures,
} from '../../../src/transport/auth.js';
import { PosternError } from '../../../src/core/errors.js';

const SECRET = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const NONCE = Buffer.from('a0a1a2a3a4a5a6a7a8a9aaabacadaeaf', 'hex');
const T0 = 1_700_000_000_000;
const PATH = '/s3cret/path';
const WINDOW = 120_000;
/** docs/protocol.md §9.2 test vector. */
const RESUME_VECTOR = 'bP2jzCuo3IZEdgaj6UaGKBBLP0rXYk24bErkXSS5o1A';

/** protocol.md §3, computed here without the module under test. */
function referenceToken(secret: Buffer, path: string, time: number, nonce: Buffer): Buffer {
  const keyId = createHmac('sha256', secret).update('postern key id v1').digest().subarray(0, 8);
  const authKey = createHmac('sha256', secret).update('postern auth key v1').digest();
  const timeBytes = Buffer.alloc(8);
  timeBytes.writeBigUInt64BE(BigInt(time));
  const head = Buffer.concat([Buffer.from([0x01]), keyId, timeBytes, nonce]);
  const mac = createHmac('sha256', authKey).update(Buffer.concat([head, Buffer.from(path, 'utf8')])).digest();
  return Buffer.concat([head, mac]);
}

function verifierAt(clock: { now: number }, count = 1000): TokenVerifier {
  return new TokenVerifier([{ name: 'alice', secret: SECRET }], {
    windowMs: WINDOW,
    replayCacheCount: count,
    now: () => clock.now,
  });
}

function nonce(i: number): Buffer {
  const n = Buffer.alloc(16);
  n.writeUInt32BE(i, 12);
  return n;
}

describe('deriveKeys (protocol.md §3)', () => {
  it('derives an 8-byte key_id and a 32-byte auth_key by HMAC-SHA256 of the labels', () => {
    const { keyId, authKey } = deriveKeys(SECRET);
    expect(keyId.toString('hex')).toBe(
      createHmac('sha256', SECRET).update('postern key id v1').digest().subarray(0, 8).toString('hex'),
    );
    expect(authKey.equals(createHmac('sha256', SECRET).update('postern auth key v1').digest())).toBe(true);
  });
});

describe('makeToken (protocol.md §3 layout)', () => {
  it('lays out version, key_id, time, nonce and mac exactly as the reference computation', () => {
    const token = makeToken(SECRET, PATH, T0, NONCE);
    const expected = referenceToken(SECRET, PATH, T0, NONCE);
    expect(token).toBe(expected.toString('base64url'));
    expect(token).toHaveLength(87);
    expect(fromBase64Url(token)).toHaveLength(65);
  });

  it('matches the fixed test vector (secret 00..1f, path "/s3cret/path", time 1700000000000, nonce a0..af)', () => {
    const vector =
      '01' + '98f907b7ebae925f' + '0000018bcfe56800' + 'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf' +
      'b3c7b5385f7ec082e3d76087e8968c315c95aeaf5a6880c9272aadb219a38846';
    expect(referenceToken(SECRET, PATH, T0, NONCE).toString('hex')).toBe(vector);
    expect(fromBase64Url(makeToken(SECRET, PATH, T0, NONCE))?.toString('hex')).toBe(vector);
  });

  it('uses a fresh random nonce when none is given', () => {
    const a = fromBase64Url(makeToken(SECRET, PATH, T0)) as Buffer;
    const b = fromBase64Url(makeToken(SECRET, PATH, T0)) as Buffer;
    expect(a.subarray(17, 33).equals(b.subarray(17, 33))).toBe(false);
  });

  it('refuses a nonce of the wrong size and a negative time', () => {
    expect(() => makeToken(SECRET, PATH, T0, Buffer.alloc(15))).toThrow(RangeError);
    expect(() => makeToken(SECRET, PATH, -1, NONCE)).toThrow(RangeError);
  });
});

describe('base64url helpers (RFC 4648 §5)', () => {
  it('round-trips bytes without padding', () => {
    for (let n = 0; n < 40; n++) {
      const b = generateSecret().subarray(0, n % 33);
      expect(fromBase64Url(toBase64Url(b))?.equals(b)).toBe(true);
      expect(toBase64Url(b)).not.toContain('=');
    }
  });

  it.each(['ab=', 'ab+c', 'ab/c', 'a b', 'a', 'AB'])('rejects the non-canonical or foreign encoding %j', (s) => {
    // 'AB' decodes to one byte with non-zero unused bits: not canonical ('AA' is).
    expect(fromBase64Url(s)).toBeNull();
  });
});

describe('TokenVerifier', () => {
  it('accepts a valid token once and names its user', () => {
    const clock = { now: T0 };
    const v = verifierAt(clock);
    expect(v.verify(makeToken(SECRET, PATH, T0, NONCE), PATH)).toMatchObject({ ok: true, user: 'alice' });
  });

  it('refuses the same token a second time as a replay', () => {
    const clock = { now: T0 };
    const v = verifierAt(clock);
    const token = makeToken(SECRET, PATH, T0, NONCE);
    expect(v.verify(token, PATH).ok).toBe(true);
    expect(v.verify(token, PATH)).toEqual({ ok: false, reason: 'replay' });
  });

  it('refuses every single-byte tamper with the right reason, and records no nonce for them', () => {
    const clock = { now: T0 };
    const v = verifierAt(clock);
    const good = fromBase64Url(makeToken(SECRET, PATH, T0, NONCE)) as Buffer;
    for (let i = 0; i < good.length; i++) {
      for (const flip of [0x01, 0x80, 0xff]) {
        const bad = Buffer.from(good);
        bad[i] = (bad[i] as number) ^ flip;
        const r = v.verify(bad.toString('base64url'), PATH);
        const want = i === 0 ? 'malformed' : i < 9 ? 'unknown_key' : 'bad_mac';
        expect(r, `byte ${i} ^ ${flip}`).toEqual({ ok: false, reason: want });
      }
    }
    expect(v.replayCacheSize).toBe(0);
    expect(v.verify(good.toString('base64url'), PATH).ok).toBe(true);
  });

  it('refuses every single-character change of the base64url text', () => {
    const clock = { now: T0 };
    const v = verifierAt(clock);
    const token = makeToken(SECRET, PATH, T0, NONCE);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    for (let i = 0; i < token.length; i++) {
      const c = token[i] as string;
      const other = alphabet[(alphabet.indexOf(c) + 1) % 64] as string;
      const r = v.verify(token.slice(0, i) + other + token.slice(i + 1), PATH);
      expect(r.ok, `char ${i}`).toBe(false);
    }
    expect(v.verify(token, PATH).ok).toBe(true);
  });

  it('refuses a token older or newer than the window as skew, and accepts the window edges', () => {
    const clock = { now: T0 };
    const v = verifierAt(clock);
    expect(v.verify(makeToken(SECRET, PATH, T0 - WINDOW - 1, nonce(1)), PATH)).toEqual({ ok: false, reason: 'skew' });
    expect(v.verify(makeToken(SECRET, PATH, T0 + WINDOW + 1, nonce(2)), PATH)).toEqual({ ok: false, reason: 'skew' });
    expect(v.verify(makeToken(SECRET, PATH, T0 - WINDOW, nonce(3)), PATH).ok).toBe(true);
    expect(v.verify(makeToken(SECRET, PATH, T0 + WINDOW, nonce(4)), PATH).ok).toBe(true);
  });

  it('refuses a token made for another path as bad_mac', () => {
    const v = verifierAt({ now: T0 });
    expect(v.verify(makeToken(SECRET, '/other', T0, NONCE), PATH)).toEqual({ ok: false, reason: 'bad_mac' });
  });

  it('refuses a token of an unknown secret as unknown_key', () => {
    const v = verifierAt({ now: T0 });
    expect(v.verify(makeToken(generateSecret(), PATH, T0, NONCE), PATH)).toEqual({ ok: false, reason: 'unknown_key' });
  });

  it.each([
    ['missing', undefined],
    ['malformed', ''],
    ['malformed', 'not a token'],
    ['malformed', 'A'.repeat(86)],
    ['malformed', 'A'.repeat(88)],
  ] as const)('answers %s for %j', (reason, token) => {
    expect(verifierAt({ now: T0 }).verify(token, PATH)).toEqual({ ok: false, reason });
  });

  it('refuses a token whose version byte is not 1 as malformed even with a matching MAC', () => {
    const raw = fromBase64Url(makeToken(SECRET, PATH, T0, NONCE)) as Buffer;
    raw[0] = 2;
    const { authKey } = deriveKeys(SECRET);
    createHmac('sha256', authKey).update(raw.subarray(0, 33)).update(PATH).digest().copy(raw, 33);
    expect(verifierAt({ now: T0 }).verify(raw.toString('base64url'), PATH)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('refuses a user whose replay cache is full instead of forgetting a nonce (issue 10, finding 5)', () => {
    const clock = { now: T0 };
    const bob = generateSecret();
    const v = new TokenVerifier(
      [
        { name: 'alice', secret: SECRET },
        { name: 'bob', secret: bob },
      ],
      { windowMs: WINDOW, replayCacheCount: 3, now: () => clock.now },
    );
    const bobsToken = makeToken(bob, PATH, T0, nonce(100));
    expect(v.verify(bobsToken, PATH).ok).toBe(true);
    const tokens = [1, 2, 3, 4].map((i) => makeToken(SECRET, PATH, T0, nonce(i)));
    for (const t of tokens.slice(0, 3)) expect(v.verify(t, PATH).ok).toBe(true);
    // Alice's cache is full: her next token is refused and nothing is forgotten.
    expect(v.verify(tokens[3], PATH)).toEqual({ ok: false, reason: 'cache_full' });
    expect(v.verify(tokens[0], PATH)).toEqual({ ok: false, reason: 'replay' });
    // Bob is not affected: his own cache, his recorded token still a replay, new ones accepted.
    expect(v.verify(bobsToken, PATH)).toEqual({ ok: false, reason: 'replay' });
    expect(v.verify(makeToken(bob, PATH, T0, nonce(101)), PATH)).toMatchObject({ ok: true, user: 'bob' });
    expect(v.replayCacheSize).toBe(5);
    // Once Alice's nonces expire (2 × window), she gets room again.
    clock.now = T0 + 2 * WINDOW + 1;
    expect(v.verify(makeToken(SECRET, PATH, clock.now, nonce(5)), PATH).ok).toBe(true);
    expect(v.verify(tokens[0], PATH)).toEqual({ ok: false, reason: 'skew' });
  });

  it('remembers a nonce for twice the window, long enough to cover a future-dated token', () => {
    const clock = { now: T0 };
    const v = verifierAt(clock);
    const token = makeToken(SECRET, PATH, T0 + WINDOW, NONCE);
    expect(v.verify(token, PATH).ok).toBe(true);
    clock.now = T0 + 2 * WINDOW;
    expect(v.verify(token, PATH)).toEqual({ ok: false, reason: 'replay' });
    clock.now = T0 + 2 * WINDOW + 1;
    expect(v.verify(token, PATH)).toEqual({ ok: false, reason: 'skew' });
    expect(v.verify(makeToken(SECRET, PATH, clock.now, nonce(9)), PATH).ok).toBe(true);
    expect(v.replayCacheSize).toBe(1); // the expired nonce is gone
  });

  it('takes a new user list without forgetting nonces', () => {
    const v = verifierAt({ now: T0 });
    const token = makeToken(SECRET, PATH, T0, NONCE);
    expect(v.verify(token, PATH).ok).toBe(true);
    const bob = generateSecret();
    v.setUsers([{ name: 'bob', secret: bob }]);
    expect(v.verify(makeToken(SECRET, PATH, T0, nonce(5)), PATH)).toEqual({ ok: false, reason: 'unknown_key' });
    expect(v.verify(makeToken(bob, PATH, T0, nonce(6)), PATH)).toMatchObject({ ok: true, user: 'bob' });
    v.setUsers([{ name: 'alice', secret: SECRET }]);
    expect(v.verify(token, PATH)).toEqual({ ok: false, reason: 'replay' });
  });

  it('refuses two users with the same secret', () => {
    const v = verifierAt({ now: T0 });
    expect(() => v.setUsers([{ name: 'a', secret: SECRET }, { name: 'b', secret: Buffer.from(SECRET) }])).toThrow(PosternError);
  });
});

describe('resume proof (protocol.md §9.2)', () => {
  it('is HMAC-SHA256(resume secret, "postern resume v1" ‖ token bytes 0..33), checked in constant time, bound to one token', () => {
    const secret = Buffer.alloc(32, 0x5a);
    const token = makeToken(SECRET, PATH, T0, NONCE, 'AAAAAAAAAAAAAAAAAAAAAA');
    const head = tokenHead(token) as Buffer;
    expect(head.toString('hex')).toBe((fromBase64Url(token) as Buffer).subarray(0, 33).toString('hex'));
    const proof = resumeProof(secret, head);
    expect(proof.equals(createHmac('sha256', secret).update('postern resume v1').update(head).digest())).toBe(true);
    const text = toBase64Url(proof);
    expect(text).toHaveLength(43);
    expect(checkResumeProof(secret, head, text)).toBe(true);
    expect(checkResumeProof(Buffer.alloc(32, 1), head, text)).toBe(false);
    const other = tokenHead(makeToken(SECRET, PATH, T0, nonce(1), 'AAAAAAAAAAAAAAAAAAAAAA')) as Buffer;
    expect(checkResumeProof(secret, other, text)).toBe(false);
    for (const bad of ['', 'x', `${text}A`, `${text.slice(0, 42)}B`, text.replace(/.$/, '=')]) expect(checkResumeProof(secret, head, bad)).toBe(false);
  });

  it('matches the fixed test vector (resume secret 5a × 32, the §3 vector token bound to session AAAAAAAAAAAAAAAAAAAAAA)', () => {
    const token = makeToken(SECRET, PATH, T0, NONCE, 'AAAAAAAAAAAAAAAAAAAAAA');
    expect(toBase64Url(resumeProof(Buffer.alloc(32, 0x5a), tokenHead(token) as Buffer))).toBe(RESUME_VECTOR);
  });
});

describe('Postern-Features (protocol.md §2)', () => {
  it.each([
    [undefined, []],
    ['', []],
    ['early-data', ['early-data']],
    [' Early-Data , future-thing,,', ['early-data', 'future-thing']],
    [['early-data', 'x'], ['early-data', 'x']],
  ] as const)('%j names %j', (value, names) => {
    expect([...parseFeatures(value as string | string[] | undefined)]).toEqual(names);
  });
});

