/**
 * The client side of docs/protocol.md §2: TCP, then TLS verified by pin or by CA + name, then the
 * WebSocket upgrade carrying the §3 token. No HTTP byte is sent before the bridge is verified.
 */
import net from 'node:net';
import tls from 'node:tls';
import { createRequire } from 'node:module';
import { WebSocket } from 'ws';
import { PosternError } from '../core/errors.js';
import { isLoopbackHost } from '../core/address.js';
import type { Limits } from '../core/limits.js';
import type { Logger } from '../log/logger.js';
import type { FrameTransport } from '../mux/transport.js';
import { FEATURES_HEADER, RESUME_HEADER, SESSION_HEADER, makeToken, parseFeatures, resumeProof, toBase64Url, tokenHead } from './auth.js';
import { peerSpkiSha256, pinMatches } from './certs.js';
import type { BridgeInfo } from './uri.js';
import { WsFrameTransport } from './ws-transport.js';

export interface DialOptions {
  limits: Limits;
  logger: Logger;
  /** Aborts the dial; the promise rejects with E_DIAL "aborted" (cause: the signal's reason). */
  signal?: AbortSignal;
  /** Clock for the token, Unix ms; default Date.now. */
  now?: () => number;
  /** Extra trusted CA certificates (PEM) for bridges without a pin; default: the system CAs only. */
  ca?: string | string[];
  /**
   * A resumable session's id (protocol.md §9.2: 22 base64url characters): sent as the
   * Postern-Session header and bound into the token's MAC.
   */
  sessionId?: string;
  /**
   * Resuming that session: its resume secret (protocol.md §9.3, from the bridge's first RESUME).
   * The upgrade then carries Postern-Resume, a proof bound to this upgrade's token — never the secret.
   */
  resumeSecret?: Buffer;
}

/** Host, Authorization and, for a resumable session, Postern-Session and Postern-Resume (§2, §9.2). */
function upgradeHeaders(info: BridgeInfo, nowMs: number, opts: Pick<DialOptions, 'sessionId' | 'resumeSecret'>): Record<string, string> {
  const token = makeToken(info.secret, info.path, nowMs, undefined, opts.sessionId);
  const headers: Record<string, string> = { Host: hostHeader(info), Authorization: `Bearer ${token}` };
  if (opts.sessionId !== undefined) {
    headers[SESSION_HEADER] = opts.sessionId;
    if (opts.resumeSecret !== undefined) headers[RESUME_HEADER] = toBase64Url(resumeProof(opts.resumeSecret, tokenHead(token) as Buffer));
  }
  return headers;
}

type Stage = 'tcp' | 'tls' | 'upgrade';
const STAGE_TEXT: Record<Stage, string> = {
  tcp: 'TCP connect',
  tls: 'TLS handshake',
  upgrade: 'WebSocket upgrade',
};

let maskingActive: boolean | undefined;

/**
 * TLS sessions (tickets) for resumption, one per bridge identity (host, port, SNI, pin or CA).
 * Only a session that came from a connection we verified (pin or CA) is kept, so a resumed
 * handshake — which carries no certificate — is with the holder of a key we already checked.
 */
const tlsSessions = new Map<string, Buffer>();

function tlsSessionKey(info: BridgeInfo, ca: DialOptions['ca']): string {
  const pin = info.pin === undefined ? 'ca' : toBase64Url(info.pin);
  const cas = ca === undefined ? '' : Array.isArray(ca) ? ca.join('') : ca;
  return `${info.host}|${info.port}|${info.sni ?? ''}|${pin}|${cas.length}:${cas.slice(-64)}`;
}

/** Forgets every kept TLS session (tests, and after a pin change). */
export function forgetTlsSessions(): void {
  tlsSessions.clear();
}

/** Whether ws masks client frames natively (bufferutil loads). Never throws. */
export function nativeMaskingActive(): boolean {
  if (maskingActive === undefined) {
    if (process.env.WS_NO_BUFFER_UTIL) {
      maskingActive = false; // ws honours this variable and uses JS masking
    } else {
      try {
        // A literal require('bufferutil') where the bundle has one (the ESM bundle's banner makes
        // it; the single executable resolves it to its embedded copy), else from this module.
        const mod = (typeof require === 'function' ? require('bufferutil') : createRequire(import.meta.url)('bufferutil')) as {
          mask?: unknown;
        };
        maskingActive = typeof mod.mask === 'function';
      } catch {
        maskingActive = false;
      }
    }
  }
  return maskingActive;
}

/** An error's errno code (ECONNREFUSED…), else its message. */
export function errnoOf(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  return e?.code ?? e?.message ?? String(err);
}

/** Bridge time (an HTTP Date header) minus `nowMs`, in ms; null without a parseable Date. */
export function clockSkewMs(date: string | undefined, nowMs: number): number | null {
  if (date === undefined) return null;
  const t = Date.parse(date);
  return Number.isFinite(t) ? t - nowMs : null;
}

/** Host header value: `<sni or host>[:port]`, the port only when not the scheme default. */
function hostHeader(info: BridgeInfo): string {
  const name = info.sni ?? info.host;
  const h = net.isIPv6(name) ? `[${name}]` : name;
  const defaultPort = info.plain ? 80 : 443;
  return info.port === defaultPort ? h : `${h}:${info.port}`;
}

/**
 * Connects to a bridge and returns the open session transport. Rejects with a PosternError:
 * E_DIAL (TCP failure, timeout, abort), E_TLS, E_PIN_MISMATCH, E_AUTH_REJECTED, E_CLOCK_SKEW
 * (refused, and the bridge's Date is outside the token window: protocol.md §3), E_BAD_URI.
 */
export function dialBridge(info: BridgeInfo, opts: DialOptions): Promise<FrameTransport> {
  const { limits, logger } = opts;
  const now = opts.now ?? Date.now;
  const log = logger.child({ component: 'dialer' });

  if (info.plain && (!isLoopbackHost(info.host) || (info.connect !== undefined && !isLoopbackHost(info.connect.host)))) {
    return Promise.reject(new PosternError('E_BAD_URI', 'plain=1 is only allowed for a loopback host (and relay)'));
  }
  if (opts.signal?.aborted === true) {
    return Promise.reject(new PosternError('E_DIAL', 'aborted', { cause: opts.signal.reason }));
  }

  return new Promise<FrameTransport>((resolve, reject) => {
    const started = Date.now();
    let stage: Stage = 'tcp';
    let settled = false;
    let raw: net.Socket | undefined;
    let secure: tls.TLSSocket | undefined;
    let ws: WebSocket | undefined;

    const cleanup = (): void => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: PosternError): void => {
      if (settled) return;
      settled = true;
      cleanup();
      log.debug({ stage, code: err.code }, 'dial failed');
      if (ws !== undefined) ws.terminate();
      secure?.destroy();
      raw?.destroy();
      reject(err);
    };
    const onAbort = (): void => fail(new PosternError('E_DIAL', 'aborted', { cause: opts.signal?.reason }));
    const timer = setTimeout(() => {
      fail(new PosternError('E_DIAL', `timed out after ${limits.DIAL_TIMEOUT_MS} ms (${STAGE_TEXT[stage]})`));
    }, limits.DIAL_TIMEOUT_MS);
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    // ── TCP: to the relay when the link names one (§1 connect), else to the bridge ──
    const dest = info.connect ?? info;
    raw = net.connect({ host: dest.host, port: dest.port, noDelay: true });
    raw.on('error', (err) => {
      if (stage === 'tcp') fail(new PosternError('E_DIAL', errnoOf(err), { cause: err }));
      else if (stage === 'tls') fail(new PosternError('E_TLS', `connection failed during the handshake (${errnoOf(err)})`, { cause: err }));
      // Later errors reach the TLS socket / ws, which report them.
    });
    raw.once('connect', () => {
      if (settled || raw === undefined) return;
      if (info.plain) upgrade(raw);
      else startTls(raw);
    });

    // ── TLS ──
    const startTls = (sock: net.Socket): void => {
      stage = 'tls';
      const servername = info.sni ?? (net.isIP(info.host) === 0 ? info.host : undefined);
      const options: tls.ConnectionOptions = {
        socket: sock,
        host: info.host, // identity checked against servername, else this (IP SANs)
        ALPNProtocols: ['http/1.1'],
        minVersion: 'TLSv1.2',
        rejectUnauthorized: info.pin === undefined,
      };
      if (servername !== undefined) options.servername = servername;
      if (opts.ca !== undefined) options.ca = opts.ca;
      const sessionKey = tlsSessionKey(info, opts.ca);
      const offered = tlsSessions.get(sessionKey);
      if (offered !== undefined) options.session = offered;
      const s = tls.connect(options);
      secure = s;
      // Tickets may arrive before or after secureConnect: kept only once this connection is verified.
      let verified = false;
      let ticket: Buffer | undefined;
      s.on('session', (t: Buffer) => {
        if (verified) tlsSessions.set(sessionKey, t);
        else ticket = t;
      });
      s.on('error', (err) => {
        if (stage === 'tls') {
          const code = (err as NodeJS.ErrnoException).code;
          fail(new PosternError('E_TLS', code !== undefined ? `${err.message} (${code})` : err.message, { cause: err }));
        }
      });
      s.once('close', () => {
        if (stage === 'tls') fail(new PosternError('E_TLS', 'connection closed during the handshake'));
      });
      s.once('secureConnect', () => {
        if (settled) return;
        if (s.isSessionReused()) {
          // A resumed session shows no certificate; it is one we offered, from a verified connection.
          if (offered === undefined) {
            fail(new PosternError('E_TLS', 'resumed a TLS session that was not offered'));
            return;
          }
        } else if (info.pin !== undefined) {
          const got = peerSpkiSha256(s);
          if (!pinMatches(got, info.pin)) {
            tlsSessions.delete(sessionKey);
            const gotText = got === null ? 'no certificate' : toBase64Url(got);
            fail(new PosternError('E_PIN_MISMATCH', `expected ${toBase64Url(info.pin)} got ${gotText}`));
            return;
          }
        } else if (!s.authorized) {
          // rejectUnauthorized already refuses these; kept as a second lock.
          fail(new PosternError('E_TLS', String(s.authorizationError ?? 'certificate not verified')));
          return;
        }
        verified = true;
        if (ticket !== undefined) tlsSessions.set(sessionKey, ticket);
        log.debug({ protocol: s.getProtocol(), alpn: s.alpnProtocol, resumed: s.isSessionReused() }, 'bridge TLS verified');
        upgrade(s);
      });
    };

    // ── WebSocket upgrade over the socket we already hold ──
    const upgrade = (sock: net.Socket): void => {
      stage = 'upgrade';
      const remaining = Math.max(1, limits.DIAL_TIMEOUT_MS - (Date.now() - started));
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
          headers: upgradeHeaders(info, now(), opts),
        });
      } catch (err) {
        fail(new PosternError('E_BAD_URI', (err as Error).message, { cause: err }));
        return;
      }
      ws = socket;
      socket.on('unexpected-response', (_req, res) => {
        // The bridge never says why (protocol.md §3): the client tells a wrong clock apart itself,
        // from the verified bridge's Date header, which every answer carries.
        const skewMs = clockSkewMs(res.headers.date, now());
        if (skewMs !== null && Math.abs(skewMs) > limits.AUTH_WINDOW_MS) {
          const s = Math.round(Math.abs(skewMs) / 1000);
          fail(
            new PosternError(
              'E_CLOCK_SKEW',
              `clock skew: bridge time differs by ${s} s (this computer is ${skewMs > 0 ? 'behind' : 'ahead'}; the limit is ${Math.round(limits.AUTH_WINDOW_MS / 1000)} s): set this computer's clock right`,
            ),
          );
          return;
        }
        fail(
          new PosternError(
            'E_AUTH_REJECTED',
            `bridge answered ${res.statusCode ?? '?'}: wrong secret or path, or not a Postern bridge`,
          ),
        );
      });
      const onError = (err: Error): void => {
        const code = (err as NodeJS.ErrnoException).code;
        if (err.message === 'Opening handshake has timed out') {
          fail(new PosternError('E_DIAL', `timed out after ${limits.DIAL_TIMEOUT_MS} ms (${STAGE_TEXT.upgrade})`));
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
        cleanup();
        socket.removeListener('close', onEarlyClose);
        socket.removeListener('error', onError);
        // A client always reads (no send-queue bound): only the bridge stops reading a peer that
        // does not read its answers, so two honest peers can never both wait for each other (§5.3).
        const transport = new WsFrameTransport(socket, sock, Number.POSITIVE_INFINITY, raw);
        transport.peerFeatures = features;
        log.debug({ ms: Date.now() - started }, 'bridge session open');
        resolve(transport);
      });
    };
  });
}
