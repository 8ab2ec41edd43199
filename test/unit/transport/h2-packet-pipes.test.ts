import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { defaultLimits } from '../../../src/core/limits.js';
import { RecordDecoder, encodeData, encodePad } from '../../../src/transport/h2/codec.js';
import { BridgePacketPipe, ClientPacketPipe, postBodyLimit } from '../../../src/transport/h2/packet.js';

describe('packet-up pipes (protocol.md §12.3): the client cuts, the bridge reassembles', () => {
  it('carries records of every size exactly, each POST whole records within the size limit, answered in any order', async () => {
    const limits = defaultLimits();
    const downstream = new PassThrough();
    const bridge = new BridgePacketPipe(new PassThrough(), limits);
    const posts: Array<{ seq: number; body: Buffer; last: boolean }> = [];
    let seed = 7;
    const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    const client = new ClientPacketPipe(
      (seq, body, last) =>
        new Promise<void>((ok, no) => {
          posts.push({ seq, body, last });
          // Delivered to the bridge after a random delay: out of order within the window.
          setTimeout(() => (bridge.offer(seq, body, last, (accepted) => (accepted ? ok() : no(new Error('refused')))) ? undefined : no(new Error(`refused ${seq}`))), rand(5));
        }),
      downstream,
      limits,
    );
    const records: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      const size = [0, 1, 100, 5_000, 70_000, limits.WS_MAX_MESSAGE_BYTES][rand(6)] as number;
      records.push(i % 7 === 0 ? encodePad(rand(1025)) : encodeData(Buffer.alloc(size, i & 0xff)));
    }
    const got: Buffer[] = [];
    bridge.on('data', (d: Buffer) => got.push(d));
    const ended = new Promise<void>((r) => bridge.once('end', () => r()));
    for (const r of records) if (!client.write(r)) await new Promise((d) => client.once('drain', d));
    client.end();
    await ended;
    expect(Buffer.concat(got).equals(Buffer.concat(records))).toBe(true);
    expect(posts.filter((p) => p.last).length).toBe(1);
    expect(posts.at(-1)?.last).toBe(true);
    for (const p of posts) {
      expect(p.body.length).toBeLessThanOrEqual(postBodyLimit(limits));
      // Whole records: a decoder fed one body alone holds nothing at its end.
      const dec = new RecordDecoder(limits.WS_MAX_MESSAGE_BYTES);
      expect(dec.push(p.body).error).toBeUndefined();
      expect(dec.bufferedBytes).toBe(0);
    }
    // The first POST is small (PACKET_POST_FIRST_BYTES, or one record larger than that).
    expect(posts[0]!.body.length).toBeLessThanOrEqual(Math.max(limits.PACKET_POST_FIRST_BYTES, records[0]!.length));
    client.destroy();
    bridge.destroy();
  });
});

describe('packet-up bodies held ahead of a gap count against the user (protocol.md §7.1, §12.3)', () => {
  it("shows in the transport's heldBytes while held, and leaves it once the gap is filled", async () => {
    const { H2FrameTransport } = await import('../../../src/transport/h2/frame-transport.js');
    const limits = defaultLimits();
    const bridge = new BridgePacketPipe(new PassThrough(), limits);
    const t = new H2FrameTransport(bridge, { maxMessageBytes: limits.WS_MAX_MESSAGE_BYTES, closeTimeoutMs: limits.H2_CLOSE_TIMEOUT_MS });
    t.onMessage(() => undefined);
    const ahead = encodeData(Buffer.alloc(3_000, 1));
    expect(bridge.offer(1, ahead, false, () => undefined)).toBe(true);
    expect(t.heldBytes).toBe(ahead.length);
    expect(bridge.offer(0, encodeData(Buffer.alloc(10, 2)), false, () => undefined)).toBe(true);
    expect(t.heldBytes).toBe(0);
    t.terminate();
  });
});
