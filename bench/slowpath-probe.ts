// temporary experiment
import { FaultyRelay } from '../test/helpers/faulty-relay.js';
import { startPair } from './daemons.js';
import { connectEchoMicros, socksConnector } from './measure.js';
import { startServers } from './server-host.js';
import { selfSignedCert } from './certs.js';
import { median, quantile, sleep } from './stats.js';
const D = Number(process.env.D ?? 25);
const args = (process.env.ARGS ?? '').split(' ').filter(Boolean);
const { key, cert } = selfSignedCert();
const servers = await startServers({ tlsKey: key, tlsCert: cert });
let relay: FaultyRelay | null = null;
const pair = await startPair({ nodeFlags: [], logLevel: process.env.LL ?? 'info', startTimeoutMs: 20000, clientArgs: args, via: async (bp) => { relay = new FaultyRelay({ target: bp }); relay.delayMs = D; return relay.listen(); } });
try {
  const c = socksConnector(pair.socksPort, servers.ports.echoPort, true);
  for (let i = 0; i < 5; i++) await connectEchoMicros(c);
  const xs: number[] = [];
  for (let i = 0; i < Number(process.env.N ?? 20); i++) { xs.push(await connectEchoMicros(c) / 1000); await sleep(20); }
  console.log(`D=${D} args=${args} p50 ${median(xs).toFixed(1)} ms p90 ${quantile(xs, 0.9).toFixed(1)} ms  (RTT ${2 * D}) samples ${xs.map((x) => x.toFixed(0)).join(' ')}`);
} finally { await pair.stop(); await relay!.close(); await servers.close(); }
