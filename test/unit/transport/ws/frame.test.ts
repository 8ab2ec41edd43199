import { describe, expect, it } from 'vitest';
import { jsMask, maskedFrame, nativeMask, WS_MASKED_HEADER_MAX_BYTES } from '../../../../src/transport/ws/frame.js';

/** Parses one masked binary frame (RFC 6455 §5.2) and unmasks its payload. */
function parse(frame: Buffer): { fin: boolean; opcode: number; key: Buffer; payload: Buffer } {
  const b1 = frame[1] as number;
  expect(b1 & 0x80).toBe(0x80); // masked
  let len = b1 & 0x7f;
  let at = 2;
  if (len === 126) {
    len = frame.readUInt16BE(2);
    at = 4;
    expect(len).toBeGreaterThanOrEqual(126); // the shortest form
  } else if (len === 127) {
    expect(frame.readUInt32BE(2)).toBe(0);
    len = frame.readUInt32BE(6);
    at = 10;
    expect(len).toBeGreaterThanOrEqual(65_536);
  }
  const key = frame.subarray(at, at + 4);
  const payload = Buffer.from(frame.subarray(at + 4));
  expect(payload.length).toBe(len);
  for (let i = 0; i < len; i++) payload[i] = (payload[i] as number) ^ (key[i & 3] as number);
  return { fin: ((frame[0] as number) & 0x80) !== 0, opcode: (frame[0] as number) & 0x0f, key: Buffer.from(key), payload };
}

describe('masked frames made by the client (src/transport/ws/frame.ts, RFC 6455 §5.2–5.3)', () => {
  it.each([0, 1, 125, 126, 1025, 65_535, 65_536, 65_546])('a %i-byte message: FIN, binary, the shortest length form, and a payload that unmasks to the message', (n) => {
    const message = Buffer.alloc(n);
    for (let i = 0; i < n; i++) message[i] = (i * 7 + 3) & 0xff;
    const copy = Buffer.from(message);
    const out = Buffer.alloc(n + WS_MASKED_HEADER_MAX_BYTES + 100, 0xee);
    const frame = maskedFrame(message, out);
    expect(frame.buffer).toBe(out.buffer); // made in the given buffer
    const f = parse(frame);
    expect(f.fin).toBe(true);
    expect(f.opcode).toBe(2);
    expect(f.payload.equals(message)).toBe(true);
    expect(message.equals(copy)).toBe(true); // the message is left as it was
    expect(frame.length).toBe(n + (n < 126 ? 6 : n < 65_536 ? 8 : 14));
  });

  it('draws a fresh key for every frame', () => {
    const message = Buffer.alloc(2000, 1);
    const keys = new Set<string>();
    for (let i = 0; i < 600; i++) keys.add(parse(maskedFrame(message, Buffer.alloc(2100))).key.toString('hex'));
    expect(keys.size).toBeGreaterThan(595); // 600 random 32-bit keys: a repeat is very unlikely
  });

  it('masks natively here (bufferutil), as ws does; the JavaScript fallback gives the same bytes', () => {
    const native = nativeMask();
    expect(native).not.toBeNull();
    const source = Buffer.from(Array.from({ length: 1003 }, (_, i) => (i * 13 + 5) & 0xff));
    const key = Buffer.from([0x12, 0x9a, 0x00, 0xff]);
    const a = Buffer.alloc(1010);
    const b = Buffer.alloc(1010);
    native?.(source, key, a, 7, source.length);
    jsMask(source, key, b, 7, source.length);
    expect(b.equals(a)).toBe(true);
    expect(b[7]).toBe((source[0] as number) ^ 0x12);
  });
});
