import vm from 'node:vm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { targetFromHost } from '../../../src/core/address.js';
import { parseRouteList } from '../../../src/route/list-file.js';
import { routePac } from '../../../src/route/pac.js';
import { routePreset } from '../../../src/route/presets.js';
import { IpRangeMap, IpRangeSet, ipKey } from '../../../src/route/ranges.js';
import { Router, type RuleSpec } from '../../../src/route/rules.js';
import { MESSAGING_LIST } from '../../../src/core/messaging.js';
import { MESSAGING_PRESET } from '../../../src/bridge/presets.js';

const rules: RuleSpec[] = [
  { name: 'ads', match: { keyword: ['adserv'] }, action: 'block' },
  { name: 'bank', match: { domain: ['bank.example'] }, action: 'direct' },
  { name: 'smtp', match: { port: [25, '465-587'] }, action: 'block' },
  { name: 'ru', match: { suffix: ['ru', 'рф'] }, action: 'direct' },
  { name: 'lan', match: { cidr: ['10.0.0.0/8', 'fd00::/8'] }, action: 'direct' },
  { name: 'tg', match: { cidr: ['91.108.4.0/22'], port: [443] }, action: 'tunnel' },
];
const router = Router.compile(rules, 'tunnel', (i) => `rules[${i}]`);
const decide = (host: string, port = 443) => router.byName(targetFromHost(host, port));

describe('Router: first match wins, names before any lookup', () => {
  it.each([
    ['x.adserver.net', 443, 'block', 0],
    ['bank.example', 443, 'direct', 1],
    ['www.bank.example', 443, 'tunnel', -1], // exact only
    ['mail.example', 25, 'block', 2],
    ['mail.example', 500, 'block', 2],
    ['gosuslugi.ru', 443, 'direct', 3],
    ['GOSUSLUGI.RU.', 443, 'direct', 3],
    ['пример.рф', 443, 'direct', 3],
    ['xn--e1afmkfd.xn--p1ai', 443, 'direct', 3],
    ['notru', 443, 'tunnel', -1], // suffix on label boundaries only
    ['10.1.2.3', 443, 'direct', 4],
    ['fd12::1', 80, 'direct', 4],
    ['::ffff:10.9.9.9', 80, 'direct', 4],
    ['91.108.5.1', 443, 'tunnel', 5],
    ['91.108.5.1', 80, 'tunnel', -1],
    ['11.0.0.1', 443, 'tunnel', -1],
  ])('%s:%i → %s (rule %i)', (host, port, action, rule) => {
    const d = decide(host, port);
    expect(d).not.toBe('lookup');
    if (d === 'lookup') return;
    expect([d.action, d.rule]).toEqual([action, rule]);
  });

  it('a name that may end in the tunnel is never sent to a lookup', () => {
    // 'tg' (an address rule) sends to the tunnel, so names skip address rules.
    const d = decide('unknown.example');
    expect(d).not.toBe('lookup');
    expect(d !== 'lookup' && d.note).toMatch(/never looked up/);
  });

  it('asks for a lookup only when every outcome left is direct or block, then decides by address', () => {
    const r = Router.compile([{ match: { suffix: ['tunnel.example'] }, action: 'tunnel' }, { match: { cidr: ['10.0.0.0/8'] }, action: 'block' }], 'direct', (i) => `r${i}`);
    expect(r.byName(targetFromHost('a.tunnel.example', 1))).toMatchObject({ action: 'tunnel' });
    const t = targetFromHost('other.example', 1);
    expect(r.byName(t)).toBe('lookup');
    expect(r.byAddress(t, '10.2.3.4')).toMatchObject({ action: 'block', rule: 1, by: 'address' });
    expect(r.byAddress(t, '192.0.2.1')).toMatchObject({ action: 'direct', rule: -1 });
  });

  it.each([
    [{ match: { cidr: ['10.0.0.0/33'] }, action: 'direct' }, 'rules[0]: match.cidr[0]'],
    [{ name: 'x', match: { suffix: ['a..b'] }, action: 'direct' }, 'rules[0] ("x"): match.suffix[0]'],
    [{ match: { port: [0] }, action: 'direct' }, 'rules[0]: match.port[0]'],
    [{ match: { country: ['Russia'] }, action: 'direct' }, 'rules[0]: match.country[0]'],
    [{ match: {}, action: 'direct' }, 'rules[0]: match has no condition'],
  ] as [RuleSpec, string][])('a bad rule is refused with its name: %j', (spec, msg) => {
    expect(() => Router.compile([spec], 'tunnel', (i) => `rules[${i}]`)).toThrow(msg);
  });
});

describe('IP range tables', () => {
  const toNum = (ip: string) => ip.split('.').reduce((a, b) => a * 256 + Number(b), 0);
  const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));

  it('property: set membership equals a linear scan of the CIDRs', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(v4, fc.integer({ min: 0, max: 32 })), { maxLength: 20 }), fc.array(v4, { maxLength: 20 }), (cidrs, probes) => {
        const set = IpRangeSet.fromCidrs(cidrs.map(([a, b]) => `${a}/${b}`));
        for (const p of probes) {
          const expected = cidrs.some(([a, bits]) => {
            const size = 2 ** (32 - bits);
            const start = Math.floor(toNum(a) / size) * size;
            return toNum(p) >= start && toNum(p) < start + size;
          });
          expect(set.has(ipKey(p)!)).toBe(expected);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('IPv6 CIDRs at every prefix length hold their ends and not their neighbours', () => {
    for (const bits of [0, 1, 31, 32, 33, 64, 95, 96, 97, 127, 128]) {
      const s = IpRangeSet.fromCidrs([`2001:db8:1234:5678:9abc:def0:1234:5678/${bits}`]);
      expect(s.has(ipKey('2001:db8:1234:5678:9abc:def0:1234:5678')!)).toBe(true);
      if (bits === 128) expect(s.has(ipKey('2001:db8:1234:5678:9abc:def0:1234:5679')!)).toBe(false);
      if (bits >= 32 && bits <= 64) expect(s.has(ipKey('2001:db9::')!)).toBe(false);
    }
  });

  it('a range map gives each address its first range', () => {
    const b = IpRangeMap.builder();
    b.addV4(toNum('1.0.0.0'), toNum('1.0.0.255'), 'AU');
    b.addV4(toNum('5.0.0.0'), toNum('5.255.255.255'), 'RU');
    b.addV4(toNum('5.1.0.0'), toNum('5.1.0.255'), 'XX');
    const m = b.build();
    expect(m.get(ipKey('1.0.0.7')!)).toBe('AU');
    expect(m.get(ipKey('5.1.0.1')!)).toBe('RU');
    expect(m.get(ipKey('4.0.0.0')!)).toBeUndefined();
  });
});

describe('list files (blocked-only)', () => {
  it('reads domains, wildcards, full:, hosts lines and CIDRs', () => {
    const m = parseRouteList('\uFEFF# list\nexample.com\n*.b.org\nfull:only.net\n0.0.0.0 hosts.example\n10.0.0.0/8\n2001:db8::/32 # note\n\n', 'l.txt');
    expect(m).toEqual([{ suffix: ['example.com', 'b.org', 'hosts.example'], domain: ['only.net'] }, { cidr: ['10.0.0.0/8', '2001:db8::/32'] }]);
  });
  it.each([
    ['ok.com\nbad..name\n', 'l.txt:2: '],
    ['a.com\n\n10.0.0.0/40\n', 'l.txt:3: not an IP address or CIDR'],
    ['one two three\n', 'l.txt:1: one domain or CIDR a line'],
    ['# only comments\n', 'l.txt: no entries'],
  ])('an error names the file and line: %j', (text, msg) => {
    expect(() => parseRouteList(text, 'l.txt')).toThrow(msg);
  });
});

describe('presets', () => {
  it('messaging-only uses the very list the bridge preset allows', () => {
    expect(MESSAGING_PRESET).toBe(MESSAGING_LIST);
    const p = routePreset('messaging-only');
    expect(p.rules[0]!.match.suffix).toBe(MESSAGING_LIST.domains);
    expect(p.rules[1]!.match.cidr).toBe(MESSAGING_LIST.ranges);
  });
});

describe('domestic-direct', () => {
  it('sends messaging through the tunnel before any country rule (Telegram ranges are placed in RU by the data)', () => {
    const r = Router.compile(routePreset('domestic-direct').rules as RuleSpec[], 'tunnel', (i) => `r${i}`);
    for (const h of ['web.telegram.org', 'whatsapp.net', '91.108.4.1', '149.154.167.51']) {
      const d = r.byName(targetFromHost(h, 443));
      expect([h, d !== 'lookup' && d.action]).toEqual([h, 'tunnel']);
    }
    const ru = r.byName(targetFromHost('gosuslugi.ru', 443));
    expect(ru !== 'lookup' && ru.action).toBe('direct');
  });
});

describe('PAC file mirrors the name rules', () => {
  const run = (pac: string, host: string) => {
    const ctx = vm.createContext({});
    vm.runInContext(pac, ctx);
    return (ctx as { FindProxyForURL(u: string, h: string): string }).FindProxyForURL(`https://${host}/`, host);
  };
  const cases: [RuleSpec[], 'tunnel' | 'direct' | 'block', string[]][] = [
    [routePreset('messaging-only').rules as RuleSpec[], 'direct', ['web.telegram.org', 'whatsapp.net', 'example.com', 'a.b.signal.org', '91.108.4.1', '8.8.8.8']],
    [routePreset('domestic-direct').rules as RuleSpec[], 'tunnel', ['gosuslugi.ru', 'ya.ru', 'example.com', 'xn--p1ai', '77.88.8.8', 'web.telegram.org', '91.108.4.1']],
    [[{ match: { keyword: ['ads'] }, action: 'block' }, { match: { domain: ['d.example'] }, action: 'direct' }], 'tunnel', ['ads.d.example', 'd.example', 'x.d.example', '10.0.0.1']],
    [[{ match: { suffix: ['d.example'] }, action: 'direct' }], 'direct', ['d.example', 'other', '1.2.3.4']],
  ];
  it.each(cases)('PAC says DIRECT exactly where the router decides direct by name; IP literals go to the proxy when address rules exist (%#)', (specs, dflt, hosts) => {
    const r = Router.compile(specs, dflt, (i) => `r${i}`);
    const pac = routePac(r, 'PROXY 127.0.0.1:1080');
    const addressRules = r.rules.some((x) => x.ranges !== null || x.countries !== null);
    for (const h of hosts) {
      const d = r.byName(targetFromHost(h, 443));
      const ipWithAddressRules = targetFromHost(h, 443).kind !== 'domain' && addressRules;
      const expected = !ipWithAddressRules && d !== 'lookup' && d.action === 'direct' ? 'DIRECT' : 'PROXY 127.0.0.1:1080';
      expect([h, run(pac, h)]).toEqual([h, expected]);
    }
  });
});
