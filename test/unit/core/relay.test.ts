import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { relay } from '../../../src/core/relay.js';

/** Two TCP pairs on loopback joined by relay(): app ⇄ [left | relay | right] ⇄ dest. */
async function joined(): Promise<{ app: net.Socket; dest: net.Socket; close(): void }> {
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
  relay(left, right);
  for (const s of [app, dest, left, right]) s.on('error', () => undefined);
  return { app, dest, close: () => servers.forEach((s) => s.close()) };
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
});
