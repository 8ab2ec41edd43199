import { describe, expect, it } from 'vitest';
import { collect, resolveTunnelFlags } from '../../../src/client/tunnel-flags.js';
import { LIMITS } from '../../../src/core/limits.js';

const URI = 'postern://AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8@127.0.0.1:8443/p?plain=1';

describe('client tunnel flags', () => {
  it('collects repeated --bridge values in order and parses all but the first', () => {
    const list = collect(URI, collect(URI, undefined));
    const t = resolveTunnelFlags({ bridge: list, strategy: 'spread' });
    expect(t.first).toBe(URI);
    expect(t.more).toHaveLength(1);
    expect(t.strategy).toBe('spread');
    expect(t.limits.KEEPALIVE_TIMEOUT_MS).toBe(LIMITS.KEEPALIVE_TIMEOUT_MS);
    expect(t.rotate).toEqual({ bytes: 0, ms: 0 });
  });

  it('sets keepalive (ping after half), resume timeout and rotation within bounds', () => {
    const t = resolveTunnelFlags({ keepaliveMs: '4000', resumeTimeoutMs: '5000', rotateBytes: '1048576' });
    expect(t.limits.KEEPALIVE_TIMEOUT_MS).toBe(4_000);
    expect(t.limits.KEEPALIVE_INTERVAL_MS).toBe(2_000);
    expect(t.limits.SESSION_RESUME_TIMEOUT_MS).toBe(5_000);
    expect(t.rotate.bytes).toBe(1_048_576);
  });

  it('refuses values out of bounds and unknown strategies with E_CONFIG / E_BAD_URI', () => {
    expect(() => resolveTunnelFlags({ keepaliveMs: '500' })).toThrow(/--keepalive-ms/);
    expect(() => resolveTunnelFlags({ resumeTimeoutMs: 'x' })).toThrow(/--resume-timeout-ms/);
    expect(() => resolveTunnelFlags({ strategy: 'random' })).toThrow(/--strategy/);
    expect(() => resolveTunnelFlags({ rotateBytes: '10' })).toThrow(/--rotate-bytes/);
    expect(() => resolveTunnelFlags({ bridge: [URI, 'postern://nope'] })).toThrow(/--bridge #2/);
  });
});
