import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caresResolver, DnsLimiter, dnsMetrics, limitResolver, type Resolver } from '../../../src/bridge/dns.js';
import { Registry } from '../../../src/bridge/metrics.js';
import { defaultLimits } from '../../../src/core/limits.js';
import { startTestDns, type TestDns } from '../../helpers/dns-server.js';

const limits = (o: Partial<ReturnType<typeof defaultLimits>> = {}) =>
  defaultLimits({ EGRESS_DNS_MAX_CONCURRENT: 4, EGRESS_DNS_MAX_QUEUED: 8, EGRESS_DNS_MAX_CONCURRENT_PER_USER: 2, EGRESS_DNS_MAX_PENDING_PER_USER: 4, ...o });

/** A resolver whose lookups hang until released (or aborted), counting how many run at once per user. */
function hanging() {
  const running = new Map<string, number>();
  const peak = new Map<string, number>();
  const release: Array<() => void> = [];
  const r: Resolver = (name, ctx) =>
    new Promise((resolve) => {
      const u = ctx?.user ?? '';
      running.set(u, (running.get(u) ?? 0) + 1);
      peak.set(u, Math.max(peak.get(u) ?? 0, running.get(u) as number));
      const done = () => {
        running.set(u, (running.get(u) as number) - 1);
        resolve([{ address: '192.0.2.1', family: 4 }]);
      };
      release.push(done);
      ctx?.signal?.addEventListener('abort', () => running.set(u, (running.get(u) as number) - 1), { once: true });
      void name;
    });
  return { r, running, peak, release };
}

const tick = () => new Promise((r) => setImmediate(r));
const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code ?? String(e));

describe('DnsLimiter (issue 10, finding 3)', () => {
  it('gives each user a share of the slots, refuses a user at its pending budget and no one else', async () => {
    const m = dnsMetrics(new Registry());
    const limiter = new DnsLimiter(limits(), m);
    const h = hanging();
    const r = limitResolver(h.r, limiter);
    const a = [0, 1, 2, 3].map((i) => r(`a${i}.test`, { user: 'a' }));
    expect(limiter.stats('a')).toEqual({ running: 2, waiting: 2, userPending: 4 });
    expect(await code(r('a4.test', { user: 'a' }))).toBe('E_DNS'); // at its budget: refused at once
    expect(m.refused.get({ reason: 'user_budget' })).toBe(1);
    // B gets a slot at once although A has lookups waiting.
    const b = r('b.test', { user: 'b' });
    expect(limiter.stats('b').userPending).toBe(1);
    expect(limiter.stats().running).toBe(3);
    while (h.release.length) h.release.shift()!();
    await tick();
    while (h.release.length) h.release.shift()!();
    await Promise.all([...a, b]);
    expect(h.peak.get('a')).toBe(2);
    expect(limiter.stats('a')).toEqual({ running: 0, waiting: 0, userPending: 0 });
    expect(m.registry.render()).toContain('postern_dns_user_lookups_pending{user="a"} 0');
  });

  it('frees a hung lookup’s slot the moment its signal aborts, and the next one runs', async () => {
    const limiter = new DnsLimiter(limits({ EGRESS_DNS_MAX_CONCURRENT: 1, EGRESS_DNS_MAX_CONCURRENT_PER_USER: 1 }));
    const h = hanging();
    const r = limitResolver(h.r, limiter);
    const ac = new AbortController();
    const hung = code(r('hung.test', { user: 'a', signal: ac.signal }));
    const next = r('next.test', { user: 'b' });
    expect(limiter.stats()).toMatchObject({ running: 1, waiting: 1 });
    ac.abort();
    expect(await hung).toBe('E_DNS');
    expect(limiter.stats()).toMatchObject({ running: 1, waiting: 0 });
    h.release.at(-1)!();
    await expect(next).resolves.toHaveLength(1);
  });

  it('drops an aborted waiter from the queue, and refuses beyond EGRESS_DNS_MAX_QUEUED', async () => {
    const limiter = new DnsLimiter(limits({ EGRESS_DNS_MAX_CONCURRENT: 1, EGRESS_DNS_MAX_QUEUED: 1, EGRESS_DNS_MAX_PENDING_PER_USER: 100 }));
    const h = hanging();
    const r = limitResolver(h.r, limiter);
    const first = r('1.test', { user: 'a' });
    const ac = new AbortController();
    const waiting = code(r('2.test', { user: 'b', signal: ac.signal }));
    expect(await code(r('3.test', { user: 'c' }))).toBe('E_DNS');
    ac.abort();
    expect(await waiting).toBe('E_DNS');
    expect(limiter.stats()).toMatchObject({ running: 1, waiting: 0 });
    h.release.shift()!();
    await first;
    expect(limiter.stats()).toMatchObject({ running: 0, waiting: 0 });
  });

  it('serves waiting users in turn, not one user’s whole queue first', async () => {
    const limiter = new DnsLimiter(limits({ EGRESS_DNS_MAX_CONCURRENT: 1, EGRESS_DNS_MAX_CONCURRENT_PER_USER: 1, EGRESS_DNS_MAX_PENDING_PER_USER: 10, EGRESS_DNS_MAX_QUEUED: 20 }));
    const order: string[] = [];
    const r = limitResolver(async (name) => {
      order.push(name);
      return [];
    }, limiter);
    const hold: Array<() => void> = [];
    const gate = limiter.run('x', undefined, () => new Promise<void>((res) => hold.push(res)));
    const all = [r('a1', { user: 'a' }), r('a2', { user: 'a' }), r('a3', { user: 'a' }), r('b1', { user: 'b' }), r('b2', { user: 'b' })];
    hold[0]!();
    await gate;
    await Promise.all(all);
    expect(order).toEqual(['a1', 'b1', 'a2', 'b2', 'a3']);
  });
});

describe('caresResolver (c-ares, against a DNS server on loopback)', () => {
  let dns: TestDns;
  beforeAll(async () => {
    dns = await startTestDns({ 'answered.test': '127.0.0.9' }, (n) => n.endsWith('.hole.test'));
  });
  afterAll(async () => {
    await dns.close();
  });
  const resolver = () => caresResolver({ servers: () => [dns.server], tryTimeoutMs: 5_000 });

  it('answers A records and passes IP literals through', async () => {
    expect(await resolver()('answered.test')).toEqual([{ address: '127.0.0.9', family: 4 }]);
    expect(await resolver()('::1')).toEqual([{ address: '::1', family: 6 }]);
  });

  it('fails a name that does not exist', async () => {
    await expect(resolver()('missing.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('cancels a lookup the server never answers as soon as its signal aborts', async () => {
    const r = resolver();
    const ac = new AbortController();
    const t0 = performance.now();
    const p = r('x.hole.test', { signal: ac.signal });
    const other = r('answered.test'); // a lookup beside it on the same resolver is not cancelled with it
    setTimeout(() => ac.abort(), 100);
    await expect(p).rejects.toMatchObject({ code: 'ECANCELLED' });
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(dns.queries.get('x.hole.test')).toBeGreaterThanOrEqual(1);
    expect(await other).toEqual([{ address: '127.0.0.9', family: 4 }]);
    // The cancelled lookup's channel goes back to the pool and answers the next lookups.
    for (let i = 0; i < 3; i++) expect(await r('answered.test')).toEqual([{ address: '127.0.0.9', family: 4 }]);
  });
});
