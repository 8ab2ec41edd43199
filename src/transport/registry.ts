/**
 * The transports this build has: the one place that names them (the CLI aside). A new transport
 * adds its folder (src/transport/<name>/), its name in uri.ts TRANSPORT_NAMES, and one line in
 * each table here (CONTRIBUTING.md, "Transports").
 */
import { PosternError } from '../core/errors.js';
import { dialSecure } from './dialer.js';
import type { AcceptorContext } from './gate.js';
import type { Acceptor, AcceptorFactory, Dialer, TransportDialer } from './types.js';
import { DEFAULT_TRANSPORT, transportOf, type BridgeInfo, type TransportName } from './uri.js';
import { createH2Acceptor } from './h2/acceptor.js';
import { h2Dialer } from './h2/dialer.js';
import { createWsAcceptor } from './ws/acceptor.js';
import { wsDialer } from './ws/dialer.js';

const DIALERS: Partial<Record<TransportName, TransportDialer>> = {
  ws: wsDialer,
  h2: h2Dialer,
};

/** The bridge serves every transport listed here, side by side on one port (in this order). */
const ACCEPTORS: Partial<Record<TransportName, AcceptorFactory>> = {
  ws: createWsAcceptor,
  h2: createH2Acceptor,
};

/** How errors name ALPN protocols. */
const ALPN_TITLES: Readonly<Record<string, string>> = { h2: 'HTTP/2', 'http/1.1': 'HTTP/1.1' };

/** Why this build cannot dial `info`, or null. */
function dialProblem(info: Pick<BridgeInfo, 'transport'>): string | null {
  const name = transportOf(info);
  return DIALERS[name] === undefined ? `transport=${name} is not available in this version of postern (use transport=${DEFAULT_TRANSPORT})` : null;
}

/**
 * Which transport runs on a stream whose ALPN is `alpn` (null: plain, or TLS without ALPN, where the
 * link alone says). Over TLS the bridge's choice decides: a link with the default transport follows
 * it to whichever transport runs on that protocol; a link that names a transport insists on it
 * (E_TLS, before a byte is sent).
 */
export function chooseDialer(info: Pick<BridgeInfo, 'transport'>, alpn: string | null): TransportDialer | PosternError {
  const name = transportOf(info);
  const wanted = DIALERS[name]!;
  if (alpn === null || wanted.alpn.includes(alpn)) return wanted;
  if (name === DEFAULT_TRANSPORT) {
    const other = Object.values(DIALERS).find((d) => d.alpn.includes(alpn));
    if (other !== undefined) return other;
  }
  const title = (p: string): string => ALPN_TITLES[p] ?? p;
  return new PosternError(
    'E_TLS',
    `the bridge's front chose ${title(alpn)} (ALPN ${alpn}); the ${wanted.title} transport needs ${wanted.alpn.map(title).join(' or ')} there (transport=${name})`,
  );
}

/** The Dialer the tunnel and the doctor are given. */
export const bridgeDialer: Dialer = {
  problem: dialProblem,
  alpnProblem(info, alpn) {
    const d = chooseDialer(info, alpn);
    return d instanceof PosternError ? d.message : null;
  },
  async dial(info, opts) {
    const problem = dialProblem(info);
    if (problem !== null) throw new PosternError('E_BAD_URI', problem);
    const stream = await dialSecure(info, opts);
    const d = chooseDialer(info, stream.alpn);
    if (d instanceof PosternError) {
      stream.socket.destroy();
      stream.raw.destroy();
      throw d;
    }
    return d.handshake(stream, info, opts);
  },
};

/** Shorthand for bridgeDialer.dial. */
export const dialBridge: Dialer['dial'] = (info, opts) => bridgeDialer.dial(info, opts);

/** An acceptor of each transport this build has (those `enabled` names), for one listener. */
export function createAcceptors(ctx: AcceptorContext, enabled: (name: TransportName) => boolean = () => true): Acceptor[] {
  const out: Acceptor[] = [];
  for (const [name, make] of Object.entries(ACCEPTORS) as Array<[TransportName, AcceptorFactory]>) if (enabled(name)) out.push(make(ctx));
  return out;
}
