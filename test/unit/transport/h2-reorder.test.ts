import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeData, encodePad } from '../../../src/transport/h2/codec.js';
import { RecordBoundaries, ReorderBuffer, parseSeq } from '../../../src/transport/h2/reorder.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('ReorderBuffer (packet-up, protocol.md §12.3)', () => {
  it('delivers in-order bodies at once', () => {
    const r = new ReorderBuffer(4, 16);
    expect(r.offer(0, b('ab'))).toEqual({ ok: true, ready: [b('ab')] });
    expect(r.offer(1, b('cd'))).toEqual({ ok: true, ready: [b('cd')] });
    expect(r.next).toBe(2);
    expect(r.heldBytes).toBe(0);
  });

  it('holds a body ahead of a gap and releases the run when the gap fills', () => {
    const r = new ReorderBuffer(4, 16);
    expect(r.offer(2, b('C'))).toEqual({ ok: true, ready: [] });
    expect(r.offer(1, b('BB'))).toEqual({ ok: true, ready: [] });
    expect(r.heldBytes).toBe(3);
    expect(r.offer(0, b('A'))).toEqual({ ok: true, ready: [b('A'), b('BB'), b('C')] });
    expect(r.next).toBe(3);
    expect(r.heldBytes).toBe(0);
  });

  it('refuses duplicates, delivered or held', () => {
    const r = new ReorderBuffer(4, 16);
    r.offer(0, b('x'));
    r.offer(2, b('z'));
    expect(r.offer(0, b('x'))).toEqual({ ok: false, reason: 'duplicate' });
    expect(r.offer(2, b('z'))).toEqual({ ok: false, reason: 'duplicate' });
    expect(r.heldBytes).toBe(1);
  });

  it('refuses sequence numbers at or past next + window, and bad ones, holding nothing for them', () => {
    const r = new ReorderBuffer(4, 16);
    expect(r.offer(4, b('x'))).toEqual({ ok: false, reason: 'out_of_window' });
    expect(r.offer(-1, b('x'))).toEqual({ ok: false, reason: 'out_of_window' });
    expect(r.offer(1.5, b('x'))).toEqual({ ok: false, reason: 'out_of_window' });
    expect(r.offer(3, b('x'))).toEqual({ ok: true, ready: [] });
    expect(r.heldBytes).toBe(1);
    r.offer(0, b(''));
    expect(r.accepts(4)).toBe(true);
    expect(r.accepts(5)).toBe(false);
  });

  it('refuses a body over the limit', () => {
    const r = new ReorderBuffer(4, 4);
    expect(r.offer(0, b('12345'))).toEqual({ ok: false, reason: 'too_big' });
    expect(r.next).toBe(0);
  });

  it('any arrival order within the window reassembles exactly (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.uint8Array({ maxLength: 12 }), { minLength: 1, maxLength: 40 }),
        fc.array(fc.nat(), { maxLength: 80 }),
        (window, bodies, picks) => {
          const r = new ReorderBuffer(window, 12);
          // A sender with at most `window` unanswered bodies sends them in any order: keep a pool
          // of the sent-but-unplaced ones no further than the window ahead, and pick from it.
          const out: Buffer[] = [];
          let sent = 0;
          const pool: number[] = [];
          let pi = 0;
          while (out.length < bodies.length) {
            while (sent < bodies.length && sent < r.next + window) pool.push(sent++);
            const i = (picks[pi++] ?? 0) % pool.length;
            const seq = pool.splice(i, 1)[0]!;
            const res = r.offer(seq, Buffer.from(bodies[seq]!));
            if (!res.ok) return false;
            out.push(...res.ready);
            if (r.heldBytes > (window - 1) * 12) return false;
          }
          return Buffer.concat(out).equals(Buffer.concat(bodies.map((x) => Buffer.from(x)))) && r.heldBytes === 0;
        },
      ),
      { numRuns: 500 },
    );
  });

  it('anything past the window is refused whatever came before (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.nat({ max: 20 }), fc.nat({ max: 100 }), (window, delivered, extra) => {
        const r = new ReorderBuffer(window, 4);
        for (let i = 0; i < delivered; i++) r.offer(i, b('a'));
        const res = r.offer(delivered + window + extra, b('a'));
        return !res.ok && res.reason === 'out_of_window' && r.heldBytes === 0;
      }),
    );
  });
});

describe('parseSeq', () => {
  it('takes plain decimal only', () => {
    expect(parseSeq('0')).toBe(0);
    expect(parseSeq('17')).toBe(17);
    for (const v of [undefined, '', '-1', '01', '1.0', '+1', ' 1', '0x1', '1234567890123456']) expect(parseSeq(v)).toBeNull();
  });
});

describe('RecordBoundaries', () => {
  it('finds record ends however the stream is split (every split point)', () => {
    const recs = [encodeData(randomBytes(5)), encodePad(0), encodeData(Buffer.alloc(0)), encodePad(7)];
    const stream = Buffer.concat(recs);
    const want: number[] = [];
    let at = 0;
    for (const r of recs) want.push((at += r.length));
    for (let i = 0; i <= stream.length; i++) {
      for (let j = i; j <= stream.length; j++) {
        const rb = new RecordBoundaries();
        const got = [...rb.push(stream.subarray(0, i)), ...rb.push(stream.subarray(i, j)), ...rb.push(stream.subarray(j))];
        expect(got).toEqual(want);
      }
    }
  });
});
