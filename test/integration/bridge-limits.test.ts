/**
 * Bridge limits, metrics and log privacy (issue 4), end to end with the built binary on loopback:
 * per-user session cap, idle stream reset, per-user bandwidth cap, the admin listener's
 * /metrics and /healthz, and logs without destinations unless log.destinations is on.
 */
import http from 'node:http';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { addUserToConfig, rewriteConfig, uriWithSecret } from '../helpers/bridge-config.js';
import { stopAll, type LogLine, type Postern } from '../helpers/proc.js';
import { echoServer, httpServer, type Local } from '../helpers/servers.js';
import { closeKind, domainRequest, ipv4Request, readN, socksConnect } from '../helpers/socks.js';
import { init, startBridge, startClient, withPort } from '../helpers/stack.js';

let echo: Local<net.Server>;
let web: Local<http.Server>;

beforeAll(async () => {
  [echo, web] = await Promise.all([echoServer('127.0.0.1'), httpServer('127.0.0.1')]);
});
afterEach(async () => {
  await stopAll();
});
afterAll(async () => {
  await Promise.all([echo?.close(), web?.close()]);
});

/** init → edit bridge.json → bridge (no --allow-private unless asked) → one client, tunnel up. */
async function setup(
  edit: (c: Record<string, any>) => void,
  opts: { allowPrivate?: boolean; logLevel?: string; exactReplies?: boolean } = {},
): Promise<{ config: string; uri: string; bridge: Postern; socksPort: number; client: Postern }> {
  const { uri: initUri, config } = await init();
  rewriteConfig(config, edit);
  const extra = [...(opts.allowPrivate === false ? [] : ['--allow-private']), ...(opts.logLevel ? ['--log-level', opts.logLevel] : [])];
  const { bridge, port } = await startBridge(config, extra);
  const uri = withPort(initUri, port);
  const { client, port: socksPort } = await startClient(uri, opts.exactReplies ? ['--exact-replies'] : []);
  await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
  return { config, uri, bridge, socksPort, client };
}

describe('limits', () => {
  it('refuses a user’s session beyond BRIDGE_MAX_SESSIONS_PER_USER and keeps serving the first', async () => {
    const s = await setup((c) => {
      c.limits = { BRIDGE_MAX_SESSIONS_PER_USER: 1 };
    });
    const second = await startClient(s.uri);
    await s.bridge.waitFor((l) => l.msg === 'session refused: too many sessions for this user', 10_000, 'per-user refusal');
    // Refused with a WebSocket close (1008), not a crash on either side.
    expect(second.client.child.exitCode).toBeNull();
    const r1 = await socksConnect(s.socksPort, ipv4Request('127.0.0.1', echo.port));
    expect(r1.reply).toBe(0);
    r1.socket.write('ok');
    expect((await readN(r1.socket, 2)).toString()).toBe('ok');
    r1.socket.destroy();
    expect(s.bridge.lines.filter((l) => l.msg === 'session open')).toHaveLength(1);
  });

  it('resets a stream with no bytes either way for STREAM_IDLE_TIMEOUT_MS, and not a busy one', async () => {
    const s = await setup((c) => {
      c.limits = { STREAM_IDLE_TIMEOUT_MS: 1_000 };
    });
    const idle = await socksConnect(s.socksPort, ipv4Request('127.0.0.1', echo.port));
    const busy = await socksConnect(s.socksPort, ipv4Request('127.0.0.1', echo.port));
    expect([idle.reply, busy.reply]).toEqual([0, 0]);
    idle.socket.write('x');
    await readN(idle.socket, 1);
    const t0 = Date.now();
    const idleClosed = closeKind(idle.socket, 8_000);
    // The busy stream talks every 300 ms for 2.4 s: never idle for a whole second.
    for (let i = 0; i < 8; i++) {
      busy.socket.write('y');
      expect((await readN(busy.socket, 1)).toString()).toBe('y');
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(await idleClosed).toBe('reset');
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(2_400 + 1_000);
    busy.socket.write('z');
    expect((await readN(busy.socket, 1)).toString()).toBe('z');
    busy.socket.destroy();
  });

  it('caps a user’s bandwidth (1 MiB/s measured over 3 s within ±30%)', async () => {
    const RATE = 1024 * 1024;
    const s = await setup((c) => {
      c.users[0].maxBytesPerSecond = RATE;
    });
    // A source that sends as fast as it is read, once it hears from the client.
    const chunk = Buffer.alloc(64 * 1024, 7);
    const source = net.createServer((c) => {
      c.on('error', () => undefined);
      const pump = () => {
        while (!c.destroyed && c.write(chunk));
      };
      c.once('data', () => {
        pump();
        c.on('drain', pump);
      });
    });
    await new Promise<void>((r) => source.listen(0, '127.0.0.1', () => r()));
    const sourcePort = (source.address() as net.AddressInfo).port;
    const { socket, reply } = await socksConnect(s.socksPort, ipv4Request('127.0.0.1', sourcePort));
    expect(reply).toBe(0);
    socket.write('go');
    let got = 0;
    socket.on('data', (d: Buffer) => {
      got += d.length;
    });
    socket.on('error', () => undefined);
    socket.resume();
    await new Promise((r) => setTimeout(r, 3_000));
    socket.destroy();
    source.close();
    const rate = got / 3;
    console.log(`bandwidth cap ${RATE} B/s: measured ${Math.round(rate)} B/s over 3 s (${(rate / RATE).toFixed(3)}×)`);
    expect(rate).toBeGreaterThan(0.7 * RATE);
    expect(rate).toBeLessThan(1.3 * RATE);
  });
});

function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** The value of one sample in an exposition, 0 when absent. */
function sample(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe('admin listener', () => {
  it('serves /healthz and /metrics whose counters move with traffic, auth failures and refusals', async () => {
    const s = await setup(
      (c) => {
        c.admin = { listen: '127.0.0.1:0' };
        c.egress = { allowRanges: ['127.0.0.1/32'] };
        c.limits = { HANDSHAKE_TIMEOUT_MS: 1_000 };
      },
      { allowPrivate: false, exactReplies: true },
    );
    const admin = (await s.bridge.waitFor((l) => l.msg === 'listening' && l.role === 'admin', 10_000, 'admin listening')).port as number;
    expect(admin).not.toBe(0);
    const health = await get(admin, '/healthz');
    expect(health.status).toBe(200);
    expect(health.body.trim()).toBe('ok');
    expect((await get(admin, '/nope')).status).toBe(404);

    const before = await get(admin, '/metrics');
    expect(before.status).toBe(200);
    expect(before.type).toContain('text/plain; version=0.0.4');
    expect(before.body).toContain('# TYPE postern_upload_bytes_total counter');
    expect(sample(before.body, 'postern_sessions')).toBe(1);
    expect(sample(before.body, 'postern_upload_bytes_total')).toBe(0);

    // Traffic: 100 KiB each way through the echo server.
    const N = 100 * 1024;
    const t = await socksConnect(s.socksPort, ipv4Request('127.0.0.1', echo.port));
    expect(t.reply).toBe(0);
    t.socket.write(Buffer.alloc(N, 1));
    await readN(t.socket, N);
    // A policy refusal: 127.0.0.2 is loopback, outside allowRanges → SOCKS 02.
    const refused = await socksConnect(s.socksPort, ipv4Request('127.0.0.2', echo.port));
    expect(refused.reply).toBe(2);
    refused.socket.destroy();
    // A handshake timeout: a TCP connection that never starts TLS.
    const silent = net.connect(Number(new URL(s.uri).port), '127.0.0.1');
    silent.on('error', () => undefined);
    const silentClosed = new Promise((r) => silent.once('close', r));
    // An auth failure: a client with a wrong secret.
    const wrong = await startClient(uriWithSecret(s.uri, Buffer.alloc(32, 9).toString('base64url')));
    await wrong.client.waitFor((l) => String(l.msg).startsWith('cannot connect to bridge'), 15_000, 'wrong-secret failure');

    await silentClosed;
    const after = (await get(admin, '/metrics')).body;
    expect(sample(after, 'postern_handshake_timeouts_total')).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'postern_streams_total')).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'postern_streams')).toBe(1);
    expect(sample(after, 'postern_upload_bytes_total')).toBeGreaterThanOrEqual(N);
    expect(sample(after, 'postern_download_bytes_total')).toBeGreaterThanOrEqual(N);
    expect(sample(after, 'postern_user_bytes_total', '{direction="up",user="user1"}')).toBeGreaterThanOrEqual(N);
    expect(sample(after, 'postern_user_bytes_total', '{direction="down",user="user1"}')).toBeGreaterThanOrEqual(N);
    expect(sample(after, 'postern_policy_refusals_total', '{reason="range"}')).toBe(1);
    expect(sample(after, 'postern_streams_refused_total', '{code="E_NOT_ALLOWED"}')).toBe(1);
    expect(sample(after, 'postern_auth_failures_total', '{reason="unknown_key"}')).toBeGreaterThanOrEqual(1);
    t.socket.destroy();
  });
});

/** Every string and number anywhere in a log line. */
function values(v: unknown, out: Array<string | number> = []): Array<string | number> {
  if (typeof v === 'string' || typeof v === 'number') out.push(v);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) values(x, out);
  return out;
}

describe('log privacy', () => {
  async function run(destinations: boolean): Promise<{ lines: LogLine[]; port: number }> {
    const s = await setup(
      (c) => {
        c.hosts = { 'secret-target.test': ['127.0.0.1'], 'refused-name.test': ['127.0.0.2'] };
        c.egress = { allowRanges: ['127.0.0.1/32'], denyPorts: [9] };
        c.log = { level: 'debug', destinations };
      },
      { allowPrivate: false, logLevel: 'debug', exactReplies: true },
    );
    const ok = await socksConnect(s.socksPort, domainRequest('secret-target.test', echo.port));
    expect(ok.reply).toBe(0);
    ok.socket.write('hello');
    await readN(ok.socket, 5);
    ok.socket.end();
    await closeKind(ok.socket, 5_000);
    for (const req of [domainRequest('refused-name.test', echo.port), domainRequest('secret-target.test', 9), ipv4Request('127.0.0.3', echo.port)]) {
      const r = await socksConnect(s.socksPort, req);
      expect(r.reply).toBe(2);
      r.socket.destroy();
    }
    await s.bridge.waitFor((l) => l.msg === 'stream refused' && l.policy === 'range' && s.bridge.lines.filter((x) => x.msg === 'stream refused').length >= 3, 5_000, 'three refusals');
    await s.bridge.stop();
    return { lines: s.bridge.lines, port: echo.port };
  }

  it('keeps target names, addresses and ports (and client addresses) out of the logs by default', async () => {
    const { lines, port } = await run(false);
    expect(lines.filter((l) => l.msg === 'stream refused')).toHaveLength(3);
    for (const line of lines) {
      if (line.msg === 'listening') continue; // our own listening address
      for (const v of values(line)) {
        const text = String(v);
        expect(text, JSON.stringify(line)).not.toMatch(/secret-target|refused-name|127\.0\.0\.[0-9]|::1|::ffff/);
        expect(v, JSON.stringify(line)).not.toBe(port);
        expect(text, JSON.stringify(line)).not.toContain(`:${port}`);
      }
    }
  });

  it('logs destinations when log.destinations is on', async () => {
    const { lines, port } = await run(true);
    const text = lines.map((l) => JSON.stringify(l)).join('\n');
    expect(text).toContain(`secret-target.test:${port}`);
    expect(text).toContain(`refused-name.test:${port}`);
    expect(text).toContain('secret-target.test:9');
  });
});
