/**
 * Issue 10, finding 5: replay protection that eviction cannot undo, and resumption that needs more
 * than a replayable token — against the built bridge on loopback, with upgrades written by hand
 * (the test holds the users' secrets and "records" B's upgrade as a TLS-terminating front would).
 *
 * A fills its replay cache (AUTH_REPLAY_CACHE_PER_USER_COUNT) with upgrades; its next token gets
 * the decoy. B's recorded upgrade still gets the decoy (B's nonce was never forgotten); a fresh
 * token of B naming B's live session, without a proof of the session's resume secret or with a
 * wrong one, gets the decoy too; only a proof made with the secret the bridge sent inside B's
 * first connection (§9.3) re-attaches.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { addUserToConfig, rewriteConfig } from '../helpers/bridge-config.js';
import { stopAll } from '../helpers/proc.js';
import { init, startBridge } from '../helpers/stack.js';
import { RESUME_HEADER, SESSION_HEADER, makeToken, resumeProof, tokenHead } from '../../src/transport/auth.js';

afterEach(async () => {
  await stopAll();
});

interface Upgraded {
  readonly status: number;
  readonly socket: tls.TLSSocket;
  /** Bytes received after the response head (WebSocket frames). */
  rest: Buffer;
}

/** Sends one upgrade request (exactly the §2 form) and reads the response head. */
function upgrade(port: number, path: string, headers: Record<string, string>): Promise<Upgraded> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error('no answer to the upgrade')), 5_000);
    socket.once('secureConnect', () => {
      const key = crypto.randomBytes(16).toString('base64');
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`);
    });
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      clearTimeout(timer);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(buf.toString('latin1', 0, end))?.[1]);
      const up: Upgraded = { status, socket, rest: buf.subarray(end + 4) };
      socket.off('data', onData);
      socket.on('data', (more: Buffer) => (up.rest = Buffer.concat([up.rest, more])));
      resolve(up);
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
  });
}

/** Waits (bounded) until `n` bytes of WebSocket frames arrived after the 101. */
async function framesOf(up: Upgraded, n: number): Promise<Buffer> {
  for (let i = 0; i < 100 && up.rest.length < n; i++) await new Promise((r) => setTimeout(r, 20));
  return up.rest;
}

/** The first server message: an unmasked binary WebSocket frame holding the bridge's RESUME. */
function firstResume(ws: Buffer): { count: bigint; secret: Buffer | null } {
  expect(ws[0]).toBe(0x82);
  const len = (ws[1] as number) & 0x7f;
  const frame = ws.subarray(2, 2 + len);
  expect(frame[0]).toBe(0x0a); // RESUME
  const payload = frame.readUInt32BE(6);
  return { count: frame.readBigUInt64BE(10), secret: payload === 40 ? Buffer.from(frame.subarray(18, 50)) : null };
}

describe('replay protection and resume proofs (issue 10, finding 5)', () => {
  it('answers A’s upgrades beyond its replay cache and B’s replayed or unproven resumes with the decoy; a proven resume re-attaches', async () => {
    const CACHE = 16;
    const { config } = await init();
    rewriteConfig(config, (c) => {
      c.limits = { AUTH_REPLAY_CACHE_PER_USER_COUNT: CACHE, BRIDGE_MAX_SESSIONS_PER_USER: 64, LOG_SUMMARY_INTERVAL_MS: 1_000 };
    });
    const bobSecret = Buffer.from(addUserToConfig(config, 'bob'), 'base64url');
    const c = JSON.parse(fs.readFileSync(config, 'utf8')) as { path: string; users: Array<{ secret: string }> };
    const aliceSecret = Buffer.from(c.users[0]!.secret, 'base64url');
    const { bridge, port } = await startBridge(config);
    const bearer = (secret: Buffer, sid?: string) => {
      const token = makeToken(secret, c.path, Date.now(), undefined, sid);
      return { token, headers: { Authorization: `Bearer ${token}`, ...(sid ? { [SESSION_HEADER]: sid } : {}) } };
    };

    // B opens a resumable session; the test keeps its upgrade, as a front's log would.
    const sid = crypto.randomBytes(16).toString('base64url');
    const recorded = bearer(bobSecret, sid).headers;
    const live = await upgrade(port, c.path, recorded);
    expect(live.status).toBe(101);
    const first = firstResume(await framesOf(live, 2 + 10 + 40));
    expect(first.count).toBe(0n);
    expect(first.secret).not.toBeNull();
    const secret = first.secret as Buffer;
    // The secret never appears in any upgrade: not in the one that made the session.
    expect(JSON.stringify(recorded)).not.toContain(secret.toString('base64url'));

    // A fills its cache: CACHE upgrades accepted, the next refused with the decoy's 404.
    const aliceFirst = bearer(aliceSecret).headers;
    for (let i = 0; i < CACHE; i++) {
      const up = await upgrade(port, c.path, i === 0 ? aliceFirst : bearer(aliceSecret).headers);
      expect(up.status).toBe(101);
      up.socket.destroy();
    }
    const full = await upgrade(port, c.path, bearer(aliceSecret).headers);
    expect(full.status).toBe(404);
    full.socket.destroy();
    // Nothing was forgotten to make room: A's first token is still a replay.
    const aReplay = await upgrade(port, c.path, aliceFirst);
    expect(aReplay.status).toBe(404);
    aReplay.socket.destroy();

    // B's recorded upgrade, replayed after A filled its cache: the decoy, and B's session goes on.
    const replay = await upgrade(port, c.path, recorded);
    expect(replay.status).toBe(404);
    replay.socket.destroy();
    // A fresh token for B's session without a proof (what a recorded upgrade could be made into) or with a wrong one: the decoy.
    const noProof = await upgrade(port, c.path, bearer(bobSecret, sid).headers);
    expect(noProof.status).toBe(404);
    noProof.socket.destroy();
    const wrong = bearer(bobSecret, sid);
    const wrongProof = await upgrade(port, c.path, { ...wrong.headers, [RESUME_HEADER]: resumeProof(crypto.randomBytes(32), tokenHead(wrong.token)!).toString('base64url') });
    expect(wrongProof.status).toBe(404);
    wrongProof.socket.destroy();
    // A proof made for another upgrade's token does not carry over.
    const other = bearer(bobSecret, sid);
    const moved = bearer(bobSecret, sid);
    const movedProof = await upgrade(port, c.path, { ...moved.headers, [RESUME_HEADER]: resumeProof(secret, tokenHead(other.token)!).toString('base64url') });
    expect(movedProof.status).toBe(404);
    movedProof.socket.destroy();
    expect(live.socket.destroyed).toBe(false);

    // With the proof of the secret from B's first connection, B re-attaches (RESUME without a secret this time).
    const proven = bearer(bobSecret, sid);
    const resumed = await upgrade(port, c.path, { ...proven.headers, [RESUME_HEADER]: resumeProof(secret, tokenHead(proven.token)!).toString('base64url') });
    expect(resumed.status).toBe(101);
    const again = firstResume(await framesOf(resumed, 2 + 10 + 8));
    expect(again.secret).toBeNull();
    // …and the replay of that resume upgrade is refused in turn.
    const replayResume = await upgrade(port, c.path, { ...proven.headers, [RESUME_HEADER]: resumeProof(secret, tokenHead(proven.token)!).toString('base64url') });
    expect(replayResume.status).toBe(404);
    replayResume.socket.destroy();
    resumed.socket.destroy();
    live.socket.destroy();

    // The refused upgrades are summarised at info by reason (LOG_SUMMARY_INTERVAL_MS), not one line each.
    const summary = await bridge.waitFor((l) => l.msg === 'upgrades refused', 5_000, 'refused-upgrade summary');
    expect(summary.level).toBe(30);
    expect(summary.byReason).toMatchObject({ cache_full: 1, replay: 3, resume_proof: 3 });
    expect(bridge.lines.filter((l) => l.msg === 'upgrade refused')).toHaveLength(0);
  }, 30_000);
});
