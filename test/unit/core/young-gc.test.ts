import { describe, expect, it } from 'vitest';
import { noteRelayedBytes, pacedCollections } from '../../../src/core/young-gc.js';

describe('young collections paced by relayed bytes', () => {
  it('collects once each time the given number of bytes has been counted, and carries nothing over', () => {
    const before = pacedCollections();
    expect(noteRelayedBytes(3_000, 4_096)).toBe(false);
    expect(noteRelayedBytes(1_000, 4_096)).toBe(false);
    expect(noteRelayedBytes(96, 4_096)).toBe(true); // 4,096 reached
    expect(noteRelayedBytes(4_095, 4_096)).toBe(false); // counting starts again from zero
    expect(noteRelayedBytes(10_000, 4_096)).toBe(true);
    expect(pacedCollections() - before).toBe(2);
  });

  it('never collects when the limit is 0 (V8 alone decides)', () => {
    const before = pacedCollections();
    for (let i = 0; i < 100; i++) expect(noteRelayedBytes(1024 * 1024, 0)).toBe(false);
    expect(pacedCollections()).toBe(before);
  });

  it('frees young buffers nothing holds, without --expose-gc', () => {
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    noteRelayedBytes(1, 1); // gets gc() once and collects what an earlier test left
    for (let i = 0; i < 200; i++) Buffer.alloc(64 * 1024); // 12.5 MiB of garbage, under V8's own 32 MiB trigger
    const before = process.memoryUsage().arrayBuffers;
    expect(noteRelayedBytes(1, 1)).toBe(true);
    expect(before - process.memoryUsage().arrayBuffers).toBeGreaterThan(10 * 1024 * 1024);
  });
});
