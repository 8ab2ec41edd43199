import { describe, expect, it } from 'vitest';
import { SESSION_ID_RE, TokenVerifier, generateSecret, makeToken } from '../../../src/transport/auth.js';
import { PACKET_KEY_RE, newPacketKey, packetBinding } from '../../../src/transport/h2/packet.js';

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

describe('packet-up key bound into the token (protocol.md §12.3)', () => {
  const secret = generateSecret();
  const verifier = () => new TokenVerifier([{ name: 'u', secret }], { windowMs: 120_000, replayCacheCount: 100 });
  const KEY = newPacketKey();

  it('a token made for one key verifies for that key only, never for another key, stream-one or another session', () => {
    const v = verifier();
    const tok = (bound: string | undefined) => makeToken(secret, PATH, Date.now(), undefined, bound);
    expect(PACKET_KEY_RE.test(KEY)).toBe(true);
    expect(v.verify(tok(packetBinding(undefined, KEY)), PATH, packetBinding(undefined, KEY))).toMatchObject({ ok: true });
    expect(v.verify(tok(packetBinding(SID, KEY)), PATH, packetBinding(SID, KEY))).toMatchObject({ ok: true });
    expect(v.verify(tok(packetBinding(undefined, KEY)), PATH, packetBinding(undefined, OTHER))).toEqual({ ok: false, reason: 'bad_mac' });
    expect(v.verify(tok(packetBinding(SID, KEY)), PATH, packetBinding(OTHER, KEY))).toEqual({ ok: false, reason: 'bad_mac' });
    expect(v.verify(tok(packetBinding(SID, KEY)), PATH, SID)).toEqual({ ok: false, reason: 'bad_mac' });
    expect(v.verify(tok(SID), PATH, packetBinding(SID, KEY))).toEqual({ ok: false, reason: 'bad_mac' });
    expect(v.verify(tok(undefined), PATH, packetBinding(undefined, KEY))).toEqual({ ok: false, reason: 'bad_mac' });
  });

  it('keys are 16 random bytes, canonical base64url', () => {
    const keys = new Set(Array.from({ length: 100 }, () => newPacketKey()));
    expect(keys.size).toBe(100);
    for (const k of keys) expect(PACKET_KEY_RE.test(k)).toBe(true);
    expect(PACKET_KEY_RE.test('AAAAAAAAAAAAAAAAAAAAAB')).toBe(false);
  });
});
