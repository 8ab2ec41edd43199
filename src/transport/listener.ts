/**
 * The bridge's listener: the front (front.ts) with an acceptor of every transport this build has
 * (registry.ts), all sharing one port, one certificate and one decoy. createDecoyListener is the
 * same with no sessions (`postern decoy`), so it answers byte for byte as the bridge does.
 */
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import type { Decoy } from '../decoy/decoy.js';
import type { Logger } from '../log/logger.js';
import type { FrameTransport } from '../mux/transport.js';
import { BRIDGE_FEATURES, type TokenVerifier } from './auth.js';
import { createFront, type BridgeListener } from './front.js';
import type { AcceptorContext, SessionGate } from './gate.js';
import { createAcceptors } from './registry.js';
import { bridgePathProblem, type TransportName } from './uri.js';

export { notFoundResponse, type BridgeListener } from './front.js';

export interface BridgeListenerOptions {
  host: string;
  port: number;
  /** PEM key and certificate; null serves plain HTTP (loopback behind a TLS-terminating proxy). */
  tls: { keyPem: string; certPem: string } | null;
  /** The secret path. */
  path: string;
  verifier: TokenVerifier;
  limits: Limits;
  logger: Logger;
  /**
   * A client passed every check; its connection is open. Throwing here terminates it.
   * `sessionId`: the Postern-Session header (protocol.md §9.2) when the client asked for a
   * resumable session, bound into its token; null for a plain version-1 session.
   */
  onSession: (transport: FrameTransport, user: string, sessionId: string | null) => void;
  /** Called when a connection is dropped for not finishing its TLS handshake or request head in time (metrics). */
  onHandshakeTimeout?: () => void;
  /**
   * Before accepting an authenticated request carrying Postern-Session (§9.2): 'refuse' → the
   * decoy answers; 'lost' → accepted, then closed with 4001; 'ok' (default) → onSession. `proof`
   * is the Postern-Resume header, `head` the token's bytes 0..33.
   */
  admitSession?: SessionGate['admitSession'];
  /** Each refused session request to the secret path (or with a credential), by reason (a per-minute log summary). */
  onRefused?: (reason: string) => void;
  /** What everyone else gets (decoy/index.ts createDecoy). */
  decoy: Decoy;
  /** Features announced to authenticated clients (protocol.md §2.3; default BRIDGE_FEATURES; tests pass [] to play an older bridge). */
  features?: readonly string[];
  /** Which transports to serve (default: every one this build has, registry.ts). */
  transports?: readonly TransportName[];
  /** Serve HTTP/2 (ALPN h2; h2c prior knowledge without TLS) and its transport (protocol.md §12); default true. */
  http2?: boolean;
}

/** The decoy served alone (`postern decoy`): the bridge's web front, its acceptors without sessions. */
export interface DecoyListenerOptions {
  host: string;
  port: number;
  tls: { keyPem: string; certPem: string } | null;
  decoy: Decoy;
  limits: Limits;
  logger: Logger;
  /** Whose protocols to speak for the decoy (an h2 acceptor serves it over HTTP/2; default: every transport). */
  transports?: readonly TransportName[];
  /** Serve the decoy over HTTP/2 too (ALPN h2, h2c prior knowledge); default true. */
  http2?: boolean;
}

export function createBridgeListener(opts: BridgeListenerOptions): BridgeListener {
  const pathProblem = bridgePathProblem(opts.path);
  if (pathProblem !== null) throw new PosternError('E_CONFIG', pathProblem);
  return composeFront(opts, {
    path: opts.path,
    verifier: opts.verifier,
    features: opts.features ?? BRIDGE_FEATURES,
    onSession: opts.onSession,
    ...(opts.admitSession !== undefined ? { admitSession: opts.admitSession } : {}),
    ...(opts.onRefused !== undefined ? { onRefused: opts.onRefused } : {}),
  });
}

/** The decoy served alone (`postern decoy`): the same front and acceptors, with no sessions. */
export function createDecoyListener(opts: DecoyListenerOptions): BridgeListener {
  return composeFront(opts, null);
}

function composeFront(opts: DecoyListenerOptions & { onHandshakeTimeout?: () => void }, sessions: SessionGate | null): BridgeListener {
  let closing = false;
  const ctx: AcceptorContext = {
    limits: opts.limits,
    logger: opts.logger.child({ component: sessions === null ? 'decoy' : 'listener' }),
    decoy: opts.decoy,
    sessions,
    closing: () => closing,
  };
  const wanted = opts.transports;
  const front = createFront({
    host: opts.host,
    port: opts.port,
    tls: opts.tls,
    decoy: opts.decoy,
    acceptors: createAcceptors(ctx, (name) => (wanted === undefined || wanted.includes(name)) && (name !== 'h2' || opts.http2 !== false)),
    limits: opts.limits,
    logger: opts.logger,
    component: sessions === null ? 'decoy' : 'listener',
    ...(opts.onHandshakeTimeout !== undefined ? { onHandshakeTimeout: opts.onHandshakeTimeout } : {}),
  });
  return {
    listen: () => front.listen(),
    close: () => {
      closing = true;
      return front.close();
    },
    setTls: (keyPem, certPem) => front.setTls(keyPem, certPem),
  };
}
