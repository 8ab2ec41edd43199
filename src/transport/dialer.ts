/**
 * The client side of docs/protocol.md §2 that every transport shares: TCP (to the bridge or to
 * the relay a link names), then TLS verified by pin or by CA + name, with TLS session tickets kept
 * per verified bridge. A transport (src/transport/<name>/dialer.ts) speaks its handshake on the
 * verified stream this returns; no HTTP byte is sent before the bridge is verified. Also shared:
 * the §3 credential headers and the reading of a refusal (wrong secret, or a wrong clock).
 */
import net from 'node:net';
import tls from 'node:tls';
import { PosternError } from '../core/errors.js';
import { isLoopbackHost } from '../core/address.js';
import type { Limits } from '../core/limits.js';
import type { Logger } from '../log/logger.js';
import { RESUME_HEADER, SESSION_HEADER, makeToken, resumeProof, toBase64Url, tokenHead } from './auth.js';
import { peerSpkiSha256, pinMatches } from './certs.js';
import { CLIENT_TLS_MIN_PROTOCOL, clientHelloOptions, tlsProtocolTooOld } from './tls-profile.js';
import { readAfterWriteReset } from './read-after-reset.js';
import type { BridgeInfo } from './uri.js';

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
   * The request then carries Postern-Resume, a proof bound to this request's token — never the secret.
   */
  resumeSecret?: Buffer;
  /**
   * A standby connection (protocol.md §9.8): TCP and TLS now, the transport's handshake (which
   * makes the bridge move the session onto it) only once this resolves. The dial timeout does not
   * run while it waits, and starts afresh after; abort it through `signal`.
   */
  gate?: Promise<void>;
}

/** A verified connection to the bridge, ready for a transport's handshake. */
export interface SecureStream {
  /** What the transport speaks on: the verified TLS socket, or the TCP socket with plain=1. */
  readonly socket: net.Socket;
  /** The TCP socket (bytes on the wire). */
  readonly raw: net.Socket;
  /** The ALPN protocol the bridge chose; null without TLS or when it chose none. */
  readonly alpn: string | null;
  /** When the dial started (Date.now()): the transport's handshake gets what is left of DIAL_TIMEOUT_MS. */
  readonly startedAt: number;
}

/** The dial stages that error messages name; a transport adds its own handshake's name. */
export type DialStage = 'tcp' | 'tls' | 'standby';
const STAGE_TEXT: Record<DialStage, string> = { tcp: 'TCP connect', tls: 'TLS handshake', standby: 'waiting as a standby' };

/** E_DIAL for a dial that ran out of time in `stage` (the text every transport uses). */
export function dialTimeout(limits: Limits, stageText: string): PosternError {
  return new PosternError('E_DIAL', `timed out after ${limits.DIAL_TIMEOUT_MS} ms (${stageText})`);
}

/** What is left of DIAL_TIMEOUT_MS for a stream dialled at `s.startedAt`, ms (at least 1). */
export function remainingMs(s: SecureStream, limits: Limits): number {
  return Math.max(1, limits.DIAL_TIMEOUT_MS - (Date.now() - s.startedAt));
}

/**
 * The client's TLS options for `info` (everything but the socket and the offered session): the
 * ClientHello of tls-profile.ts (protocol.md §2.4), the same for every transport, so that it does
 * not tell the transport apart (the bridge's ALPN choice is SecureStream.alpn), plus the name and
 * the identity checks.
 */
export function clientTlsOptions(info: BridgeInfo, ca: DialOptions['ca']): tls.ConnectionOptions {
  const servername = info.sni ?? (net.isIP(info.host) === 0 ? info.host : undefined);
  const options: tls.ConnectionOptions = {
    ...clientHelloOptions(),
    host: info.host, // identity checked against servername, else this (IP SANs)
    rejectUnauthorized: info.pin === undefined,
  };
  if (servername !== undefined) options.servername = servername;
  if (ca !== undefined) options.ca = ca;
  return options;
}

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

/** Host header (or :authority) value: the link's `host` as written, else `<sni or host>[:port]`, the port only when not the scheme default. */
export function hostHeader(info: BridgeInfo): string {
  if (info.httpHost !== undefined) return info.httpHost;
  const name = info.sni ?? info.host;
  const h = net.isIPv6(name) ? `[${name}]` : name;
  const defaultPort = info.plain ? 80 : 443;
  return info.port === defaultPort ? h : `${h}:${info.port}`;
}

/** Authorization and, for a resumable session, Postern-Session and Postern-Resume (§3, §9.2): the same for every transport. */
export function credentialHeaders(
  info: BridgeInfo,
  nowMs: number,
  opts: Pick<DialOptions, 'sessionId' | 'resumeSecret'>,
  bind: (sessionId: string | undefined) => string | undefined = (id) => id,
): Record<string, string> {
  const token = makeToken(info.secret, info.path, nowMs, undefined, bind(opts.sessionId));
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  if (opts.sessionId !== undefined) {
    headers[SESSION_HEADER] = opts.sessionId;
    if (opts.resumeSecret !== undefined) headers[RESUME_HEADER] = toBase64Url(resumeProof(opts.resumeSecret, tokenHead(token) as Buffer));
  }
  return headers;
}

/**
 * The error for a verified bridge that answered the credentials with `status` instead of a
 * session. The bridge never says why (protocol.md §3): a wrong clock is told apart here, from the
 * bridge's Date header, which every answer carries.
 */
export function refusalError(status: number | undefined, date: string | undefined, nowMs: number, limits: Limits): PosternError {
  const skewMs = clockSkewMs(date, nowMs);
  if (skewMs !== null && Math.abs(skewMs) > limits.AUTH_WINDOW_MS) {
    const s = Math.round(Math.abs(skewMs) / 1000);
    return new PosternError(
      'E_CLOCK_SKEW',
      `clock skew: bridge time differs by ${s} s (this computer is ${skewMs > 0 ? 'behind' : 'ahead'}; the limit is ${Math.round(limits.AUTH_WINDOW_MS / 1000)} s): set this computer's clock right`,
    );
  }
  return new PosternError('E_AUTH_REJECTED', `bridge answered ${status ?? '?'}: wrong secret or path, or not a Postern bridge`);
}

/**
 * Opens a verified stream to the bridge: TCP (to `info.connect` when the link names a relay), then
 * TLS checked by pin or by CA + name (none with plain=1, loopback only). Rejects with a
 * PosternError: E_DIAL (TCP failure, timeout, abort), E_TLS, E_PIN_MISMATCH, E_BAD_URI. On
 * success the timer and the abort signal are the caller's to watch again.
 */
export function dialSecure(info: BridgeInfo, opts: DialOptions): Promise<SecureStream> {
  const { limits } = opts;
  const log = opts.logger.child({ component: 'dialer' });

  if (info.plain && (!isLoopbackHost(info.host) || (info.connect !== undefined && !isLoopbackHost(info.connect.host)))) {
    return Promise.reject(new PosternError('E_BAD_URI', 'plain=1 is only allowed for a loopback host (and relay)'));
  }
  if (opts.signal?.aborted === true) {
    return Promise.reject(new PosternError('E_DIAL', 'aborted', { cause: opts.signal.reason }));
  }

  return new Promise<SecureStream>((resolve, reject) => {
    const startedAt = Date.now();
    let stage: DialStage = 'tcp';
    let settled = false;
    let secure: tls.TLSSocket | undefined;

    const cleanup = (): void => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: PosternError): void => {
      if (settled) return;
      settled = true;
      cleanup();
      log.debug({ stage, code: err.code }, 'dial failed');
      secure?.destroy();
      raw.destroy();
      reject(err);
    };
    const done = (socket: net.Socket, alpn: string | null): void => {
      if (settled) return;
      if (opts.gate !== undefined) return void standBy(socket, alpn, opts.gate);
      settled = true;
      cleanup();
      resolve({ socket, raw, alpn, startedAt });
    };
    // A standby waits here, handshake done, until its gate opens; the timeout then starts afresh.
    const standBy = (socket: net.Socket, alpn: string | null, gate: Promise<void>): void => {
      stage = 'standby';
      clearTimeout(timer);
      const gone = (): void => fail(new PosternError('E_DIAL', 'the standby connection closed'));
      socket.once('close', gone);
      void gate.then(() => {
        socket.removeListener('close', gone);
        if (settled) return;
        settled = true;
        cleanup();
        resolve({ socket, raw, alpn, startedAt: Date.now() });
      });
    };
    const onAbort = (): void => fail(new PosternError('E_DIAL', 'aborted', { cause: opts.signal?.reason }));
    const timer: NodeJS.Timeout = setTimeout(() => fail(dialTimeout(limits, STAGE_TEXT[stage])), limits.DIAL_TIMEOUT_MS);
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    // ── TCP: to the relay when the link names one (§1 connect), else to the bridge ──
    const dest = info.connect ?? info;
    const raw = net.connect({ host: dest.host, port: dest.port, noDelay: true });
    raw.on('error', (err) => {
      if (stage === 'tcp') fail(new PosternError('E_DIAL', errnoOf(err), { cause: err }));
      else if (stage === 'tls') fail(new PosternError('E_TLS', `connection failed during the handshake (${errnoOf(err)})`, { cause: err }));
      // Later errors reach the TLS socket / the transport, which report them.
    });
    raw.once('connect', () => {
      if (settled) return;
      if (info.plain) readAfterWriteReset(raw, limits.WRITE_RESET_READ_MS);
      if (info.plain) done(raw, null);
      else startTls();
    });

    // ── TLS ──
    const startTls = (): void => {
      stage = 'tls';
      const options = clientTlsOptions(info, opts.ca);
      options.socket = raw;
      const sessionKey = tlsSessionKey(info, opts.ca);
      const offered = tlsSessions.get(sessionKey);
      if (offered !== undefined) options.session = offered;
      const s = tls.connect(options);
      secure = s;
      readAfterWriteReset(s, limits.WRITE_RESET_READ_MS);
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
        if (tlsProtocolTooOld(s.getProtocol())) {
          fail(new PosternError('E_TLS', `the bridge negotiated ${s.getProtocol() ?? 'an unknown protocol'}; Postern needs ${CLIENT_TLS_MIN_PROTOCOL} or newer`));
          return;
        }
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
        const alpn = typeof s.alpnProtocol === 'string' ? s.alpnProtocol : null;
        log.debug({ protocol: s.getProtocol(), alpn, resumed: s.isSessionReused() }, 'bridge TLS verified');
        done(s, alpn);
      });
    };
  });
}
