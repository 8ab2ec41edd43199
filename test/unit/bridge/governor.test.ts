import { EventEmitter } from 'node:events';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { Governor, REVOKED_CLOSE, USER_LIMIT_CLOSE } from '../../../src/bridge/governor.js';
import { ThrottledSocket, TokenBucket } from '../../../src/bridge/limiter.js';
import { defaultLimits } from '../../../src/core/limits.js';
import { silentLogger } from '../../../src/log/logger.js';
import type { MuxSession } from '../../../src/mux/session.js';

/** Enough of a MuxSession for the governor: events, streamCount, close(). */
class FakeSession extends EventEmitter {
  closedWith: { code: number; reason: string } | null = null;
  streamCount = 0;
  get closed() {
    return this.closedWith !== null;
  }
  close(code: number, reason: string) {
    this.closedWith = { code, reason };
    this.emit('close', { code, reason });
  }
}

const user = (name: string, fill: number, extra = {}) => ({ name, secret: Buffer.alloc(32, fill), ...extra });

describe('Governor', () => {
  it('caps sessions per user and frees the slot when one closes', () => {
    const g = new Governor([user('a', 1)], defaultLimits({ BRIDGE_MAX_SESSIONS_PER_USER: 2 }), () => 0);
    const s1 = new FakeSession();
    const s2 = new FakeSession();
    g.track(s1 as unknown as MuxSession, 'a', silentLogger());
    expect(g.admit('a')).toBeNull();
    g.track(s2 as unknown as MuxSession, 'a', silentLogger());
    expect(g.admit('a')).toBe(USER_LIMIT_CLOSE);
    expect(g.admit('b')).toBeNull();
    s1.close(1000, '');
    expect(g.admit('a')).toBeNull();
    s2.close(1000, '');
  });

  it('a reload closes the sessions of removed users and of users whose secret changed, and no other', () => {
    const g = new Governor([user('a', 1), user('b', 2), user('c', 3)], defaultLimits(), () => 0);
    const sa = new FakeSession();
    const sb = new FakeSession();
    const sc = new FakeSession();
    g.track(sa as unknown as MuxSession, 'a', silentLogger());
    g.track(sb as unknown as MuxSession, 'b', silentLogger());
    g.track(sc as unknown as MuxSession, 'c', silentLogger());
    // a stays, b is re-keyed, c is removed
    const closed = g.setUsers([user('a', 1), user('b', 9)]);
    expect(closed).toBe(2);
    expect(sa.closedWith).toBeNull();
    expect(sb.closedWith).toEqual(REVOKED_CLOSE);
    expect(sc.closedWith).toEqual(REVOKED_CLOSE);
    sa.close(1000, '');
  });

  it('closes a session that holds no stream for SESSION_IDLE_TIMEOUT_MS', async () => {
    const g = new Governor([user('a', 1)], defaultLimits({ SESSION_IDLE_TIMEOUT_MS: 50 }), () => 0);
    const busy = new FakeSession();
    const idle = new FakeSession();
    busy.streamCount = 1;
    g.track(busy as unknown as MuxSession, 'a', silentLogger());
    g.track(idle as unknown as MuxSession, 'a', silentLogger());
    busy.emit('open');
    await new Promise((r) => setTimeout(r, 150));
    expect(idle.closedWith).toEqual({ code: 1000, reason: 'idle' });
    expect(busy.closedWith).toBeNull();
    busy.close(1000, '');
  });
});

describe('ThrottledSocket', () => {
  it('holds writes to the cap (backpressure, no queue beyond the stream buffer)', async () => {
    let received = 0;
    const server = net.createServer((s) => s.on('data', (d: Buffer) => (received += d.length)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const sock = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const RATE = 512 * 1024;
    const t = new ThrottledSocket(sock, new TokenBucket(RATE), new TokenBucket(RATE));
    const chunk = Buffer.alloc(16 * 1024);
    const start = performance.now();
    let stop = false;
    setTimeout(() => (stop = true), 1_000);
    while (!stop) {
      if (!t.write(chunk)) await new Promise((r) => t.once('drain', r));
      expect(t.writableLength).toBeLessThanOrEqual(64 * 1024 + chunk.length);
    }
    const secs = (performance.now() - start) / 1000;
    await new Promise((r) => setTimeout(r, 50));
    t.destroy();
    server.close();
    const rate = received / secs;
    expect(rate).toBeGreaterThan(0.7 * RATE);
    expect(rate).toBeLessThan(1.3 * RATE + 64 * 1024);
  });
});
