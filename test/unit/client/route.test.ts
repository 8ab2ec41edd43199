import { describe, expect, it } from 'vitest';
import { targetFromHost } from '../../../src/core/address.js';
import { PosternError } from '../../../src/core/errors.js';
import { defaultLimits } from '../../../src/core/limits.js';
import { Router } from '../../../src/route/rules.js';
import { ClientRoute } from '../../../src/client/route.js';

function route(rules: Parameters<typeof Router.compile>[0], dflt: 'tunnel' | 'direct' | 'block', hosts: Record<string, string[]> = {}, allowLanPrivate = false) {
  const asked: string[] = [];
  const r = new ClientRoute({
    router: Router.compile(rules, dflt, (i) => `r${i}`),
    resolver: async (name) => {
      asked.push(name);
      const a = hosts[name];
      if (!a) throw Object.assign(new Error('nx'), { code: 'ENOTFOUND' });
      return a;
    },
    limits: defaultLimits(),
    allowLanPrivate,
  });
  return { r, asked };
}
const signal = new AbortController().signal;

describe('ClientRoute', () => {
  it('never looks a name up when it goes through the tunnel', async () => {
    const { r, asked } = route([{ match: { country: ['RU'] }, action: 'direct' }], 'tunnel');
    expect((await r.route(targetFromHost('example.com', 443), signal)).decision.action).toBe('tunnel');
    expect(asked).toEqual([]);
  });

  it('looks a name up once for an address rule, and reuses it to connect', async () => {
    const { r, asked } = route([{ match: { cidr: ['10.0.0.0/8'] }, action: 'block' }], 'direct', { 'a.example': ['10.1.1.1'], 'b.example': ['192.0.2.1'] });
    expect((await r.route(targetFromHost('a.example', 443), signal)).decision).toMatchObject({ action: 'block', rule: 0 });
    const b = await r.route(targetFromHost('b.example', 443), signal);
    expect(b).toMatchObject({ decision: { action: 'direct', rule: -1 }, addresses: ['192.0.2.1'] });
    expect(asked).toEqual(['a.example', 'b.example']);
    expect(r.stats.lookups).toBe(2);
  });

  it.each([
    ['127.0.0.1', true, false, 'E_ROUTE_PRIVATE'],
    ['192.168.1.1', true, false, 'E_ROUTE_PRIVATE'],
    ['fe80::1', true, false, 'E_ROUTE_PRIVATE'],
    ['::ffff:10.0.0.1', true, false, 'E_ROUTE_PRIVATE'],
    ['0.0.0.0', false, false, 'E_NOT_ALLOWED'],
    ['224.0.0.1', true, true, 'E_NOT_ALLOWED'],
    ['127.0.0.1', false, false, null],
    ['192.168.1.1', true, true, null],
    ['198.51.100.1', true, false, 'E_ROUTE_PRIVATE'], // TEST-NET-2 is 'reserved'
    ['8.8.8.8', true, false, null],
  ])('direct to %s (lan %s, allowLanPrivate %s) → %s', (ip, lan, allow, code) => {
    const { r } = route([], 'direct', {}, allow);
    const run = () => r.allowedDirect([ip], lan);
    if (code === null) expect(run()).toEqual([ip]);
    else expect(run).toThrow(expect.objectContaining({ code }) as unknown as PosternError);
  });
});
