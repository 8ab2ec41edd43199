/**
 * The local HTTP proxy: CONNECT tunnels (RFC 9110 §9.3.6) and absolute-form plain HTTP requests
 * (RFC 9112 §3.2.2), each carried as a stream through `connect` (the tunnel). Also answers
 * `GET /proxy.pac` for browsers and phones that take a proxy auto-config URL.
 *
 * Behaviour worth knowing:
 * - Names go to `connect` unresolved: this process never looks up a destination (no DNS leak).
 * - Plain HTTP: one stream per request, sent upstream in origin-form with `Connection: close`;
 *   hop-by-hop fields (and those the Connection field names, Proxy-Authorization,
 *   Proxy-Connection) are removed and Host is set from the absolute URI. The app's connection
 *   stays open between requests while both the app and the response framing allow it, so one
 *   connection may send requests to several hosts. Requests are served one at a time: a
 *   pipelined next request waits (unread, in the kernel) until the current response is done.
 * - Bodies (Content-Length or chunked, both ways) are streamed with backpressure, never buffered.
 * - With `auth`, every request through the proxy needs `Proxy-Authorization: Basic`; otherwise 407
 *   with `Proxy-Authenticate: Basic realm="proxy"` — a generic realm, naming neither the product
 *   nor its version (the 407 is all an unauthenticated scanner learns). Credentials are compared
 *   in constant time. Wrong credentials are limited and counted per source address
 *   (core/auth-throttle.ts): past the free ones the 407 comes after LOCAL_AUTH_FAILURE_DELAY_MS,
 *   and past the pending bound a 429 comes without a check. A request with no credentials at all
 *   is the browser's first try (it prompts on the 407) and is not counted as a guess.
 * - Requests to the proxy itself (origin-form) need no credentials: `GET /proxy.pac` (browsers
 *   fetch a PAC file without proxy authentication) and a 404 for anything else. The PAC file holds
 *   the address the requester already connected to and, with route rules, which names go
 *   direct — never a credential; without the password it opens nothing.
 * - With `localPages`, other origin-form GETs from this machine (a loopback peer) that name the
 *   port by a loopback Host (127.0.0.1, [::1] or localhost with this port: no DNS rebinding) go to
 *   it — the client's status page. Every other request for a local path gets the 404 as before.
 *   `Authorization: Basic` with the proxy's own credentials marks such a request authorized; a
 *   wrong one is limited and counted like a wrong Proxy-Authorization.
 * - Tunnel errors become the status their PosternError names (502, 503, 504, 403).
 * - Logs carry a per-listener connection counter, never the app's address, the destination or
 *   credentials.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { formatHostPort, isLoopbackHost, type Target } from '../core/address.js';
import { ERRORS, PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import { AuthThrottle } from '../core/auth-throttle.js';
import { credentialChecker, type Credentials } from '../core/credentials.js';
import { ConnectionSet, closeServer, listenTcp } from '../core/listen.js';
import { destroyHard, relay } from '../core/relay.js';
import type { Logger } from '../log/logger.js';
import {
  ChunkedScanner,
  classifyTarget,
  encodeHead,
  endToEndHeaders,
  headerValues,
  isLoopbackHostField,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
  responseFraming,
  simpleResponse,
  wantsKeepAlive,
  type BodyFraming,
  type Header,
  type RequestHead,
} from './codec.js';

/** The credentials apps must present (one type for every listener: core/credentials.ts). */
export type HttpAuth = Credentials;

/** Opens a stream to the target; rejects with a PosternError whose httpStatus the app receives. */
export type HttpConnect = (target: Target, signal: AbortSignal) => Promise<Duplex>;

export interface HttpProxyOptions {
  host: string;
  port: number;
  auth: HttpAuth | null;
  limits: Limits;
  logger: Logger;
  connect: HttpConnect;
  /** Listen on a non-loopback address without auth (an open proxy). Refused unless set. */
  allowOpenProxy?: boolean;
  /** The PAC file for this proxy (host and port as the app reached it); default pacFile. */
  pac?: (host: string, port: number) => string;
  /** Failed-login limits shared with other listeners (the client shares one); absent: this server's own. */
  authThrottle?: AuthThrottle;
  /** Pages of the proxy itself for the user of this machine (the client's status page); absent: 404. */
  localPages?: LocalPages;
}

/** A GET (or HEAD) for the proxy itself, from this machine, naming it by a loopback Host. */
export interface LocalPageRequest {
  readonly method: 'GET' | 'HEAD';
  /** The origin-form target, query included. */
  readonly path: string;
  readonly headers: readonly Header[];
  /** The port the request came in on. */
  readonly port: number;
  /** The proxy asks apps for a username and password (false: --no-auth). */
  readonly authRequired: boolean;
  /** `Authorization: Basic` carried the proxy's username and password (always true without authRequired). */
  readonly authorized: boolean;
}

export interface LocalPageAnswer {
  readonly status: number;
  readonly body: string;
  readonly contentType: string;
  readonly headers?: readonly Header[];
}

/** Answers a page of the proxy itself, or null: not one of its pages (the usual 404). */
export type LocalPages = (req: LocalPageRequest) => LocalPageAnswer | null;

/** Which credentials field a request carries, and the answer that asks for it. */
interface AuthKind {
  readonly field: 'proxy-authorization' | 'authorization';
  readonly status: 407 | 401;
  readonly challengeField: string;
  readonly body: string;
}
const PROXY_AUTH: AuthKind = { field: 'proxy-authorization', status: 407, challengeField: 'Proxy-Authenticate', body: 'proxy authentication required\n' };
const PAGE_AUTH: AuthKind = { field: 'authorization', status: 401, challengeField: 'WWW-Authenticate', body: 'authentication required\n' };

/** The realm of the 407 challenge: generic on purpose (no product name or version to fingerprint). */
export const PROXY_AUTH_REALM = 'proxy';

export const PAC_PATH = '/proxy.pac';
export const PAC_CONTENT_TYPE = 'application/x-ns-proxy-autoconfig';

/**
 * The PAC file for a proxy at host:port. `PROXY` only, and no `DIRECT` fallback:
 * - every PAC consumer understands `PROXY` (Android and iOS Wi-Fi settings, Windows, macOS,
 *   Firefox, Chromium), while `SOCKS5` is unknown to some (WinINet reads `SOCKS` as SOCKS4) and
 *   Chromium cannot authenticate to a SOCKS5 proxy, which a LAN listener always requires;
 * - through `PROXY` the host name reaches us unresolved (CONNECT host:port), so no DNS leaks;
 * - `DIRECT` would silently send traffic outside the tunnel when the proxy is unreachable.
 */
export function pacFile(host: string, port: number): string {
  return `function FindProxyForURL(url, host) {\n  return "PROXY ${formatHostPort({ host, port })}";\n}\n`;
}

interface ServerContext {
  readonly limits: Limits;
  readonly connect: HttpConnect;
  readonly authRequired: boolean;
  readonly pac: (host: string, port: number) => string;
  readonly localPages: LocalPages | undefined;
  checkCredentials(headers: readonly Header[], field: AuthKind['field']): boolean;
  readonly throttle: AuthThrottle;
  /** A source's failures just crossed the free count: log it (once per source and window). */
  onThrottling(): void;
  forget(conn: HttpConnection): void;
}

export class HttpProxyServer {
  readonly #opts: HttpProxyOptions;
  readonly #log: Logger;
  readonly #ctx: ServerContext;
  readonly #conns: ConnectionSet<HttpConnection>;
  #server: net.Server | null = null;
  #closing = false;
  #nextId = 0;

  constructor(opts: HttpProxyOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
    this.#conns = new ConnectionSet(opts.limits.LOCAL_MAX_CONNECTIONS, () =>
      this.#log.warn({ max: opts.limits.LOCAL_MAX_CONNECTIONS }, 'http connection limit reached; refusing new connections'),
    );
    if (opts.auth === null && !isLoopbackHost(opts.host) && opts.allowOpenProxy !== true) {
      throw new PosternError('E_CONFIG', 'HTTP proxy on a non-loopback address requires a username and password');
    }
    let check: (headers: readonly Header[], field: AuthKind['field']) => boolean = () => true;
    if (opts.auth !== null) {
      if (opts.auth.username.includes(':')) throw new PosternError('E_CONFIG', 'HTTP proxy user name must not contain ":" (RFC 7617)');
      const matches = credentialChecker(opts.auth.username, opts.auth.password);
      check = (headers, field) => {
        const values = headerValues(headers, field);
        const m = values.length === 1 ? /^basic[ \t]+([A-Za-z0-9+/]+={0,2})$/i.exec(values[0] as string) : null;
        const decoded = m ? Buffer.from(m[1] as string, 'base64') : Buffer.alloc(0);
        const colon = decoded.indexOf(0x3a);
        const user = colon >= 0 ? decoded.subarray(0, colon) : decoded;
        const pass = colon >= 0 ? decoded.subarray(colon + 1) : Buffer.alloc(0);
        const ok = matches(user, pass);
        decoded.fill(0);
        return colon >= 0 && ok;
      };
    }
    this.#ctx = {
      limits: opts.limits,
      connect: opts.connect,
      authRequired: opts.auth !== null,
      pac: opts.pac ?? pacFile,
      localPages: opts.localPages,
      checkCredentials: check,
      throttle: opts.authThrottle ?? new AuthThrottle(opts.limits),
      onThrottling: () => this.#log.warn({ ...this.#ctx.throttle.counts }, 'repeated failed logins from one source; answers slowed'),
      forget: (conn) => this.#conns.delete(conn),
    };
  }

  get connectionCount(): number {
    return this.#conns.size;
  }

  /** Starts listening; port 0 picks a free port. Resolves with the address actually bound. */
  async listen(): Promise<{ host: string; port: number }> {
    if (this.#server !== null || this.#closing) throw new Error('HttpProxyServer: listen() called twice or after close()');
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    this.#server = server;
    server.on('connection', (socket) => this.accept(socket));
    let addr: { host: string; port: number };
    try {
      addr = await listenTcp(server, this.#opts.host, this.#opts.port);
    } catch (err) {
      this.#server = null;
      throw err;
    }
    server.on('error', (err: NodeJS.ErrnoException) => this.#log.warn({ code: err.code }, 'http listener error'));
    this.#log.info({ ...addr, auth: this.#opts.auth !== null }, 'http proxy listening');
    return addr;
  }

  async close(): Promise<void> {
    this.#closing = true;
    const closed = closeServer(this.#server);
    for (const conn of this.#conns) conn.destroy('server closing');
    await closed;
  }

  /** Serves an accepted connection; `head` holds bytes already read from it (the mixed port). */
  accept(socket: net.Socket, head: Buffer = EMPTY): void {
    if (!this.#conns.admit(socket, this.#closing)) return;
    const conn = new HttpConnection(socket, this.#ctx, this.#log.child({ conn: ++this.#nextId }));
    this.#conns.add(conn);
    conn.start(head);
  }
}

const EMPTY = Buffer.alloc(0);

/** How the body of the message in flight is delimited and how much is left. */
class BodyTracker {
  #left: number;
  readonly #chunked: ChunkedScanner | null;
  readonly untilClose: boolean;

  constructor(framing: BodyFraming) {
    this.#left = framing.kind === 'length' ? framing.length : 0;
    this.#chunked = framing.kind === 'chunked' ? new ChunkedScanner() : null;
    this.untilClose = framing.kind === 'close';
  }

  get done(): boolean {
    if (this.untilClose) return false;
    return this.#chunked !== null ? this.#chunked.done : this.#left === 0;
  }

  /** How many bytes of `buf` belong to this body, or an error reason. */
  take(buf: Buffer): number | string {
    if (this.untilClose) return buf.length;
    if (this.#chunked !== null) {
      const r = this.#chunked.scan(buf);
      return 'error' in r ? r.error : r.used;
    }
    const n = Math.min(this.#left, buf.length);
    this.#left -= n;
    return n;
  }
}

type State = 'head' | 'local' | 'tunnel-opening' | 'tunnel' | 'forwarding' | 'closing' | 'closed';

/** One app connection: reads request heads, serves each, and goes back for the next. */
class HttpConnection {
  #state: State = 'head';
  #buf: Buffer = EMPTY;
  #timer: NodeJS.Timeout | null = null;
  #abort: AbortController | null = null;
  // The request in flight (state 'forwarding').
  #upstream: Duplex | null = null;
  #method = '';
  #reqBody: BodyTracker | null = null;
  #upstreamFull = false;
  #clientKeepAlive = false;
  #clientEnded = false;
  #resBuf: Buffer = EMPTY;
  #resBody: BodyTracker | null = null;
  #resHeadSent = false;
  /** A delayed 407 holds a slot of its source's pending bound until it is sent or the app leaves. */
  #releaseThrottle: (() => void) | null = null;

  constructor(
    private readonly socket: net.Socket,
    private readonly ctx: ServerContext,
    private readonly log: Logger,
  ) {}

  start(head: Buffer): void {
    const s = this.socket;
    s.on('error', (err: NodeJS.ErrnoException) => this.log.debug({ code: err.code ?? err.name }, 'app socket error'));
    s.on('close', () => this.#onClose());
    s.on('end', () => this.#guard(() => this.#onEnd()));
    s.on('data', this.#onData);
    this.#armHead();
    this.log.debug('http connection accepted');
    if (head.length > 0) this.#onData(head);
  }

  destroy(why: string): void {
    if (this.#state === 'closed' || this.socket.destroyed) return;
    this.log.debug({ why }, 'http connection destroyed');
    if (this.#upstream !== null) destroyHard(this.#upstream);
    destroyHard(this.socket);
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err: (err as Error)?.message }, 'http connection handler failed');
      this.destroy('handler failed');
    }
  }

  #arm(ms: number, onFire: () => void): void {
    this.#disarm();
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#guard(onFire);
    }, ms);
  }

  #disarm(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** Waiting for a head: idle timeout while nothing came, head timeout once bytes arrived. */
  #armHead(): void {
    if (this.#buf.length === 0) this.#arm(this.ctx.limits.HTTP_PROXY_IDLE_TIMEOUT_MS, () => this.#finish(null, 'idle timeout'));
    else this.#arm(this.ctx.limits.HTTP_PROXY_HEAD_TIMEOUT_MS, () => this.#finish(simpleResponse(408, 'request head timed out\n'), 'head timeout'));
  }

  /** Reading from the app is on only while we can use what it sends. */
  #flow(): void {
    const s = this.socket;
    if (s.destroyed) return;
    const want =
      this.#state === 'head' ||
      this.#state === 'closing' ||
      (this.#state === 'forwarding' && this.#reqBody !== null && !this.#reqBody.done && !this.#upstreamFull);
    if (want) s.resume();
    else s.pause();
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#guard(() => {
      switch (this.#state) {
        case 'head': {
          const wasEmpty = this.#buf.length === 0;
          this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
          if (wasEmpty) this.#armHead();
          this.#tryHead();
          return;
        }
        case 'forwarding':
          if (this.#reqBody !== null && !this.#reqBody.done) this.#sendBody(chunk);
          else this.#hold(chunk);
          return;
        case 'closing':
          return; // discard what the app still sends while it reads our last response
        default:
          this.#hold(chunk); // tunnel opening, local: keep for later, bounded by pausing
      }
    });
  };

  /** Keeps bytes that arrived while we cannot use them and stops reading more. */
  #hold(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    this.socket.pause();
  }

  #tryHead(): void {
    while (this.#state === 'head' && this.#buf.length > 0) {
      const r = parseRequestHead(this.#buf, this.ctx.limits.HTTP_PROXY_HEAD_MAX_BYTES);
      if (!r.ok) {
        if ('error' in r) {
          this.#finish(simpleResponse(r.error.status, `${r.error.reason}\n`), `bad request: ${r.error.reason}`);
          return;
        }
        break; // an incomplete head: keep reading (the mixed port hands the socket over paused)
      }
      this.#buf = this.#buf.subarray(r.used);
      this.#disarm();
      this.#serve(r.value);
    }
    if (this.#state === 'head') {
      this.#armHead();
      this.#flow();
    }
  }

  #serve(head: RequestHead): void {
    const t = classifyTarget(head);
    if (!t.ok) {
      if ('error' in t) this.#finish(simpleResponse(t.error.status, `${t.error.reason}\n`), `bad request: ${t.error.reason}`);
      return;
    }
    const target = t.value;
    if (target.kind === 'local') {
      this.#state = 'local';
      this.#serveLocal(head, target.path);
      return;
    }
    if (this.ctx.authRequired && !this.#authenticated(head, PROXY_AUTH)) return;
    if (target.kind === 'connect') {
      this.#state = 'tunnel-opening';
      this.#flow();
      void this.#openTunnel(target.target);
      return;
    }
    const framing = requestFraming(head);
    if (!framing.ok) {
      if ('error' in framing) this.#finish(simpleResponse(framing.error.status, `${framing.error.reason}\n`), `bad request: ${framing.error.reason}`);
      return;
    }
    this.#state = 'forwarding';
    this.#method = head.method;
    this.#clientKeepAlive = wantsKeepAlive(head.version, head.headers);
    this.#reqBody = new BodyTracker(framing.value);
    this.#resBuf = EMPTY;
    this.#resBody = null;
    this.#resHeadSent = false;
    this.#upstreamFull = true; // nothing is read from the app until the stream is open
    this.#flow();
    const headers: Header[] = [
      ['Host', target.hostHeader],
      ...endToEndHeaders(head.headers).filter(([k]) => k.toLowerCase() !== 'host'),
      ['Connection', 'close'],
    ];
    const out = encodeHead(`${head.method} ${target.path} HTTP/${head.version}`, headers);
    void this.#openForward(target.target, out);
  }

  /** Checks Proxy-Authorization (or Authorization); on failure answers (407/401, maybe later; or 429) and returns false. */
  #authenticated(head: RequestHead, kind: AuthKind): boolean {
    const challenge = () =>
      simpleResponse(kind.status, kind.body, { headers: [[kind.challengeField, `Basic realm="${PROXY_AUTH_REALM}"`]] });
    const throttle = this.ctx.throttle;
    if (headerValues(head.headers, kind.field).length === 0) {
      throttle.challenged();
      this.#finish(challenge(), 'no proxy credentials');
      return false;
    }
    const source = this.socket.remoteAddress ?? '';
    if (!throttle.admit(source)) {
      this.#finish(simpleResponse(429, 'too many failed logins; try again later\n', { headers: [['Retry-After', '10']] }), 'login refused unchecked');
      return false;
    }
    if (this.ctx.checkCredentials(head.headers, kind.field)) return true;
    const f = throttle.failed(source);
    if (f.startedThrottling) this.ctx.onThrottling();
    if (f.delayMs === 0) {
      this.#finish(challenge(), 'proxy authentication failed');
      return false;
    }
    // Hold the connection (what the app sends waits, paused) and answer later.
    this.#state = 'local';
    this.#flow();
    this.#releaseThrottle = () => throttle.done(source);
    this.#arm(f.delayMs, () => {
      this.#releaseThrottle?.();
      this.#releaseThrottle = null;
      this.#finish(challenge(), 'proxy authentication failed (answer delayed)');
    });
    return false;
  }

  #serveLocal(head: RequestHead, path: string): void {
    const isGet = head.method === 'GET' || head.method === 'HEAD';
    if (isGet && (path === PAC_PATH || path.startsWith(`${PAC_PATH}?`))) {
      const host = this.socket.localAddress ?? '127.0.0.1';
      const pac = this.ctx.pac(host.startsWith('::ffff:') ? host.slice(7) : host, this.socket.localPort ?? 0);
      this.#finish(simpleResponse(200, pac, { contentType: PAC_CONTENT_TYPE, omitBody: head.method === 'HEAD' }), 'served pac');
      return;
    }
    const pages = this.ctx.localPages;
    const port = this.socket.localPort ?? 0;
    // Only from this machine, and only when the browser named this port by a loopback name: a web
    // page that rebinds its own name to 127.0.0.1 sends its name in Host and gets the 404.
    if (pages !== undefined && isGet && isLoopbackHost(this.socket.remoteAddress ?? '') && isLoopbackHostField(head.headers, port)) {
      let authorized = !this.ctx.authRequired;
      if (!authorized && headerValues(head.headers, PAGE_AUTH.field).length > 0) {
        if (!this.#authenticated(head, PAGE_AUTH)) return;
        authorized = true;
      }
      const answer = pages({ method: head.method as 'GET' | 'HEAD', path, headers: head.headers, port, authRequired: this.ctx.authRequired, authorized });
      if (answer !== null) {
        if (answer.status === 401) this.ctx.throttle.challenged();
        const res = simpleResponse(answer.status, answer.body, { contentType: answer.contentType, headers: answer.headers ?? [], omitBody: head.method === 'HEAD' });
        this.#finish(res, 'served a local page');
        return;
      }
    }
    this.#finish(simpleResponse(404, 'not found\n', { omitBody: head.method === 'HEAD' }), 'local request');
  }

  async #open(target: Target): Promise<Duplex | null> {
    const ac = new AbortController();
    this.#abort = ac;
    try {
      return await this.ctx.connect(target, ac.signal);
    } catch (err) {
      this.#abort = null;
      if (this.#state === 'closed') return null;
      const code = err instanceof PosternError ? err.code : 'E_GENERAL';
      const status = err instanceof PosternError ? err.httpStatus : 502;
      this.log.debug({ code, status }, 'connect failed');
      // The catalogue's message only: the error's detail may name the destination.
      this.#guard(() => this.#finish(simpleResponse(status, `postern: ${ERRORS[code].message} (${code})\n`), 'connect failed'));
      return null;
    } finally {
      this.#abort = null;
    }
  }

  /** The stream opened but the app is gone: drop it. */
  #late(stream: Duplex): boolean {
    if (this.#state !== 'closed' && !this.socket.destroyed) return false;
    stream.on('error', () => {});
    destroyHard(stream);
    return true;
  }

  async #openTunnel(target: Target): Promise<void> {
    const stream = await this.#open(target);
    if (stream === null || this.#late(stream)) return;
    this.#guard(() => {
      this.#state = 'tunnel';
      const s = this.socket;
      s.write('HTTP/1.1 200 Connection established\r\n\r\n');
      s.pause();
      s.off('data', this.#onData);
      if (this.#buf.length > 0) stream.write(this.#buf);
      this.#buf = EMPTY;
      this.log.debug('tunnel open, relaying');
      // An optimistic open the bridge refuses ends here too: the app's connection is reset (RST).
      relay(s, stream, (err) => this.log.debug({ aborted: err !== undefined, code: err instanceof PosternError ? err.code : null }, 'relay done'));
    });
  }

  async #openForward(target: Target, head: Buffer): Promise<void> {
    const stream = await this.#open(target);
    if (stream === null || this.#late(stream)) return;
    this.#guard(() => {
      this.#upstream = stream;
      stream.on('error', (err: Error) => this.#guard(() => this.#upstreamGone(err)));
      stream.on('close', () => this.#guard(() => this.#upstreamGone(null)));
      stream.on('end', () => this.#guard(() => this.#upstreamEnd()));
      stream.on('data', (d: Buffer) => this.#guard(() => this.#onResponse(d)));
      stream.on('drain', () => {
        this.#upstreamFull = false;
        this.#flow();
      });
      this.#upstreamFull = !stream.write(head);
      // Body bytes that came with the head.
      const held = this.#buf;
      this.#buf = EMPTY;
      if (held.length > 0) this.#sendBody(held);
      this.#flow();
    });
  }

  /** Request body bytes from the app → upstream; what follows the body is the next request. */
  #sendBody(chunk: Buffer): void {
    const body = this.#reqBody;
    const up = this.#upstream;
    if (body === null || up === null) return;
    const n = body.take(chunk);
    if (typeof n === 'string') {
      if (this.#resHeadSent) this.destroy(`bad request body: ${n}`);
      else this.#finish(simpleResponse(400, `${n}\n`), `bad request body: ${n}`);
      return;
    }
    if (n > 0 && !up.write(chunk.subarray(0, n))) this.#upstreamFull = true;
    if (n < chunk.length) this.#buf = this.#buf.length === 0 ? chunk.subarray(n) : Buffer.concat([this.#buf, chunk.subarray(n)]);
    this.#flow();
  }

  #onResponse(d: Buffer): void {
    if (this.#state !== 'forwarding') return;
    if (this.#resBody === null) {
      this.#resBuf = this.#resBuf.length === 0 ? d : Buffer.concat([this.#resBuf, d]);
      for (;;) {
        const r = parseResponseHead(this.#resBuf, this.ctx.limits.HTTP_PROXY_HEAD_MAX_BYTES);
        if (!r.ok) {
          if ('error' in r) this.#finish(simpleResponse(502, `${r.error.reason}\n`), `bad response: ${r.error.reason}`);
          return;
        }
        this.#resBuf = this.#resBuf.subarray(r.used);
        const res = r.value;
        if (res.status === 101) {
          this.#finish(simpleResponse(502, 'upstream switched protocols\n'), 'unexpected 101');
          return;
        }
        const headers = endToEndHeaders(res.headers);
        if (res.status < 200) {
          // Interim response (100 Continue, 103 Early Hints): pass on, then the final one follows.
          this.socket.write(encodeHead(`HTTP/1.1 ${res.status} ${res.reason}`, headers));
          continue;
        }
        const framing = responseFraming(this.#method, res);
        if (!framing.ok) {
          if ('error' in framing) this.#finish(simpleResponse(502, `${framing.error.reason}\n`), `bad response: ${framing.error.reason}`);
          return;
        }
        this.#resBody = new BodyTracker(framing.value);
        if (this.#resBody.untilClose) this.#clientKeepAlive = false;
        headers.push(['Connection', this.#clientKeepAlive ? 'keep-alive' : 'close']);
        this.#resHeadSent = true;
        this.socket.write(encodeHead(`HTTP/1.1 ${res.status} ${res.reason}`, headers));
        break;
      }
      d = this.#resBuf;
      this.#resBuf = EMPTY;
    }
    const body = this.#resBody;
    const n = body.take(d);
    if (typeof n === 'string') {
      this.destroy(`bad response body: ${n}`);
      return;
    }
    if (n > 0 && !this.socket.write(d.subarray(0, n))) {
      const up = this.#upstream;
      up?.pause();
      this.socket.once('drain', () => up?.resume());
    }
    if (body.done) this.#responseDone();
  }

  /** The response is complete: drop the stream, then serve the next request or close. */
  #responseDone(): void {
    const up = this.#upstream;
    this.#upstream = null;
    if (up !== null) {
      up.removeAllListeners('data');
      up.removeAllListeners('end');
      up.removeAllListeners('close');
      up.removeAllListeners('drain');
      up.on('error', () => {});
      destroyHard(up);
    }
    const reqDone = this.#reqBody?.done === true;
    this.#reqBody = null;
    this.#resBody = null;
    if (!this.#clientKeepAlive || !reqDone || this.#clientEnded) {
      this.#finish(null, 'response done, not keeping alive');
      return;
    }
    this.#state = 'head';
    this.#upstreamFull = false;
    this.#armHead();
    this.#tryHead();
  }

  #upstreamEnd(): void {
    if (this.#state !== 'forwarding') return;
    if (this.#resBody?.untilClose === true) {
      // #finish drops the stream (its data is all here) and ends the app's connection cleanly.
      this.#finish(null, 'response ended with the connection');
      return;
    }
    this.#upstreamGone(null);
  }

  /** The stream ended, failed or closed before the response was complete. */
  #upstreamGone(err: Error | null): void {
    if (this.#state !== 'forwarding' || this.#upstream === null) return;
    this.log.debug({ err: err?.name ?? null, code: err instanceof PosternError ? err.code : null }, 'upstream gone before the response was complete');
    const up = this.#upstream;
    this.#upstream = null;
    destroyHard(up);
    if (!this.#resHeadSent && err instanceof PosternError) {
      // An optimistic open the bridge refused (docs/protocol.md §5.1): the exact status after all.
      this.#finish(simpleResponse(err.httpStatus, `postern: ${ERRORS[err.code].message} (${err.code})\n`), 'connect failed');
    } else if (!this.#resHeadSent) this.#finish(simpleResponse(502, 'upstream closed before a complete response\n'), 'upstream gone');
    else this.destroy('upstream gone mid-response'); // a truncated body must look like an abort
  }

  /** Sends a last message (or none), ends our side, and destroys after a bound. */
  #finish(bytes: Buffer | null, why: string): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.log.debug({ why }, 'http connection finishing');
    this.#state = 'closing';
    this.#buf = EMPTY;
    if (this.#upstream !== null) {
      this.#upstream.on('error', () => {});
      destroyHard(this.#upstream);
      this.#upstream = null;
    }
    if (bytes !== null) this.socket.end(bytes);
    else this.socket.end();
    this.#flow(); // keep reading so that we see the app's FIN
    this.#arm(this.ctx.limits.HTTP_PROXY_HEAD_TIMEOUT_MS, () => this.destroy('linger timeout'));
  }

  #onEnd(): void {
    this.#clientEnded = true;
    switch (this.#state) {
      case 'head':
        this.#finish(null, 'app hung up');
        return;
      case 'forwarding':
        if (this.#reqBody !== null && !this.#reqBody.done) this.destroy('app hung up mid-request');
        return; // the response is still delivered, then we close
      case 'tunnel-opening':
      case 'local':
        this.destroy(`app hung up during ${this.#state}`);
        return;
      default:
        return; // tunnel: relay owns half-close; closing: the socket ends once flushed
    }
  }

  #onClose(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#disarm();
    this.#releaseThrottle?.();
    this.#releaseThrottle = null;
    this.#buf = EMPTY;
    this.#resBuf = EMPTY;
    if (this.#abort !== null) {
      this.#abort.abort(new PosternError('E_CANCELLED', 'app disconnected'));
      this.#abort = null;
    }
    if (this.#upstream !== null) {
      this.#upstream.on('error', () => {});
      destroyHard(this.#upstream);
      this.#upstream = null;
    }
    this.ctx.forget(this);
    this.log.debug('http connection closed');
  }
}
