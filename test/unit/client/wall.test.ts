import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultLimits } from '../../../src/core/limits.js';
import { WallLearner, WallStore, defaultWallFile, wallKey } from '../../../src/client/wall.js';
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

describe('parseBudget', () => {
  it.each([
    ['auto', { mode: 'auto' }],
    ['off', { mode: 'off' }],
    ['0', { mode: 'off' }],
    [0, { mode: 'off' }],
    ['16384', { mode: 'fixed', bytes: 16_384 }],
    ['100', null],
    ['12k', null],
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

  it('treats a malformed file as empty and reports it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-wall-'));
    const file = path.join(dir, 'walls.json');
    fs.writeFileSync(file, '{not json');
    const errors: Error[] = [];
    expect(new WallStore(file, 60_000, (e) => errors.push(e)).get('x')).toBeNull();
    expect(errors).toHaveLength(1);
  });
});
