/**
 * The bridge side of docs/protocol.md §2: an HTTPS (or, behind a TLS-terminating proxy, HTTP)
 * server that upgrades exactly one path for holders of a valid token and answers everything else
 * with the same plain 404 an ordinary web server gives.
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import type { Logger } from '../log/logger.js';
import type { FrameTransport } from '../mux/transport.js';
import type { TokenVerifier } from './auth.js';
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
  onSession: (transport: FrameTransport, user: string) => void;
}

export interface BridgeListener {
  listen(): Promise<{ host: string; port: number }>;
  /** Stops listening and drops every connection, sessions included (drain sessions first). */
  close(): Promise<void>;
  /** Replaces key and certificate for new connections (renewal). */
  setTls(keyPem: string, certPem: string): void;
}

/**
 * After a 404 with `Connection: close`, how long a peer that keeps its side open is given before
 * the socket is destroyed (nginx's lingering_timeout is 5 s).
 */
const NOT_FOUND_LINGER_MS = 5_000;

/** The body nginx sends for a missing page (server_tokens off). */
const NOT_FOUND_BODY = Buffer.from(
  '<html>\r\n' +
    '<head><title>404 Not Found</title></head>\r\n' +
    '<body>\r\n' +
    '<center><h1>404 Not Found</h1></center>\r\n' +
    '<hr><center>nginx</center>\r\n' +
    '</body>\r\n' +
    '</html>\r\n',
  'latin1',
);

/**
 * The one 404 the bridge ever sends, as raw bytes: status line, headers and (unless HEAD) body.
 * Every refusal — a plain request on any path, a rejected upgrade — is this response.
 */
export function notFoundResponse(date: Date, headOnly: boolean): Buffer {
  const head =
    'HTTP/1.1 404 Not Found\r\n' +
    'Server: nginx\r\n' +
    `Date: ${date.toUTCString()}\r\n` +
    'Content-Type: text/html\r\n' +
    `Content-Length: ${NOT_FOUND_BODY.length}\r\n` +
    'Connection: close\r\n' +
    '\r\n';
  const headBuf = Buffer.from(head, 'latin1');
  return headOnly ? headBuf : Buffer.concat([headBuf, NOT_FOUND_BODY]);
}

/** Writes the 404 on the connection and closes it. Used by every refusal path. */
function sendNotFound(socket: Duplex, method: string | undefined): void {
  if (socket.destroyed || socket.writableEnded) return;
  socket.end(notFoundResponse(new Date(), method === 'HEAD'));
  const s = socket as Partial<net.Socket>;
  if (typeof s.setTimeout === 'function') s.setTimeout(NOT_FOUND_LINGER_MS, () => socket.destroy());
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
  const { limits, verifier, path, onSession } = opts;
  const log = opts.logger.child({ component: 'listener' });
  const pathProblem = bridgePathProblem(path);
  if (pathProblem !== null) throw new PosternError('E_CONFIG', pathProblem);

  const httpOptions: http.ServerOptions = {
    maxHeaderSize: limits.HTTP_MAX_HEADER_BYTES,
    headersTimeout: limits.HANDSHAKE_TIMEOUT_MS,
    requestTimeout: limits.HANDSHAKE_TIMEOUT_MS,
    // Answer a request without Host with the same 404 instead of Node's own 400.
    requireHostHeader: false,
    noDelay: true,
  };
  const tlsBase: tls.SecureContextOptions & tls.TlsOptions = {
    minVersion: 'TLSv1.2',
    ALPNProtocols: ['http/1.1'],
    handshakeTimeout: limits.HANDSHAKE_TIMEOUT_MS,
  };
  const server: http.Server =
    opts.tls === null
      ? http.createServer(httpOptions)
      : https.createServer({ ...httpOptions, ...tlsBase, key: opts.tls.keyPem, cert: opts.tls.certPem });

  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: limits.WS_MAX_MESSAGE_BYTES,
    skipUTF8Validation: true,
    clientTracking: true,
    handleProtocols: () => false,
  });
  // Should ws itself find fault with an upgrade we let through, it answers with our 404 too.
  wss.on('wsClientError', (_err: Error, socket: Duplex, req: http.IncomingMessage) => {
    log.debug({ reason: 'ws_rejected' }, 'upgrade refused');
    sendNotFound(socket, req.method);
  });

  /** Every connection, raw and TLS, so that close() can drop them all. */
  const sockets = new Set<Duplex>();
  const track = (s: Duplex): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  let closing = false;

  server.on('connection', (s: net.Socket) => {
    if (closing) {
      s.destroy();
      return;
    }
    track(s);
    s.on('error', () => s.destroy());
  });
  server.on('secureConnection', (s: tls.TLSSocket) => track(s));
  server.on('tlsClientError', (_err: Error, s: tls.TLSSocket) => s.destroy());
  server.on('clientError', (_err: Error, s: Duplex) => s.destroy());

  const refuseRequest = (req: http.IncomingMessage): void => sendNotFound(req.socket, req.method);
  server.on('request', refuseRequest);
  server.on('checkContinue', refuseRequest);
  server.on('checkExpectation', refuseRequest);
  server.on('connect', (req: http.IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    sendNotFound(socket, req.method);
  });

  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const refuse = (reason: string): void => {
      log.debug({ reason }, 'upgrade refused');
      sendNotFound(socket, req.method);
    };
    if (closing) return refuse('closing');
    if (req.url !== path) return refuse('path');
    const problem = upgradeProblem(req);
    if (problem !== null) return refuse(problem);
    const auth = verifier.verify(bearerToken(req.headers.authorization), path);
    if (!auth.ok) return refuse(auth.reason);

    wss.handleUpgrade(req, socket, head, (ws) => {
      const transport = new WsFrameTransport(ws, socket);
      log.debug({ user: auth.user }, 'session accepted');
      try {
        onSession(transport, auth.user);
      } catch (err) {
        log.error({ err }, 'onSession threw; dropping the session');
        transport.terminate();
      }
    });
  });

  return {
    listen() {
      return new Promise((resolve, reject) => {
        const onError = (err: NodeJS.ErrnoException): void => {
          reject(new PosternError('E_CONFIG', `cannot listen on ${opts.host}:${opts.port} (${err.code ?? err.message})`, { cause: err }));
        };
        server.once('error', onError);
        server.listen({ host: opts.host, port: opts.port }, () => {
          server.removeListener('error', onError);
          server.on('error', (err) => log.error({ err }, 'listener error'));
          const addr = server.address() as net.AddressInfo;
          resolve({ host: addr.address, port: addr.port });
        });
      });
    },

    close() {
      closing = true;
      return new Promise<void>((resolve) => {
        if (!server.listening) {
          for (const s of sockets) s.destroy();
          for (const ws of wss.clients) ws.terminate();
          wss.close();
          resolve();
          return;
        }
        server.close(() => resolve());
        for (const ws of wss.clients) ws.terminate();
        for (const s of sockets) s.destroy();
        wss.close();
      });
    },

    setTls(keyPem: string, certPem: string) {
      if (opts.tls === null) throw new PosternError('E_CONFIG', 'this listener serves plain HTTP; it has no certificate');
      (server as https.Server).setSecureContext({ ...tlsBase, key: keyPem, cert: certPem });
    },
  };
}
