/**
 * Users managed live (issue 4): removing a user from bridge.json — by SIGHUP, or by the file
 * change alone — closes that user's sessions at once and no other; a bad file is refused and the
 * running config kept. Everything runs the built binary on loopback.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addUserToConfig, rewriteConfig, uriWithSecret } from '../helpers/bridge-config.js';
import { stopAll, type Postern } from '../helpers/proc.js';
import { deterministicBytes, echoServer, type Local } from '../helpers/servers.js';
import { closeKind, ipv4Request, readN, socksConnect } from '../helpers/socks.js';
import { init, startBridge, startClient, withPort } from '../helpers/stack.js';

let echo: Local<net.Server>;

beforeEach(async () => {
  echo = await echoServer('127.0.0.1');
});
afterEach(async () => {
  await stopAll();
  await echo?.close();
});

interface Two {
  config: string;
  bridge: Postern;
  alice: { client: Postern; port: number };
  bob: { client: Postern; port: number };
}

async function twoUsers(limits: Record<string, number> = {}): Promise<Two> {
  const { uri, config } = await init();
  const bobSecret = addUserToConfig(config, 'bob');
  rewriteConfig(config, (c) => {
    c.limits = { ...c.limits, ...limits };
  });
  const { bridge, port } = await startBridge(config);
  const aliceUri = withPort(uri, port);
  const [alice, bob] = await Promise.all([startClient(aliceUri), startClient(uriWithSecret(aliceUri, bobSecret))]);
  await Promise.all([
    alice.client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'alice up'),
    bob.client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'bob up'),
  ]);
  return { config, bridge, alice, bob };
}

/** An echo conversation in rounds; the caller may act between rounds. Returns the hash check. */
async function echoRounds(socket: net.Socket, rounds: number, between: (i: number) => Promise<void>): Promise<void> {
  const CHUNK = 64 * 1024;
  const data = deterministicBytes(rounds * CHUNK, 'reload');
  const sent = crypto.createHash('sha256');
  const got = crypto.createHash('sha256');
  for (let i = 0; i < rounds; i++) {
    const part = data.subarray(i * CHUNK, (i + 1) * CHUNK);
    sent.update(part);
    socket.write(part);
    got.update(await readN(socket, CHUNK));
    await between(i);
  }
  expect(got.digest('hex')).toBe(sent.digest('hex'));
}

async function removeBobAndCheck(t: Two, trigger: () => void): Promise<void> {
  const a = await socksConnect(t.alice.port, ipv4Request('127.0.0.1', echo.port));
  const b = await socksConnect(t.bob.port, ipv4Request('127.0.0.1', echo.port));
  expect([a.reply, b.reply]).toEqual([0, 0]);
  // Bob's stream works before the reload.
  b.socket.write(Buffer.from('ping'));
  expect((await readN(b.socket, 4)).toString()).toBe('ping');
  const bobClosed = closeKind(b.socket, 15_000);
  const reloadsBefore = t.bridge.lines.filter((l) => l.msg === 'configuration reloaded').length;
  await echoRounds(a.socket, 20, async (i) => {
    if (i !== 9) return;
    rewriteConfig(t.config, (c) => {
      c.users = c.users.filter((u: { name: string }) => u.name !== 'bob');
    });
    trigger();
    await t.bridge.waitFor((l) => l.msg === 'configuration reloaded' && t.bridge.lines.filter((x) => x.msg === 'configuration reloaded').length > reloadsBefore, 10_000, 'reload');
    // Bob's transfer is reset (not ended cleanly) at once.
    expect(await bobClosed).toBe('reset');
  });
  const reload = t.bridge.lines.find((l) => l.msg === 'configuration reloaded' && l.sessionsClosed === 1);
  expect(reload, 'one session closed by the reload').toBeDefined();
  // Alice's session is untouched: same session, a new stream works.
  const a2 = await socksConnect(t.alice.port, ipv4Request('127.0.0.1', echo.port));
  expect(a2.reply).toBe(0);
  a2.socket.destroy();
  a.socket.end();
  if (t.bridge.lines.filter((l) => l.msg === 'session open' && l.user === 'user1').length !== 1) console.log(t.bridge.stdout);
  expect(t.bridge.lines.filter((l) => l.msg === 'session open' && l.user === 'user1')).toHaveLength(1);
  // Bob cannot come back: his client's redials are refused and new streams fail.
  const mark = t.bridge.lines.length;
  const b2 = await socksConnect(t.bob.port, ipv4Request('127.0.0.1', echo.port)).catch(() => ({ reply: -1, socket: null }));
  expect(b2.reply).not.toBe(0);
  b2.socket?.destroy();
  expect(t.bridge.lines.slice(mark).some((l) => l.msg === 'session open' && l.user === 'bob')).toBe(false);
}

describe('live user management', () => {
  it('SIGHUP after removing a user closes only that user’s sessions; the other’s transfer continues intact', async () => {
    // A long debounce keeps the file watcher out of this test: the reload seen is SIGHUP's.
    const t = await twoUsers({ CONFIG_WATCH_DEBOUNCE_MS: 10_000 });
    await removeBobAndCheck(t, () => t.bridge.child.kill('SIGHUP'));
  });

  it('the file change alone (temp file + rename) reloads users', async () => {
    const t = await twoUsers({ CONFIG_WATCH_DEBOUNCE_MS: 100 });
    await removeBobAndCheck(t, () => undefined);
  });

  it('a reload that fails validation keeps the running config and logs why', async () => {
    const t = await twoUsers({ CONFIG_WATCH_DEBOUNCE_MS: 100 });
    const text = fs.readFileSync(t.config, 'utf8');
    rewriteConfig(t.config, (c) => {
      c.users = [{ name: 'x y', secret: 'short' }];
    });
    const fail = await t.bridge.waitFor((l) => l.msg === 'reload failed; keeping the previous configuration', 10_000, 'reload failure');
    expect(String(fail.err)).toContain('users[0].name');
    expect(fail.trigger).toBe('file');
    // SIGHUP on the same bad file: refused too, and both users keep working.
    t.bridge.child.kill('SIGHUP');
    await t.bridge.waitFor((l) => l.msg === 'reload failed; keeping the previous configuration' && l.trigger === 'SIGHUP', 10_000, 'SIGHUP failure');
    for (const port of [t.alice.port, t.bob.port]) {
      const s = await socksConnect(port, ipv4Request('127.0.0.1', echo.port));
      expect(s.reply).toBe(0);
      s.socket.write('hi');
      expect((await readN(s.socket, 2)).toString()).toBe('hi');
      s.socket.destroy();
    }
    expect(t.bridge.lines.some((l) => l.msg === 'configuration reloaded')).toBe(false);
    // The failed text holds secrets; the log line must not.
    expect(JSON.stringify(fail)).not.toContain('short');
    fs.writeFileSync(t.config, text);
  });
});
