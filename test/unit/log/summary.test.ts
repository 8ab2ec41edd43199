import { afterEach, describe, expect, it, vi } from 'vitest';
import { LogSummary } from '../../../src/log/summary.js';
import { captureLogger } from '../mux/helpers.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('LogSummary (issue 10, item 7)', () => {
  it('logs one info line per interval with counts by reason, and nothing while nothing happens', () => {
    vi.useFakeTimers();
    const { logger, lines } = captureLogger();
    const s = new LogSummary(logger, 'streams refused', 'byCode', 60_000);
    vi.advanceTimersByTime(120_000);
    expect(lines).toEqual([]);
    for (let i = 0; i < 1_000; i++) s.note('E_DNS');
    s.note('E_NOT_ALLOWED/range');
    vi.advanceTimersByTime(59_999);
    expect(lines).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 30, msg: 'streams refused', total: 1_001, byCode: { E_DNS: 1_000, 'E_NOT_ALLOWED/range': 1 } });
    vi.advanceTimersByTime(120_000);
    expect(lines).toHaveLength(1);
    s.note('E_TIMEOUT');
    s.close();
    expect(JSON.parse(lines[1]!)).toMatchObject({ total: 1, byCode: { E_TIMEOUT: 1 } });
  });

  it('holds a bounded number of reasons', () => {
    const { logger, lines } = captureLogger();
    const s = new LogSummary(logger, 'upgrades refused', 'byReason', 60_000);
    for (let i = 0; i < 1_000; i++) s.note(`r${i}`);
    s.close();
    const counts = (JSON.parse(lines[0]!) as { byReason: Record<string, number> }).byReason;
    expect(Object.keys(counts).length).toBeLessThanOrEqual(65);
    expect(counts.other).toBe(1_000 - 64);
  });
});
