import { describe, expect, it } from 'vitest';
import { CHECK_EVERY_RELAYED_BYTES, noteRelayedBytes, pacedCollections } from '../../../src/core/young-gc.js';

// Every buffer a test makes is kept alive to the end of the file, so that V8 freeing earlier
// garbage on its own cannot take away the growth a test relies on. That the collections free what a relay leaves
// is shown in test/unit/mux/flow.test.ts (peak ArrayBuffers while relaying 64 MiB, paced or not).

const MIB = 1024 * 1024;
const EVERY = 4 * MIB;

/**
 * Three looks: whatever earlier buffers may still make one collect, the floor that growth counts
 * from is set by the end (the first look after a collection sets it).
 */
function settle(): void {
  for (let i = 0; i < 3; i++) noteRelayedBytes(CHECK_EVERY_RELAYED_BYTES, EVERY);
}

const alive: Buffer[] = [];

/** `n` fresh 64 KiB buffers (what a relay makes: reads, frames, messages), kept alive. */
function buffers(n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) out.push(Buffer.alloc(64 * 1024));
  alive.push(...out);
  return out;
}

describe('young collections paced by the buffers made while relaying (src/core/young-gc.ts)', () => {
  it('looks only after CHECK_EVERY_RELAYED_BYTES relayed, and collects once that many bytes of buffers were made since the least seen', () => {
    settle(); // from here on growth counts
    const before = pacedCollections();
    const held = buffers(96); // 6 MiB, kept alive
    expect(noteRelayedBytes(CHECK_EVERY_RELAYED_BYTES - 1, EVERY)).toBe(false); // not looked yet
    expect(noteRelayedBytes(1, EVERY)).toBe(true); // looked: 6 MiB more than at the last look
    expect(pacedCollections() - before).toBe(1);
    // What is still alive after the collection is the new floor: it does not collect again and again.
    for (let i = 0; i < 20; i++) expect(noteRelayedBytes(CHECK_EVERY_RELAYED_BYTES, EVERY)).toBe(false);
    expect(held.length).toBe(96);
  });

  it('relayed bytes alone never collect: a relay that makes no buffers (borrowed reads) costs no collections', () => {
    settle();
    const before = pacedCollections();
    for (let i = 0; i < 1000; i++) noteRelayedBytes(64 * 1024, EVERY); // 62.5 MiB "relayed", no buffer made
    expect(pacedCollections()).toBe(before);
  });

  it('never collects when the limit is 0 (V8 alone decides)', () => {
    const before = pacedCollections();
    const held = buffers(96);
    for (let i = 0; i < 100; i++) expect(noteRelayedBytes(MIB, 0)).toBe(false);
    expect(pacedCollections()).toBe(before);
    expect(held.length).toBe(96);
  });

  it('collects without --expose-gc', () => {
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    settle();
    const held = buffers(96);
    expect(noteRelayedBytes(CHECK_EVERY_RELAYED_BYTES, EVERY)).toBe(true);
    expect(held.length).toBe(96);
  });
});
