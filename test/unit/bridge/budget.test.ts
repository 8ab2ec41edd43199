/** Budgets per user and for the bridge (docs/protocol.md §7.1): Governor.admitStream and Descriptors. */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Descriptors, parseNofile } from '../../../src/bridge/descriptors.js';
import { BudgetRefusal, Governor, type StreamLease } from '../../../src/bridge/governor.js';
import { defaultLimits, type Limits } from '../../../src/core/limits.js';
import { silentLogger } from '../../../src/log/logger.js';
import type { MuxSession } from '../../../src/mux/session.js';
import { captureLogger } from '../mux/helpers.js';

const MIB = 1024 * 1024;

class FakeSession extends EventEmitter {
  streamCount = 0;
  heldBytes = 0;
  closed = false;
  close() {
    this.closed = true;
    this.emit('close', { code: 1000, reason: '' });
  }
}

const users = [
  { name: 'mallory', secret: Buffer.alloc(32, 1) },
  { name: 'bob', secret: Buffer.alloc(32, 2) },
];

function governor(over: Partial<Limits>, fds: { open: number; soft: number } = { open: 10, soft: 1_000_000 }) {
  const { logger, lines } = captureLogger();
  const limits = defaultLimits(over);
  const d = new Descriptors(
    () => 0,
    () => ({ soft: fds.soft, hard: fds.soft }),
    () => fds.open,
  );
  const g = new Governor(users, limits, () => 0, logger, d);
  return { g, lines, limits };
}

const lease = (r: StreamLease | BudgetRefusal): StreamLease => {
  if (r instanceof BudgetRefusal) throw new Error(`refused: ${r.budget}`);
  return r;
};

describe('Governor budgets (protocol.md §7.1)', () => {
  it('refuses a user past USER_MAX_STREAMS with E_STREAM_LIMIT (0x09) and leaves other users alone', () => {
    const { g } = governor({ USER_MAX_STREAMS: 3 });
    const held = [0, 1, 2].map(() => lease(g.admitStream('mallory')));
    const r = g.admitStream('mallory');
    expect(r).toBeInstanceOf(BudgetRefusal);
    expect(r).toMatchObject({ budget: 'user_streams', code: 'E_STREAM_LIMIT', wire: 0x09 });
    expect(g.admitStream('bob')).not.toBeInstanceOf(BudgetRefusal);
    held[0]?.release();
    held[0]?.release(); // idempotent
    expect(g.admitStream('mallory')).not.toBeInstanceOf(BudgetRefusal);
    expect(g.admitStream('mallory')).toBeInstanceOf(BudgetRefusal);
  });

  it('counts a user’s sessions and streams against USER_MAX_DESCRIPTORS', () => {
    const { g } = governor({ USER_MAX_DESCRIPTORS: 4 });
    g.track(new FakeSession() as unknown as MuxSession, 'mallory', silentLogger());
    for (let i = 0; i < 3; i++) lease(g.admitStream('mallory'));
    expect(g.admitStream('mallory')).toMatchObject({ budget: 'user_descriptors' });
  });

  it('gives full windows while the bytes budget allows, then smaller ones, then refuses (user_buffered)', () => {
    const { g, limits } = governor({ USER_MAX_BUFFERED_BYTES: 32 * MIB, STREAM_WINDOW_BYTES: 512 * 1024 });
    const windows: number[] = [];
    for (;;) {
      const r = g.admitStream('mallory');
      if (r instanceof BudgetRefusal) {
        expect(r.budget).toBe('user_buffered');
        break;
      }
      windows.push(r.window);
    }
    expect(windows[0]).toBe(512 * 1024);
    expect(windows.at(-1)).toBeGreaterThanOrEqual(limits.STREAM_MIN_WINDOW_BYTES);
    expect(windows.at(-1)).toBeLessThan(512 * 1024);
    const total = windows.reduce((a, b) => a + b, 0);
    expect(total).toBeLessThanOrEqual(32 * MIB);
    // bob still gets a full window
    expect(lease(g.admitStream('bob')).window).toBe(512 * 1024);
  });

  it('counts the sessions’ held bytes (send queues, resume buffers; detached ones too) in the user’s budget', () => {
    const { g } = governor({ USER_MAX_BUFFERED_BYTES: 32 * MIB });
    const s = new FakeSession();
    g.track(s as unknown as MuxSession, 'mallory', silentLogger());
    expect(g.sessionsOverBudget('mallory')).toBe(false);
    s.heldBytes = 32 * MIB - 100 * 1024;
    expect(g.admitStream('mallory')).toMatchObject({ budget: 'user_buffered' });
    s.heldBytes = 33 * MIB;
    expect(g.sessionsOverBudget('mallory')).toBe(true);
    expect(g.sessionsOverBudget('bob')).toBe(false);
    s.close();
    expect(g.sessionsOverBudget('mallory')).toBe(false);
  });

  it('a UDP association counts as a stream and a descriptor but takes no window', () => {
    const { g } = governor({ USER_MAX_BUFFERED_BYTES: 16 * MIB, USER_MAX_STREAMS: 2 });
    const a = lease(g.admitStream('mallory', false));
    expect(a.window).toBe(512 * 1024); // announced as usual, not counted
    lease(g.admitStream('mallory'));
    expect(g.admitStream('mallory', false)).toMatchObject({ budget: 'user_streams' });
  });

  it('refuses new streams near RLIMIT_NOFILE (bridge_descriptors), logging once per minute', () => {
    const fds = { open: 10, soft: 1_024 };
    const { g, lines } = governor({ BRIDGE_DESCRIPTOR_RESERVE_COUNT: 128 }, fds);
    expect(g.admitStream('bob')).not.toBeInstanceOf(BudgetRefusal);
    fds.open = 1_024 - 128;
    // sampled at most once a second: force a new sample
    (g.descriptors as unknown as { sampledAt: number }).sampledAt = Number.NEGATIVE_INFINITY;
    expect(g.admitStream('bob')).toMatchObject({ budget: 'bridge_descriptors' });
    expect(g.admitStream('mallory')).toMatchObject({ budget: 'bridge_descriptors' });
    const logged = lines.filter((l) => l.includes('descriptors near the limit'));
    expect(logged).toHaveLength(1);
    expect(JSON.parse(logged[0] as string)).toMatchObject({ budget: 'bridge_descriptors', limit: 1_024, reserve: 128 });
    expect(g.metrics.budgetRefusals.get({ budget: 'bridge_descriptors' })).toBe(2);
  });

  it('shows the budgets in metrics', () => {
    const { g } = governor({});
    g.track(new FakeSession() as unknown as MuxSession, 'mallory', silentLogger());
    lease(g.admitStream('mallory'));
    const text = g.metrics.registry.render();
    expect(text).toContain('postern_user_streams{user="mallory"} 1');
    expect(text).toContain('postern_user_descriptors{user="mallory"} 2');
    expect(text).toContain(`postern_user_buffered_bytes{user="mallory"} ${512 * 1024}`);
    expect(text).toContain('postern_descriptor_limit 1000000');
  });
});

describe('parseNofile', () => {
  it('reads the soft and hard "Max open files" of /proc/PID/limits', () => {
    const text = 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n';
    expect(parseNofile(text)).toEqual({ soft: 1024, hard: 524288 });
    expect(parseNofile('Max open files            unlimited            unlimited            files')).toEqual({ soft: Infinity, hard: Infinity });
    expect(parseNofile('nothing here')).toBeNull();
  });
});
