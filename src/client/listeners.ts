/**
 * Client listeners that are not a protocol of their own:
 * - MixedListener: SOCKS5 and HTTP proxy on one port, told apart by the first byte (a SOCKS5
 *   greeting starts with its version, 0x05; an HTTP request line starts with a method token).
 * - ForwardListener: every accepted connection (plain TCP, or TLS with our own certificate)
 *   becomes one stream to a fixed destination, like `ssh -L`.
 * Each connection is handled on its own, under a timeout, never inside the accept loop.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Target } from '../core/address.js';
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import { ConnectionSet, closeServer, listenTcp } from '../core/listen.js';
import { destroyHard, relay } from '../core/relay.js';
import type { HttpProxyServer } from '../http/server.js';
import type { Logger } from '../log/logger.js';
import type { SocksServer } from '../socks/server.js';

export type Connect = (target: Target, signal: AbortSignal) => Promise<Duplex>;

export interface ListenAddress {
  host: string;
  port: number;
}

/** The SOCKS5 version byte that opens every SOCKS5 greeting (RFC 1928 §3). */
const SOCKS5_VERSION = 0x05;

export interface MixedOptions {
  host: string;
  port: number;
  socks: SocksServer;
  http: HttpProxyServer;
  limits: Limits;
  logger: Logger;
}

/** One port for both proxies: reads the first byte of each connection and hands it over. */
export class MixedListener {
  #server: net.Server | null = null;
  readonly #pending: ConnectionSet<net.Socket>;

  constructor(private readonly opts: MixedOptions) {
    this.#pending = new ConnectionSet(opts.limits.LOCAL_MAX_CONNECTIONS);
  }

  async listen(): Promise<ListenAddress> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    this.#server = server;
    server.on('connection', (s) => this.#sniff(s));
    const addr = await listenTcp(server, this.opts.host, this.opts.port);
    server.on('error', (err: NodeJS.ErrnoException) => this.opts.logger.warn({ code: err.code }, 'mixed listener error'));
    return addr;
  }

  async close(): Promise<void> {
    const closed = closeServer(this.#server);
    for (const s of this.#pending) s.destroy(); // its 'close' (cleanup) takes it out of the set
    await closed;
  }

  #sniff(socket: net.Socket): void {
    if (!this.#pending.admit(socket)) return;
    this.#pending.add(socket);
    const onError = () => undefined;
    const cleanup = () => {
      clearTimeout(timer);
      this.#pending.delete(socket);
      socket.off('data', onData);
      socket.off('end', onGone);
      socket.off('close', onGone);
      socket.off('error', onError);
    };
    const onGone = () => {
      cleanup();
      socket.destroy();
    };
    const onData = (chunk: Buffer) => {
      socket.pause(); // before anything else: no chunk may be emitted with nobody listening
      cleanup();
      if (chunk[0] === SOCKS5_VERSION) this.opts.socks.accept(socket, chunk);
      else this.opts.http.accept(socket, chunk);
    };
    // The first byte is owed at once by both protocols; the handshake bound covers the wait.
    const timer = setTimeout(onGone, this.opts.limits.SOCKS_HANDSHAKE_TIMEOUT_MS);
    socket.on('error', onError);
    socket.once('end', onGone);
    socket.once('close', onGone);
    socket.on('data', onData);
  }
}

export interface ForwardOptions {
  /** A name for logs and the startup line (e.g. "forward", "whatsapp chat-tls"). */
  name: string;
  host: string;
  port: number;
  target: Target;
  /** Serve TLS with this certificate (the app sees TLS; the stream carries the plaintext). */
  tls?: { keyPem: string; certPem: string };
  limits: Limits;
  logger: Logger;
  connect: Connect;
}

/** A fixed-destination listener: each connection becomes a stream to `target`. */
export class ForwardListener {
  #server: net.Server | null = null;
  readonly #conns: ConnectionSet<net.Socket>;
  #nextId = 0;

  constructor(readonly opts: ForwardOptions) {
    this.#conns = new ConnectionSet(opts.limits.LOCAL_MAX_CONNECTIONS);
  }

  async listen(): Promise<ListenAddress> {
    const o = this.opts;
    const server =
      o.tls !== undefined
        ? tls.createServer({
            key: o.tls.keyPem,
            cert: o.tls.certPem,
            allowHalfOpen: true,
            handshakeTimeout: o.limits.SOCKS_HANDSHAKE_TIMEOUT_MS,
            minVersion: 'TLSv1.2',
          })
        : net.createServer({ allowHalfOpen: true, noDelay: true });
    this.#server = server;
    server.on(o.tls !== undefined ? 'secureConnection' : 'connection', (s: net.Socket) => this.#accept(s));
    if (o.tls !== undefined) {
      // A failed handshake is the app's problem (or a scanner's); log its kind only.
      server.on('tlsClientError', (err: NodeJS.ErrnoException) => o.logger.debug({ code: err.code ?? err.name }, 'tls handshake failed'));
    }
    const addr = await listenTcp(server, o.host, o.port);
    server.on('error', (err: NodeJS.ErrnoException) => o.logger.warn({ code: err.code }, 'forward listener error'));
    return addr;
  }

  async close(): Promise<void> {
    const closed = closeServer(this.#server);
    for (const s of this.#conns) s.destroy();
    await closed;
  }

  #accept(socket: net.Socket): void {
    const o = this.opts;
    if (!this.#conns.admit(socket)) return;
    const log = o.logger.child({ conn: ++this.#nextId });
    this.#conns.add(socket);
    socket.pause(); // what the app sends first waits (bounded by the socket buffers) until the stream opens
    socket.setNoDelay(true);
    const ac = new AbortController();
    socket.on('error', (err: NodeJS.ErrnoException) => log.debug({ code: err.code ?? err.name }, 'app socket error'));
    socket.on('close', () => {
      this.#conns.delete(socket);
      ac.abort(new PosternError('E_CANCELLED', 'app disconnected'));
    });
    o.connect(o.target, ac.signal).then(
      (stream) => {
        if (socket.destroyed) {
          stream.on('error', () => {});
          destroyHard(stream);
          return;
        }
        log.debug('forward open, relaying');
        relay(socket, stream, (err) => log.debug({ aborted: err !== undefined }, 'relay done'));
      },
      (err: unknown) => {
        log.debug({ code: err instanceof PosternError ? err.code : 'unknown' }, 'forward connect failed');
        destroyHard(socket); // like ssh -L: the app sees its connection reset
      },
    );
  }
}
