/**
 * The bridge's web front (protocol.md §2): one TCP listener, TLS on it (or, behind a
 * TLS-terminating proxy, plain HTTP), that routes every connection and request to the transport
 * that takes it or to the decoy website, so that a prober sees the decoy and nothing else:
 *   - a TLS connection whose ALPN is one an acceptor claims (Acceptor.alpn) is handed to it whole;
 *   - otherwise HTTP/1.x is parsed here, request after request, as nginx parses it
 *     (decoy/http-head.ts); each request is offered to the acceptors (Acceptor.takeRequest), and
 *     the decoy answers whatever none takes, byte for byte as nginx would.
 * The same front without acceptors serves the decoy alone (`postern decoy`). The transports are
 * given to it (listener.ts composes them), and so is the decoy: this file names neither.
 *
 * Timeouts follow nginx: the TLS handshake and the first request head together get
 * HANDSHAKE_TIMEOUT_MS from accept (client_header_timeout); an idle kept-alive connection
 * HTTP_KEEPALIVE_TIMEOUT_MS (keepalive_timeout); after a `Connection: close` answer the peer gets
 * HTTP_CLOSE_LINGER_MS to close its side (lingering_timeout). A timeout closes without an answer.
 */
import net from 'node:net';
import tls from 'node:tls';
import { PassThrough, type Duplex, type Readable } from 'node:stream';
import { PosternError } from '../core/errors.js';
import { listenTcp } from '../core/listen.js';
import type { Limits } from '../core/limits.js';
import { errorPage, padForBrowser, serializeHead, type Decoy, type DecoyResponse } from '../decoy/decoy.js';
import { BodyReader, HeadParser, NGINX_MAX_HEAD_BYTES, headProblem, userAgentClass, wantsKeepAlive, type ParsedHead } from '../decoy/http-head.js';
import type { Logger } from '../log/logger.js';
import { readAfterWriteReset } from './read-after-reset.js';
import type { AcceptedConnection, Acceptor } from './types.js';

export interface FrontOptions {
  host: string;
  port: number;
  /** PEM key and certificate; null serves plain HTTP (loopback behind a TLS-terminating proxy). */
  tls: { keyPem: string; certPem: string } | null;
  /** What every request no acceptor takes gets. */
  decoy: Decoy;
  /** The transports' bridge ends, asked in order; none: the decoy alone. */
  acceptors: readonly Acceptor[];
  limits: Limits;
  logger: Logger;
  /** Called when a connection is dropped for not finishing its TLS handshake or request head in time (metrics). */
  onHandshakeTimeout?: () => void;
  /** The logger's component name (default 'listener'). */
  component?: string;
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

/**
 * The ALPN protocols the bridge offers: each acceptor's (say h2), then http/1.1, which the front
 * itself speaks. A client offering none of them gets http/1.1's front.
 */
export function frontAlpnProtocols(acceptors: readonly Acceptor[]): string[] {
  const out: string[] = [];
  for (const a of acceptors) for (const p of a.alpn) if (!out.includes(p)) out.push(p);
  return [...out.filter((p) => p !== 'http/1.1'), 'http/1.1'];
}

/** Per-connection state, keyed by the TCP socket. */
interface Conn {
  readonly raw: net.Socket;
  /** The socket HTTP runs on: the TLS socket once the handshake is done, else raw. */
  top: Duplex;
  timer: NodeJS.Timeout | undefined;
  /** Aborted when the connection closes (made on first use). */
  gone: AbortController | undefined;
}

/** nginx's keepalive_requests: after this many requests a connection is closed. */
const KEEPALIVE_REQUESTS_MAX_COUNT = 1_000;
/** nginx's keepalive_time: a connection older than this is closed after its current request. */
const KEEPALIVE_CONNECTION_MAX_MS = 60 * 60_000;

/** The first byte of a TLS record (handshake) or of an SSLv2-style hello, as nginx tells TLS from plain HTTP. */
const looksLikeTls = (b: number): boolean => b === 0x16 || (b & 0x80) !== 0;

export function createFront(opts: FrontOptions): BridgeListener {
  const { limits, decoy, acceptors } = opts;
  const log = opts.logger.child({ component: opts.component ?? 'listener' });
  const alpnProtocols = frontAlpnProtocols(acceptors);
  /** Who takes a whole TLS connection, by ALPN protocol. */
  const byAlpn = new Map<string, Acceptor>();
  for (const a of acceptors) for (const p of a.alpn) if (!byAlpn.has(p) && a.takeConnection !== undefined) byAlpn.set(p, a);
  const requestTakers = acceptors.filter((a) => a.takeRequest !== undefined);
  const prefaceTakers = acceptors.filter((a) => a.plainPreface !== undefined && a.plainPreface.length > 0 && a.takeConnection !== undefined);

  // nginx 1.22 as Debian configures it: TLS 1.0–1.3 enabled (OpenSSL then refuses 1.0/1.1 with an
  // internal_error alert, as nginx does), ssl_ciphers HIGH:!aNULL:!MD5, server cipher preference.
  const tlsBase: tls.SecureContextOptions = {
    minVersion: 'TLSv1',
    ciphers: 'HIGH:!aNULL:!MD5',
    honorCipherOrder: true,
  };
  let secureContext: tls.SecureContext | null = opts.tls === null ? null : tls.createSecureContext({ ...tlsBase, key: opts.tls.keyPem, cert: opts.tls.certPem });
  const server = net.createServer({ noDelay: true });

  const conns = new Map<net.Socket, Conn>();
  let closing = false;

  const kill = (c: Conn): void => {
    c.top.destroy();
    c.raw.destroy();
  };
  const arm = (c: Conn, ms: number, onFire?: () => void): void => {
    clearTimeout(c.timer);
    c.timer = setTimeout(() => {
      onFire?.();
      kill(c);
    }, ms);
  };
  const disarm = (c: Conn): void => clearTimeout(c.timer);
  const connInfo = (c: Conn): AcceptedConnection => ({ raw: c.raw, tls: secureContext !== null });
  const goneSignal = (c: Conn): AbortSignal => {
    if (c.raw.destroyed) return AbortSignal.abort();
    c.gone ??= new AbortController();
    return c.gone.signal;
  };

  server.on('connection', (raw: net.Socket) => {
    if (closing) {
      raw.destroy();
      return;
    }
    const c: Conn = { raw, top: raw, timer: undefined, gone: undefined };
    conns.set(raw, c);
    raw.on('error', () => raw.destroy());
    raw.once('close', () => {
      clearTimeout(c.timer);
      conns.delete(raw);
      c.gone?.abort();
    });
    // The TLS handshake (or, without TLS, the first request head) must be done in time.
    arm(c, limits.HANDSHAKE_TIMEOUT_MS, opts.onHandshakeTimeout);
    if (secureContext === null) {
      if (prefaceTakers.length === 0) serveHttp(c, false);
      else sniffPreface(c);
      return;
    }
    const ctx = secureContext;
    raw.once('data', (first: Buffer) => {
      raw.pause();
      raw.unshift(first);
      if (!looksLikeTls(first[0]!)) {
        serveHttp(c, true); // nginx reads the request and answers its "plain HTTP to HTTPS port" page
        raw.resume();
        return;
      }
      const s = new tls.TLSSocket(raw, { isServer: true, secureContext: ctx, ALPNProtocols: alpnProtocols });
      readAfterWriteReset(s, limits.WRITE_RESET_READ_MS);
      s.on('error', () => {
        s.destroy();
        raw.destroy();
      });
      s.once('close', () => raw.destroy());
      s.once('secure', () => {
        c.top = s;
        const taker = typeof s.alpnProtocol === 'string' ? byAlpn.get(s.alpnProtocol) : undefined;
        if (taker !== undefined) {
          // The acceptor bounds the connection from here (its own timeouts; close() drops it).
          disarm(c);
          taker.takeConnection!(s, connInfo(c));
          return;
        }
        serveHttp(c, false); // the timer armed at accept still runs: nginx's covers the handshake and the first head together
      });
    });
  });

  /**
   * Without TLS: reads until the connection's first bytes match an acceptor's plainPreface (say,
   * HTTP/2's connection preface from a proxy speaking h2c) — that acceptor gets it whole — or
   * cannot any more, and then serves HTTP/1.x. An HTTP/1.x request differs within its first bytes,
   * so it waits for nothing; what is read is put back for whoever reads next.
   */
  const sniffPreface = (c: Conn): void => {
    const raw = c.raw;
    let got: Buffer = Buffer.alloc(0);
    const onFirst = (d: Buffer): void => {
      got = got.length === 0 ? d : Buffer.concat([got, d]);
      const matching = prefaceTakers.filter((a) => {
        const p = a.plainPreface!;
        const n = Math.min(p.length, got.length);
        return got.subarray(0, n).equals(p.subarray(0, n));
      });
      const taker = matching.find((a) => got.length >= a.plainPreface!.length);
      if (taker === undefined && matching.length > 0) return; // a preface so far: read on (it is a few bytes; the handshake timer runs)
      raw.off('data', onFirst);
      raw.pause();
      raw.unshift(got);
      if (taker === undefined) {
        serveHttp(c, false);
        return;
      }
      disarm(c); // the acceptor bounds the connection from here
      taker.takeConnection!(raw, connInfo(c));
    };
    raw.on('data', onFirst);
  };

  /** The head and body of a response as bytes nginx would send (HTTP/0.9: the body alone). */
  const writeHead = (sock: Duplex, r: DecoyResponse, http09: boolean): void => {
    if (!http09) sock.write(serializeHead(r));
  };

  /**
   * HTTP/1.x on one connection, request after request, each head parsed as nginx parses it
   * (decoy/http-head.ts). One request at a time: the next head is parsed once the answer is sent.
   */
  const serveHttp = (c: Conn, plainOnTls: boolean): void => {
    const sock = c.top;
    const startedAt = Date.now();
    // Bytes of the request being read (and any pipelined after it). Appending copies into a store
    // that grows by doubling, so a head trickled in tiny pieces costs linear copying, not quadratic.
    let buf: Buffer = Buffer.alloc(0);
    let store: Buffer = buf;
    /** Whether `buf` is the start of `store` (else it is someone else's bytes and is copied first). */
    let owned = false;
    const append = (d: Buffer): void => {
      if (buf.length === 0) {
        buf = d;
        owned = false;
        return;
      }
      const need = buf.length + d.length;
      if (!owned || need > store.length) {
        const next = Buffer.allocUnsafe(Math.max(need, 2 * buf.length));
        buf.copy(next, 0);
        store = next;
        owned = true;
      }
      d.copy(store, buf.length);
      buf = store.subarray(0, need);
    };
    let parser = new HeadParser();
    let busy = false;
    let requests = 0;
    let body: { reader: BodyReader; sink: PassThrough } | null = null;
    let handedOver = false;

    const onData = (d: Buffer): void => {
      if (body !== null) {
        feedBody(d);
        return;
      }
      if (buf.length === 0 && requests > 0 && !busy) arm(c, limits.HANDSHAKE_TIMEOUT_MS); // the next head: client_header_timeout
      append(d);
      if (busy) {
        if (buf.length > NGINX_MAX_HEAD_BYTES) sock.pause(); // pipelined bytes wait, bounded
        return;
      }
      step();
    };

    const feedBody = (d: Buffer): void => {
      const b = body!;
      const r = b.reader.push(d);
      if ('error' in r) {
        b.sink.destroy(new Error('bad chunked body'));
        body = null;
        if (!busy) finishWith(errorPage(400, { keepAlive: false, head: false }), false, false);
        else kill(c);
        return;
      }
      let ok = true;
      for (const chunk of r.data) ok = b.sink.write(chunk) && ok;
      if (r.done) {
        b.sink.end();
        body = null;
        if (r.rest.length > 0) append(r.rest);
        if (busy) sock.pause();
        else if (buf.length > 0) {
          arm(c, limits.HANDSHAKE_TIMEOUT_MS); // the next request, already here
          step();
        }
      } else if (!ok) {
        sock.pause();
        b.sink.once('drain', () => sock.resume());
      }
    };

    /** Writes an answer, then keeps the connection for the next request or closes it. */
    const finishWith = (r: DecoyResponse, keepAlive: boolean, http09: boolean): void => {
      busy = true;
      if (sock.destroyed || sock.writableEnded) {
        if (r.body !== null && !Buffer.isBuffer(r.body)) r.body.destroy();
        return;
      }
      writeHead(sock, r, http09);
      const done = (): void => {
        if (sock.destroyed) return;
        if (!keepAlive) {
          sock.end();
          arm(c, limits.HTTP_CLOSE_LINGER_MS);
          sock.resume(); // read and drop what the peer still sends (lingering close)
          sock.off('data', onData);
          sock.on('data', () => undefined);
          return;
        }
        busy = false;
        parser = new HeadParser();
        arm(c, limits.HTTP_KEEPALIVE_TIMEOUT_MS);
        if (body !== null) {
          body.sink.resume(); // discard what the decoy did not read
          sock.resume();
          return;
        }
        sock.resume();
        if (buf.length > 0) {
          arm(c, limits.HANDSHAKE_TIMEOUT_MS);
          step();
        }
      };
      if (r.body === null) done();
      else if (Buffer.isBuffer(r.body)) {
        if (sock.write(r.body)) done();
        else sock.once('drain', done);
      } else {
        const stream: Readable = r.body;
        arm(c, limits.HTTP_KEEPALIVE_TIMEOUT_MS + limits.DECOY_PROXY_TIMEOUT_MS); // bound on the answer itself
        stream.on('error', () => sock.destroy());
        sock.once('close', () => stream.destroy());
        stream.once('end', done);
        stream.pipe(sock, { end: false });
      }
    };

    /** nginx's answer to a request it refuses while reading it; closes. `ua` as far as the head was read. */
    const refuse = (status: number, detail: string | undefined, http09: boolean, method: string | null, ua?: string): void => {
      sock.pause();
      const page = errorPage(status, { keepAlive: false, head: method === 'HEAD', ...(detail !== undefined ? { detail } : {}) });
      finishWith(http09 ? page : padForBrowser(page, userAgentClass(ua)), false, http09);
    };

    const step = (): void => {
      if (busy || body !== null || handedOver) return;
      const r = parser.parse(buf);
      if (r.kind === 'more') return;
      disarm(c);
      if (r.kind === 'error') {
        refuse(r.status, r.detail, r.http09, r.method, r.userAgent);
        return;
      }
      requests++;
      const head = r.head;
      const rest = buf.subarray(r.used);
      buf = Buffer.alloc(0);
      owned = false;
      const problem = headProblem(head);
      const ua = head.headers['user-agent'];
      if (problem !== null) return refuse(problem.status, problem.detail, false, head.method, ua);
      if (plainOnTls) return refuse(400, 'The plain HTTP request was sent to HTTPS port', false, head.method, ua);
      if (offer(head, rest)) return;
      const http09 = head.httpVersion === '0.9';
      const browser = userAgentClass(ua);
      const keepAlive =
        !closing &&
        !http09 &&
        requests < KEEPALIVE_REQUESTS_MAX_COUNT &&
        Date.now() - startedAt <= KEEPALIVE_CONNECTION_MAX_MS &&
        !(browser.msie6 && head.method === 'POST') && // keepalive_disable msie6
        wantsKeepAlive(head);
      const cl = head.headers['content-length'];
      const length = cl === undefined ? 0 : Number(cl);
      if (length > limits.DECOY_MAX_BODY_BYTES) return refuse(413, undefined, false, head.method, ua);
      const chunked = head.headers['transfer-encoding'] !== undefined;
      let bodyStream: PassThrough | null = null;
      busy = true;
      if (chunked || length > 0) {
        bodyStream = new PassThrough();
        body = { reader: new BodyReader(chunked ? 'chunked' : { length }), sink: bodyStream };
        if (rest.length > 0) feedBody(rest);
      } else {
        buf = rest;
        owned = false;
        sock.pause();
      }
      decoy
        .handle(
          {
            method: head.method,
            url: head.url,
            httpVersion: head.httpVersion,
            headers: head.headers,
            rawHeaders: head.rawHeaders,
            targetHost: head.targetHost,
            local: { address: c.raw.localAddress ?? '127.0.0.1', port: c.raw.localPort ?? 0, tls: secureContext !== null },
            body: bodyStream,
            signal: goneSignal(c),
          },
          keepAlive,
        )
        .catch((): DecoyResponse => errorPage(500, { keepAlive: false, head: head.method === 'HEAD' }))
        .then(
          (res) =>
            finishWith(
              http09 ? res : padForBrowser(res, browser),
              keepAlive && !/^close$/i.test(res.headers.find(([k]) => k === 'Connection')?.[1] ?? ''),
              http09,
            ),
          () => kill(c),
        );
    };

    /**
     * Offers the request to the acceptors in turn; true when one took it (and the socket: this
     * connection is no longer the front's to read). Not taken: reading goes on as before.
     */
    const offer = (head: ParsedHead, rest: Buffer): boolean => {
      if (requestTakers.length === 0) return false;
      sock.pause();
      sock.off('data', onData);
      const req = { head, rest, socket: sock, conn: connInfo(c) };
      for (const a of requestTakers) {
        if (a.takeRequest!(req)) {
          handedOver = true;
          disarm(c); // from here the session's own keepalive bounds the connection
          return true;
        }
      }
      sock.on('data', onData);
      sock.resume();
      return false;
    };

    sock.on('data', onData);
    sock.resume();
  };

  const dropAll = (): void => {
    for (const a of acceptors) a.close();
    for (const c of conns.values()) kill(c);
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
      secureContext = tls.createSecureContext({ ...tlsBase, key: keyPem, cert: certPem });
    },
  };
}
