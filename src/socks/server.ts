/**
 * The SOCKS5 listener (RFC 1928, RFC 1929): accepts local apps, runs each handshake on its
 * own under a timeout, asks `connect` for a stream to the target and relays both ways.
 *
 * Behaviour worth knowing:
 * - CONNECT is served, and UDP ASSOCIATE when the server was given a `udp` handler (RFC 1928 §7):
 *   the reply names the relay's UDP address; the control connection then carries nothing (what
 *   the app sends on it is read and discarded), and its close ends the association. BIND, and
 *   UDP ASSOCIATE without a handler, get reply 0x07 (RFC 1928 §6).
 * - With `auth` set, only method 0x02 is offered (RFC 1929); without, only 0x00. Before the
 *   login succeeds nothing is sent but the method choice and the RFC 1929 status. Failed logins
 *   are limited and counted per source address (core/auth-throttle.ts): past the free ones a
 *   failure status is sent only after LOCAL_AUTH_FAILURE_DELAY_MS.
 * - A pipelining client may send greeting, auth, request and payload in one write. Payload
 *   after the request ("early data") is held, up to SOCKS_EARLY_DATA_MAX_BYTES, and written to
 *   the stream once it opens. We keep reading up to that cap so that we notice an app that
 *   hangs up while its connect is pending; past the cap the socket is paused (the rest waits
 *   in the kernel).
 * - An app that closes or half-closes (FIN) before our reply has given up: RFC 1928 gives it
 *   nothing to do but wait for the reply. The pending connect is aborted through its signal.
 * - After a failure reply the connection is ended and destroyed once the app hangs up, or
 *   after SOCKS_HANDSHAKE_TIMEOUT_MS at most (RFC 1928 §6 asks for ≤ 10 s).
 * - Logs carry a per-listener connection counter, never the app's address, the destination
 *   or credentials.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { isLoopbackHost, type Target } from '../core/address.js';
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import { AuthThrottle } from '../core/auth-throttle.js';
import { credentialChecker, type Credentials } from '../core/credentials.js';
import { ConnectionSet, closeServer, listenTcp } from '../core/listen.js';
import { destroyHard, relay } from '../core/relay.js';
import type { Logger } from '../log/logger.js';
import {
  AuthMethod,
  Command,
  encodeAuthStatus,
  encodeMethodChoice,
  encodeReply,
  parseGreeting,
  parseRequest,
  parseUserPass,
  SocksReply,
  type SocksParseError,
} from './codec.js';

/** The credentials apps must present (one type for every listener: core/credentials.ts). */
export type SocksAuth = Credentials;

/** Opens a stream to the target; rejects with a PosternError whose socksReply the app receives. */
export type SocksConnect = (target: Target, signal: AbortSignal) => Promise<Duplex>;

/** A UDP ASSOCIATE request (RFC 1928 §7), as the `udp` handler sees it. */
export interface SocksUdpRequest {
  /** The local address the control connection arrived on: the relay binds there (same family). */
  readonly localAddress: string | undefined;
  /** The app's address: only datagrams from it are relayed. */
  readonly remoteAddress: string | undefined;
  /** DST.ADDR / DST.PORT: where the app says it will send from (zeros: not known yet). */
  readonly requested: Target;
}

/** A UDP relay ready for one association. */
export interface SocksUdpAssociation {
  /** BND.ADDR / BND.PORT of the success reply: where the app sends its datagrams. */
  readonly bind: Target;
  /** Called once, just before the success reply; `ended` is called when the association ends from the far side. */
  start(ended: () => void): void;
  /** The control connection closed (or the server is closing): release everything. Idempotent. */
  close(): void;
}

/** Sets up a UDP relay; rejects with a PosternError whose reply the app receives (E_PROTOCOL → 0x07). */
export type SocksUdpAssociate = (request: SocksUdpRequest, signal: AbortSignal) => Promise<SocksUdpAssociation>;

export interface SocksServerOptions {
  host: string;
  port: number;
  /** RFC 1929 credentials the app must present, or null for no authentication. */
  auth: SocksAuth | null;
  limits: Limits;
  logger: Logger;
  connect: SocksConnect;
  /**
   * Listen on a non-loopback address without auth (an open proxy anyone on the network can
   * use). Refused unless set, so that a config mistake does not expose the tunnel.
   */
  allowOpenProxy?: boolean;
  /** Serves UDP ASSOCIATE (RFC 1928 §7) through this handler; absent: the command gets 0x07. */
  udp?: SocksUdpAssociate;
  /** Failed-login limits shared with other listeners (the client shares one); absent: this server's own. */
  authThrottle?: AuthThrottle;
}

export interface SocksListenAddress {
  host: string;
  port: number;
}

/** What a connection needs from its server. */
interface ServerContext {
  readonly limits: Limits;
  readonly method: AuthMethod;
  readonly connect: SocksConnect;
  readonly udp: SocksUdpAssociate | null;
  checkCredentials(username: Uint8Array, password: Uint8Array): boolean;
  readonly throttle: AuthThrottle;
  /** A source's failures just crossed the free count: log it (once per source and window). */
  onThrottling(): void;
  forget(conn: SocksConnection): void;
}

export class SocksServer {
  readonly #opts: SocksServerOptions;
  readonly #log: Logger;
  readonly #ctx: ServerContext;
  readonly #conns: ConnectionSet<SocksConnection>;
  #server: net.Server | null = null;
  #closing = false;
  #nextId = 0;

  constructor(opts: SocksServerOptions) {
    this.#opts = opts;
    this.#log = opts.logger; // the caller names the component (client.ts passes component: 'socks')
    this.#conns = new ConnectionSet(opts.limits.LOCAL_MAX_CONNECTIONS, () =>
      this.#log.warn({ max: opts.limits.LOCAL_MAX_CONNECTIONS }, 'socks connection limit reached; refusing new connections'),
    );
    if (opts.auth === null && !isLoopbackHost(opts.host) && opts.allowOpenProxy !== true) {
      throw new PosternError('E_CONFIG', 'SOCKS on a non-loopback address requires a username and password');
    }
    let check: (u: Uint8Array, p: Uint8Array) => boolean = () => false;
    if (opts.auth !== null) {
      const user = Buffer.from(opts.auth.username, 'utf8');
      const pass = Buffer.from(opts.auth.password, 'utf8');
      if (user.length < 1 || user.length > 255 || pass.length < 1 || pass.length > 255) {
        throw new PosternError('E_CONFIG', 'SOCKS username and password must be 1..255 bytes each');
      }
      check = credentialChecker(opts.auth.username, opts.auth.password);
    }
    this.#ctx = {
      limits: opts.limits,
      method: opts.auth !== null ? AuthMethod.USER_PASS : AuthMethod.NONE,
      connect: opts.connect,
      udp: opts.udp ?? null,
      checkCredentials: check,
      throttle: opts.authThrottle ?? new AuthThrottle(opts.limits),
      onThrottling: () => this.#log.warn({ ...this.#ctx.throttle.counts }, 'repeated failed logins from one source; answers slowed'),
      forget: (conn) => this.#conns.delete(conn),
    };
  }

  /** Connections open now (handshaking, connecting or relaying). */
  get connectionCount(): number {
    return this.#conns.size;
  }

  /** Starts listening; port 0 picks a free port. Resolves with the address actually bound. */
  async listen(): Promise<SocksListenAddress> {
    if (this.#server !== null || this.#closing) throw new Error('SocksServer: listen() called twice or after close()');
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    this.#server = server;
    server.on('connection', (socket) => this.#accept(socket));
    let addr: { host: string; port: number };
    try {
      addr = await listenTcp(server, this.#opts.host, this.#opts.port);
    } catch (err) {
      this.#server = null;
      throw err;
    }
    // Accept errors (EMFILE…) after this point are logged; they do not stop the listener.
    server.on('error', (err: NodeJS.ErrnoException) => this.#log.warn({ code: err.code }, 'socks listener error'));
    this.#log.info({ ...addr, auth: this.#opts.auth !== null }, 'socks listening');
    return addr;
  }

  /** Stops accepting and destroys every open connection (pending connects are aborted). */
  async close(): Promise<void> {
    this.#closing = true;
    const closed = closeServer(this.#server);
    for (const conn of this.#conns) conn.destroy('server closing');
    await closed;
  }

  /**
   * Serves a connection accepted elsewhere (the mixed port), whose first bytes `head` were already
   * read to tell SOCKS from HTTP: they are put back in front of the socket's stream.
   */
  accept(socket: net.Socket, head: Buffer = EMPTY): void {
    socket.pause();
    if (head.length > 0) socket.unshift(head);
    this.#accept(socket);
    socket.resume();
  }

  #accept(socket: net.Socket): void {
    if (!this.#conns.admit(socket, this.#closing)) return;
    const id = ++this.#nextId;
    const conn = new SocksConnection(socket, this.#ctx, this.#log, id);
    this.#conns.add(conn);
    conn.start();
  }
}

// ── One app connection ───────────────────────────────────────────────────────

type State = 'greeting' | 'auth' | 'request' | 'connecting' | 'relaying' | 'associating' | 'associated' | 'closing' | 'closed';

/** Legal transitions; anything else is a bug and throws. */
const NEXT: { readonly [S in State]: readonly State[] } = {
  greeting: ['auth', 'request', 'closing', 'closed'],
  auth: ['request', 'closing', 'closed'],
  request: ['connecting', 'associating', 'closing', 'closed'],
  connecting: ['relaying', 'closing', 'closed'],
  relaying: ['closed'],
  associating: ['associated', 'closing', 'closed'],
  associated: ['closed'],
  closing: ['closed'],
  closed: [],
};

const EMPTY = Buffer.alloc(0);

class SocksConnection {
  #state: State = 'greeting';
  /** Unparsed handshake bytes. */
  #buf: Buffer = EMPTY;
  /** Handshake bytes already consumed by complete messages. */
  #consumed = 0;
  #early: Buffer[] = [];
  #earlyBytes = 0;
  #timer: NodeJS.Timeout | null = null;
  #abort: AbortController | null = null;
  /** UDP ASSOCIATE: the relay, once set up; closed with this connection. */
  #association: SocksUdpAssociation | null = null;

  constructor(
    private readonly socket: net.Socket,
    private readonly ctx: ServerContext,
    private readonly parentLog: Logger,
    private readonly id: number,
  ) {}

  #childLog: Logger | null = null;

  /** This connection's child logger, made on first use: most connections log nothing at the default level. */
  private get log(): Logger {
    return (this.#childLog ??= this.parentLog.child({ conn: this.id }));
  }

  #debug(obj: object | string, msg?: string): void {
    if (!this.parentLog.isLevelEnabled('debug')) return;
    if (typeof obj === 'string') this.log.debug(obj);
    else this.log.debug(obj, msg);
  }

  start(): void {
    const s = this.socket;
    s.on('error', (err: NodeJS.ErrnoException) => this.#debug({ code: err.code ?? err.name }, 'app socket error'));
    s.on('close', () => this.#onClose());
    s.on('end', () => this.#guard(() => this.#onEnd()));
    s.on('data', this.#onData);
    this.#arm(this.ctx.limits.SOCKS_HANDSHAKE_TIMEOUT_MS, 'handshake timeout');
    this.#debug('socks connection accepted');
  }

  destroy(why: string): void {
    if (this.#state === 'closed' || this.socket.destroyed) return;
    this.#debug({ why }, 'socks connection destroyed');
    this.socket.destroy();
  }

  #to(next: State): void {
    if (!NEXT[this.#state].includes(next)) throw new Error(`socks: illegal transition ${this.#state} → ${next}`);
    this.#state = next;
  }

  #handshaking(): boolean {
    return this.#state === 'greeting' || this.#state === 'auth' || this.#state === 'request';
  }

  /** Runs a handler so that nothing it throws escapes into the event loop. */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err: (err as Error)?.message }, 'socks connection handler failed');
      this.socket.destroy();
    }
  }

  #arm(ms: number, why: string): void {
    this.#disarm();
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.destroy(why);
    }, ms);
  }

  #disarm(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#guard(() => {
      if (this.#handshaking()) this.#handshake(chunk);
      else if (this.#state === 'connecting') this.#holdEarly(chunk);
      // 'closing': discard what the app still sends while it reads our last reply.
      // 'associating', 'associated': the control connection carries nothing (RFC 1928 §7); discarded.
    });
  };

  #handshake(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    // Each step consumes one message or stops; at most greeting, auth, request.
    while (this.#handshaking() && this.#step()) {
      // next message
    }
    if (this.#handshaking() && this.#consumed + this.#buf.length > this.ctx.limits.SOCKS_HANDSHAKE_MAX_BYTES) {
      this.destroy('handshake too large');
    }
  }

  #take(used: number): void {
    this.#consumed += used;
    this.#buf = this.#buf.subarray(used);
  }

  /** Parses one message in the current state; true when one was consumed and more may follow. */
  #step(): boolean {
    switch (this.#state) {
      case 'greeting': {
        const r = parseGreeting(this.#buf);
        if (!r.ok) return 'error' in r ? this.#refuse(r.error) : false;
        this.#take(r.used);
        if (!r.value.methods.includes(this.ctx.method)) {
          this.#closeWith(encodeMethodChoice(AuthMethod.NO_ACCEPTABLE), 'no acceptable method');
          return false;
        }
        this.socket.write(encodeMethodChoice(this.ctx.method));
        this.#to(this.ctx.method === AuthMethod.USER_PASS ? 'auth' : 'request');
        return true;
      }
      case 'auth': {
        const r = parseUserPass(this.#buf);
        if (!r.ok) {
          if (!('error' in r)) return false;
          // A malformed RFC 1929 message still gets a failure status; a wrong VER gets nothing.
          if (r.error.reason === 'bad-version') return this.#refuse(r.error);
          this.#closeWith(encodeAuthStatus(false), `bad auth message: ${r.error.reason}`);
          return false;
        }
        this.#take(r.used);
        const source = this.socket.remoteAddress ?? '';
        const admitted = this.ctx.throttle.admit(source);
        const ok = admitted && this.ctx.checkCredentials(r.value.username, r.value.password);
        r.value.username.fill(0);
        r.value.password.fill(0);
        if (!admitted) {
          this.#closeWith(encodeAuthStatus(false), 'authentication refused unchecked: too many failures from this source');
          return false;
        }
        if (!ok) {
          this.#failAuth(source);
          return false;
        }
        this.socket.write(encodeAuthStatus(true));
        this.#to('request');
        return true;
      }
      case 'request': {
        const r = parseRequest(this.#buf);
        if (!r.ok) return 'error' in r ? this.#refuse(r.error) : false;
        this.#take(r.used);
        this.#disarm();
        if (r.value.command === Command.UDP_ASSOCIATE && this.ctx.udp !== null) {
          this.#buf = EMPTY;
          this.#to('associating');
          void this.#associate(r.value.target, this.ctx.udp);
          return false;
        }
        if (r.value.command !== Command.CONNECT) {
          this.#closeWith(encodeReply(SocksReply.COMMAND_NOT_SUPPORTED), 'command not supported');
          return false;
        }
        const rest = this.#buf;
        this.#buf = EMPTY;
        this.#to('connecting');
        if (rest.length > 0) this.#holdEarly(rest);
        void this.#open(r.value.target);
        return false;
      }
      default:
        return false;
    }
  }

  /** Wrong credentials: the failure status, at once or (past the source's free failures) later. */
  #failAuth(source: string): void {
    const throttle = this.ctx.throttle;
    const f = throttle.failed(source);
    if (f.startedThrottling) this.ctx.onThrottling();
    if (f.delayMs === 0) {
      this.#closeWith(encodeAuthStatus(false), 'authentication failed');
      return;
    }
    this.#debug('authentication failed; answer delayed');
    this.#to('closing');
    this.#buf = EMPTY;
    this.#disarm();
    this.socket.resume(); // what the app still sends is discarded; its FIN is seen
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      throttle.done(source);
    };
    const timer = setTimeout(() => {
      release();
      this.#guard(() => {
        if (this.socket.destroyed) return;
        this.socket.end(encodeAuthStatus(false));
        this.#arm(this.ctx.limits.SOCKS_HANDSHAKE_TIMEOUT_MS, 'linger timeout');
      });
    }, f.delayMs);
    this.socket.once('close', () => {
      clearTimeout(timer);
      release();
    });
  }

  /** A malformed message: send the reply it calls for (if any) and close. */
  #refuse(error: SocksParseError): false {
    if (error.reply === null) this.destroy(`malformed: ${error.reason}`);
    else this.#closeWith(encodeReply(error.reply), `malformed: ${error.reason}`);
    return false;
  }

  /** Keeps early data up to the cap; past it, gives the rest back to the socket and pauses. */
  #holdEarly(chunk: Buffer): void {
    const room = this.ctx.limits.SOCKS_EARLY_DATA_MAX_BYTES - this.#earlyBytes;
    if (chunk.length <= room) {
      this.#early.push(chunk);
      this.#earlyBytes += chunk.length;
      return;
    }
    if (room > 0) {
      this.#early.push(chunk.subarray(0, room));
      this.#earlyBytes += room;
    }
    // Pause first: unshift on a flowing stream would re-emit 'data' at once.
    this.socket.pause();
    this.socket.unshift(chunk.subarray(Math.max(room, 0)));
  }

  async #open(target: Target): Promise<void> {
    const ac = new AbortController();
    this.#abort = ac;
    let stream: Duplex;
    try {
      stream = await this.ctx.connect(target, ac.signal);
    } catch (err) {
      this.#abort = null;
      if (this.#state !== 'connecting') return; // the app left; nobody to answer
      const reply = err instanceof PosternError ? err.socksReply : SocksReply.GENERAL_FAILURE;
      this.#debug({ code: errorCode(err), reply }, 'connect failed');
      this.#guard(() => this.#closeWith(encodeReply(reply), 'connect failed'));
      return;
    }
    this.#abort = null;
    this.#guard(() => this.#start(stream));
  }

  /** UDP ASSOCIATE: sets up the relay, then replies with its address (RFC 1928 §7). */
  async #associate(requested: Target, udp: SocksUdpAssociate): Promise<void> {
    const ac = new AbortController();
    this.#abort = ac;
    const s = this.socket;
    let assoc: SocksUdpAssociation;
    try {
      assoc = await udp({ localAddress: s.localAddress, remoteAddress: s.remoteAddress, requested }, ac.signal);
    } catch (err) {
      this.#abort = null;
      if (this.#state !== 'associating') return; // the app left; nobody to answer
      const reply = udpRefusalReply(err);
      this.#debug({ code: errorCode(err), reply }, 'udp associate failed');
      this.#guard(() => this.#closeWith(encodeReply(reply), 'udp associate failed'));
      return;
    }
    this.#abort = null;
    if (this.#state !== 'associating') {
      assoc.close(); // the app left while the relay was being set up
      return;
    }
    this.#guard(() => {
      this.#to('associated');
      this.#association = assoc;
      assoc.start(() => this.destroy('udp association ended'));
      this.socket.write(encodeReply(SocksReply.SUCCEEDED, assoc.bind));
      this.#debug('udp association open');
    });
  }

  #start(stream: Duplex): void {
    if (this.#state !== 'connecting') {
      // The app left while the connect was pending, and the connector did not honour the abort.
      stream.on('error', () => {});
      destroyHard(stream);
      return;
    }
    if (stream.destroyed) {
      this.#closeWith(encodeReply(SocksReply.GENERAL_FAILURE), 'connect returned a destroyed stream');
      return;
    }
    this.#to('relaying');
    const s = this.socket;
    s.write(encodeReply(SocksReply.SUCCEEDED));
    // Hand the socket over: stop our reader (paused first so that no chunk falls between).
    s.pause();
    s.off('data', this.#onData);
    if (this.#earlyBytes > 0) stream.write(Buffer.concat(this.#early, this.#earlyBytes));
    this.#early = [];
    this.#earlyBytes = 0;
    this.#debug('stream open, relaying');
    // An optimistic open the bridge refuses ends here too: the app's connection is reset (RST).
    relay(s, stream, (err) => this.#debug({ aborted: err !== undefined, ...(err ? { code: errorCode(err) } : {}) }, 'relay done'));
  }

  /** Sends a last message, ends our side, and destroys when the app hangs up or after a bound. */
  #closeWith(bytes: Buffer, why: string): void {
    this.#debug({ why }, 'socks connection refused');
    this.#to('closing');
    this.#buf = EMPTY;
    this.#early = [];
    this.#earlyBytes = 0;
    this.socket.end(bytes);
    this.socket.resume(); // keep reading so that we see the app's FIN
    this.#arm(this.ctx.limits.SOCKS_HANDSHAKE_TIMEOUT_MS, 'linger timeout');
  }

  #onEnd(): void {
    // relaying: relay owns half-close. closing: our side is already ended, so the socket
    // destroys itself once our last message is flushed (destroying now could drop it).
    if (this.#state === 'relaying' || this.#state === 'closing' || this.#state === 'closed') return;
    this.destroy(`app hung up during ${this.#state}`);
  }

  #onClose(): void {
    if (this.#state === 'closed') return;
    this.#to('closed');
    this.#disarm();
    this.#buf = EMPTY;
    this.#early = [];
    this.#earlyBytes = 0;
    if (this.#abort !== null) {
      this.#abort.abort(new PosternError('E_CANCELLED', 'app disconnected'));
      this.#abort = null;
    }
    if (this.#association !== null) {
      const a = this.#association;
      this.#association = null;
      a.close();
    }
    this.ctx.forget(this);
    this.#debug('socks connection closed');
  }
}

/**
 * The reply for a failed UDP ASSOCIATE: as for CONNECT, except that E_PROTOCOL (a bridge that
 * does not know the command) is "command not supported" (0x07).
 */
function udpRefusalReply(err: unknown): SocksReply {
  if (!(err instanceof PosternError)) return SocksReply.GENERAL_FAILURE;
  return err.code === 'E_PROTOCOL' ? SocksReply.COMMAND_NOT_SUPPORTED : err.socksReply;
}

/** A log-safe code for an error: never its message, which may name the destination. */
function errorCode(err: unknown): string {
  if (err instanceof PosternError) return err.code;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'unknown';
}
