import { describe, expect, it } from 'vitest';
import {
  PAD_MAX_BYTES,
  RecordDecoder,
  RecordType,
  encodeClose,
  encodeData,
  encodePad,
  encodeRecordHeader,
  type Record,
} from '../../../src/transport/h2/codec.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Feeds `bytes` split at `cut` and returns every record and the first error. */
function decodeSplit(bytes: Buffer, cut: number, max = 64): { records: Record[]; error?: string } {
  const d = new RecordDecoder(max);
  const out: Record[] = [];
  for (const part of [bytes.subarray(0, cut), bytes.subarray(cut)]) {
    const r = d.push(part);
    out.push(...r.records);
    if (r.error) return { records: out, error: r.error.code };
  }
  return { records: out };
}

describe('h2 record codec (protocol.md §12.4)', () => {
  it.each([
    ['an empty DATA record', '00 000000', [{ type: RecordType.DATA, payload: Buffer.alloc(0) }]],
    ['a DATA record of 3 bytes', '00 000003 616263', [{ type: RecordType.DATA, payload: Buffer.from('abc') }]],
    ['a PAD record of 2 bytes', '01 000002 ffee', [{ type: RecordType.PAD, length: 2 }]],
    ['a CLOSE record 1000 "bye"', '02 000005 03e8 627965', [{ type: RecordType.CLOSE, code: 1000, reason: 'bye' }]],
    [
      'PAD, DATA, CLOSE back to back',
      '01 000001 00 00 000002 6869 02 000002 0fa1',
      [
        { type: RecordType.PAD, length: 1 },
        { type: RecordType.DATA, payload: Buffer.from('hi') },
        { type: RecordType.CLOSE, code: 4001, reason: '' },
      ],
    ],
  ])('decodes %s, split at every byte', (_name, text, want) => {
    const bytes = hex(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(decodeSplit(bytes, cut), `cut at ${cut}`).toEqual({ records: want });
    }
  });

  it('decodes byte by byte', () => {
    const bytes = hex('00 000003 616263 02 000002 03e8');
    const d = new RecordDecoder(64);
    const out: Record[] = [];
    for (const b of bytes) out.push(...d.push(Buffer.from([b])).records);
    expect(out).toEqual([
      { type: RecordType.DATA, payload: Buffer.from('abc') },
      { type: RecordType.CLOSE, code: 1000, reason: '' },
    ]);
  });

  it.each([
    ['a DATA length over the limit', '00 000041', 'too_big'],
    ['a PAD length over PAD_MAX_BYTES', `01 ${(PAD_MAX_BYTES + 1).toString(16).padStart(6, '0')}`, 'too_big'],
    ['a CLOSE shorter than its code', '02 000001', 'bad_close'],
    ['a CLOSE longer than 125 bytes', '02 00007e', 'bad_close'],
    ['an unknown type', '07 000000', 'unknown_type'],
  ])('rejects %s from the header alone, before any payload arrives', (_name, text, code) => {
    const bytes = hex(text);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const r = decodeSplit(bytes, cut);
      expect(r.error, `cut at ${cut}`).toBe(code);
      expect(r.records).toEqual([]);
    }
  });

  it('stays failed after an error', () => {
    const d = new RecordDecoder(8);
    expect(d.push(hex('09 000000')).error?.code).toBe('unknown_type');
    expect(d.push(hex('00 000000')).error?.code).toBe('unknown_type');
  });

  it('holds at most the record being gathered', () => {
    const d = new RecordDecoder(1024);
    d.push(hex('00 000400'));
    d.push(Buffer.alloc(100));
    expect(d.bufferedBytes).toBe(100);
    expect(d.push(Buffer.alloc(924)).records).toHaveLength(1);
    expect(d.bufferedBytes).toBe(0);
  });

  it('round-trips encoders at random split points', () => {
    const msgs = Array.from({ length: 30 }, (_, i) => Buffer.alloc(i * 37, i));
    const stream = Buffer.concat([
      ...msgs.flatMap((m, i) => [encodePad(i * 31), encodeData(m)]),
      encodeClose(1001, 'going away'),
    ]);
    for (let trial = 0; trial < 10; trial++) {
      const d = new RecordDecoder(2048);
      const got: Record[] = [];
      for (let off = 0; off < stream.length; ) {
        const n = 1 + Math.floor(Math.random() * 200);
        const r = d.push(stream.subarray(off, off + n));
        expect(r.error).toBeUndefined();
        got.push(...r.records);
        off += n;
      }
      const data = got.filter((r) => r.type === RecordType.DATA).map((r) => (r as { payload: Buffer }).payload);
      expect(data).toEqual(msgs);
      expect(got.at(-1)).toEqual({ type: RecordType.CLOSE, code: 1001, reason: 'going away' });
    }
  });

  it('cuts a long close reason to 123 bytes at a character boundary', () => {
    const rec = encodeClose(1000, 'я'.repeat(100));
    expect(rec.readUIntBE(1, 3)).toBe(2 + 122);
    const r = new RecordDecoder(8).push(rec).records[0] as { reason: string };
    expect(r.reason).toBe('я'.repeat(61));
  });

  it('refuses to encode a length that does not fit', () => {
    expect(() => encodeRecordHeader(RecordType.DATA, 0x1000000)).toThrow(RangeError);
    expect(() => encodePad(PAD_MAX_BYTES + 1)).toThrow(RangeError);
  });
});
