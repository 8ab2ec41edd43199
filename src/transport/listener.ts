/**
 * The bridge side of docs/protocol.md §2: an HTTPS (or, behind a TLS-terminating proxy, HTTP)
 * web front that upgrades exactly one path for holders of a valid token and hands every other
 * request — and every request it cannot parse — to the decoy website, so that a prober sees the
 * decoy and nothing else. The same front without the upgrade (createDecoyListener) serves the
 * decoy alone, byte for byte as the bridge does.
 *
 * Timeouts follow nginx: the TLS handshake and then the request head each get
 * HANDSHAKE_TIMEOUT_MS (client_header_timeout); an idle kept-alive connection
 * HTTP_KEEPALIVE_TIMEOUT_MS (keepalive_timeout); after a `Connection: close` answer the peer gets
 * HTTP_CLOSE_LINGER_MS to close its side (lingering_timeout). A timeout closes without an answer.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import type { Duplex, Readable } from 'node:stream';
import { WebSocketServer } from 'ws';
import { PosternError } from '../core/errors.js';
import { listenTcp } from '../core/listen.js';
import { sendQueueBound, type Limits } from '../core/limits.js';
import { createBuiltinDecoy } from '../decoy/builtin.js';
import { errorPage, serializeHead, type Decoy, type DecoyErrorKind, type DecoyResponse } from '../decoy/decoy.js';
import type { Logger } from '../log/logger.js';
import type { FrameTransport } from '../mux/transport.js';
import { RESUME_HEADER, RESUME_PROOF_RE, SESSION_HEADER, SESSION_ID_RE, type TokenVerifier } from './auth.js';

/** §9.2: the close code for an upgrade naming a session the bridge cannot resume (mux/resume.ts SESSION_LOST_CLOSE). */
const SESSION_LOST_CODE = 4001;
import { bridgePathProblem } from './uri.js';
import { WsFrameTransport } from './ws-transport.js';

export interface BridgeListenerOptions {
  host: string;
  port: number;
  /** PEM key and certificate; null serves plain HTTP (loopback behind a TLS-terminating proxy). */
  tls: { keyPem: string; certPem: string } | null;
  /** The secret WebSocket path. */
  path: string;
  verifier: TokenVerifier;
  limits: Limits;
  logger: Logger;
  /** A client passed every check; the transport is open. Throwing here terminates it. */
  /**
   * `sessionId`: the Postern-Session header (protocol.md §9.2) when the client asked for a
   * resumable session, bound into its token; null for a plain version-1 session.
   */
  onSession: (transport: FrameTransport, user: string, sessionId: string | null) => void;
  /** Called when a connection is dropped for not finishing its TLS handshake or request head in time (metrics). */
  onHandshakeTimeout?: () => void;
  /**
   * Before the 101 of an authenticated upgrade carrying Postern-Session (§9.2): 'refuse' → the
   * decoy answers; 'lost' → 101, then close 4001; 'ok' (default) → onSession. `proof` is the
   * Postern-Resume header, `head` the token's bytes 0..33.
   */
  admitSession?: (user: string, sessionId: string, proof: string | undefined, head: Buffer) => 'ok' | 'lost' | 'refuse';
  /** Each refused upgrade to the secret path (or with a credential), by reason (a per-minute log summary). */
  onRefused?: (reason: string) => void;
  /** What everyone else gets (default: the built-in site). */
  decoy?: Decoy;
}

/** The decoy served alone (`postern decoy`): the bridge's web front without the upgrade. */
export interface DecoyListenerOptions {
  host: string;
  port: number;
  tls: { keyPem: string; certPem: string } | null;
  decoy: Decoy;
  limits: Limits;
  logger: Logger;
}

export interface BridgeListener {
  listen(): Promise<{ host: string; port: number }>;
  /** Stops listening and drops every connection, sessions included (drain sessions first). */
  close(): Promise<void>;
  /** Replaces key and certificate for new connections (renewal). */
  setTls(keyPem: string, certPem: string): void;
}

/** The 404 the built-in decoy gives a refused upgrade (`Connection: close`), as raw bytes. */
export function notFoundResponse(date: Date, headOnly: boolean): Buffer {
  const r = errorPage(404, { keepAlive: false, head: headOnly, now: date.getTime() });
  return r.body instanceof Buffer ? Buffer.concat([serializeHead(r), r.body]) : serializeHead(r);
}

const WS_KEY_RE = /^[+/0-9A-Za-z]{22}==$/;

/** Why `req` is not a well-formed RFC 6455 §4.1 upgrade as a Postern client sends it, or null. */
function upgradeProblem(req: http.IncomingMessage): string | null {
  if (req.httpVersion !== '1.1') return 'http_version';
  if (req.method !== 'GET') return 'method';
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') return 'upgrade_header';
  const key = req.headers['sec-websocket-key'];
  if (key === undefined || !WS_KEY_RE.test(key)) return 'ws_key';
  if (req.headers['sec-websocket-version'] !== '13') return 'ws_version';
  if (req.headers['sec-websocket-protocol'] !== undefined) return 'ws_protocol';
  return null;
}

/** The token from `Authorization: Bearer <token>`; '' for another scheme, undefined when absent. */
function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer +([^\s]+) *$/i.exec(header);
  return m?.[1] ?? '';
}

export function createBridgeListener(opts: BridgeListenerOptions): BridgeListener {
  const pathProblem = bridgePathProblem(opts.path);
  if (pathProblem !== null) throw new PosternError('E_CONFIG', pathProblem);
  const decoy = opts.decoy ?? createBuiltinDecoy({ siteTimeMs: Date.now() });
  return createFront(
    { ...opts, decoy },
    { path: opts.path, verifier: opts.verifier, onSession: opts.onSession, onHandshakeTimeout: opts.onHandshakeTimeout, admitSession: opts.admitSession, onRefused: opts.onRefused },
  );
}

export function createDecoyListener(opts: DecoyListenerOptions): BridgeListener {
  return createFront(opts, null);
}

interface Upgrade {
  path: string;
  verifier: TokenVerifier;
  onSession: (transport: FrameTransport, user: string, sessionId: string | null) => void;
  onHandshakeTimeout?: (() => void) | undefined;
  admitSession?: BridgeListenerOptions['admitSession'];
  onRefused?: ((reason: string) => void) | undefined;
}

/** Per-connection state, keyed by the TCP socket. */
interface Conn {
  readonly raw: net.Socket;
  /** The socket HTTP runs on: the TLS socket once the handshake is done, else raw. */
  top: Duplex;
  timer: NodeJS.Timeout | undefined;
  /** Requests answered through http.ServerResponse and not finished yet. */
  inflight: number;
  /** Raw answers waiting for those to be sent first (pipelining keeps answers in order). */
  waiting: Array<() => void>;
  /** Aborted when the connection closes (made on first use). */
  gone: AbortController | undefined;
}

function createFront(opts: DecoyListenerOptions, upgrade: Upgrade | null): BridgeListener {
  const { limits, decoy } = opts;
  const log = opts.logger.child({ component: upgrade === null ? 'decoy' : 'listener' });

  const httpOptions: http.ServerOptions = {
    maxHeaderSize: limits.HTTP_MAX_HEADER_BYTES,
    // Our own timers below do the work; Node's are backstops that never fire first.
    headersTimeout: limits.HANDSHAKE_TIMEOUT_MS + 1_000,
    requestTimeout: 0,
    keepAliveTimeout: 0,
    // Requests without Host go to the decoy (nginx answers 400) instead of Node's own 400.
    requireHostHeader: false,
    noDelay: true,
  };
  const tlsBase: tls.SecureContextOptions & tls.TlsOptions = {
    minVersion: 'TLSv1.2',
    ALPNProtocols: ['http/1.1'],
    handshakeTimeout: limits.HANDSHAKE_TIMEOUT_MS + 1_000,
  };
  const server: http.Server =
    opts.tls === null
      ? http.createServer(httpOptions)
      : https.createServer({ ...httpOptions, ...tlsBase, key: opts.tls.keyPem, cert: opts.tls.certPem });
  server.keepAliveTimeout = 0;

  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: limits.WS_MAX_MESSAGE_BYTES,
    skipUTF8Validation: true,
    clientTracking: true,
    handleProtocols: () => false,
  });

  // ── connection state and timers ──
  const conns = new Map<net.Socket, Conn>();
  let closing = false;

  const rawOf = (s: Duplex): net.Socket => ((s as { _parent?: net.Socket })._parent ?? s) as net.Socket;
  const connOf = (s: Duplex): Conn | undefined => conns.get(rawOf(s));
  const kill = (c: Conn): void => {
    c.top.destroy();
    c.raw.destroy();
  };
  const arm = (c: Conn | undefined, ms: number, onFire?: () => void): void => {
    if (c === undefined) return;
    clearTimeout(c.timer);
    c.timer = setTimeout(() => {
      onFire?.();
      kill(c);
    }, ms);
  };
  const disarm = (c: Conn | undefined): void => {
    if (c !== undefined) clearTimeout(c.timer);
  };
  /** Runs `fn` once every answer to an earlier request on the connection has been sent. */
  const afterPending = (c: Conn | undefined, fn: () => void): void => {
    if (c === undefined || c.inflight === 0) fn();
    else c.waiting.push(fn);
  };

  server.on('connection', (s: net.Socket) => {
    if (closing) {
      s.destroy();
      return;
    }
    const c: Conn = { raw: s, top: s, timer: undefined, inflight: 0, waiting: [], gone: undefined };
    conns.set(s, c);
    s.on('error', () => s.destroy());
    s.once('close', () => {
      clearTimeout(c.timer);
      conns.delete(s);
      c.gone?.abort();
    });
    // The TLS handshake (or, without TLS, the first request head) must be done in time.
    arm(c, limits.HANDSHAKE_TIMEOUT_MS, upgrade?.onHandshakeTimeout);
  });
  server.on('secureConnection', (s: tls.TLSSocket) => {
    const c = connOf(s);
    if (c === undefined) {
      s.destroy();
      return;
    }
    c.top = s;
    s.on('error', () => s.destroy());
    s.once('close', () => c.raw.destroy());
    arm(c, limits.HANDSHAKE_TIMEOUT_MS, upgrade?.onHandshakeTimeout); // now the request head
  });
  server.on('tlsClientError', (_err: Error, s: tls.TLSSocket) => s.destroy());

  // ── writing the decoy's answers ──

  /** Raw answer on a socket HTTP no longer parses (upgrade, CONNECT, parse error); then close. */
  const writeRaw = (socket: Duplex, r: DecoyResponse): void => {
    const c = connOf(socket);
    if (socket.destroyed || socket.writableEnded) {
      if (r.body !== null && !Buffer.isBuffer(r.body)) r.body.destroy();
      return;
    }
    socket.write(serializeHead(r));
    if (r.body === null) socket.end();
    else if (Buffer.isBuffer(r.body)) socket.end(r.body);
    else {
      const body: Readable = r.body;
      body.on('error', () => socket.destroy());
      socket.once('close', () => body.destroy());
      body.pipe(socket);
    }
    // The whole answer must be taken in the linger time plus the keepalive time at most.
    arm(c, r.body === null || Buffer.isBuffer(r.body) ? limits.HTTP_CLOSE_LINGER_MS : limits.HTTP_KEEPALIVE_TIMEOUT_MS);
    socket.once('finish', () => arm(c, limits.HTTP_CLOSE_LINGER_MS));
  };

  const writeRes = (res: http.ServerResponse, r: DecoyResponse): void => {
    if (res.destroyed || res.writableEnded) {
      if (r.body !== null && !Buffer.isBuffer(r.body)) r.body.destroy();
      return;
    }
    res.sendDate = false;
    const flat: string[] = [];
    for (const [k, v] of r.headers) flat.push(k, v);
    res.writeHead(r.status, r.reason, flat);
    if (r.body === null) res.end();
    else if (Buffer.isBuffer(r.body)) res.end(r.body);
    else {
      const body: Readable = r.body;
      body.on('error', () => res.destroy());
      res.once('close', () => body.destroy());
      body.pipe(res);
    }
  };

  /** Aborts when `socket` closes, so that a decoy stops work nobody will receive. */
  const goneSignal = (socket: Duplex): AbortSignal => {
    const c = connOf(socket);
    if (c === undefined || socket.destroyed) return AbortSignal.abort();
    c.gone ??= new AbortController();
    return c.gone.signal;
  };

  const fallback = (method: string | undefined): DecoyResponse =>
    errorPage(500, { keepAlive: false, head: method === 'HEAD' });

  /** Hands a request HTTP already parsed, on a socket we now own, to the decoy; answers raw, closes. */
  const decoyRaw = (req: http.IncomingMessage, socket: Duplex): void => {
    decoy
      .handle({ method: req.method ?? 'GET', url: req.url ?? '/', httpVersion: req.httpVersion, headers: req.headers, body: null, signal: goneSignal(socket) }, false)
      .catch((): DecoyResponse => fallback(req.method))
      .then((r: DecoyResponse) => afterPending(connOf(socket), () => writeRaw(socket, r)), () => socket.destroy());
  };

  const hasBody = (req: http.IncomingMessage): boolean =>
    req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');

  // ── ordinary requests: the decoy answers, the connection may stay open (keep-alive) ──
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const c = connOf(req.socket);
    disarm(c);
    if (c !== undefined) c.inflight++;
    const body = hasBody(req);
    const keepAlive = !closing && req.httpVersion === '1.1' && !/(^|,)\s*close\s*($|,)/i.test(req.headers.connection ?? '') && !body;
    res.once('close', () => {
      if (c === undefined) return;
      c.inflight--;
      if (c.inflight === 0 && !req.socket.destroyed) {
        arm(c, keepAlive ? limits.HTTP_KEEPALIVE_TIMEOUT_MS : limits.HTTP_CLOSE_LINGER_MS);
        for (const fn of c.waiting.splice(0)) fn();
      }
    });
    if (c !== undefined) arm(c, limits.HTTP_KEEPALIVE_TIMEOUT_MS + limits.DECOY_PROXY_TIMEOUT_MS); // bound on the answer itself
    decoy
      .handle(
        { method: req.method ?? 'GET', url: req.url ?? '/', httpVersion: req.httpVersion, headers: req.headers, body: body ? req : null, signal: goneSignal(req.socket) },
        keepAlive,
      )
      .catch((): DecoyResponse => fallback(req.method))
      .then(
        (r: DecoyResponse) => {
          if (body && !req.readableEnded && r.body !== req) req.resume(); // discard what the decoy did not read
          writeRes(res, r);
        },
        () => res.destroy(),
      );
  };
  server.on('request', onRequest);
  server.on('checkContinue', onRequest);
  server.on('checkExpectation', onRequest);

  // ── requests HTTP cannot parse: nginx's 400 (Connection: close); timeouts close silently ──
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const c = connOf(socket);
    disarm(c);
    const code = err.code ?? '';
    if (!code.startsWith('HPE_') || socket.destroyed || !socket.writable) {
      socket.destroy();
      return;
    }
    const kind: DecoyErrorKind = code === 'HPE_HEADER_OVERFLOW' ? 'header_too_large' : 'bad_request';
    // A parse error behind a pipelined request is answered after that request (nginx order).
    afterPending(c, () => writeRaw(socket, decoy.errorResponse(kind)));
  });

  server.on('connect', (_req: http.IncomingMessage, socket: Duplex) => {
    disarm(connOf(socket));
    socket.on('error', () => socket.destroy());
    writeRaw(socket, decoy.errorResponse('bad_request'));
  });

  // Should ws itself find fault with an upgrade we let through, the decoy answers it too.
  wss.on('wsClientError', (_err: Error, socket: Duplex, req: http.IncomingMessage) => {
    log.debug({ reason: 'ws_rejected' }, 'upgrade refused');
    upgrade?.onRefused?.('ws_rejected');
    decoyRaw(req, socket);
  });

  // ── upgrades: the one way in; every refusal is the decoy's answer to the same request ──
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const c = connOf(socket);
    disarm(c);
    socket.on('error', () => socket.destroy());
    if (upgrade === null) {
      decoyRaw(req, socket);
      return;
    }
    const refuse = (reason: string): void => {
      log.debug({ reason }, 'upgrade refused');
      upgrade.onRefused?.(reason);
      decoyRaw(req, socket);
    };
    if (closing) return refuse('closing');
    if (req.url !== upgrade.path) return refuse('path');
    const problem = upgradeProblem(req);
    if (problem !== null) return refuse(problem);
    // A resumable session names itself (§9.2); its id is bound into the token's MAC.
    const sessionHeader = req.headers[SESSION_HEADER.toLowerCase()];
    if (sessionHeader !== undefined && (typeof sessionHeader !== 'string' || !SESSION_ID_RE.test(sessionHeader))) {
      return refuse('session_id');
    }
    const resumeHeader = req.headers[RESUME_HEADER.toLowerCase()];
    if (resumeHeader !== undefined && (typeof resumeHeader !== 'string' || sessionHeader === undefined || !RESUME_PROOF_RE.test(resumeHeader))) {
      return refuse('resume_proof');
    }
    const auth = upgrade.verifier.verify(bearerToken(req.headers.authorization), upgrade.path, sessionHeader);
    if (!auth.ok) return refuse(auth.reason);
    const admission = sessionHeader === undefined ? 'ok' : (upgrade.admitSession?.(auth.user, sessionHeader, resumeHeader, auth.head) ?? 'ok');
    if (admission === 'refuse') return refuse('resume_proof');
    if (admission === 'lost') {
      wss.handleUpgrade(req, socket, head, (ws) => ws.close(SESSION_LOST_CODE, 'session unknown'));
      return;
    }

    // From here the session's own keepalive bounds the connection (no timer is armed).
    wss.handleUpgrade(req, socket, head, (ws) => {
      const transport = new WsFrameTransport(ws, socket, sendQueueBound(limits));
      log.debug({ user: auth.user }, 'session accepted');
      try {
        upgrade.onSession(transport, auth.user, sessionHeader ?? null);
      } catch (err) {
        log.error({ err }, 'onSession threw; dropping the session');
        transport.terminate();
      }
    });
  });

  const dropAll = (): void => {
    for (const ws of wss.clients) ws.terminate();
    for (const c of conns.values()) kill(c);
    wss.close();
    decoy.close();
  };

  return {
    listen() {
      return listenTcp(server, opts.host, opts.port).then(
        (addr) => {
          server.on('error', (err) => log.error({ err }, 'listener error'));
          return addr;
        },
        (err: NodeJS.ErrnoException) => {
          throw new PosternError('E_CONFIG', `cannot listen on ${opts.host}:${opts.port} (${err.code ?? err.message})`, { cause: err });
        },
      );
    },

    close() {
      closing = true;
      return new Promise<void>((resolve) => {
        if (!server.listening) {
          dropAll();
          resolve();
          return;
        }
        server.close(() => resolve());
        dropAll();
      });
    },

    setTls(keyPem: string, certPem: string) {
      if (opts.tls === null) throw new PosternError('E_CONFIG', 'this listener serves plain HTTP; it has no certificate');
      (server as https.Server).setSecureContext({ ...tlsBase, key: keyPem, cert: certPem });
    },
  };
}
