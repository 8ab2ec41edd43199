/**
 * The bridge side of the HTTP/2 transport (docs/protocol.md §12): serves HTTP/2 on a connection
 * the web front hands over (TLS with ALPN h2, or h2c prior knowledge behind a TLS-terminating
 * proxy). A `POST <path>` carrying a valid token becomes a session (stream-one, §12.2); every other
 * request — and every refused one — is answered by the decoy, over HTTP/2, as nginx answers it.
 */
import http2 from 'node:http2';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Limits } from '../../core/limits.js';
import { sendQueueBound } from '../../core/limits.js';
import { padForBrowser, type Decoy, type DecoyResponse } from '../../decoy/decoy.js';
import { userAgentClass } from '../../decoy/http-head.js';
import type { Logger } from '../../log/logger.js';
import { FEATURES_HEADER } from '../auth.js';
import { SESSION_LOST_CODE, admit, handOver, type AcceptorContext } from '../gate.js';
import type { Writable } from 'node:stream';
import type { Acceptor, AcceptedConnection, FrontRequest } from '../types.js';
import { H2FrameTransport, type H2TransportOptions } from './frame-transport.js';
import { PADDING_HEADER, paddingValue } from './padding.js';
import { BridgePacketPipe, END_HEADER, PACKET_HEADER, PACKET_KEY_RE, SEQ_HEADER, packetBinding, postBodyLimit } from './packet.js';
import { parseSeq } from './reorder.js';
import type { RecordCappable } from '../record-cap.js';
import { wedgeCheck } from './wedge.js';

/** What a transport takes from its connection: a fresh hang check (wedge.ts: each transport needs its own pair of samples). */
type ConnOptions = () => Pick<H2TransportOptions, 'wedge'>;

/** The HTTP/2 connection preface (RFC 9113 §3.4): how h2c from a proxy starts. */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * nginx 1.22's SETTINGS (http2_max_concurrent_streams 128, its frame size, no push), with the
 * stream window H2_STREAM_WINDOW_BYTES instead of nginx's 64 KiB (protocol.md §12.6).
 */
export function bridgeH2Settings(limits: Limits): http2.Settings {
  return { maxConcurrentStreams: 128, initialWindowSize: limits.H2_STREAM_WINDOW_BYTES, maxFrameSize: 16_777_215, enablePush: false };
}

/** Response headers that HTTP/2 forbids (RFC 9113 §8.2.2); nginx drops them from an h2 answer. */
const CONNECTION_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/**
 * The bridge's HTTP/2 side (registry.ts): sessions for holders of a token, the decoy for everyone
 * else; on a listener without sessions (`postern decoy`) every request gets the site.
 */
export function createH2Acceptor(ctx: AcceptorContext): Acceptor {
  return makeH2Acceptor(ctx);
}

function makeH2Acceptor(ctx: AcceptorContext): Acceptor {
  const { limits, decoy } = ctx;
  const gate = ctx.sessions;
  const log = ctx.logger.child({ component: 'h2' });
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  /** Open packet-up sessions by key (§12.3): their POSTs may come on any connection. */
  const packets = new Map<string, BridgePacketPipe>();
  const server = http2.createServer({ settings: bridgeH2Settings(limits), maxSessionMemory: 16 });

  server.on('session', (session: http2.ServerHttp2Session) => {
    h2Sessions.add(session);
    session.on('error', () => session.destroy());
    session.once('close', () => h2Sessions.delete(session));
  });

  const answer = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, info: AcceptedConnection, endStream: boolean): void => {
    const method = headers[':method'] ?? 'GET';
    const url = headers[':path'] ?? '/';
    const plain: Record<string, string | string[]> = {};
    const rawHeaders: Array<readonly [string, string]> = [];
    const authority = headers[':authority'];
    if (authority !== undefined) {
      plain.host = authority;
      rawHeaders.push(['host', authority]);
    }
    for (const [k, v] of Object.entries(headers)) {
      if (k.startsWith(':') || v === undefined) continue;
      if (k === 'host' && authority !== undefined) continue;
      plain[k] = v;
      for (const one of Array.isArray(v) ? v : [v]) rawHeaders.push([k, one]);
    }
    const gone = new AbortController();
    stream.once('close', () => gone.abort());
    void decoy
      .handle(
        {
          method,
          url,
          httpVersion: '2.0',
          headers: plain,
          rawHeaders,
          local: { address: info.raw.localAddress ?? '127.0.0.1', port: info.raw.localPort ?? 0, tls: info.tls },
          body: endStream ? null : stream,
          signal: gone.signal,
        },
        true,
      )
      .then((r) => respond(stream, padForBrowser(r, userAgentClass(plain['user-agent'] as string | undefined))), () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
  };

  const respond = (stream: http2.ServerHttp2Stream, r: DecoyResponse): void => {
    if (stream.destroyed || stream.closed) {
      if (r.body !== null && !Buffer.isBuffer(r.body)) r.body.destroy();
      return;
    }
    const out: http2.OutgoingHttpHeaders = { ':status': r.status };
    for (const [k, v] of r.headers) {
      const name = k.toLowerCase();
      if (CONNECTION_HEADERS.has(name)) continue;
      const prev = out[name];
      out[name] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [String(prev), v];
    }
    try {
      stream.respond(out, { endStream: r.body === null, waitForTrailers: false });
    } catch {
      stream.destroy();
      return;
    }
    if (r.body === null) return;
    if (Buffer.isBuffer(r.body)) {
      stream.end(r.body);
    } else {
      r.body.on('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
      stream.once('close', () => (r.body as { destroy(): void }).destroy());
      r.body.pipe(stream);
    }
    // A request body nobody reads is drained, so the connection window is not held by it.
    if (!stream.readableEnded) stream.resume();
  };

  /** The 200 that opens a session's downstream (§12.2, §12.3). */
  const sessionHead = (): http2.OutgoingHttpHeaders => {
    const head: http2.OutgoingHttpHeaders = { ':status': 200, 'content-type': 'application/octet-stream', 'cache-control': 'no-store' };
    const features = gate?.features ?? [];
    if (features.length > 0) head[FEATURES_HEADER.toLowerCase()] = features.join(', ');
    head[PADDING_HEADER] = paddingValue();
    return head;
  };

  /** Hands an admitted session's pipe to the bridge as a FrameTransport. */
  const start = (pipe: Duplex, info: AcceptedConnection, a: { user: string; sessionId: string | null; lost: boolean }, records: RecordCappable | undefined, conn?: ConnOptions): void => {
    const transport = new H2FrameTransport(pipe, {
      maxMessageBytes: limits.WS_MAX_MESSAGE_BYTES,
      sendQueueMaxBytes: sendQueueBound(limits),
      closeTimeoutMs: limits.H2_CLOSE_TIMEOUT_MS,
      wire: info.raw,
      ...(records !== undefined ? { records } : {}),
      ...conn?.(),
    });
    if (a.lost) {
      transport.close(SESSION_LOST_CODE, 'session unknown');
      return;
    }
    log.debug({ user: a.user }, 'h2 session accepted');
    handOver(ctx, transport, a);
  };

  /** An upstream POST's headers (§12.3): its session, sequence number, length and end mark, or null (refused). */
  const checkPost = (
    key: string,
    seqValue: string | undefined,
    lengthValue: string | undefined,
    endValue: string | undefined,
  ): { pipe: BridgePacketPipe; seq: number; length: number; last: boolean } | null => {
    const pipe = packets.get(key);
    const seq = parseSeq(seqValue);
    const length = parseSeq(lengthValue);
    const last = endValue === '1';
    if (pipe === undefined || seq === null || length === null || length > postBodyLimit(limits) || !pipe.accepts(seq)) return null;
    if (length === 0 && !last) return null;
    pipe.reserve(seq);
    return { pipe, seq, length, last };
  };

  /** A packet-up downstream request's checks (§12.3): admit() with the key bound into the token. */
  const admitDownstream = (url: string, headers: Readonly<Record<string, string | undefined>>, key: string) =>
    admit(
      ctx,
      url,
      headers,
      () => (!PACKET_KEY_RE.test(key) ? 'packet_key' : packets.has(key) ? 'packet_key_reused' : null),
      (id) => packetBinding(id, key),
    );

  /** Registers a packet-up session's pipe under its key until it closes. */
  const register = (key: string, pipe: BridgePacketPipe): void => {
    packets.set(key, pipe);
    pipe.once('close', () => {
      if (packets.get(key) === pipe) packets.delete(key);
    });
  };

  /**
   * packet-up over HTTP/1.1 (§12.3), as a proxy that buffers request bodies passes it: the
   * downstream GET answered 200 with a body delimited by the connection's close, and each POST
   * read whole (Content-Length) and answered 200 once delivered. False: not ours (the decoy answers).
   */
  const takeHttp1 = ({ head, rest, socket, conn }: FrontRequest): boolean => {
    const key = head.headers[PACKET_HEADER];
    if (gate === null || key === undefined || head.url !== gate.path) return false;
    if (head.method === 'GET') {
      const a = admitDownstream(head.url, head.headers, key);
      if (!a.ok) return false;
      const extra = gate.features.length > 0 ? `${FEATURES_HEADER}: ${gate.features.join(', ')}\r\n` : '';
      socket.write(
        `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nCache-Control: no-store\r\nConnection: close\r\n${extra}Postern-Padding: ${paddingValue()}\r\n\r\n`,
      );
      socket.resume(); // nothing more is read from a GET's connection; its end or error is seen
      const pipe = new BridgePacketPipe(socket as Writable & Duplex, limits);
      register(key, pipe);
      start(pipe, conn, a, socket);
      return true;
    }
    if (head.method !== 'POST' || head.headers['transfer-encoding'] !== undefined) return false;
    const post = checkPost(key, head.headers[SEQ_HEADER], head.headers['content-length'], head.headers[END_HEADER]);
    if (post === null) return false;
    const { pipe, seq, length, last } = post;
    const parts: Buffer[] = [];
    let have = 0;
    const timer = setTimeout(() => socket.destroy(), limits.PACKET_POST_TIMEOUT_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      if (have < length) pipe.release(seq);
    });
    socket.on('error', () => socket.destroy());
    const finish = (): void => {
      clearTimeout(timer);
      socket.off('data', take);
      const taken = pipe.offer(seq, Buffer.concat(parts, have), last, (ok) => {
        if (!ok) return socket.destroy();
        socket.end(`HTTP/1.1 200 OK\r\nContent-Length: 0\r\nCache-Control: no-store\r\nConnection: close\r\nPostern-Padding: ${paddingValue()}\r\n\r\n`);
      });
      if (!taken) socket.destroy();
    };
    function take(chunk: Buffer): void {
      if (have >= length) return;
      const part = chunk.subarray(0, length - have);
      parts.push(part);
      have += part.length;
      if (have === length) finish();
    }
    socket.on('data', take);
    if (length === 0) finish();
    else if (rest.length > 0) take(rest);
    socket.resume();
    return true;
  };

  /**
   * A packet-up request (§12.3) on the secret path: the downstream GET, or an upstream POST of a
   * known session. False: refused (the caller lets the decoy answer, the body still unread).
   */
  const packetRoute = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, endStream: boolean, info: AcceptedConnection, key: string, conn: ConnOptions): boolean => {
    // A POST refused after its body was read (a race with another copy, or the session ended) gets the decoy's answer too.
    const refuseRead = (): void => answer(stream, headers, info, true);
    const method = headers[':method'];
    const url = headers[':path'] ?? '';
    if (method === 'GET') {
      const plain: Record<string, string | undefined> = {};
      for (const [k, v] of Object.entries(headers)) if (!k.startsWith(':')) plain[k] = Array.isArray(v) ? v.join(', ') : v;
      const a = admitDownstream(url, plain, key);
      if (!a.ok) return false;
      try {
        stream.session?.setLocalWindowSize(limits.H2_CONNECTION_WINDOW_BYTES);
        stream.respond(sessionHead(), { endStream: false });
      } catch {
        stream.destroy();
        return true;
      }
      if (!endStream) stream.resume();
      const pipe = new BridgePacketPipe(stream, limits);
      register(key, pipe);
      start(pipe, info, a, stream.session?.socket, conn);
      return true;
    }
    if (method !== 'POST' || url !== gate?.path) return false;
    const post = checkPost(key, headers[SEQ_HEADER] as string | undefined, headers['content-length'], headers[END_HEADER] as string | undefined);
    if (post === null) return false;
    const { pipe, seq, length, last } = post;
    if ((length === 0) !== endStream) {
      pipe.release(seq);
      return false;
    }
    const parts: Buffer[] = [];
    let have = 0;
    const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), limits.PACKET_POST_TIMEOUT_MS);
    stream.once('close', () => {
      clearTimeout(timer);
      if (have !== length || !stream.readableEnded) pipe.release(seq);
    });
    const done = (): void => {
      clearTimeout(timer);
      if (have !== length) {
        stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
        return;
      }
      const taken = pipe.offer(seq, Buffer.concat(parts, have), last, (ok) => {
        if (stream.destroyed || stream.closed) return;
        if (!ok) return refuseRead();
        try {
          stream.respond({ ':status': 200, 'content-length': '0', 'cache-control': 'no-store', [PADDING_HEADER]: paddingValue() }, { endStream: true });
        } catch {
          stream.destroy();
        }
      });
      if (!taken) refuseRead();
    };
    if (endStream) {
      done();
      return true;
    }
    stream.on('data', (chunk: Buffer) => {
      have += chunk.length;
      // More than Content-Length said: a malformed request (RFC 9113 §8.1.1).
      if (have > length) {
        stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
        return;
      }
      parts.push(chunk);
    });
    stream.once('end', done);
    return true;
  };

  /** A stream-one session request (§12.2), or the decoy's answer. */
  const route = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, info: AcceptedConnection, conn: ConnOptions): void => {
    const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    const toDecoy = (): void => answer(stream, headers, info, endStream);
    if (gate === null || ctx.closing()) return toDecoy();
    const url = headers[':path'] ?? '';
    // A request to another path without a credential is a visitor, not a refused session.
    if (url !== gate.path && headers.authorization === undefined) return toDecoy();
    const packetKey = headers[PACKET_HEADER];
    if (typeof packetKey === 'string') {
      if (!packetRoute(stream, headers, endStream, info, packetKey, conn)) toDecoy();
      return;
    }
    const plain: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(headers)) if (!k.startsWith(':')) plain[k] = Array.isArray(v) ? v.join(', ') : v;
    const a = admit(ctx, url, plain, () => (headers[':method'] !== 'POST' ? 'method' : endStream ? 'no_body' : null));
    if (!a.ok) return toDecoy();
    // Authenticated: this connection may now move data at full speed (§12.6).
    // (The stream window is in the first SETTINGS already: changing INITIAL_WINDOW_SIZE while a
    // session's stream is open stalled it under load in Node 20, so it is never changed later.)
    try {
      stream.session?.setLocalWindowSize(limits.H2_CONNECTION_WINDOW_BYTES);
      stream.respond(sessionHead(), { endStream: false });
    } catch {
      stream.destroy();
      return;
    }
    start(stream, info, a, stream.session?.socket, conn);
  };

  return {
    name: 'h2',
    alpn: ['h2'],
    plainPreface: H2_PREFACE,
    takeRequest: takeHttp1,
    takeConnection(socket: Duplex, info: AcceptedConnection): void {
      const conn: ConnOptions = () => {
        const check = wedgeCheck(socket as net.Socket, info.raw);
        return { wedge: check === null ? undefined : { check, everyMs: limits.H2_WEDGE_CHECK_MS } };
      };
      const onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number): void => {
        stream.on('error', () => stream.destroy());
        route(stream, headers, flags, info, conn);
      };
      const onSession = (session: http2.ServerHttp2Session): void => {
        server.off('session', onSession);
        session.on('stream', onStream);
        // nginx's keepalive_timeout: a connection with no open stream for this long is closed.
        let idle: NodeJS.Timeout | undefined;
        const arm = (): void => {
          clearTimeout(idle);
          idle = setTimeout(() => session.close(), limits.HTTP_KEEPALIVE_TIMEOUT_MS);
        };
        arm();
        let open = 0;
        session.on('stream', (s: http2.ServerHttp2Stream) => {
          open++;
          clearTimeout(idle);
          s.once('close', () => {
            open--;
            if (open === 0 && !session.closed && !session.destroyed) arm();
          });
        });
        session.once('close', () => clearTimeout(idle));
      };
      server.on('session', onSession);
      // A server-side TLSSocket made by hand (not by tls.Server) keeps secureConnecting true after
      // its handshake; http2 would then wait for a 'secureConnect' that a server socket never emits.
      const t = socket as Duplex & { secureConnecting?: boolean };
      if (t.secureConnecting === true) t.secureConnecting = false;
      server.emit('connection', socket);
      server.off('session', onSession);
    },
    close(): void {
      for (const p of packets.values()) p.destroy();
      packets.clear();
      for (const s of h2Sessions) s.destroy();
      h2Sessions.clear();
    },
  };
}

