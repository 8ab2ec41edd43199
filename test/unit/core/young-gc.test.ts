import { describe, expect, it } from 'vitest';
import { CHECK_EVERY_RELAYED_BYTES, noteRelayedBytes, pacedCollections } from '../../../src/core/young-gc.js';

const MIB = 1024 * 1024;
const EVERY = 4 * MIB;

/** `n` fresh 64 KiB buffers (what a relay makes: reads, frames, messages). */
function buffers(n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) out.push(Buffer.alloc(64 * 1024));
  return out;
}

describe('young collections paced by the buffers made while relaying (src/core/young-gc.ts)', () => {
  it('looks only after CHECK_EVERY_RELAYED_BYTES relayed, and collects once that many bytes of buffers were made since the least seen', () => {
    noteRelayedBytes(CHECK_EVERY_RELAYED_BYTES, EVERY); // a look: from here on growth counts
    const before = pacedCollections();
    const held = buffers(96); // 6 MiB, all kept alive
    expect(noteRelayedBytes(CHECK_EVERY_RELAYED_BYTES - 1, EVERY)).toBe(false); // not looked yet
    expect(noteRelayedBytes(1, EVERY)).toBe(true); // looked: 6 MiB more than at the last look
    expect(pacedCollections() - before).toBe(1);
    // What is still alive after the collection is the new floor: it does not collect again and again.
    for (let i = 0; i < 20; i++) expect(noteRelayedBytes(CHECK_EVERY_RELAYED_BYTES, EVERY)).toBe(false);
    expect(held.length).toBe(96);
  });

  it('relayed bytes alone never collect: a relay that makes no buffers (borrowed reads) costs no collections', () => {
    noteRelayedBytes(CHECK_EVERY_RELAYED_BYTES, EVERY);
    const before = pacedCollections();
    for (let i = 0; i < 1000; i++) noteRelayedBytes(64 * 1024, EVERY); // 62.5 MiB "relayed", no buffer made
    expect(pacedCollections()).toBe(before);
  });

  it('never collects when the limit is 0 (V8 alone decides)', () => {
    const before = pacedCollections();
    for (let i = 0; i < 100; i++) {
      buffers(16);
      expect(noteRelayedBytes(MIB, 0)).toBe(false);
    }
    expect(pacedCollections()).toBe(before);
  });

  it('frees young buffers nothing holds, without --expose-gc', () => {
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    noteRelayedBytes(CHECK_EVERY_RELAYED_BYTES, EVERY);
    buffers(200); // 12.5 MiB of garbage, under V8's own 32 MiB trigger
    const before = process.memoryUsage().arrayBuffers;
    expect(noteRelayedBytes(CHECK_EVERY_RELAYED_BYTES, EVERY)).toBe(true);
    expect(before - process.memoryUsage().arrayBuffers).toBeGreaterThan(10 * MIB);
  });
});
