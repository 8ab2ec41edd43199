import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { PosternError } from '../../../../src/core/errors.js';
import { silentLogger } from '../../../../src/log/logger.js';
import { CUT_CODE, MESSAGE_HEADROOM_BYTES, allocWithHeadroom, headroomOf, type FrameTransport, type TransportClose } from '../../../../src/mux/transport.js';
import { sendQueueBound } from '../../../../src/core/limits.js';
import { makeToken } from '../../../../src/transport/auth.js';
import { spkiSha256 } from '../../../../src/transport/certs.js';
import { generateSelfSigned } from '../../../../src/transport/self-signed.js';
import { dialBridge } from '../../../../src/transport/registry.js';
import { onCleanup, startBridge, stopAll, track, within, type BridgeFixture } from '../helpers.js';

const logger = silentLogger();
let cert: { keyPem: string; certPem: string };
let pin: Buffer;

beforeAll(() => {
  cert = generateSelfSigned({ commonName: 'localhost', altNames: ['127.0.0.1'] });
  pin = spkiSha256(cert.certPem);
});
afterEach(stopAll);

async function pair(useTls: boolean, over: Parameters<typeof startBridge>[0] = { tls: null }) {
  const b = await startBridge(useTls ? { ...over, tls: cert, pin } : { ...over, tls: null });
  const client = track(await dialBridge(b.info(), { limits: b.limits, logger }));
  const { transport: server } = await b.nextSession();
  return { b, client, server };
}

function closed(t: FrameTransport): Promise<TransportClose> {
  return within(new Promise<TransportClose>((r) => t.onClose(r)), 5_000, 'close');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A bare ws client with a valid token, for sending what a FrameTransport never sends. */
async function rawWsClient(b: BridgeFixture): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${b.port}${b.path}`, {
    perMessageDeflate: false,
    headers: { Authorization: `Bearer ${makeToken(b.secret, b.path, Date.now())}` },
  });
  onCleanup(() => ws.terminate());
  ws.on('error', () => undefined);
  await within(new Promise((r) => ws.once('open', r)), 5_000, 'ws open');
  return ws;
}

describe('WsFrameTransport (protocol.md §4 messages)', () => {
  it('closes with 1002 and reports E_PROTOCOL when a text message arrives', async () => {
    const b = await startBridge({ tls: null });
    const ws = await rawWsClient(b);
    const { transport: server } = await b.nextSession();
    const got: Buffer[] = [];
    server.onMessage((m) => got.push(m));
    const atServer = closed(server);
    const atClient = within(new Promise<number>((r) => ws.once('close', (code) => r(code))), 5_000);
    ws.send(Buffer.from('binary first'));
    ws.send('text');
    const info = await atServer;
    expect(info.code).toBe(1002);
    expect(info.error).toBeInstanceOf(PosternError);
    expect((info.error as PosternError).code).toBe('E_PROTOCOL');
    expect(await atClient).toBe(1002);
    expect(got.map(String)).toEqual(['binary first']);
  });

  it('closes with 1009 when a message exceeds WS_MAX_MESSAGE_BYTES', async () => {
    const { b, client, server } = await pair(false);
    server.onMessage(() => undefined);
    client.onMessage(() => undefined);
    const atClient = closed(client);
    const atServer = closed(server);
    client.send(Buffer.alloc(b.limits.WS_MAX_MESSAGE_BYTES + 1));
    expect((await atClient).code).toBe(1009);
    const err = (await atServer).error as PosternError;
    expect(err.code).toBe('E_PROTOCOL');
    expect(err.message).toMatch(/Max payload size exceeded/);
  });

  it('accepts a message of exactly WS_MAX_MESSAGE_BYTES', async () => {
    const { b, client, server } = await pair(false);
    const got = within(new Promise<Buffer>((r) => server.onMessage(r)), 5_000);
    client.send(Buffer.alloc(b.limits.WS_MAX_MESSAGE_BYTES, 7));
    expect((await got).length).toBe(b.limits.WS_MAX_MESSAGE_BYTES);
  });

  it.each([false, true])('server side (TLS %s): messages with headroom, framed by us (RFC 6455 §5.2 lengths 7/16/64 bit), arrive byte for byte and in order among ws-framed ones', async (useTls) => {
    const { client, server } = await pair(useTls);
    // Sizes across the header forms: ≤ 1024 coalesced by ws, 16-bit lengths up to 65,535, 64-bit from 65,536.
    const sizes = [1025, 4096, 65_535, 65_536, 65_546, 200_000, 10, 70_000];
    const sent: Buffer[] = [];
    for (const [i, n] of sizes.entries()) {
      const m = n >= 4096 ? allocWithHeadroom(n) : Buffer.allocUnsafe(n);
      for (let j = 0; j < n; j++) m[j] = (i * 31 + j * 7) & 0xff;
      sent.push(m);
    }
    // A large message without headroom goes through ws as before.
    sent.push(Buffer.alloc(50_000, 9));
    const got: Buffer[] = [];
    const all = within(
      new Promise<void>((r) =>
        client.onMessage((m) => {
          got.push(Buffer.from(m));
          if (got.length === sent.length + 1) r();
        }),
      ),
      5_000,
      'messages',
    );
    for (const m of sent) server.send(m);
    // The same message again (a resend after a resume): its header is rewritten in the headroom.
    server.send(sent[3] as Buffer);
    await all;
    expect(got.map((m) => m.length)).toEqual([...sent.map((m) => m.length), 65_536]);
    for (const [i, m] of sent.entries()) expect(got[i]?.equals(m)).toBe(true);
    expect(got[sent.length]?.equals(sent[3] as Buffer)).toBe(true);
  });

  it.each([false, true])('client side (TLS %s): large messages arrive byte for byte and in order, also past a backlog, and are left unchanged for a resend', async (useTls) => {
    const { client, server } = await pair(useTls);
    // ≤ 1024 coalesced per turn; up to 32 KiB masked by ws; from 32 KiB to what fits 66 KiB framed
    // by the transport in reused buffers (a buffer reused before its write completed would corrupt
    // frames sent past the backlog); larger ones masked by ws. 16-bit and 64-bit lengths both.
    const sizes = [1025, 4096, 65_535, 65_536, 65_546, 65_547, 200_000, 10];
    const sent: Buffer[] = [];
    const copies: Buffer[] = [];
    const got: Buffer[] = [];
    let total = Infinity;
    const all = within(
      new Promise<void>((r) =>
        server.onMessage((m) => {
          got.push(Buffer.from(m));
          if (got.length === total) r();
        }),
      ),
      15_000,
      'messages',
    );
    // The bridge does not read at first: the client's writes queue in its socket once the
    // kernel's buffers are full. Bounded to 80 rounds (about 37 MB).
    server.pause();
    for (let round = 0; round < 80 && client.bufferedBytes < 2 * 1024 * 1024; round++) {
      for (const [i, n] of sizes.entries()) {
        const m = Buffer.allocUnsafe(n);
        for (let j = 0; j < n; j++) m[j] = (round * 17 + i * 31 + j * 7) & 0xff;
        sent.push(m);
        copies.push(Buffer.from(m));
        client.send(m);
      }
      await sleep(1);
    }
    client.send(sent[3] as Buffer); // the same message again, as a resend after a resume
    total = sent.length + 1;
    expect(client.bufferedBytes).toBeGreaterThan(0);
    await sleep(50);
    server.resume();
    await all;
    expect(got.map((m) => m.length)).toEqual([...sent.map((m) => m.length), 65_536]);
    for (const [i, m] of sent.entries()) {
      expect(got[i]?.equals(m), `message ${i}`).toBe(true);
      expect(m.equals(copies[i] as Buffer), `message ${i} kept as sent`).toBe(true);
    }
    expect(got[sent.length]?.equals(sent[3] as Buffer)).toBe(true);
  });

  it('gives headroom only to buffers allocWithHeadroom made', () => {
    expect(headroomOf(allocWithHeadroom(5000))).toBe(MESSAGE_HEADROOM_BYTES);
    const big = Buffer.alloc(5000 + MESSAGE_HEADROOM_BYTES);
    expect(headroomOf(big.subarray(MESSAGE_HEADROOM_BYTES))).toBe(0);
    expect(headroomOf(Buffer.alloc(5000))).toBe(0);
  });

  it('keeps messages that arrive before onMessage is set, in order', async () => {
    const b = await startBridge({
      tls: null,
      onSession: (t) => {
        for (let i = 0; i < 5; i++) t.send(Buffer.from([i]));
      },
    });
    const client = track(await dialBridge(b.info(), { limits: b.limits, logger }));
    await sleep(50);
    const got: number[] = [];
    await within(
      new Promise<void>((r) =>
        client.onMessage((m) => {
          got.push(m[0] as number);
          if (got.length === 5) r();
        }),
      ),
      5_000,
    );
    expect(got).toEqual([0, 1, 2, 3, 4]);
  });

  it('delivers nothing while paused and everything, in order, after resume', async () => {
    const { client, server } = await pair(false);
    const got: number[] = [];
    server.onMessage((m) => got.push(m.readUInt32BE(0)));
    server.pause();
    for (let i = 0; i < 200; i++) {
      const m = Buffer.alloc(100);
      m.writeUInt32BE(i, 0);
      client.send(m);
    }
    await sleep(100);
    expect(got).toEqual([]);
    server.resume();
    await within(
      (async () => {
        while (got.length < 200) await sleep(5);
      })(),
      5_000,
    );
    expect(got).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it('stops delivering at once when the message callback pauses', async () => {
    const { client, server } = await pair(false);
    const got: number[] = [];
    server.onMessage((m) => {
      got.push(m[0] as number);
      server.pause();
    });
    for (let i = 0; i < 3; i++) client.send(Buffer.from([i]));
    await sleep(100);
    expect(got).toEqual([0]);
    server.resume();
    await sleep(50);
    expect(got).toEqual([0, 1]);
    server.resume();
    server.resume();
    await sleep(50);
    expect(got).toEqual([0, 1, 2]);
  });

  it('reports a close to a callback registered after it happened', async () => {
    const { client, server } = await pair(false);
    server.onMessage(() => undefined);
    client.onMessage(() => undefined);
    client.close(1000, 'bye');
    await sleep(100);
    expect((await closed(server)).code).toBe(1000);
    expect((await closed(client)).code).toBe(1000);
  });

  it('completes the closing handshake promptly even if no one ever listened for messages', async () => {
    const b = await startBridge({ tls: null, onSession: (t) => t.close(1001, 'busy') });
    const client = track(await dialBridge(b.info(), { limits: b.limits, logger }));
    const started = Date.now();
    const [c, s] = await Promise.all([closed(client), closed((await b.nextSession()).transport)]);
    expect(c).toEqual({ code: 1001, reason: 'busy' }); // an orderly close: no cut
    expect(s.code).toBe(1001);
    expect(s.cut).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('terminates instead of throwing for a close code WebSocket forbids', async () => {
    const { client, server } = await pair(false);
    server.onMessage(() => undefined);
    const atServer = closed(server);
    expect(() => client.close(1005, 'reserved')).not.toThrow();
    expect(await atServer).toMatchObject({ code: CUT_CODE, cut: true }); // dropped without a closing handshake: a cut
  });

  it('rises bufferedBytes while the peer does not read, then drains and fires onDrain (TLS)', async () => {
    const { b, client, server } = await pair(true);
    let received = 0;
    server.onMessage((m) => {
      received += m.length;
    });
    server.pause();
    const chunk = Buffer.alloc(128 * 1024, 1);
    const high = 4 * 1024 * 1024;
    let sent = 0;
    let maxBuffered = 0;
    // Fill until the kernel's socket buffers (several MiB on loopback, and autotuning may grow
    // them) are full too and a backlog stays in user space for 150 ms; bounded to 10 rounds.
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 2_000 && client.bufferedBytes < high; i++) {
        client.send(chunk);
        sent += chunk.length;
      }
      maxBuffered = Math.max(maxBuffered, client.bufferedBytes);
      await sleep(150);
      if (client.bufferedBytes > 0) break;
    }
    expect(maxBuffered).toBeGreaterThanOrEqual(high);
    let drains = 0;
    const drained = new Promise<void>((r) =>
      client.onDrain(() => {
        drains++;
        r();
      }),
    );
    expect(client.bufferedBytes).toBeGreaterThan(0);
    expect(drains).toBe(0);
    server.resume();
    await within(drained, 15_000, 'drain');
    expect(client.bufferedBytes).toBe(0);
    expect(drains).toBe(1);
    await within(
      (async () => {
        while (received < sent) await sleep(5);
      })(),
      15_000,
      'all bytes received',
    );
    expect(received).toBe(sent);
    expect(b.sessions).toHaveLength(1);
  });

  it('fires onDrain again for each later episode of buffering', async () => {
    const { client, server } = await pair(false);
    server.onMessage(() => undefined);
    let drains = 0;
    client.onDrain(() => drains++);
    for (let round = 1; round <= 2; round++) {
      server.pause();
      for (let i = 0; i < 2_000 && client.bufferedBytes < 2 * 1024 * 1024; i++) client.send(Buffer.alloc(64 * 1024));
      expect(client.bufferedBytes).toBeGreaterThan(0);
      server.resume();
      await within(
        (async () => {
          while (drains < round) await sleep(5);
        })(),
        15_000,
        `drain ${round}`,
      );
      expect(client.bufferedBytes).toBe(0);
    }
    expect(drains).toBe(2);
  });

  it('stops reading while more than sendQueueBound() waits to be sent, and reads the rest once it drains', async () => {
    const b = await startBridge({ tls: null });
    const ws = await rawWsClient(b);
    const { transport: server } = await b.nextSession();
    const bound = sendQueueBound(b.limits);
    const reply = Buffer.alloc(256 * 1024, 0x55);
    let received = 0;
    let maxBuffered = 0;
    server.onMessage(() => {
      received++;
      server.send(reply); // every message is answered; the peer reads none of the answers
      maxBuffered = Math.max(maxBuffered, server.bufferedBytes);
    });
    ws.pause();
    for (let i = 0; i < 200; i++) ws.send(Buffer.from([i]));
    await sleep(500);
    const blocked = received;
    // 200 answers would be 50 MiB; it stopped reading once past the bound (plus what the kernel holds).
    expect(blocked).toBeLessThan(200);
    expect((server as unknown as { readBlockedBySendQueue: boolean }).readBlockedBySendQueue).toBe(true);
    expect(maxBuffered).toBeLessThanOrEqual(bound + reply.length);
    await sleep(300);
    expect(received).toBe(blocked); // still nothing more read
    let got = 0;
    ws.on('message', (m: Buffer) => (got += m.length));
    ws.resume();
    await within(
      (async () => {
        while (received < 200 || got < 200 * reply.length) await sleep(20);
      })(),
      15_000,
      'the rest read and answered',
    );
    expect(received).toBe(200);
  });
});
