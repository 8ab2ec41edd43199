import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectTarget, resolveAllowed, withHosts, type Resolver } from '../../../src/bridge/egress.js';
import { PosternError } from '../../../src/core/errors.js';
import { defaultLimits } from '../../../src/core/limits.js';

const limits = defaultLimits({ EGRESS_CONNECT_TIMEOUT_MS: 2_000, EGRESS_DNS_TIMEOUT_MS: 500 });
const never: Resolver = () => new Promise(() => undefined);
const failing: Resolver = () => Promise.reject(Object.assign(new Error('nope'), { code: 'ENOTFOUND' }));
const signal = () => new AbortController().signal;

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return err instanceof PosternError ? err.code : `not a PosternError: ${String(err)}`;
  }
}

const servers: net.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

describe('bridge egress', () => {
  it('refuses a name that resolves to loopback, checked on the resolved address', async () => {
    const resolver = withHosts({ 'inside.test': ['127.0.0.1'] }, failing);
    const opts = { policy: { allowPrivate: false }, resolver, limits };
    expect(await code(resolveAllowed({ kind: 'domain', host: 'inside.test', port: 80 }, opts, signal()))).toBe('E_NOT_ALLOWED');
  });

  it('connects only to the allowed addresses of a name that mixes private and public answers', async () => {
    const resolver = withHosts({ 'mixed.test': ['10.0.0.1', '8.8.8.8'] }, failing);
    const opts = { policy: { allowPrivate: false }, resolver, limits };
    expect(await resolveAllowed({ kind: 'domain', host: 'mixed.test', port: 80 }, opts, signal())).toEqual(['8.8.8.8']);
  });

  it('maps a failed lookup to E_DNS and a hung lookup to E_DNS after the DNS timeout', async () => {
    const base = { policy: { allowPrivate: false }, limits };
    expect(await code(resolveAllowed({ kind: 'domain', host: 'x.invalid', port: 80 }, { ...base, resolver: failing }, signal()))).toBe('E_DNS');
    const t0 = Date.now();
    expect(await code(resolveAllowed({ kind: 'domain', host: 'x.invalid', port: 80 }, { ...base, resolver: never }, signal()))).toBe('E_DNS');
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('maps a refused connect to E_CONN_REFUSED', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const opts = { policy: { allowPrivate: true }, resolver: failing, limits };
    expect(await code(connectTarget({ kind: 'ipv4', host: '127.0.0.1', port }, opts, signal()))).toBe('E_CONN_REFUSED');
  });

  it('connects to an allowed loopback target over IPv4 and IPv6', async () => {
    for (const host of ['127.0.0.1', '::1']) {
      const srv = net.createServer((s) => s.end('hi'));
      servers.push(srv);
      await new Promise<void>((r) => srv.listen(0, host, r));
      const port = (srv.address() as net.AddressInfo).port;
      const opts = { policy: { allowPrivate: true }, resolver: failing, limits };
      const sock = await connectTarget({ kind: host.includes(':') ? 'ipv6' : 'ipv4', host, port }, opts, signal());
      // Egress sockets start paused (borrowed reads, src/core/borrowed-read.ts); with no sink
      // they deliver copies as 'data' like any socket once resumed.
      expect(sock.isPaused()).toBe(true);
      const got = await new Promise<string>((r) => {
        let s = '';
        sock.on('data', (d) => (s += d)).on('end', () => r(s));
        sock.resume();
      });
      expect(got).toBe('hi');
      sock.destroy();
    }
  });

  it('gives up a pending connect when the stream is cancelled', async () => {
    const ac = new AbortController();
    const opts = { policy: { allowPrivate: true }, resolver: never, limits };
    const p = code(connectTarget({ kind: 'domain', host: 'slow.invalid', port: 80 }, opts, ac.signal));
    ac.abort();
    expect(await p).toBe('E_CANCELLED');
  });
});
