/**
 * The client end of the WebSocket transport (protocol.md §2): on the verified stream dialSecure
 * opens, the WebSocket upgrade carrying the §3 credentials. E_AUTH_REJECTED or E_CLOCK_SKEW when
 * the bridge answers it with anything but 101 (protocol.md §3).
 */
import net from 'node:net';
import { WebSocket } from 'ws';
import { PosternError } from '../../core/errors.js';
import type { FrameTransport } from '../../mux/transport.js';
import { FEATURES_HEADER, parseFeatures } from '../auth.js';
import { credentialHeaders, dialTimeout, hostHeader, refusalError, remainingMs, type DialOptions } from '../dialer.js';
import type { TransportDialer } from '../types.js';
import type { BridgeInfo } from '../uri.js';
import { nativeMask } from './frame.js';
import { WsFrameTransport } from './ws-transport.js';

const UPGRADE_STAGE_TEXT = 'WebSocket upgrade';

/** Whether ws masks client frames natively (bufferutil loads). Never throws. */
export function nativeMaskingActive(): boolean {
  return nativeMask() !== null;
}

/** The ws transport's client end (registry.ts): the WebSocket upgrade on a verified stream. */
export const wsDialer: TransportDialer = {
  name: 'ws',
  title: 'WebSocket',
  alpn: ['http/1.1'],
  handshake: (stream, info, opts) => upgrade(info, opts, stream.socket, stream.raw, remainingMs(stream, opts.limits), stream.startedAt),
};

/** The WebSocket upgrade over the verified socket `sock`. */
function upgrade(info: BridgeInfo, opts: DialOptions, sock: net.Socket, raw: net.Socket, remaining: number, started: number): Promise<FrameTransport> {
  const { limits } = opts;
  const now = opts.now ?? Date.now;
  const log = opts.logger.child({ component: 'dialer' });
  return new Promise<FrameTransport>((resolve, reject) => {
    let settled = false;
    let ws: WebSocket | undefined;
    const fail = (err: PosternError): void => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      log.debug({ stage: 'upgrade', code: err.code }, 'dial failed');
      if (ws !== undefined) ws.terminate();
      sock.destroy();
      raw.destroy();
      reject(err);
    };
    const onAbort = (): void => fail(new PosternError('E_DIAL', 'aborted', { cause: opts.signal?.reason }));
    if (opts.signal?.aborted === true) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const h = net.isIPv6(info.host) ? `[${info.host}]` : info.host;
    const url = `${info.plain ? 'ws' : 'wss'}://${h}:${info.port}${info.path}`;
    let socket: WebSocket;
    try {
      socket = new WebSocket(url, {
        createConnection: () => sock,
        perMessageDeflate: false,
        maxPayload: limits.WS_MAX_MESSAGE_BYTES,
        skipUTF8Validation: true,
        handshakeTimeout: remaining,
        followRedirects: false,
        headers: { Host: hostHeader(info), ...credentialHeaders(info, now(), opts) },
      });
    } catch (err) {
      fail(new PosternError('E_BAD_URI', (err as Error).message, { cause: err }));
      return;
    }
    ws = socket;
    socket.on('unexpected-response', (_req, res) => fail(refusalError(res.statusCode, res.headers.date, now(), limits)));
    const onError = (err: Error): void => {
      const code = (err as NodeJS.ErrnoException).code;
      if (err.message === 'Opening handshake has timed out') {
        fail(dialTimeout(limits, UPGRADE_STAGE_TEXT));
      } else if (code !== undefined && !code.startsWith('WS_')) {
        fail(new PosternError('E_DIAL', `connection lost before the upgrade answer (${code})`, { cause: err }));
      } else {
        fail(new PosternError('E_AUTH_REJECTED', `invalid WebSocket handshake: ${err.message}`, { cause: err }));
      }
    };
    const onEarlyClose = (): void => fail(new PosternError('E_DIAL', 'connection closed before the upgrade answer'));
    let features: ReadonlySet<string> = new Set();
    socket.once('upgrade', (res) => (features = parseFeatures(res.headers[FEATURES_HEADER.toLowerCase()])));
    socket.on('error', onError);
    socket.once('close', onEarlyClose);
    socket.once('open', () => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      socket.removeListener('close', onEarlyClose);
      socket.removeListener('error', onError);
      // A client always reads (no send-queue bound): only the bridge stops reading a peer that
      // does not read its answers, so two honest peers can never both wait for each other (§5.3).
      const transport = new WsFrameTransport(socket, sock, { maxMessageBytes: limits.WS_MAX_MESSAGE_BYTES, wire: raw });
      transport.peerFeatures = features;
      log.debug({ ms: Date.now() - started }, 'bridge session open');
      resolve(transport);
    });
  });
}
