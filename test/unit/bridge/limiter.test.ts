import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../../src/bridge/limiter.js';

describe('TokenBucket', () => {
  it('lets a burst through, then asks to wait in proportion to the debt', () => {
    let t = 0;
    const b = new TokenBucket(1000, 100, () => t);
    expect(b.take(100)).toBe(0);
    expect(b.take(50)).toBe(50); // 50 bytes of debt at 1000 B/s
    t += 50;
    expect(b.take(0)).toBe(0);
    t += 1_000_000; // refills only up to the burst
    expect(b.take(100)).toBe(0);
    expect(b.take(1)).toBe(1);
  });

  it('converges on its rate over many takes', () => {
    let t = 0;
    const b = new TokenBucket(1_000_000, undefined, () => t);
    let sent = 0;
    while (t < 3_000) {
      const wait = b.take(16 * 1024);
      sent += 16 * 1024;
      t += Math.max(wait, 1);
    }
    expect(sent / 3).toBeGreaterThan(0.95 * 1_000_000);
    expect(sent / 3).toBeLessThan(1.1 * 1_000_000);
  });
});
