/**
 * An authenticated client that sends malformed frames (docs/protocol.md §4, §5) against the real
 * bridge binary: each case resets its stream or its session with a logged reason, while another
 * user's session on the same bridge keeps transferring unaffected.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { defaultLimits } from '../../src/core/limits.js';
import { silentLogger } from '../../src/log/logger.js';
import { encodeFrame, decodeMessage } from '../../src/mux/codec.js';
import { FrameType, type Frame } from '../../src/mux/frame.js';
import { MuxSession } from '../../src/mux/session.js';
import { generateSecret, makeToken } from '../../src/transport/auth.js';
import { dialBridge } from '../../src/transport/registry.js';
import { parseShareUri } from '../../src/transport/uri.js';
import { Postern, stopAll, type LogLine } from '../helpers/proc.js';
import { deterministicBytes, echoServer, type Local } from '../helpers/servers.js';
import { init, startBridge, withPort } from '../helpers/stack.js';

let bridge: Postern;
let port: number;
let path: string;
let attacker: Buffer;
let honestUri: string;
let echo: Local<net.Server>;

beforeAll(async () => {
  echo = await echoServer('127.0.0.1');
  const made = await init();
  const cfg = JSON.parse(fs.readFileSync(made.config, 'utf8')) as { path: string; users: Array<{ name: string; secret: string }> };
  attacker = generateSecret();
  cfg.users.push({ name: 'mallory', secret: attacker.toString('base64url') });
  fs.writeFileSync(made.config, JSON.stringify(cfg, null, 2));
  path = cfg.path;
  ({ bridge, port } = await startBridge(made.config, ['--allow-private', '--log-level', 'debug']));
  honestUri = withPort(made.uri, port);
}, 30_000);

afterAll(async () => {
  await stopAll();
  await echo?.close();
});

/** A bare authenticated WebSocket to the bridge: we build every frame ourselves. */
interface Raw {
  ws: WebSocket;
  frames: Frame[];
  closed: Promise<{ code: number; reason: string }>;
  /** Waits (bounded) for a frame matching `pred`. */
  frame(pred: (f: Frame) => boolean, ms?: number): Promise<Frame>;
  send(...frames: Buffer[]): void;
}

function rawSession(): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, {
      perMessageDeflate: false,
      rejectUnauthorized: false,
      headers: { Authorization: `Bearer ${makeToken(attacker, path, Date.now())}` },
    });
    const frames: Frame[] = [];
    const waiters: Array<() => void> = [];
    ws.on('message', (m: Buffer) => {
      frames.push(...decodeMessage(m, 65_536));
      for (const w of waiters.splice(0)) w();
    });
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.once('error', reject);
    ws.once('open', () =>
      resolve({
        ws,
        frames,
        closed,
        send: (...fs: Buffer[]) => ws.send(Buffer.concat(fs)),
        async frame(pred, ms = 5_000) {
          const deadline = Date.now() + ms;
          for (;;) {
            const hit = frames.find(pred);
            if (hit) return hit;
            if (Date.now() > deadline) throw new Error(`no such frame; got ${JSON.stringify(frames.map((f) => f.type))}`);
            await new Promise<void>((r) => {
              const t = setTimeout(r, 100);
              waiters.push(() => {
                clearTimeout(t);
                r();
              });
            });
          }
        },
      }),
    );
  });
}

const open = (id: number, targetPort = echo.port): Buffer =>
  encodeFrame({ type: FrameType.OPEN, streamId: id, window: 512 * 1024, cmd: 1, target: { kind: 'ipv4', host: '127.0.0.1', port: targetPort } });
const data = (id: number, bytes = Buffer.from('x')): Buffer => encodeFrame({ type: FrameType.DATA, streamId: id, payload: bytes });
const header = (type: number, id: number, length: number): Buffer => {
  const b = Buffer.alloc(10);
  b[0] = type;
  b.writeUInt32BE(id, 2);
  b.writeUInt32BE(length, 6);
  return b;
};

/** Opens stream `id` to the echo server and waits for its OPEN_RESULT OK. */
async function opened(r: Raw, id: number, targetPort = echo.port): Promise<void> {
  r.send(open(id, targetPort));
  const res = await r.frame((f) => f.type === FrameType.OPEN_RESULT && f.streamId === id);
  expect(res.type === FrameType.OPEN_RESULT && res.code).toBe(0);
}

/** The session is still served: a PING is answered. */
async function alive(r: Raw): Promise<void> {
  const ping = crypto.randomBytes(8);
  r.send(encodeFrame({ type: FrameType.PING, data: ping }));
  await r.frame((f) => f.type === FrameType.PONG && f.data.equals(ping));
}

const logged = (pred: (l: LogLine) => boolean, what: string): Promise<LogLine> => bridge.waitFor(pred, 5_000, what);

/** The honest user's session: a real dial and mux session, echoing data the whole time. */
async function honestTransfer(until: () => boolean): Promise<{ rounds: number; bytes: number }> {
  const limits = defaultLimits();
  const transport = await dialBridge(parseShareUri(honestUri), { limits, logger: silentLogger() });
  const session = new MuxSession(transport, { role: 'client', limits, logger: silentLogger() });
  const stream = await session.open({ kind: 'ipv4', host: '127.0.0.1', port: echo.port });
  let rounds = 0;
  let bytes = 0;
  const chunk = deterministicBytes(256 * 1024);
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const deadline = Date.now() + 20_000;
  while ((!until() || rounds < 3) && Date.now() < deadline) {
    stream.write(chunk);
    let got = 0;
    const back: Buffer[] = [];
    while (got < chunk.length) {
      const n = await it.next();
      if (n.done === true) throw new Error('honest stream ended');
      back.push(n.value);
      got += n.value.length;
    }
    expect(Buffer.concat(back).equals(chunk)).toBe(true);
    rounds++;
    bytes += got;
  }
  expect(session.closed).toBe(false);
  session.close();
  return { rounds, bytes };
}

describe('malformed frames from an authenticated client (protocol.md §4, §5)', () => {
  it('reset the offending stream or session, with a logged reason; another user keeps transferring', async () => {
    let attacksDone = false;
    const honest = honestTransfer(() => attacksDone);

    // Session errors: the bridge closes the WebSocket with 1002 and logs the reason.
    const sessionCases: Array<{ name: string; reason: string; act: (r: Raw) => Promise<void> | void }> = [
      { name: 'unknown frame type', reason: 'unknown-type', act: (r) => r.send(header(0x7f, 0, 0)) },
      { name: 'length past the end of the message', reason: 'truncated-payload', act: (r) => r.send(header(FrameType.DATA, 1, 100), Buffer.alloc(10)) },
      { name: 'oversize frame (length > 65,536 in the header)', reason: 'payload-too-large', act: (r) => r.send(header(FrameType.DATA, 1, 70_000), Buffer.alloc(16)) },
      { name: 'wrong payload size for the type', reason: 'bad-payload-size', act: (r) => r.send(header(FrameType.WINDOW, 1, 3), Buffer.alloc(3)) },
      {
        name: 'reuse of a stream id',
        reason: 'stream-id-order',
        act: async (r) => {
          await opened(r, 1);
          r.send(open(1));
        },
      },
      { name: 'even stream id from a client', reason: 'stream-id-parity', act: (r) => r.send(open(2)) },
      { name: 'text message', reason: '', act: (r) => r.ws.send('hello') },
    ];
    for (const c of sessionCases) {
      const r = await rawSession();
      const before = bridge.lines.length;
      await c.act(r);
      const { code } = await r.closed;
      expect(code, c.name).toBe(1002);
      if (c.reason !== '') {
        await logged((l) => bridge.lines.indexOf(l) >= before && l.msg === 'session protocol error' && l.reason === c.reason, `${c.name}: logged ${c.reason}`);
      }
    }

    // Stream errors: that stream gets RESET (reason logged), the session goes on.
    {
      const r = await rawSession();
      // Data after our FIN: RESET 0x08.
      await opened(r, 1);
      r.send(encodeFrame({ type: FrameType.FIN, streamId: 1 }), data(1));
      const reset1 = await r.frame((f) => f.type === FrameType.RESET && f.streamId === 1);
      expect(reset1.type === FrameType.RESET && reset1.code).toBe(0x08);
      await logged((l) => l.stream === 1 && /^stream protocol violation: /.test(l.msg), 'data after FIN logged');

      // Window overflow: a WINDOW taking the credit past 2^32-1 is RESET 0x0c.
      await opened(r, 3);
      r.send(encodeFrame({ type: FrameType.WINDOW, streamId: 3, increment: 0xffff_ffff }));
      const reset3 = await r.frame((f) => f.type === FrameType.RESET && f.streamId === 3);
      expect(reset3.type === FrameType.RESET && reset3.code).toBe(0x0c);
      await logged((l) => l.stream === 3 && /WINDOW overflows the credit/.test(l.msg), 'window overflow logged');

      // Data for a stream id never opened: RESET 0x08.
      r.send(data(101));
      const reset101 = await r.frame((f) => f.type === FrameType.RESET && f.streamId === 101);
      expect(reset101.type === FrameType.RESET && reset101.code).toBe(0x08);

      // Data after RESET: ignored (it may have been in flight, §5.2): no answer, the session goes on.
      await opened(r, 7);
      r.send(encodeFrame({ type: FrameType.RESET, streamId: 7, code: 0x0a }), data(7));
      await alive(r);
      expect(r.frames.some((f) => f.type === FrameType.RESET && f.streamId === 7)).toBe(false);
      r.ws.close();
    }

    attacksDone = true;
    const t = await honest;
    expect(t.rounds).toBeGreaterThanOrEqual(3);
    // No session of the honest user was ever closed for a protocol error.
    const errors = bridge.lines.filter((l) => l.msg === 'session protocol error');
    expect(errors.length).toBeGreaterThanOrEqual(sessionCases.length - 1);
    expect(errors.every((l) => l.user === 'mallory')).toBe(true);
  }, 60_000);
});
