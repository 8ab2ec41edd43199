import { describe, expect, it } from 'vitest';
import { parseCountryCsv } from '../../../src/route/country.js';
import { ipKey } from '../../../src/route/ranges.js';

describe('country table from the package CSV (ranges as numbers)', () => {
  // 1.0.0.0-1.0.0.255 AU; 5.0.0.0-5.255.255.255 RU; 2a02:6b8::/32 RU; a malformed row is skipped.
  const v4 = '16777216,16777471,AU\n83886080,100663295,RU\nnot,a,row\n';
  const v6 = `${0x2a0206b8n << 96n},${(0x2a0206b8n << 96n) | ((1n << 96n) - 1n)},RU\n`;
  const t = parseCountryCsv(v4, v6);
  it.each([
    ['1.0.0.0', 'AU'],
    ['1.0.0.255', 'AU'],
    ['1.0.1.0', undefined],
    ['5.1.2.3', 'RU'],
    ['::ffff:5.1.2.3', 'RU'],
    ['2a02:6b8::1', 'RU'],
    ['2a02:6b8:ffff:ffff:ffff:ffff:ffff:ffff', 'RU'],
    ['2a02:6b9::', undefined],
  ])('%s → %s', (ip, cc) => {
    expect(t.get(ipKey(ip)!)).toBe(cc);
  });
});
