// temporary experiment: log every chunk through a delay relay for one new stream
import net from 'node:net';
import { startPair } from './daemons.js';
import { connectEchoMicros, socksConnector } from './measure.js';
import { startServers } from './server-host.js';
import { selfSignedCert } from './certs.js';
import { sleep } from './stats.js';
const D = 25;
const args = (process.env.ARGS ?? '').split(' ').filter(Boolean);
const { key, cert } = selfSignedCert();
const servers = await startServers({ tlsKey: key, tlsCert: cert });
let t0 = 0; let tracing = false;
const srv = net.createServer((a) => {
  const b = net.connect({ host: '127.0.0.1', port: bport });
  if (process.env.NODELAY) { a.setNoDelay(true); b.setNoDelay(true); }
  const fwd = (from: net.Socket, to: net.Socket, dir: string) => from.on('data', (d) => { if (tracing) console.log(`${(performance.now() - t0).toFixed(1)} ${dir} ${d.length}`); setTimeout(() => to.write(d), D); });
  fwd(a, b, 'c->b'); fwd(b, a, 'b->c'); a.on('error', () => {}); b.on('error', () => {});
});
let bport = 0;
await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
const pair = await startPair({ nodeFlags: [], logLevel: 'info', startTimeoutMs: 20000, clientArgs: args, via: async (bp) => { bport = bp; return (srv.address() as net.AddressInfo).port; } });
try {
  const c = socksConnector(pair.socksPort, servers.ports.echoPort, true);
  for (let i = 0; i < 5; i++) await connectEchoMicros(c);
  for (let k = 0; k < 3; k++) {
    await sleep(300);
    tracing = true; t0 = performance.now();
    const us = await connectEchoMicros(c);
    console.log(`--- total ${(us / 1000).toFixed(1)} ms`);
    await sleep(300); tracing = false;
  }
} finally { await pair.stop(); srv.close(); await servers.close(); }
