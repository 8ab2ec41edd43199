/**
 * The transports this build has: the one place that names them (the CLI aside). A new transport
 * adds its folder (src/transport/<name>/), its name in uri.ts TRANSPORT_NAMES, and one line in
 * each table here (CONTRIBUTING.md, "Transports").
 */
import { PosternError } from '../core/errors.js';
import type { AcceptorContext } from './gate.js';
import type { Acceptor, AcceptorFactory, Dialer } from './types.js';
import { transportOf, type BridgeInfo, type TransportName } from './uri.js';
import { createH2Acceptor } from './h2/acceptor.js';
import { h2Dialer } from './h2/dialer.js';
import { createWsAcceptor } from './ws/acceptor.js';
import { wsDialer } from './ws/dialer.js';

const DIALERS: Partial<Record<TransportName, Dialer>> = {
  ws: wsDialer,
  h2: h2Dialer,
};

/** The bridge serves every transport listed here, side by side on one port. */
const ACCEPTORS: Partial<Record<TransportName, AcceptorFactory>> = {
  ws: createWsAcceptor,
  h2: createH2Acceptor,
};

/** The dialer for the transport `info` names (ws when it names none); E_BAD_URI when this build has none. */
export function transportFor(info: Pick<BridgeInfo, 'transport'>): Dialer {
  const name = transportOf(info);
  const d = DIALERS[name];
  if (d === undefined) throw new PosternError('E_BAD_URI', `transport=${name} is not available in this version of postern (use transport=ws)`);
  return d;
}

/** An acceptor of every transport this build has (those `enabled` allows), for one bridge listener. */
export function createAcceptors(ctx: AcceptorContext, enabled: (name: TransportName) => boolean = () => true): Acceptor[] {
  return (Object.entries(ACCEPTORS) as Array<[TransportName, AcceptorFactory]>).filter(([name]) => enabled(name)).map(([, make]) => make(ctx));
}
