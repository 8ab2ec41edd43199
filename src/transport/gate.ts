/**
 * The bridge's checks of a session request that every transport shares (protocol.md §3, §9.2):
 * the secret path, the Postern-Session and Postern-Resume headers, the token, and whether the named
 * session can be resumed. An acceptor runs its own transport's checks, then admit(); whatever is
 * refused is answered by the decoy, exactly as any other request.
 */
import type { Limits } from '../core/limits.js';
import type { Decoy } from '../decoy/decoy.js';
import type { Logger } from '../log/logger.js';
import type { FrameTransport } from '../mux/transport.js';
import { RESUME_HEADER, RESUME_PROOF_RE, SESSION_HEADER, SESSION_ID_RE, type TokenVerifier } from './auth.js';

/** Who may open a session, and where sessions go (a bridge; none for the decoy alone). */
export interface SessionGate {
  /** The secret path (§1). */
  readonly path: string;
  readonly verifier: TokenVerifier;
  /** Features announced to an authenticated client (protocol.md §2.3). */
  readonly features: readonly string[];
  /**
   * Before a session request carrying Postern-Session is accepted (§9.2): 'refuse' → the decoy
   * answers; 'lost' → accept, then close with SESSION_LOST_CODE; 'ok' (default) → a session.
   */
  readonly admitSession?: (user: string, sessionId: string, proof: string | undefined, head: Buffer) => 'ok' | 'lost' | 'refuse';
  /** Each refused session request (a per-minute log summary), by reason. */
  readonly onRefused?: (reason: string) => void;
  /** A client passed every check and its connection is open. Throwing here terminates it. */
  readonly onSession: (transport: FrameTransport, user: string, sessionId: string | null) => void;
}

/** What every acceptor is given (listener.ts). */
export interface AcceptorContext {
  readonly limits: Limits;
  readonly logger: Logger;
  /** What everyone else gets: the same site, over whichever protocol the acceptor speaks. */
  readonly decoy: Decoy;
  /** The bridge's sessions; null on a listener that serves the decoy alone (`postern decoy`). */
  readonly sessions: SessionGate | null;
  /** True once the listener is closing: no new sessions. */
  closing(): boolean;
}

/** §9.2: the close code for a session request naming a session the bridge cannot resume (mux/resume.ts SESSION_LOST_CLOSE). */
export const SESSION_LOST_CODE = 4001;

export type Admission =
  | { ok: true; user: string; sessionId: string | null; lost: boolean }
  | { ok: false; reason: string };

/** The token from `Authorization: Bearer <token>`; '' for another scheme, undefined when absent. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer +([^\s]+) *$/i.exec(header);
  return m?.[1] ?? '';
}

/**
 * Runs the shared checks on a request for `url` with (lower-case) `headers`; `transportProblem`
 * is the transport's own check, run after the path's. A refusal is logged and counted
 * (onRefused) here; the caller lets the decoy answer it. `bind` gives what the token's MAC is bound
 * to (default: the Postern-Session value; packet-up adds its key, §12.3). Without sessions (the decoy alone)
 * everything is refused, silently.
 */
export function admit(
  ctx: AcceptorContext,
  url: string,
  headers: Readonly<Record<string, string | undefined>>,
  transportProblem: () => string | null = () => null,
  bind: (sessionId: string | undefined) => string | undefined = (id) => id,
): Admission {
  const gate = ctx.sessions;
  if (gate === null) return { ok: false, reason: 'no_sessions' };
  const refuse = (reason: string): Admission => {
    ctx.logger.debug({ reason }, 'upgrade refused'); // the message operators and tests know, whatever the transport
    gate.onRefused?.(reason);
    return { ok: false, reason };
  };
  if (ctx.closing()) return refuse('closing');
  if (url !== gate.path) return refuse('path');
  const problem = transportProblem();
  if (problem !== null) return refuse(problem);
  // A resumable session names itself (§9.2); its id is bound into the token's MAC.
  const sessionHeader = headers[SESSION_HEADER.toLowerCase()];
  if (sessionHeader !== undefined && !SESSION_ID_RE.test(sessionHeader)) return refuse('session_id');
  const resumeHeader = headers[RESUME_HEADER.toLowerCase()];
  if (resumeHeader !== undefined && (sessionHeader === undefined || !RESUME_PROOF_RE.test(resumeHeader))) return refuse('resume_proof');
  const auth = gate.verifier.verify(bearerToken(headers.authorization), gate.path, bind(sessionHeader));
  if (!auth.ok) return refuse(auth.reason);
  const admission = sessionHeader === undefined ? 'ok' : (gate.admitSession?.(auth.user, sessionHeader, resumeHeader, auth.head) ?? 'ok');
  if (admission === 'refuse') return refuse('resume_proof');
  return { ok: true, user: auth.user, sessionId: sessionHeader ?? null, lost: admission === 'lost' };
}

/** Hands an admitted session's open connection to the bridge; a throwing onSession drops it. */
export function handOver(ctx: AcceptorContext, transport: FrameTransport, a: { user: string; sessionId: string | null }): void {
  ctx.logger.debug({ user: a.user }, 'session accepted');
  try {
    ctx.sessions?.onSession(transport, a.user, a.sessionId);
  } catch (err) {
    ctx.logger.error({ err }, 'onSession threw; dropping the session');
    transport.terminate();
  }
}
