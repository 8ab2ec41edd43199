import net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Target } from '../../../src/core/address.js';
import { formatIPv6, parseIPv6 } from '../../../src/mux/address.js';
import { decodeMessage, encodeFrame } from '../../../src/mux/codec.js';
import { MuxProtocolError, type MuxProtocolReason } from '../../../src/mux/errors.js';
import { FrameType, HEADER_BYTES, type Frame } from '../../../src/mux/frame.js';
import { hex } from './helpers.js';

const MAX = 65_536;

/** [name, frame, wire bytes]. Header: type | flags | stream id | length. */
const VECTORS: Array<[string, Frame, string]> = [
  [
    'OPEN to an IPv4 address',
    { type: FrameType.OPEN, streamId: 1, window: 0x80000, cmd: 1, target: { kind: 'ipv4', host: '127.0.0.1', port: 8080 } },
    '01 00 00000001 0000000c | 00080000 01 | 01 7f000001 1f90',
  ],
  [
    'OPEN to a domain name',
    { type: FrameType.OPEN, streamId: 3, window: 0x10000, cmd: 1, target: { kind: 'domain', host: 'example.com', port: 443 } },
    '01 00 00000003 00000014 | 00010000 01 | 03 0b 6578616d706c652e636f6d 01bb',
  ],
  [
    'OPEN to an IPv6 address',
    { type: FrameType.OPEN, streamId: 0xffffffff, window: 1, cmd: 1, target: { kind: 'ipv6', host: '::1', port: 80 } },
    '01 00 ffffffff 00000018 | 00000001 01 | 04 00000000000000000000000000000001 0050',
  ],
  [
    'OPEN with an unknown command (address left undecoded)',
    { type: FrameType.OPEN, streamId: 5, window: 2, cmd: 2, target: null, invalid: 'unknown-command', rest: hex('aabb') },
    '01 00 00000005 00000007 | 00000002 02 | aabb',
  ],
  [
    'OPEN with an unknown address type',
    { type: FrameType.OPEN, streamId: 7, window: 2, cmd: 1, target: null, invalid: 'unknown-address-type', rest: hex('05 0102 0050') },
    '01 00 00000007 0000000a | 00000002 01 | 05 0102 0050',
  ],
  [
    'OPEN with a domain that is not UTF-8',
    { type: FrameType.OPEN, streamId: 9, window: 2, cmd: 1, target: null, invalid: 'bad-domain-encoding', rest: hex('03 02 ff fe 0050') },
    '01 00 00000009 0000000b | 00000002 01 | 03 02 fffe 0050',
  ],
  ['OPEN_RESULT success with a window', { type: FrameType.OPEN_RESULT, streamId: 1, code: 0, window: 0x80000 }, '02 00 00000001 00000005 | 00 00080000'],
  ['OPEN_RESULT refused', { type: FrameType.OPEN_RESULT, streamId: 1, code: 5, window: 0 }, '02 00 00000001 00000005 | 05 00000000'],
  ['DATA', { type: FrameType.DATA, streamId: 1, payload: Buffer.from('hi') }, '03 00 00000001 00000002 | 6869'],
  ['WINDOW', { type: FrameType.WINDOW, streamId: 2, increment: 0x20000 }, '04 00 00000002 00000004 | 00020000'],
  ['FIN', { type: FrameType.FIN, streamId: 1 }, '05 00 00000001 00000000'],
  ['RESET', { type: FrameType.RESET, streamId: 1, code: 0x0a }, '06 00 00000001 00000001 | 0a'],
  ['PING', { type: FrameType.PING, data: hex('0102030405060708') }, '07 00 00000000 00000008 | 0102030405060708'],
  ['PONG', { type: FrameType.PONG, data: hex('0102030405060708') }, '08 00 00000000 00000008 | 0102030405060708'],
  ['GOAWAY', { type: FrameType.GOAWAY, code: 0x0e }, '09 00 00000000 00000001 | 0e'],
];

describe('frame codec (protocol.md §4)', () => {
  it.each(VECTORS)('§4: encodes %s to its byte vector', (_name, frame, bytes) => {
    expect(encodeFrame(frame).toString('hex')).toBe(hex(bytes).toString('hex'));
  });

  it.each(VECTORS)('§4: decodes %s from its byte vector', (_name, frame, bytes) => {
    expect(decodeMessage(hex(bytes), MAX)).toEqual([frame]);
  });

  it('§4: ignores the reserved flags byte on receipt', () => {
    expect(decodeMessage(hex('05 ff 00000001 00000000'), MAX)).toEqual([{ type: FrameType.FIN, streamId: 1 }]);
  });

  it('§4: decodes several frames of one message in order', () => {
    const msg = Buffer.concat(VECTORS.map(([, , b]) => hex(b)));
    expect(decodeMessage(msg, MAX)).toEqual(VECTORS.map(([, f]) => f));
  });

  it('§4: returns DATA payloads as views of the message, without copying', () => {
    const msg = hex('03 00 00000001 00000003 | 616263 | 03 00 00000002 00000001 | 64');
    const [a, b] = decodeMessage(msg, MAX) as Array<Extract<Frame, { type: 3 }>>;
    expect(a?.payload.buffer).toBe(msg.buffer);
    expect(a?.payload.byteOffset).toBe(msg.byteOffset + HEADER_BYTES);
    expect(b?.payload.byteOffset).toBe(msg.byteOffset + 2 * HEADER_BYTES + 3);
  });

  it('§4: accepts a DATA payload of exactly the maximum size', () => {
    const payload = Buffer.alloc(MAX, 7);
    const [f] = decodeMessage(encodeFrame({ type: FrameType.DATA, streamId: 1, payload }), MAX);
    expect(f).toEqual({ type: FrameType.DATA, streamId: 1, payload });
  });

  it('§4.1: encodes IPv6 written in any RFC 4291 form and decodes it canonically', () => {
    const target: Target = { kind: 'ipv6', host: '2001:DB8:0:0:0:0:0:1', port: 1 };
    const [f] = decodeMessage(encodeFrame({ type: FrameType.OPEN, streamId: 1, window: 1, cmd: 1, target }), MAX);
    expect(f).toMatchObject({ target: { kind: 'ipv6', host: '2001:db8::1', port: 1 } });
  });

  const MALFORMED: Array<[string, string, MuxProtocolReason]> = [
    ['an empty message', '', 'empty-message'],
    ['a header cut short', '05 00 00000001 0000', 'truncated-header'],
    ['a second header cut short', '05 00 00000001 00000000 | 05 00', 'truncated-header'],
    ['type 0x00', '00 00 00000001 00000000', 'unknown-type'],
    ['type 0x0a', '0a 00 00000000 00000000', 'unknown-type'],
    ['type 0xff', 'ff 00 00000001 00000000', 'unknown-type'],
    ['a length above the maximum', '03 00 00000001 00010001', 'payload-too-large'],
    ['a payload running past the message', '03 00 00000001 00000004 | 6162', 'truncated-payload'],
    ['DATA with no payload', '03 00 00000001 00000000', 'bad-payload-size'],
    ['OPEN shorter than window and cmd', '01 00 00000001 00000004 | 00000001', 'bad-payload-size'],
    ['OPEN_RESULT of 4 bytes', '02 00 00000001 00000004 | 00 000000', 'bad-payload-size'],
    ['OPEN_RESULT of 6 bytes', '02 00 00000001 00000006 | 00 00000000 00', 'bad-payload-size'],
    ['WINDOW of 3 bytes', '04 00 00000001 00000003 | 000001', 'bad-payload-size'],
    ['WINDOW of 5 bytes', '04 00 00000001 00000005 | 0000000001', 'bad-payload-size'],
    ['FIN with a payload', '05 00 00000001 00000001 | 00', 'bad-payload-size'],
    ['RESET with no code', '06 00 00000001 00000000', 'bad-payload-size'],
    ['RESET of 2 bytes', '06 00 00000001 00000002 | 0a0a', 'bad-payload-size'],
    ['PING of 7 bytes', '07 00 00000000 00000007 | 01020304050607', 'bad-payload-size'],
    ['PONG of 9 bytes', '08 00 00000000 00000009 | 010203040506070809', 'bad-payload-size'],
    ['GOAWAY of 0 bytes', '09 00 00000000 00000000', 'bad-payload-size'],
    ['OPEN on stream 0', '01 00 00000000 0000000c | 00080000 01 | 01 7f000001 1f90', 'stream-id-zero'],
    ['OPEN_RESULT on stream 0', '02 00 00000000 00000005 | 00 00000000', 'stream-id-zero'],
    ['DATA on stream 0', '03 00 00000000 00000001 | 00', 'stream-id-zero'],
    ['WINDOW on stream 0', '04 00 00000000 00000004 | 00000001', 'stream-id-zero'],
    ['FIN on stream 0', '05 00 00000000 00000000', 'stream-id-zero'],
    ['RESET on stream 0', '06 00 00000000 00000001 | 0a', 'stream-id-zero'],
    ['PING on stream 1', '07 00 00000001 00000008 | 0102030405060708', 'stream-id-not-zero'],
    ['PONG on stream 1', '08 00 00000001 00000008 | 0102030405060708', 'stream-id-not-zero'],
    ['GOAWAY on stream 1', '09 00 00000001 00000001 | 0e', 'stream-id-not-zero'],
    ['WINDOW of 0', '04 00 00000001 00000004 | 00000000', 'window-increment-zero'],
    ['OPEN with no address type', '01 00 00000001 00000005 | 00000001 01', 'address-truncated'],
    ['OPEN with a short IPv4 address', '01 00 00000001 0000000b | 00000001 01 | 01 7f0000 1f90', 'address-truncated'],
    ['OPEN with no port', '01 00 00000001 0000000a | 00000001 01 | 01 7f000001', 'address-truncated'],
    ['OPEN with a short IPv6 address', '01 00 00000001 00000017 | 00000001 01 | 04 000000000000000000000000000001 0050', 'address-truncated'],
    ['OPEN with a domain longer than the payload', '01 00 00000001 0000000b | 00000001 01 | 03 05 6162 0050', 'address-truncated'],
    ['OPEN with a domain of length 0', '01 00 00000001 00000009 | 00000001 01 | 03 00 0050', 'empty-domain'],
    ['OPEN with bytes after the port', '01 00 00000001 0000000d | 00000001 01 | 01 7f000001 1f90 00', 'address-trailing-bytes'],
    ['a good frame followed by a bad one', '05 00 00000001 00000000 | 0b 00 00000001 00000000', 'unknown-type'],
    ['type 0x0d', '0d 00 00000001 00000000', 'unknown-type'],
    ['DATAGRAM on stream 0', '0c 00 00000000 00000007 | 01 7f000001 0035', 'stream-id-zero'],
    ['DATAGRAM with no address', '0c 00 00000001 00000000', 'address-truncated'],
    ['DATAGRAM with a short IPv6 address', '0c 00 00000001 00000005 | 04 00000000', 'address-truncated'],
    ['DATAGRAM with a domain of length 0', '0c 00 00000001 00000004 | 03 00 0035', 'empty-domain'],
    ['DATAGRAM after another frame', '05 00 00000001 00000000 | 0c 00 00000001 00000007 | 01 7f000001 0035', 'datagram-not-alone'],
    ['DATAGRAM before another frame', '0c 00 00000001 00000007 | 01 7f000001 0035 | 05 00 00000001 00000000', 'datagram-not-alone'],
  ];

  it.each(MALFORMED)('§4: rejects %s as a session protocol error', (_name, bytes, reason) => {
    let caught: unknown;
    try {
      decodeMessage(hex(bytes), MAX);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(MuxProtocolError);
    expect((caught as MuxProtocolError).reason).toBe(reason);
    expect((caught as MuxProtocolError).closeCode).toBe(1002);
  });

  it('§4: refuses an oversize length from the header alone, with no payload present', () => {
    const headerOnly = hex('03 00 00000001 ffffffff');
    expect(() => decodeMessage(headerOnly, MAX)).toThrow(expect.objectContaining({ reason: 'payload-too-large' }));
    expect(() => decodeMessage(hex('03 00 00000001 00000401'), 1024)).toThrow(expect.objectContaining({ reason: 'payload-too-large' }));
  });

  it('§4.1: refuses to encode a target that does not fit the address format', () => {
    const open = (target: Target) => encodeFrame({ type: FrameType.OPEN, streamId: 1, window: 1, cmd: 1, target });
    expect(() => open({ kind: 'domain', host: '', port: 1 })).toThrow(RangeError);
    expect(() => open({ kind: 'domain', host: 'a'.repeat(256), port: 1 })).toThrow(RangeError);
    expect(() => open({ kind: 'ipv4', host: '1.2.3', port: 1 })).toThrow(RangeError);
    expect(() => open({ kind: 'ipv4', host: '01.2.3.4', port: 1 })).toThrow(RangeError);
    expect(() => open({ kind: 'ipv6', host: 'fe80::1%eth0', port: 1 })).toThrow(RangeError);
    expect(() => open({ kind: 'ipv4', host: '1.2.3.4', port: 65536 })).toThrow(RangeError);
    expect(() => encodeFrame({ type: FrameType.DATA, streamId: 1, payload: Buffer.alloc(0) })).toThrow(RangeError);
    expect(() => encodeFrame({ type: FrameType.WINDOW, streamId: 1, increment: 0 })).toThrow(RangeError);
  });
});

describe('IPv6 text (protocol.md §4.1, RFC 5952)', () => {
  it.each([
    ['00000000000000000000000000000000', '::'],
    ['00000000000000000000000000000001', '::1'],
    ['20010db8000000000000000000000001', '2001:db8::1'],
    ['20010db8000000010000000000000001', '2001:db8:0:1::1'],
    ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
    ['20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'],
    ['00000000000000000000ffffc0000201', '::ffff:192.0.2.1'],
    ['fe800000000000000000000000000000', 'fe80::'],
  ])('RFC 5952 §4: %s is written %s', (bytes, text) => {
    expect(formatIPv6(hex(bytes))).toBe(text);
  });

  it('RFC 5952: formatting any 16 bytes gives text that parses back to them and matches the URL serializer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const text = formatIPv6(bytes);
        expect(net.isIPv6(text)).toBe(true);
        const back = parseIPv6(text);
        expect(back !== null && Buffer.from(back).equals(Buffer.from(bytes))).toBe(true);
        if (!text.includes('.')) expect(new URL(`http://[${text}]/`).hostname).toBe(`[${text}]`);
      }),
    );
  });

  it('RFC 4291 §2.2: accepts exactly the strings Node accepts as IPv6 (without zone ids)', () => {
    const group = fc.oneof(fc.constantFrom('0', '00', 'ffff', 'FfFf', '1', 'abc', '12345', 'g', ''), fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), maxLength: 4 }));
    const candidate = fc.oneof(
      fc.array(group, { minLength: 1, maxLength: 10 }).map((g) => g.join(':')),
      fc.tuple(fc.array(group, { maxLength: 6 }), fc.array(group, { maxLength: 6 })).map(([a, b]) => `${a.join(':')}::${b.join(':')}`),
      fc.tuple(fc.array(group, { maxLength: 7 }), fc.ipV4()).map(([a, v4]) => `${a.join(':')}:${v4}`),
      fc.tuple(fc.array(group, { maxLength: 5 }), fc.ipV4()).map(([a, v4]) => `${a.join(':')}::${v4}`),
      fc.ipV6(),
    );
    fc.assert(
      fc.property(candidate, (s) => {
        expect(parseIPv6(s) !== null).toBe(net.isIPv6(s));
      }),
      { numRuns: 2_000 },
    );
  });
});

// ── property tests ──────────────────────────────────────────────────────────

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const streamId = fc.integer({ min: 1, max: 0xffffffff });
const u8 = fc.integer({ min: 0, max: 255 });
const port = fc.integer({ min: 0, max: 65535 });
const target: fc.Arbitrary<Target> = fc.oneof(
  fc.ipV4().map((host) => ({ kind: 'ipv4' as const, host })),
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => ({ kind: 'ipv6' as const, host: formatIPv6(b) })),
  fc
    .string({ unit: fc.oneof(fc.constantFrom('a', 'z', '-', '.', '0'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 })), minLength: 1, maxLength: 80 })
    .filter((s) => Buffer.byteLength(s) <= 255 && Buffer.from(s).toString() === s)
    .map((host) => ({ kind: 'domain' as const, host })),
).chain((t) => port.map((p) => ({ ...t, port: p })));
const ping8 = fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b));

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({ type: fc.constant(FrameType.OPEN), streamId, window: u32, cmd: fc.constantFrom(1, 3), target }),
  fc.record({
    type: fc.constant(FrameType.OPEN),
    streamId,
    window: u32,
    cmd: u8.filter((c) => c !== 1 && c !== 3),
    target: fc.constant(null),
    invalid: fc.constant('unknown-command' as const),
    rest: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
  }),
  fc.record({ type: fc.constant(FrameType.OPEN_RESULT), streamId, code: u8, window: u32 }),
  fc.record({ type: fc.constant(FrameType.DATA), streamId, payload: fc.uint8Array({ minLength: 1, maxLength: 2000 }).map((b) => Buffer.from(b)) }),
  fc.record({ type: fc.constant(FrameType.WINDOW), streamId, increment: fc.integer({ min: 1, max: 0xffffffff }) }),
  fc.record({ type: fc.constant(FrameType.FIN), streamId }),
  fc.record({ type: fc.constant(FrameType.RESET), streamId, code: u8 }),
  fc.record({ type: fc.constant(FrameType.PING), data: ping8 }),
  fc.record({ type: fc.constant(FrameType.PONG), data: ping8 }),
  fc.record({ type: fc.constant(FrameType.GOAWAY), code: u8 }),
);

const datagramArb: fc.Arbitrary<Frame> = fc.record({
  type: fc.constant(FrameType.DATAGRAM),
  streamId,
  target,
  data: fc.uint8Array({ maxLength: 1500 }).map((b) => Buffer.from(b)),
});

describe('DATAGRAM frames (protocol.md §10)', () => {
  it('§10: byte vectors — IPv4 destination with data, IPv6 source with no data, a domain', () => {
    expect(encodeFrame({ type: FrameType.DATAGRAM, streamId: 3, target: { kind: 'ipv4', host: '127.0.0.1', port: 53 }, data: hex('6869') })).toEqual(
      hex('0c 00 00000003 00000009 | 01 7f000001 0035 | 6869'),
    );
    expect(encodeFrame({ type: FrameType.DATAGRAM, streamId: 5, target: { kind: 'ipv6', host: '::1', port: 443 }, data: Buffer.alloc(0) })).toEqual(
      hex('0c 00 00000005 00000013 | 04 00000000000000000000000000000001 01bb'),
    );
    const [f] = decodeMessage(hex('0c 00 00000007 0000000a | 03 03 616263 1f90 | 010203'), MAX);
    expect(f).toEqual({ type: FrameType.DATAGRAM, streamId: 7, target: { kind: 'domain', host: 'abc', port: 8080 }, data: hex('010203') });
  });

  it('§10: an unknown address type or a non-UTF-8 domain decodes with target null (dropped, not a session error)', () => {
    expect(decodeMessage(hex('0c 00 00000001 00000004 | 05 01 0203'), MAX)).toEqual([
      { type: FrameType.DATAGRAM, streamId: 1, target: null, data: Buffer.alloc(0) },
    ]);
    expect(decodeMessage(hex('0c 00 00000001 00000006 | 03 02 fffe 0035'), MAX)[0]).toMatchObject({ target: null });
  });

  it('§10: a DATAGRAM whose address and data exceed the frame maximum cannot be encoded into a decodable frame', () => {
    const big = encodeFrame({ type: FrameType.DATAGRAM, streamId: 1, target: { kind: 'ipv4', host: '1.2.3.4', port: 1 }, data: Buffer.alloc(65_536) });
    expect(() => decodeMessage(big, MAX)).toThrow(expect.objectContaining({ reason: 'payload-too-large' }));
  });

  it('§10: decoding the encoding of any DATAGRAM gives it back', () => {
    fc.assert(
      fc.property(datagramArb, (frame) => {
        expect(decodeMessage(encodeFrame(frame), MAX)).toEqual([frame]);
      }),
      { numRuns: 1_000 },
    );
  });
});

describe('frame codec properties (protocol.md §4)', () => {
  it('§4: decoding the encoding of any frames gives the same frames back', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 8 }), (frames) => {
        const msg = Buffer.concat(frames.map(encodeFrame));
        expect(decodeMessage(msg, MAX)).toEqual(frames);
      }),
      { numRuns: 1_000 },
    );
  });

  it('§4: decoding random bytes never throws anything but MuxProtocolError', () => {
    const check = (bytes: Uint8Array, max: number) => {
      try {
        decodeMessage(Buffer.from(bytes), max);
      } catch (e) {
        if (!(e instanceof MuxProtocolError)) throw e;
      }
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: MAX }), check), { numRuns: 3_000 });
    // Random bytes rarely form headers; also mutate real encodings so every type's checks are hit.
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 3 }),
        fc.array(fc.tuple(fc.nat(), u8), { maxLength: 4 }),
        fc.nat(),
        (frames, edits, cut) => {
          const msg = Buffer.concat(frames.map(encodeFrame));
          for (const [at, v] of edits) msg[at % msg.length] = v;
          check(msg.subarray(0, msg.length - (cut % 3 === 0 ? cut % msg.length : 0)), MAX);
        },
      ),
      { numRuns: 3_000 },
    );
  });
});
