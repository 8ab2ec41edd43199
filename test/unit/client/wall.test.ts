import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultLimits } from '../../../src/core/limits.js';
import { WallLearner, WallStore, defaultWallFile, dialSlotAt, wallKey } from '../../../src/client/wall.js';
import { parseBudget } from '../../../src/core/tunnel-policy.js';
import { parseShareUri } from '../../../src/transport/uri.js';

const limits = defaultLimits();

describe('WallLearner', () => {
  it('adopts a budget below three cuts in a row at about the same byte count', () => {
    const l = new WallLearner(limits);
    expect(l.observeCut(16_384)).toBeNull();
    expect(l.observeCut(16_300)).toBeNull();
    expect(l.observeCut(16_100)).toBe(Math.floor(0.85 * 16_100));
    expect(l.budget).toBe(Math.floor(0.85 * 16_100));
  });

  it('ignores cuts at scattered byte counts, tiny ones and huge ones', () => {
    const l = new WallLearner(limits);
    for (const b of [16_000, 40_000, 90_000, 20_000, 1_000, 900, 5_000_000, 4_000_000]) expect(l.observeCut(b)).toBeNull();
    expect(l.budget).toBeNull();
  });

  it('only lowers a budget it already has', () => {
    const l = new WallLearner(limits, 12_000);
    expect(l.observeCut(64_000)).toBeNull();
    expect(l.observeCut(64_000)).toBeNull();
    expect(l.observeCut(64_000)).toBeNull(); // not below the budget: no change
    for (const near of [11_900, 11_950, 12_000]) expect(l.observeCut(near)).toBeNull(); // cut near the budget: no wall news
    expect(l.observeCut(8_000)).toBeNull();
    expect(l.observeCut(8_200)).toBeNull();
    expect(l.observeCut(8_100)).toBe(6_800);
  });
});

describe('WallLearner, a wall that counts both directions', () => {
  it('learns the sum when cuts agree on bytes both ways but not on bytes received', () => {
    const l = new WallLearner(limits);
    expect(l.observeCut(2_000, 14_300)).toBeNull();
    expect(l.observeCut(13_000, 3_300)).toBeNull();
    expect(l.observeCut(7_000, 9_100)).toBe(Math.floor(0.85 * 16_100));
    expect(l.counts).toBe('both');
  });

  it('keeps counting bytes received when those agree (a freeze with a little upstream)', () => {
    const l = new WallLearner(limits);
    l.observeCut(16_384, 3_000);
    l.observeCut(16_384, 2_500);
    expect(l.observeCut(16_384, 2_800)).toBe(Math.floor(0.85 * 16_384));
    expect(l.counts).toBe('down');
  });

  it('moves from a down budget to a both budget when cuts with real upstream keep falling under it', () => {
    const l = new WallLearner(limits, 13_900, 'down');
    // Echo under a 16 KiB two-way wall: each cut received ~8 KiB (under 85 % of 13.9 K) and sent as much.
    expect(l.observeCut(8_000, 8_300)).toBeNull();
    expect(l.observeCut(9_500, 6_700)).toBeNull();
    expect(l.observeCut(6_100, 10_150)).toBe(Math.floor(0.85 * 16_200));
    expect(l.counts).toBe('both');
    // Download traffic alone does not teach a down budget back.
    for (let i = 0; i < 3; i++) expect(l.observeCut(12_000, 200)).toBeNull();
    expect(l.counts).toBe('both');
  });
});

describe('WallLearner, with the bridge\'s TALLY (the most that can have crossed, protocol.md §9.8.1)', () => {
  it('skips a cut whose count fell short but whose maximum reaches the wall (a reset cost the reader its last bytes)', () => {
    const l = new WallLearner(limits);
    expect(l.observeCut(65_000, 1_200, { down: 130_000, up: 900_000 })).toBeNull();
    expect(l.observeCut(600, 1_300, { down: 120_000, up: 800_000 })).toBeNull(); // short, says nothing
    expect(l.observeCut(64_300, 1_200, { down: 64_400, up: 700_000 })).toBeNull();
    expect(l.observeCut(64_900, 1_100, { down: 99_000, up: 600_000 })).toBe(Math.floor(0.85 * 64_300));
    expect(l.counts).toBe('down');
  });

  it('skips at most one such cut among those that agree (a path that cuts at random is no wall)', () => {
    const l = new WallLearner(limits);
    expect(l.observeCut(65_000, 1_200, { down: 130_000, up: 900_000 })).toBeNull();
    expect(l.observeCut(600, 1_300, { down: 120_000, up: 800_000 })).toBeNull();
    expect(l.observeCut(64_300, 1_200, { down: 64_400, up: 700_000 })).toBeNull();
    expect(l.observeCut(19_000, 1_000, { down: 66_000, up: 500_000 })).toBeNull();
    expect(l.observeCut(64_900, 1_100, { down: 99_000, up: 600_000 })).toBeNull(); // two skipped since the first
    expect(l.observeCut(64_600, 1_100, { down: 99_000, up: 600_000 })).toBe(Math.floor(0.85 * 64_300));
  });

  it('does not skip a cut that cannot have reached the wall: the cuts before it do not count', () => {
    const l = new WallLearner(limits);
    l.observeCut(65_000, 1_200, { down: 130_000, up: 900_000 });
    l.observeCut(64_300, 1_200, { down: 64_400, up: 700_000 });
    expect(l.observeCut(20_000, 1_000, { down: 20_100, up: 30_000 })).toBeNull(); // died well before 64 K
    expect(l.observeCut(64_900, 1_100, { down: 99_000, up: 600_000 })).toBeNull();
    expect(l.observeCut(64_000, 1_100, { down: 99_000, up: 600_000 })).toBeNull();
    expect(l.observeCut(64_500, 1_100, { down: 99_000, up: 600_000 })).toBe(Math.floor(0.85 * 64_000));
  });

  it('learns a wall both ways from cuts whose reads fell short one way or the other', () => {
    const l = new WallLearner(limits);
    // Echo under a 64 KiB two-way wall: the bridge read what the client's resend put through (up), the client what came back.
    expect(l.observeCut(2_169, 63_367, { down: 2_200, up: 1_000_000 })).toBeNull();
    expect(l.observeCut(500, 1_300, { down: 130_000, up: 900_000 })).toBeNull();
    expect(l.observeCut(52_000, 13_500, { down: 52_000, up: 260_000 })).toBeNull();
    expect(l.observeCut(1_644, 63_892, { down: 1_700, up: 1_000_000 })).toBe(Math.floor(0.85 * 65_500));
    expect(l.counts).toBe('both');
  });
});

describe('dialSlotAt (the handshake cap)', () => {
  /** Dials as fast as the cap allows for `ms`: their start times. */
  const run = (l: Parameters<typeof dialSlotAt>[1], ms: number): number[] => {
    const starts: number[] = [];
    for (let t = 0; t <= ms; ) {
      starts.push(t);
      t = Math.max(t, dialSlotAt(starts.slice(-Math.max(1, l.DIAL_BURST_MAX)), l));
    }
    return starts;
  };

  it('lets a burst of 3 through at once, never 4 within 500 ms (the 400 ms rule with a margin), 6 per second sustained', () => {
    const starts = run(limits, 10_000);
    expect(starts.slice(0, 3)).toEqual([0, 40, 80]);
    for (let i = 3; i < starts.length; i++) expect((starts[i] as number) - (starts[i - 3] as number)).toBeGreaterThanOrEqual(500);
    expect(starts.length).toBeGreaterThanOrEqual(60);
    expect(starts.length).toBeLessThanOrEqual(61);
  });

  it('with the burst rule off, only the interval counts', () => {
    expect(run({ DIAL_MIN_INTERVAL_MS: 100, DIAL_BURST_MAX: 0, DIAL_BURST_WINDOW_MS: 440 }, 1_000)).toHaveLength(11);
    expect(dialSlotAt([], limits)).toBe(Number.NEGATIVE_INFINITY);
  });
});

describe('parseBudget', () => {
  it.each([
    ['auto', { mode: 'auto' }],
    ['off', { mode: 'off' }],
    ['0', { mode: 'off' }],
    [0, { mode: 'off' }],
    ['16384', { mode: 'fixed', bytes: 16_384 }],
    ['100', null],
    ['12k', { mode: 'fixed', bytes: 12_288 }],
    ['both:16k', { mode: 'fixed', bytes: 16_384, counts: 'both' }],
    ['BOTH:20000', { mode: 'fixed', bytes: 20_000, counts: 'both' }],
    ['both:1k', null],
    ['both:', null],
    ['down:16k', null],
    ['16 k', null],
    ['1.5k', null],
    ['-5', null],
  ])('%s', (text, want) => expect(parseBudget(text as string, 4_096)).toEqual(want));
});

describe('WallStore', () => {
  it('remembers a budget per bridge across instances, names no address, and forgets after the TTL', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-wall-'));
    const file = defaultWallFile({ XDG_STATE_HOME: dir });
    expect(file).toBe(path.join(dir, 'postern', 'walls.json'));
    let now = 1_000_000;
    const a = parseShareUri(`postern://${'A'.repeat(43)}@203.0.113.7:443/p`);
    const b = parseShareUri(`postern://${'A'.repeat(43)}@203.0.113.8:443/p`);
    new WallStore(file, 60_000, undefined, () => now).set(wallKey(a), 13_000);
    const store = new WallStore(file, 60_000, undefined, () => now);
    expect(store.get(wallKey(a))).toBe(13_000);
    expect(store.get(wallKey(b))).toBeNull();
    expect(fs.readFileSync(file, 'utf8')).not.toContain('203.0.113');
    now += 60_001;
    expect(store.get(wallKey(a))).toBeNull();
  });

  it('remembers what a wall counts (files without it read as bytes received)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-wall-'));
    const file = path.join(dir, 'walls.json');
    const store = new WallStore(file, 60_000);
    store.set('a', 13_000, 'both');
    store.set('b', 12_000);
    expect(new WallStore(file, 60_000).getWall('a')).toEqual({ budget: 13_000, counts: 'both' });
    expect(new WallStore(file, 60_000).getWall('b')).toEqual({ budget: 12_000, counts: 'down' });
  });

  it('treats a malformed file as empty and reports it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-wall-'));
    const file = path.join(dir, 'walls.json');
    fs.writeFileSync(file, '{not json');
    const errors: Error[] = [];
    expect(new WallStore(file, 60_000, (e) => errors.push(e)).get('x')).toBeNull();
    expect(errors).toHaveLength(1);
  });
});
