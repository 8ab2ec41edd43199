/**
 * The seam between the mux and the ways a session is carried. A transport is a pair:
 *   - a TransportDialer on the client: its handshake on the verified stream dialer.ts opens, which
 *     yields an authenticated, message-framed connection (registry.ts's Dialer picks the transport);
 *   - an Acceptor on the bridge: given connections or requests by the front (front.ts), it
 *     authenticates them (gate.ts) and hands each session's connection to the bridge.
 * Both ends yield a FrameTransport (mux/transport.ts). src/transport/registry.ts is the one place
 * that names the transports; each lives in its own folder (src/transport/ws/, …). CONTRIBUTING.md
 * ("Transports") says what a new one must implement and which tests to copy.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { FrameTransport } from '../mux/transport.js';
import type { ParsedHead } from '../decoy/http-head.js';
import type { DialOptions, SecureStream } from './dialer.js';
import type { AcceptorContext } from './gate.js';
import type { BridgeInfo, TransportName } from './uri.js';

export type { DialOptions, SecureStream } from './dialer.js';

/**
 * The client end of one transport: its handshake on a verified stream (dialer.ts dialSecure).
 */
export interface TransportDialer {
  readonly name: TransportName;
  /** How messages name it ('WebSocket'). */
  readonly title: string;
  /** The ALPN protocols this handshake runs on (ws: http/1.1): over TLS, the bridge's choice picks the transport. */
  readonly alpn: readonly string[];
  /**
   * Runs the handshake carrying the §3 credentials (dialer.ts credentialHeaders) on `stream`, within
   * what is left of DIAL_TIMEOUT_MS (remainingMs) and honouring opts.signal. Owns the stream: on
   * failure it destroys it and rejects with a PosternError (E_DIAL, E_AUTH_REJECTED, E_CLOCK_SKEW via
   * refusalError, E_BAD_URI). The transport's peerFeatures are what the bridge announced (§2.3).
   */
  handshake(stream: SecureStream, info: BridgeInfo, opts: DialOptions): Promise<FrameTransport>;
}

/** What the tunnel and the doctor are given (registry.ts bridgeDialer): opens session connections. */
export interface Dialer {
  /** Why this build cannot dial `info` (a transport it does not have), or null. Sends nothing. */
  problem(info: BridgeInfo): string | null;
  /**
   * Why the transport `info` names cannot run on the protocol the bridge's TLS front chose by ALPN
   * (`alpn`; null: none), or null when it can. Sends nothing.
   */
  alpnProblem(info: BridgeInfo, alpn: string | null): string | null;
  /**
   * Opens a session connection to the bridge `info` names: dialSecure, then the handshake of the
   * transport the link and the bridge's ALPN choice agree on. Rejects with a PosternError: E_DIAL
   * (TCP failure, timeout, abort), E_TLS, E_PIN_MISMATCH, E_AUTH_REJECTED, E_CLOCK_SKEW, E_BAD_URI.
   */
  dial(info: BridgeInfo, opts: DialOptions): Promise<FrameTransport>;
}

/** Where a connection came in (the front's view), for acceptors that need it. */
export interface AcceptedConnection {
  /** The TCP socket (the TLS socket runs on it, when there is TLS). */
  readonly raw: net.Socket;
  /** Whether the connection arrived over TLS. */
  readonly tls: boolean;
}

/** An HTTP/1.x request the front parsed (as nginx would) on a connection, offered to the acceptors in turn. */
export interface FrontRequest {
  readonly head: ParsedHead;
  /** Bytes already read past the head (the start of what follows it). */
  readonly rest: Buffer;
  /** The socket HTTP runs on (TLS or plain); paused. An acceptor that takes the request owns it from then on. */
  readonly socket: Duplex;
  readonly conn: AcceptedConnection;
}

/** The bridge end of a transport. */
export interface Acceptor {
  readonly name: TransportName;
  /**
   * ALPN protocols for which the front hands this acceptor whole TLS connections (takeConnection);
   * the bridge offers them ahead of 'http/1.1'. Empty for a transport carried in HTTP/1.1 requests.
   */
  readonly alpn: readonly string[];
  /**
   * A parsed HTTP/1.x request head: true when this acceptor took the request (and the socket: the
   * front forgets the connection), false to let the next acceptor or the decoy answer it exactly as
   * it answers any request. Absent: the acceptor takes no HTTP/1.x requests.
   */
  takeRequest?(req: FrontRequest): boolean;
  /**
   * On a listener without TLS (behind a TLS-terminating proxy): a connection whose first bytes are
   * these goes to takeConnection whole, the bytes still unread (HTTP/2's connection preface, for a
   * proxy that speaks h2c to the bridge). Absent: plain connections are HTTP/1.x only.
   */
  readonly plainPreface?: Buffer;
  /**
   * A whole connection: over TLS, one whose negotiated ALPN is in `alpn` (after the handshake);
   * without TLS, one that starts with plainPreface. The acceptor owns the socket from then on —
   * its timeouts included — and answers whatever is not a session itself (the decoy, over its
   * protocol).
   */
  takeConnection?(socket: Duplex, conn: AcceptedConnection): void;
  /** Drops every connection and session it holds (the front is closing). */
  close(): void;
}

/** Creates an acceptor for a bridge (registry.ts calls each transport's factory with this). */
export type AcceptorFactory = (ctx: AcceptorContext) => Acceptor;
