/**
 * How a new connection is answered (issue 12, docs/protocol.md §5.1, README "Reply behaviour"):
 * by default, with the tunnel up, SOCKS5 CONNECT gets success and HTTP CONNECT gets 200 at once
 * and a destination the bridge cannot reach then resets the app's connection; with
 * --exact-replies (here through POSTERN_EXACT_REPLIES=1) the app waits for the exact code.
 * Real clients: curl, ncat, PySocks (/usr/bin/python3), and the built binary.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../helpers/ops.js';
import { Postern, stopAll } from '../helpers/proc.js';
import { echoServer, type Local } from '../helpers/servers.js';
import { connectRaw, domainRequest, ipv4Request, readN } from '../helpers/socks.js';
import { init, startStack, withPort, type Stack } from '../helpers/stack.js';

let stack: Stack;
let exact: { client: Postern; port: number };
let echo: Local<net.Server>;
/** A loopback port nothing listens on: connecting to it is refused at once. */
let deadPort: number;

beforeAll(async () => {
  echo = await echoServer('127.0.0.1');
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
  deadPort = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  stack = await startStack({ clientArgs: ['--log-level', 'debug'] });
  const client = new Postern(['client', '--bridge', stack.uri, '--listen', '127.0.0.1:0', '--no-auth'], { POSTERN_EXACT_REPLIES: '1' });
  exact = { client, port: await client.listening('socks') };
  await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'exact client tunnel up');
});

afterAll(async () => {
  await stopAll();
  await echo?.close();
});

/** Greeting, CONNECT and a first payload in one write (as a pipelining app does); the reply code. */
async function pipelined(port: number, request: Buffer, payload: string): Promise<{ socket: net.Socket; reply: number }> {
  const s = await connectRaw(port);
  s.write(Buffer.concat([Buffer.from([5, 1, 0]), request, Buffer.from(payload)]));
  const head = await readN(s, 2 + 10);
  expect(head.subarray(0, 2)).toEqual(Buffer.from([5, 0]));
  return { socket: s, reply: head[3] as number };
}

/**
 * Python (/usr/bin/python3) sends greeting, CONNECT and a first payload in one write, reads the
 * 12-byte reply and then whatever comes until the connection ends: prints the reply code (-1 when
 * the method reply or the reply's version is wrong or short), how it ended ('reset', 'end' or
 * 'timeout') and the bytes after the reply. Not a Node socket: when the reply and the reset arrive
 * in one wakeup, libuv reports the reset as a clean end (it takes POLLHUP after a partial read for
 * EOF without reading the error), where recv() raises ECONNRESET. Measured (a scratch loop against
 * one client): a Node socket saw 'end' 10 times in 600, Python 'reset' all 600.
 */
const PIPELINED_REST = `
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(bytes.fromhex(sys.argv[2]))
s.settimeout(10)
head, rest, how = b'', 0, None
try:
    while len(head) < 12:
        d = s.recv(12 - len(head))
        if not d:
            how = 'end'
            break
        head += d
    while how is None:
        d = s.recv(65536)
        if not d:
            how = 'end'
        rest += len(d)
except ConnectionResetError:
    how = 'reset'
except socket.timeout:
    how = 'timeout'
print(head[3] if len(head) == 12 and head[:3] == b'\\x05\\x00\\x05' else -1, how, rest)
`;

/** PIPELINED_REST through the SOCKS5 port `port`: the reply code, how the connection ended, and the bytes after the reply. */
function pipelinedRest(port: number, request: Buffer, payload: string): Promise<{ reply: number; how: string; bytes: number }> {
  const bytes = Buffer.concat([Buffer.from([5, 1, 0]), request, Buffer.from(payload)]);
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/python3', ['-c', PIPELINED_REST, String(port), bytes.toString('hex')], { timeout: 20_000 }, (err, stdout, stderr) => {
      const m = /^(-?\d+) (\w+) (\d+)$/.exec(stdout.trim());
      if (!m) return reject(new Error(`python: ${err?.message ?? ''} ${stdout} ${stderr}`));
      resolve({ reply: Number(m[1]), how: m[2] as string, bytes: Number(m[3]) });
    });
  });
}

function ncat(port: number, host: string, destPort: number, input: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      'ncat',
      ['--proxy', `127.0.0.1:${port}`, '--proxy-type', 'socks5', '--wait', '10', host, String(destPort)],
      { timeout: 15_000 },
      (err, _stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stderr }),
    );
    child.stdin?.end(input);
  });
}

/** PySocks: connect, send, read; prints what happened. */
const PYSOCKS = `
import socket, sys, socks
s = socks.socksocket()
s.set_proxy(socks.SOCKS5, '127.0.0.1', int(sys.argv[1]))
s.settimeout(10)
try:
    s.connect((sys.argv[2], int(sys.argv[3])))
    s.sendall(b'hello')
    d = s.recv(100)
    print('eof' if d == b'' else 'data')
except (ConnectionResetError, BrokenPipeError):
    print('reset')
except socks.ProxyError as e:
    print('proxy-error', e.msg)
except socket.timeout:
    print('timeout')
`;

function pysocks(port: number, host: string, destPort: number): Promise<string> {
  return new Promise((resolve) => {
    execFile('/usr/bin/python3', ['-c', PYSOCKS, String(port), host, String(destPort)], { timeout: 20_000 }, (err, stdout, stderr) =>
      resolve(err && !stdout ? `failed: ${stderr}` : stdout.trim()),
    );
  });
}

describe('optimistic open (default): success at once, a refusal resets the connection', () => {
  it.each([
    ['a refused port', () => ipv4Request('127.0.0.1', deadPort)],
    ['a name that does not resolve', () => domainRequest('no-such-host.invalid', 80)],
  ])('SOCKS5 to %s: reply 0 at once, then RST with no data (never a hang or a clean end)', async (_name, request) => {
    expect(await pipelinedRest(stack.socksPort, request(), 'GET / HTTP/1.1\r\n\r\n')).toEqual({ reply: 0, how: 'reset', bytes: 0 });
  });

  it('a reachable destination answers the first bytes sent with the request', async () => {
    const { socket, reply } = await pipelined(stack.socksPort, ipv4Request('127.0.0.1', echo.port), 'early');
    expect(reply).toBe(0);
    expect((await readN(socket, 5)).toString()).toBe('early');
    socket.destroy();
  });

  it('curl through SOCKS5 and through HTTP CONNECT: a connection reset, fast; plain HTTP still gets 502', async () => {
    const url = `http://127.0.0.1:${deadPort}/`;
    for (const proxy of [['--socks5-hostname', `127.0.0.1:${stack.socksPort}`], ['-p', '-x', `http://127.0.0.1:${stack.socksPort}`]]) {
      const t0 = Date.now();
      const r = await curl([...proxy, url], 10);
      // 55/56: send/receive failure (reset). Never 52 (empty reply: a clean close) or 28 (timeout).
      expect([55, 56], `${proxy.join(' ')}: ${r.code} ${r.stderr}`).toContain(r.code);
      expect(r.stderr).toMatch(/reset/i);
      expect(Date.now() - t0).toBeLessThan(5_000);
    }
    const plain = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${stack.socksPort}`, url], 10);
    expect(plain.stdout).toBe('502');
  });

  it('ncat through SOCKS5 to a refused port exits with an error, not a clean close', async () => {
    const r = await ncat(stack.socksPort, '127.0.0.1', deadPort, 'hello\n');
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(/reset/i);
  });

  it('PySocks to a refused port: connect succeeds, then the connection is reset', async () => {
    expect(await pysocks(stack.socksPort, '127.0.0.1', deadPort)).toBe('reset');
    expect(await pysocks(stack.socksPort, '127.0.0.1', echo.port)).toBe('data');
  });

  it('logs the reason at debug, never the destination', async () => {
    const failed = stack.client.lines.filter((l) => l.msg === 'open failed');
    expect(failed.map((l) => [l.level, l.code])).toEqual(expect.arrayContaining([[20, 'E_CONN_REFUSED'], [20, 'E_DNS']]));
    expect(stack.client.lines.filter((l) => JSON.stringify(l).includes('no-such-host') || JSON.stringify(l).includes(String(deadPort)))).toEqual([]);
  });
});

describe('--exact-replies (POSTERN_EXACT_REPLIES=1): the exact code, after the bridge tried', () => {
  it.each([
    ['a refused port', () => ipv4Request('127.0.0.1', deadPort), 0x05],
    ['a name that does not resolve', () => domainRequest('no-such-host.invalid', 80), 0x04],
    ['BIND (refused locally)', () => ipv4Request('127.0.0.1', 80, 2), 0x07],
  ])('SOCKS5 to %s gets reply %s (RFC 1928 §6), and the early payload goes nowhere', async (_name, request, code) => {
    const { socket, reply } = await pipelined(exact.port, request(), 'x');
    expect(reply).toBe(code);
    socket.destroy();
  });

  it('curl: SOCKS5 fails in the handshake; HTTP CONNECT and plain HTTP get 502', async () => {
    const url = `http://127.0.0.1:${deadPort}/`;
    const s = await curl(['--socks5-hostname', `127.0.0.1:${exact.port}`, url], 10);
    expect(s.code).toBe(97); // CURLE_PROXY: the SOCKS reply was a failure
    const c = await curl(['-p', '-o', '/dev/null', '-w', '%{http_connect}', '-x', `http://127.0.0.1:${exact.port}`, url], 10);
    expect(c.stdout).toBe('502');
    const p = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${exact.port}`, url], 10);
    expect(p.stdout).toBe('502');
  });

  it('ncat and PySocks see the refusal in the handshake', async () => {
    const r = await ncat(exact.port, '127.0.0.1', deadPort, 'hello\n');
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toMatch(/reset/i);
    expect(await pysocks(exact.port, '127.0.0.1', deadPort)).toMatch(/^proxy-error .*refused/i);
  });
});

describe('tunnel down: the exact code in the default mode too', () => {
  it('a client whose bridge does not answer replies 0x01 instead of success', async () => {
    const client = new Postern(['client', '--bridge', withPort(stack.uri, deadPort), '--listen', '127.0.0.1:0', '--no-auth']);
    const port = await client.listening('socks');
    const { socket, reply } = await pipelined(port, ipv4Request('127.0.0.1', echo.port), 'x');
    expect(reply).toBe(0x01);
    socket.destroy();
    await client.stop();
  });
});

describe('a bridge that does not announce early data (older than Postern-Features, protocol.md §2)', () => {
  it('gets no early data: the default client answers with the exact code, and streams work', async () => {
    const { uri, config } = await init();
    const bridge = new Postern(['bridge', '--config', config, '--listen', '127.0.0.1:0', '--allow-private'], { POSTERN_TEST_BRIDGE_FEATURES: '' });
    const port = await bridge.listening('bridge');
    const client = new Postern(['client', '--bridge', withPort(uri, port), '--listen', '127.0.0.1:0', '--no-auth', '--log-level', 'debug']);
    const socksPort = await client.listening('socks');
    await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
    // Refused: the exact reply, in the handshake (an optimistic open would have said 0x00, then reset).
    const refused = await pipelined(socksPort, ipv4Request('127.0.0.1', deadPort), 'nowhere');
    expect(refused.reply).toBe(0x05);
    refused.socket.destroy();
    // Accepted: the pipelined payload still arrives, after OPEN_RESULT.
    const ok = await pipelined(socksPort, ipv4Request('127.0.0.1', echo.port), 'ping');
    expect(ok.reply).toBe(0x00);
    expect((await readN(ok.socket, 4)).toString()).toBe('ping');
    ok.socket.destroy();
    // And the same client against a bridge that announces it answers optimistically (0x00, then reset).
    expect(await pipelinedRest(stack.socksPort, ipv4Request('127.0.0.1', deadPort), 'nowhere')).toEqual({ reply: 0x00, how: 'reset', bytes: 0 });
  });
});

