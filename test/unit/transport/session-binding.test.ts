import { describe, expect, it } from 'vitest';
import { SESSION_ID_RE, TokenVerifier, generateSecret, makeToken } from '../../../src/transport/auth.js';

const PATH = '/p4th';
const SID = 'q7HhZC0o3ePZ2mB0v9y1Kw';
const OTHER = 'AAAAAAAAAAAAAAAAAAAAAA';

describe('session id bound into the token (protocol.md §3, §9.2)', () => {
  const secret = generateSecret();
  const verifier = () => new TokenVerifier([{ name: 'u', secret }], { windowMs: 120_000, replayCacheCount: 100 });

  it('verifies only with the same session id', () => {
    const v = verifier();
    expect(v.verify(makeToken(secret, PATH, Date.now(), undefined, SID), PATH, SID)).toMatchObject({ ok: true, user: 'u' });
    expect(v.verify(makeToken(secret, PATH, Date.now(), undefined, SID), PATH, OTHER)).toEqual({ ok: false, reason: 'bad_mac' });
    expect(v.verify(makeToken(secret, PATH, Date.now(), undefined, SID), PATH)).toEqual({ ok: false, reason: 'bad_mac' });
    expect(v.verify(makeToken(secret, PATH, Date.now()), PATH, SID)).toEqual({ ok: false, reason: 'bad_mac' });
  });

  it('accepts only canonical 16-byte base64url ids', () => {
    expect(SESSION_ID_RE.test(OTHER)).toBe(true);
    expect(SESSION_ID_RE.test('AAAAAAAAAAAAAAAAAAAAAB')).toBe(false); // non-zero padding bits
    expect(SESSION_ID_RE.test('AAAAAAAAAAAAAAAAAAAAA')).toBe(false);
    expect(SESSION_ID_RE.test('AAAAAAAAAAAAAAAAAAAA=A')).toBe(false);
  });
});
