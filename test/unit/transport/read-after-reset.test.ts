import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { readAfterWriteReset } from '../../../src/transport/read-after-reset.js';
import { generateSelfSigned } from '../../../src/transport/self-signed.js';

const servers: net.Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

const WALL = 64 * 1024;
const cert = generateSelfSigned({ commonName: 'localhost', altNames: ['127.0.0.1'] });

/**
 * A TLS server that sends plenty, behind a relay that passes WALL bytes to the client and then
 * resets both sides (loopback, port 0): the client's next write meets the reset.
 */
async function walledTls(): Promise<number> {
  const server = tls.createServer({ key: cert.keyPem, cert: cert.certPem }, (s) => {
    s.on('error', () => undefined);
    s.resume();
    s.write(Buffer.alloc(4 * WALL, 7));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const target = (server.address() as net.AddressInfo).port;
  const relay = net.createServer((a) => {
    const b = net.connect({ port: target, host: '127.0.0.1' });
    let down = 0;
    a.on('error', () => undefined);
    b.on('error', () => undefined);
    a.on('data', (d: Buffer) => b.write(d));
    b.on('data', (d: Buffer) => {
      const room = WALL - down;
      down += Math.min(room, d.length);
      a.write(d.subarray(0, room));
      if (d.length >= room) {
        a.resetAndDestroy();
        b.resetAndDestroy();
      }
    });
  });
  servers.push(relay);
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  return (relay.address() as net.AddressInfo).port;
}

/** A TLS client that writes all it can from the handshake on; what its TCP socket read when it closed. */
async function readWhileWriting(port: number, fix: boolean): Promise<number> {
  const raw = net.connect({ port, host: '127.0.0.1' });
  const c = tls.connect({ socket: raw, rejectUnauthorized: false });
  if (fix) readAfterWriteReset(c, 100);
  c.on('error', () => undefined);
  c.once('secureConnect', () => {
    const write = (): void => {
      while (!c.destroyed && c.write(Buffer.alloc(16 * 1024)));
    };
    write();
    c.on('drain', write);
  });
  c.resume();
  await new Promise<void>((r) => c.once('close', () => r()));
  return raw.bytesRead;
}

describe('readAfterWriteReset', () => {
  it('reads what crossed before a reset that a write met first (TLS over TCP, as a tunnel connection)', async () => {
    const port = await walledTls();
    const reads: number[] = [];
    for (let i = 0; i < 8; i++) reads.push(await readWhileWriting(port, true));
    expect(reads).toEqual(reads.map(() => WALL));
  });
});
