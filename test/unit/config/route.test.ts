import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveRoute } from '../../../src/config/route.js';
import { targetFromHost } from '../../../src/core/address.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-route-'));
const list = path.join(dir, 'list.txt');
fs.writeFileSync(list, 'blocked.example\n203.0.113.0/24\n');

describe('route settings', () => {
  it.each([
    [{ route: 'everything' }, undefined, '--route: expected one of all, messaging-only, domestic-direct, blocked-only, got "everything"'],
    [{ route: 'blocked-only' }, undefined, '--route blocked-only: needs a list file'],
    [{ routeFile: list }, undefined, '--route-file: goes with the blocked-only preset'],
    [{}, { preset: 'blocked-only' as const }, 'c.json: route.preset: needs a list file'],
    [{ route: 'blocked-only', routeFile: path.join(dir, 'missing.txt') }, undefined, 'missing.txt: cannot read the list file (ENOENT)'],
  ])('%j %j → an error naming where', (flags, file, msg) => {
    expect(() => resolveRoute(flags, file, 'c.json')).toThrow(msg);
  });

  it('without country rules the country table is never loaded', () => {
    for (const route of ['all', 'messaging-only'] as const) expect(resolveRoute({ route }, undefined, undefined).router.needsCountry).toBe(false);
  });

  it("the file's own rules come before the preset's, and a flag preset replaces the file's", () => {
    const { router } = resolveRoute(
      { route: 'blocked-only', routeFile: list },
      { preset: 'messaging-only', rules: [{ name: 'mine', match: { domain: ['blocked.example'] }, action: 'block' }], default: 'block' },
      'c.json',
    );
    expect(router.rules.map((r) => r.label)).toEqual(['rule 1 "mine"', 'rule 2 "blocked list" (blocked-only)', 'rule 3 "blocked list ranges" (blocked-only)']);
    expect(router.defaultAction).toBe('block');
    expect(router.byName(targetFromHost('blocked.example', 443))).toMatchObject({ action: 'block', rule: 0 });
    expect(router.byName(targetFromHost('a.blocked.example', 443))).toMatchObject({ action: 'tunnel', rule: 1 });
    expect(router.byName(targetFromHost('203.0.113.9', 443))).toMatchObject({ action: 'tunnel', rule: 2 });
  });
});
