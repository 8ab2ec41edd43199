import { describe, expect, it } from 'vitest';
import { Registry, bridgeMetrics, escapeLabelValue } from '../../../src/bridge/metrics.js';

describe('Prometheus text exposition', () => {
  it('writes HELP and TYPE before the samples of each family, and ends in a newline', () => {
    const r = new Registry();
    const c = r.counter('demo_requests_total', 'Requests served.');
    const g = r.gauge('demo_open', 'Open now.');
    c.inc({ code: '200' }, 3);
    c.inc({ code: '404' });
    c.inc({ code: '200' });
    g.set(7);
    expect(r.render()).toBe(
      [
        '# HELP demo_requests_total Requests served.',
        '# TYPE demo_requests_total counter',
        'demo_requests_total{code="200"} 4',
        'demo_requests_total{code="404"} 1',
        '# HELP demo_open Open now.',
        '# TYPE demo_open gauge',
        'demo_open 7',
        '',
      ].join('\n'),
    );
  });

  it('reports 0 for a family that has not moved yet', () => {
    const r = new Registry();
    r.counter('x_total', 'X.');
    expect(r.render()).toBe('# HELP x_total X.\n# TYPE x_total counter\nx_total 0\n');
  });

  it('sorts label names and escapes backslash, quote and newline in values', () => {
    const r = new Registry();
    r.counter('y_total', 'Y with a \\ and\na newline.').inc({ b: 'q"uote', a: 'back\\slash\nnl' });
    const text = r.render();
    expect(text).toContain('# HELP y_total Y with a \\\\ and\\na newline.');
    expect(text).toContain('y_total{a="back\\\\slash\\nnl",b="q\\"uote"} 1');
    expect(escapeLabelValue('a"b')).toBe('a\\"b');
  });

  it('refuses counters without _total, bad names, duplicates and decrements', () => {
    const r = new Registry();
    expect(() => r.counter('bad', 'x')).toThrow(/_total/);
    expect(() => r.gauge('1bad', 'x')).toThrow(/name/);
    r.gauge('ok', 'x');
    expect(() => r.gauge('ok', 'x')).toThrow(/twice/);
    expect(() => r.counter('c_total', 'x').inc({}, -1)).toThrow();
  });

  it('label handles add to the same sample as inc()', () => {
    const r = new Registry();
    const c = r.counter('z_total', 'Z.');
    const h = c.labels({ user: 'alice', direction: 'up' });
    h.inc(10);
    c.inc({ direction: 'up', user: 'alice' }, 5);
    expect(c.get({ user: 'alice', direction: 'up' })).toBe(15);
    expect(r.render()).toContain('z_total{direction="up",user="alice"} 15');
  });

  it('the bridge families are all valid exposition (every line a comment or `name{labels} value`)', () => {
    const m = bridgeMetrics();
    m.authFailures.inc({ reason: 'bad_mac' });
    m.userBytes.labels({ user: 'bob', direction: 'down' }).inc(123);
    const text = m.registry.render();
    for (const line of text.trimEnd().split('\n')) {
      expect(line).toMatch(/^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?\d+(\.\d+)?)$/);
    }
    for (const m2 of text.matchAll(/^# TYPE (\S+) counter$/gm)) expect(m2[1]).toMatch(/_total$/);
    expect(text).toContain('postern_user_bytes_total{direction="down",user="bob"} 123');
  });
});
