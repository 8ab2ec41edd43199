/**
 * The client side of the HTTP/2 transport's stream-one mode (docs/protocol.md §12.2): on a
 * verified TLS connection that negotiated h2 (or, on loopback, h2c prior knowledge), one
 * `POST <path>` whose request body carries the client's records and whose response body the
 * bridge's. Resolves once the bridge answered 200; any other answer is a refusal.
 */
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { PosternError } from '../../core/errors.js';
import type { Limits } from '../../core/limits.js';
import type { FrameTransport } from '../../mux/transport.js';
import { FEATURES_HEADER, parseFeatures } from '../auth.js';
import { credentialHeaders, dialSecure, hostHeader, refusalError, remainingMs, type DialOptions, type SecureStream } from '../dialer.js';
import type { TransportDialer } from '../types.js';
import type { BridgeInfo } from '../uri.js';
import { encodePad, randomPadLength } from './codec.js';
import { H2FrameTransport, type H2TransportOptions } from './frame-transport.js';
import { PADDING_HEADER, paddingValue } from './padding.js';
import { ClientPacketPipe, END_HEADER, PACKET_HEADER, SEQ_HEADER, newPacketKey, packetBinding } from './packet.js';
import type { RecordCappable } from '../record-cap.js';
import { wedgeCheck } from './wedge.js';

/** A browser-like client SETTINGS (Chromium's values): a large window, no push. */
export const CLIENT_H2_SETTINGS: http2.Settings = {
  headerTableSize: 65_536,
  enablePush: false,
  initialWindowSize: 6_291_456,
  maxHeaderListSize: 262_144,
};

export interface StreamOneRequest {
  /** `:scheme`: https over TLS, http over a plain loopback connection. */
  scheme: 'https' | 'http';
  /** `:authority` (what HTTP/1.1 sends as Host). */
  authority: string;
  path: string;
  /** Authorization, Postern-Session, Postern-Resume (protocol.md §3, §9.2). */
  headers: Record<string, string>;
}

/** Why the bridge refused: its status and Date, for the caller to tell a wrong clock apart. */
export class H2RefusedError extends Error {
  constructor(
    readonly status: number,
    readonly date: string | undefined,
  ) {
    super(`bridge answered ${status}`);
  }
}

export interface StreamOneOptions {
  limits: Limits;
  signal: AbortSignal;
  wire?: { readonly bytesRead: number; readonly bytesWritten: number };
  /** The socket the session writes on (TLS: its records are capped on a cutting path). */
  records?: RecordCappable;
  /** Over TLS: the connection's hang check (wedge.ts). */
  wedge?: H2TransportOptions['wedge'];
}

/**
 * The part both modes share: the HTTP/2 session on `sock`, one request whose answer opens the
 * session, and what a failure before that answer becomes. `opened` builds the transport from the
 * 200 (called once); a non-200 answer rejects with H2RefusedError, anything else first with E_DIAL.
 */
function openOn(
  sock: Duplex,
  req: StreamOneRequest,
  opts: StreamOneOptions,
  headers: http2.OutgoingHttpHeaders,
  endStream: boolean,
  sent: (stream: http2.ClientHttp2Stream) => void,
  opened: (session: http2.ClientHttp2Session, stream: http2.ClientHttp2Stream, answer: http2.IncomingHttpHeaders) => FrameTransport,
): Promise<FrameTransport> {
  const { limits } = opts;
  return new Promise<FrameTransport>((resolve, reject) => {
    let settled = false;
    const session = http2.connect(`${req.scheme}://${req.authority}`, {
      createConnection: () => sock,
      settings: CLIENT_H2_SETTINGS,
      maxSessionMemory: 16,
    });
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      opts.signal.removeEventListener('abort', onAbort);
      session.destroy();
      reject(err);
    };
    const onAbort = (): void => fail(new PosternError('E_DIAL', 'aborted'));
    opts.signal.addEventListener('abort', onAbort, { once: true });
    session.on('error', (err: Error) => fail(new PosternError('E_DIAL', `HTTP/2 connection failed (${(err as NodeJS.ErrnoException).code ?? err.message})`, { cause: err })));
    session.once('close', () => fail(new PosternError('E_DIAL', 'connection closed before the answer')));
    session.once('connect', () => {
      try {
        session.setLocalWindowSize(limits.H2_CONNECTION_WINDOW_BYTES);
      } catch {
        // closing already: the request fails below
      }
    });
    for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v;
    headers[PADDING_HEADER] = paddingValue();
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(headers, { endStream });
    } catch (err) {
      fail(new PosternError('E_DIAL', (err as Error).message, { cause: err }));
      return;
    }
    sent(stream);
    stream.on('error', (err: Error) => fail(new PosternError('E_DIAL', `HTTP/2 stream failed (${(err as NodeJS.ErrnoException).code ?? err.message})`, { cause: err })));
    stream.once('close', () => fail(new PosternError('E_DIAL', 'stream closed before the answer')));
    stream.once('response', (h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
      const status = h[':status'] ?? 0;
      if (status !== 200) {
        fail(new H2RefusedError(status, h.date));
        return;
      }
      if (settled) return;
      settled = true;
      opts.signal.removeEventListener('abort', onAbort);
      session.removeAllListeners('close');
      stream.removeAllListeners('close');
      stream.removeAllListeners('error');
      session.on('error', () => stream.destroy());
      resolve(opened(session, stream, h));
    });
  });
}

/** One session per connection: when the transport is done, so is the connection. */
function closeSessionAfter(session: http2.ClientHttp2Session, limits: Limits): () => void {
  return () => {
    session.close();
    setTimeout(() => session.destroy(), limits.H2_CLOSE_TIMEOUT_MS).unref();
  };
}

/**
 * Opens the stream-one session on `sock` (already connected and verified). Rejects with
 * H2RefusedError for a non-200 answer, with E_DIAL when the connection fails first.
 */
export function openStreamOne(sock: Duplex, req: StreamOneRequest, opts: StreamOneOptions): Promise<FrameTransport> {
  const headers: http2.OutgoingHttpHeaders = {
    ':method': 'POST',
    ':scheme': req.scheme,
    ':authority': req.authority,
    ':path': req.path,
    'content-type': 'application/octet-stream',
  };
  return openOn(
    sock,
    req,
    opts,
    headers,
    false,
    // A first record at once, so that a front which waits for body bytes before it forwards the
    // request (§12.2) forwards it now; a PAD, which the bridge drops.
    (stream) => stream.write(encodePad(randomPadLength())),
    (session, stream, h) => sessionTransport(stream, session, h, opts),
  );
}

/** The session's FrameTransport on `pipe` (the stream-one stream, or packet-up's pipe), ended with the HTTP/2 connection. */
function sessionTransport(pipe: Duplex, session: http2.ClientHttp2Session, h: http2.IncomingHttpHeaders, opts: StreamOneOptions): FrameTransport {
  const { limits } = opts;
  const transport = new H2FrameTransport(pipe, {
    maxMessageBytes: limits.WS_MAX_MESSAGE_BYTES,
    closeTimeoutMs: limits.H2_CLOSE_TIMEOUT_MS,
    peerFeatures: parseFeatures(h[FEATURES_HEADER.toLowerCase()]),
    ...(opts.wire !== undefined ? { wire: opts.wire } : {}),
    ...(opts.records !== undefined ? { records: opts.records } : {}),
    wedge: opts.wedge,
    onFinish: closeSessionAfter(session, limits),
  });
  session.once('close', () => pipe.destroy());
  return transport;
}

/**
 * Opens a packet-up session on `sock` (§12.3): the downstream `GET <path>` (req.headers carry the
 * credentials, the token bound to `key`), then, once it is answered 200, upstream POSTs on the same
 * connection. Rejects as openStreamOne does.
 */
export function openPacketUp(sock: Duplex, req: StreamOneRequest, key: string, opts: StreamOneOptions): Promise<FrameTransport> {
  const { limits } = opts;
  const base = { ':scheme': req.scheme, ':authority': req.authority, ':path': req.path };
  const headers: http2.OutgoingHttpHeaders = { ':method': 'GET', ...base, [PACKET_HEADER]: key };
  return openOn(sock, req, opts, headers, true, () => undefined, (session, down, h) => {
    /** One upstream POST: settles when the bridge answered it (200) or not. */
    const post = (seq: number, body: Buffer, last: boolean): Promise<void> =>
      new Promise<void>((ok, no) => {
        const ph: http2.OutgoingHttpHeaders = {
          ':method': 'POST',
          ...base,
          'content-type': 'application/octet-stream',
          'content-length': String(body.length),
          [PACKET_HEADER]: key,
          [SEQ_HEADER]: String(seq),
          [PADDING_HEADER]: paddingValue(),
        };
        if (last) ph[END_HEADER] = '1';
        let up: http2.ClientHttp2Stream;
        try {
          up = session.request(ph, { endStream: body.length === 0 });
        } catch (err) {
          no(err as Error);
          return;
        }
        const timer = setTimeout(() => up.close(http2.constants.NGHTTP2_CANCEL), limits.PACKET_POST_TIMEOUT_MS);
        let status = 0;
        up.once('response', (rh: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
          status = rh[':status'] ?? 0;
        });
        up.on('error', () => undefined);
        up.resume();
        up.once('close', () => {
          clearTimeout(timer);
          if (status === 200 && up.rstCode === http2.constants.NGHTTP2_NO_ERROR) ok();
          else no(new Error(`upstream POST ${seq} answered ${status || 'nothing'}`));
        });
        if (body.length > 0) up.end(body);
      });
    down.on('error', () => undefined);
    return sessionTransport(new ClientPacketPipe(post, down, limits), session, h, opts);
  });
}

/**
 * Stream-one on a verified stream (§12.2): the §3 credentials as request headers, what is left of
 * DIAL_TIMEOUT_MS to get the answer, a refusal read as every transport reads it.
 */
export function streamOneOn(stream: SecureStream, info: BridgeInfo, opts: DialOptions): Promise<FrameTransport> {
  const { limits } = opts;
  const now = opts.now ?? Date.now;
  const log = opts.logger.child({ component: 'dialer' });
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new PosternError('E_DIAL', `timed out after ${limits.DIAL_TIMEOUT_MS} ms (HTTP/2 session request)`)), remainingMs(stream, limits));
  const onAbort = (): void => abort.abort(new PosternError('E_DIAL', 'aborted', { cause: opts.signal?.reason }));
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const packetKey = info.mode === 'packet-up' ? newPacketKey() : null;
  const headers = credentialHeaders(info, now(), opts, packetKey === null ? undefined : (id) => packetBinding(id, packetKey));
  const req: StreamOneRequest = { scheme: info.plain ? 'http' : 'https', authority: hostHeader(info), path: info.path, headers };
  const check = wedgeCheck(stream.socket, stream.raw);
  const o: StreamOneOptions = {
    limits,
    signal: abort.signal,
    wire: stream.raw,
    records: stream.socket,
    wedge: check === null ? undefined : { check, everyMs: limits.H2_WEDGE_CHECK_MS },
  };
  return (packetKey === null ? openStreamOne(stream.socket, req, o) : openPacketUp(stream.socket, req, packetKey, o))
    .then(
      (t) => {
        log.debug({ ms: Date.now() - stream.startedAt, transport: 'h2', mode: info.mode ?? 'stream-one' }, 'bridge session open');
        return t;
      },
      (err: unknown) => {
        stream.socket.destroy();
        stream.raw.destroy();
        if (err instanceof H2RefusedError) throw refusalError(err.status, err.date, now(), limits);
        if (abort.signal.aborted && abort.signal.reason instanceof PosternError) throw abort.signal.reason;
        throw err instanceof PosternError ? err : new PosternError('E_DIAL', String(err));
      },
    )
    .finally(() => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    });
}

/** The h2 transport's client end (registry.ts): stream-one or packet-up (the link's mode) on a stream whose ALPN is h2 (or plain, h2c). */
export const h2Dialer: TransportDialer = {
  name: 'h2',
  title: 'HTTP/2',
  alpn: ['h2'],
  handshake: (stream, info, opts) => streamOneOn(stream, info, opts),
};
