/**
 * The bridge end of the WebSocket transport (protocol.md §2): an HTTP/1.1 GET to the secret path
 * with a well-formed RFC 6455 upgrade and a valid token becomes a session; anything else is left to
 * the decoy (the front answers it). Every 101 says what this bridge accepts beyond version 1 (§2.3);
 * only clients that passed authentication ever see a 101, so it tells a prober nothing.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { sendQueueBound } from '../../core/limits.js';
import { serializeHead } from '../../decoy/decoy.js';
import { FEATURES_HEADER } from '../auth.js';
import { admit, handOver, SESSION_LOST_CODE, type AcceptorContext } from '../gate.js';
import type { Acceptor, FrontRequest } from '../types.js';
import { WsFrameTransport } from './ws-transport.js';

const WS_KEY_RE = /^[+/0-9A-Za-z]{22}==$/;

/** Why `req` is not a well-formed RFC 6455 §4.1 upgrade as a Postern client sends it, or null. */
export function upgradeProblem(req: { httpVersion: string; method: string; headers: Readonly<Record<string, string | undefined>> }): string | null {
  if (req.httpVersion !== '1.1') return 'http_version';
  if (req.method !== 'GET') return 'method';
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') return 'upgrade_header';
  const key = req.headers['sec-websocket-key'];
  if (key === undefined || !WS_KEY_RE.test(key)) return 'ws_key';
  if (req.headers['sec-websocket-version'] !== '13') return 'ws_version';
  if (req.headers['sec-websocket-protocol'] !== undefined) return 'ws_protocol';
  return null;
}

export function createWsAcceptor(ctx: AcceptorContext): Acceptor {
  const { limits, decoy } = ctx;
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: limits.WS_MAX_MESSAGE_BYTES,
    skipUTF8Validation: true,
    clientTracking: true,
    handleProtocols: () => false,
  });
  const features = ctx.sessions?.features ?? [];
  if (features.length > 0) wss.on('headers', (headers: string[]) => void headers.push(`${FEATURES_HEADER}: ${features.join(', ')}`));

  // Should ws itself find fault with an upgrade we let through (upgradeProblem checks more than it
  // does, so this is a backstop), the decoy answers it and the connection closes.
  wss.on('wsClientError', (_err: Error, socket: Duplex, req: http.IncomingMessage) => {
    ctx.logger.debug({ reason: 'ws_rejected' }, 'upgrade refused');
    ctx.sessions?.onRefused?.('ws_rejected');
    void decoy
      .handle({ method: req.method ?? 'GET', url: req.url ?? '/', httpVersion: req.httpVersion, headers: req.headers, body: null }, false)
      .then((r) => {
        if (socket.destroyed) return;
        socket.write(serializeHead(r));
        if (r.body === null || Buffer.isBuffer(r.body)) socket.end(r.body ?? undefined);
        else r.body.pipe(socket);
      }, () => socket.destroy());
  });

  return {
    name: 'ws',
    alpn: [],
    takeRequest({ head, rest, socket, conn }: FrontRequest): boolean {
      // Not an upgrade (or no sessions here): the decoy's, and not counted as a refusal.
      if (head.headers.upgrade === undefined || ctx.sessions === null) return false;
      const a = admit(ctx, head.url, head.headers, () => upgradeProblem(head));
      if (!a.ok) return false;
      // From here the session's own keepalive bounds the connection (the front arms no timer).
      const req = { method: head.method, url: head.url, httpVersion: head.httpVersion, headers: head.headers, socket } as unknown as http.IncomingMessage;
      socket.resume();
      if (a.lost) {
        wss.handleUpgrade(req, socket, rest, (ws) => ws.close(SESSION_LOST_CODE, 'session unknown'));
        return true;
      }
      wss.handleUpgrade(req, socket, rest, (ws) => {
        // The TCP socket's counts: what a TALLY reports of this connection (§9.8.1).
        const transport = new WsFrameTransport(ws, socket, {
          maxMessageBytes: limits.WS_MAX_MESSAGE_BYTES,
          sendQueueMaxBytes: sendQueueBound(limits),
          server: true,
          wire: conn.raw,
        });
        handOver(ctx, transport, a);
      });
      return true;
    },
    close(): void {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    },
  };
}
