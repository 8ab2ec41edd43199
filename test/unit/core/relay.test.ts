import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { relay } from '../../../src/core/relay.js';

/** Two TCP pairs on loopback joined by relay(): app ⇄ [left | relay | right] ⇄ dest. */
async function joined(onDone?: (err?: Error) => void): Promise<{ app: net.Socket; dest: net.Socket; left: net.Socket; right: net.Socket; close(): void }> {
  const servers: net.Server[] = [];
  const pair = async (): Promise<[net.Socket, net.Socket]> => {
    const srv = net.createServer({ allowHalfOpen: true });
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
    const c = net.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
    return [c, await accepted];
  };
  const [app, left] = await pair();
  const [right, dest] = await pair();
  relay(left, right, onDone);
  for (const s of [app, dest, left, right]) s.on('error', () => undefined);
  return { app, dest, left, right, close: () => servers.forEach((s) => s.close()) };
}

function collect(s: net.Socket): Promise<{ data: string; how: 'end' | 'error' }> {
  return new Promise((resolve) => {
    let data = '';
    s.on('data', (d) => (data += d));
    s.once('end', () => resolve({ data, how: 'end' }));
    s.once('error', () => resolve({ data, how: 'error' }));
  });
}

let cleanup: (() => void) | undefined;
afterEach(() => cleanup?.());

describe('relay', () => {
  it('half-closes one direction while the other keeps flowing', async () => {
    const j = await joined();
    cleanup = j.close;
    const atDest = collect(j.dest);
    j.app.end('request');
    expect(await atDest).toEqual({ data: 'request', how: 'end' });
    const atApp = collect(j.app);
    j.dest.end('response after FIN');
    expect(await atApp).toEqual({ data: 'response after FIN', how: 'end' });
  });

  it('turns a reset on one side into a reset on the other, never a clean end', async () => {
    const j = await joined();
    cleanup = j.close;
    const atApp = collect(j.app);
    j.dest.write('partial');
    await new Promise((r) => setTimeout(r, 50));
    j.dest.resetAndDestroy();
    const r = await atApp;
    expect(r.how).toBe('error');
    expect(r.data).toBe('partial');
  });

  it('stops reading a source while its destination is full (a slow reader), and delivers everything once it reads', async () => {
    const j = await joined();
    cleanup = j.close;
    j.dest.pause();
    const chunk = Buffer.alloc(64 * 1024, 1);
    const total = 768 * chunk.length; // 48 MiB: far more than the kernel buffers between app and dest hold
    let written = 0;
    const pump = (): void => {
      while (written < total) {
        written += chunk.length;
        if (!j.app.write(chunk)) return void j.app.once('drain', pump);
      }
    };
    pump();
    await new Promise((r) => setTimeout(r, 300));
    // The relay holds at most about one chunk beyond its destination's high-water mark; the rest
    // waits in the kernel and in the app's own buffer.
    expect(j.right.writableLength).toBeLessThanOrEqual(j.right.writableHighWaterMark + 2 * chunk.length);
    expect(j.left.isPaused()).toBe(true);
    expect(written).toBeLessThan(total);
    let got = 0;
    const all = new Promise<void>((r) =>
      j.dest.on('data', (d: Buffer) => {
        got += d.length;
        if (got === total) r();
      }),
    );
    j.dest.resume();
    await all;
    expect(got).toBe(total);
  });

  it('reports done once, after both directions ended cleanly', async () => {
    const calls: (Error | undefined)[] = [];
    const j = await joined((err) => calls.push(err));
    cleanup = j.close;
    j.dest.resume();
    j.app.resume();
    j.app.end('a');
    j.dest.end('b');
    await new Promise((r) => setTimeout(r, 200));
    expect(calls).toEqual([undefined]);
  });
});
