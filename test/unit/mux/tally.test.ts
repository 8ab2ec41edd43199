import { describe, expect, it } from 'vitest';
import { TALLY_ASK_BYTES, TALLY_REPORT_BYTES, TallyError, decodeTally, encodeTallyAsk, encodeTallyReport } from '../../../src/mux/tally.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** protocol.md §9.8.1 vectors. */
const ASK_3 = hex('0f 00 00000000 00000008  0000000000000003');
const REPORT = hex('0f 00 00000000 00000018  0000000000000002 0000000000010080 00000000000004b1');
const REPORT_UNKNOWN = hex('0f 00 00000000 00000018  0000000000000002 ffffffffffffffff ffffffffffffffff');

describe('TALLY (protocol.md §9.8.1)', () => {
  it.each([
    ['the client numbers its connection 3', ASK_3, 'client', { kind: 'ask', conn: 3 }],
    ['the bridge reports on connection 2: 65,664 bytes written, 1,201 read', REPORT, 'bridge', { kind: 'report', conn: 2, sentBytes: 65_664, receivedBytes: 1_201 }],
    ['the bridge holds no record of connection 2: all ones', REPORT_UNKNOWN, 'bridge', { kind: 'report', conn: 2, sentBytes: null, receivedBytes: null }],
  ] as const)('%s', (_name, bytes, from, want) => {
    expect(decodeTally(bytes, from)).toEqual(want);
  });

  it('encodes the vectors', () => {
    expect(encodeTallyAsk(3)).toEqual(ASK_3);
    expect(encodeTallyReport(2, 65_664, 1_201)).toEqual(REPORT);
    expect(encodeTallyReport(2, null, null)).toEqual(REPORT_UNKNOWN);
  });

  it('round-trips counts up to 2^53 − 1', () => {
    for (const n of [0, 1, 255, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
      expect(decodeTally(encodeTallyAsk(n), 'client')).toEqual({ kind: 'ask', conn: n });
      expect(decodeTally(encodeTallyReport(n, n, 0), 'bridge')).toEqual({ kind: 'report', conn: n, sentBytes: n, receivedBytes: 0 });
    }
  });

  const reason = (m: Buffer, from: 'client' | 'bridge'): string => {
    try {
      decodeTally(m, from);
    } catch (err) {
      expect(err).toBeInstanceOf(TallyError);
      return (err as TallyError).reason;
    }
    return 'accepted';
  };

  it('refuses the message cut at every byte (a frame never spans two messages, §4)', () => {
    for (const [m, from] of [
      [ASK_3, 'client'],
      [REPORT, 'bridge'],
    ] as const) {
      for (let n = 0; n < m.length; n++) expect(reason(m.subarray(0, n), from)).toBe(n < 10 ? 'truncated-header' : 'length-mismatch');
      expect(reason(Buffer.concat([m, Buffer.alloc(1)]), from)).toBe('length-mismatch');
    }
  });

  it.each([
    ['a report from the client (24 bytes)', REPORT, 'client', 'bad-payload-size'],
    ['an ask from the bridge (8 bytes)', ASK_3, 'bridge', 'bad-payload-size'],
    ['stream id 1', hex('0f 00 00000001 00000008 0000000000000003'), 'client', 'stream-id-not-zero'],
    ['another type', hex('0a 00 00000000 00000008 0000000000000003'), 'client', 'not-tally'],
    ['a payload of 16 bytes', hex(`0f 00 00000000 00000010 ${'00'.repeat(16)}`), 'bridge', 'bad-payload-size'],
    ['a connection number above 2^53 − 1', hex('0f 00 00000000 00000008 0020000000000000'), 'client', 'count-too-large'],
    ['an all-ones connection number', hex('0f 00 00000000 00000018 ffffffffffffffff 0000000000000000 0000000000000000'), 'bridge', 'count-too-large'],
  ] as const)('refuses %s', (_name, m, from, want) => {
    expect(reason(m, from)).toBe(want);
  });

  it('sizes are the wire constants', () => {
    expect([TALLY_ASK_BYTES, TALLY_REPORT_BYTES]).toEqual([8, 24]);
  });
});
