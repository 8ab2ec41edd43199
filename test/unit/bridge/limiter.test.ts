import { describe, expect, it } from 'vitest';
import { Semaphore, TokenBucket } from '../../../src/bridge/limiter.js';

describe('Semaphore', () => {
  it('admits max holders, queues up to maxQueued, and refuses beyond', async () => {
    const s = new Semaphore(2, 1);
    const overflow = () => new Error('full');
    const r1 = await s.acquire(overflow);
    const r2 = await s.acquire(overflow);
    let third = false;
    const p3 = s.acquire(overflow).then((r) => {
      third = true;
      return r;
    });
    await expect(s.acquire(overflow)).rejects.toThrow('full');
    expect(s.inUse).toBe(2);
    expect(s.waiting).toBe(1);
    await Promise.resolve();
    expect(third).toBe(false);
    r1();
    r1(); // a second release of the same slot is ignored
    const r3 = await p3;
    expect(third).toBe(true);
    expect(s.inUse).toBe(2);
    r2();
    r3();
    expect(s.inUse).toBe(0);
  });

  it('run() releases its slot when the task fails', async () => {
    const s = new Semaphore(1, 0);
    await expect(s.run(() => Promise.reject(new Error('boom')), () => new Error('full'))).rejects.toThrow('boom');
    expect(s.inUse).toBe(0);
    await expect(s.run(() => Promise.resolve(5), () => new Error('full'))).resolves.toBe(5);
  });
});

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
