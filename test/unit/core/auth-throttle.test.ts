import { describe, expect, it } from 'vitest';
import { AuthThrottle } from '../../../src/core/auth-throttle.js';
import { defaultLimits } from '../../../src/core/limits.js';

function throttle(over: Partial<ReturnType<typeof defaultLimits>> = {}) {
  let now = 1_000_000;
  const t = new AuthThrottle(defaultLimits({ LOCAL_AUTH_FREE_FAILURES_COUNT: 3, LOCAL_AUTH_FAILURE_WINDOW_MS: 60_000, LOCAL_AUTH_FAILURE_DELAY_MS: 2_000, LOCAL_AUTH_DELAYED_PER_SOURCE_COUNT: 2, LOCAL_AUTH_TRACKED_SOURCES_COUNT: 16, ...over }), () => now);
  return { t, advance: (ms: number) => (now += ms) };
}

describe('AuthThrottle (failed local logins per source)', () => {
  it('answers the free failures at once, then delays, and flags the first slowed one once', () => {
    const { t } = throttle();
    for (let i = 0; i < 3; i++) expect(t.failed('a')).toEqual({ delayMs: 0, startedThrottling: false });
    expect(t.failed('a')).toEqual({ delayMs: 2_000, startedThrottling: true });
    expect(t.failed('a')).toEqual({ delayMs: 2_000, startedThrottling: false });
    expect(t.counts.failed).toBe(5);
  });

  it('refuses unchecked while the pending bound is reached, and admits again as answers go out', () => {
    const { t } = throttle();
    for (let i = 0; i < 5; i++) t.failed('a'); // 3 free + 2 pending
    expect(t.admit('a')).toBe(false);
    expect(t.counts.refusedUnchecked).toBe(1);
    expect(t.admit('b')).toBe(true); // another source is not affected
    t.done('a');
    expect(t.admit('a')).toBe(true);
  });

  it('starts a new window after LOCAL_AUTH_FAILURE_WINDOW_MS', () => {
    const { t, advance } = throttle();
    for (let i = 0; i < 4; i++) t.failed('a');
    advance(60_000);
    expect(t.failed('a').delayMs).toBe(0);
  });

  it('remembers at most LOCAL_AUTH_TRACKED_SOURCES_COUNT sources, forgetting the oldest idle one', () => {
    const { t } = throttle();
    for (let i = 0; i < 100; i++) t.failed(`10.0.0.${i}`);
    expect(t.trackedSources).toBe(16);
  });

  it('counts requests without credentials apart from guesses', () => {
    const { t } = throttle();
    t.challenged();
    expect(t.counts).toEqual({ failed: 0, refusedUnchecked: 0, challenged: 1 });
  });
});
