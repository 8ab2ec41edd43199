/**
 * The bridge's resumable sessions by id (docs/protocol.md §9): a connection that names a known
 * session of the same user is attached to it (resume); an unknown id starts a new session under
 * that id. A session leaves the registry when it ends (closed, or not resumed in time).
 */
import { randomBytes } from 'node:crypto';
import type { Limits } from '../core/limits.js';
import type { Logger } from '../log/logger.js';
import { ResumableLink, SESSION_LOST_CLOSE } from '../mux/resume.js';
import { MuxSession } from '../mux/session.js';
import type { FrameTransport } from '../mux/transport.js';
import { RESUME_SECRET_BYTES } from '../mux/resume.js';
import { checkResumeProof } from '../transport/auth.js';

/**
 * What to do with an authenticated upgrade naming a session (§9.2): 'ok' → 101 and attach or
 * create; 'lost' → 101 then close 4001 (the client makes a new session); 'refuse' → the decoy.
 */
export type SessionAdmission = 'ok' | 'lost' | 'refuse';

interface Entry {
  readonly user: string;
  /** The resume secret sent to the client in the session's first RESUME (§9.3). */
  readonly secret: Buffer;
  readonly link: ResumableLink;
  readonly session: MuxSession;
}

export class SessionRegistry {
  private readonly byId = new Map<string, Entry>();

  constructor(
    private readonly limits: Limits,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  /**
   * Session messages sent and not yet acknowledged, over every session. A draining bridge waits
   * for 0 as well as for its streams: a stream that closed here may still have data in flight.
   */
  get unacknowledged(): number {
    let n = 0;
    for (const e of this.byId.values()) if (e.link.state !== 'ended') n += e.link.unacknowledged.messages;
    return n;
  }

  /**
   * Ends, at once, every session that is detached with no stream and nothing unacknowledged: no
   * client is there to drain, and nothing it could still resume. Used when the bridge stops, before
   * GOAWAY (which would itself be a message waiting for an ACK). Returns how many were ended.
   */
  endIdleDetached(code: number, reason: string): number {
    let n = 0;
    for (const e of [...this.byId.values()]) {
      if (e.link.state === 'detached' && e.session.streamCount === 0 && e.link.unacknowledged.messages === 0) {
        e.session.close(code, reason);
        n++;
      }
    }
    return n;
  }

  /**
   * Decides, before the 101, on an upgrade of `user` naming session `id`, with the Postern-Resume
   * `proof` (or undefined) and the token's head (§9.2): an unknown id without a proof starts a
   * session; a known one of this user attaches only with a valid proof of its resume secret — a
   * recorded or replayed upgrade (which has none, or one bound to an old token) gets the decoy.
   * A proof for an id the bridge does not hold (ended, or another user's) gets 4001.
   */
  admit(id: string, user: string, proof: string | undefined, head: Buffer): SessionAdmission {
    const known = this.byId.get(id);
    if (known === undefined) return proof === undefined ? 'ok' : 'lost';
    if (known.user !== user) return 'lost';
    if (proof === undefined || !checkResumeProof(known.secret, head, proof)) return 'refuse';
    return 'ok';
  }

  /**
   * Resumes session `id` on `transport` when it exists: true when the transport was taken (attached
   * to the user's session, or refused with close 4001 because the id belongs to another user);
   * false when the id is unknown (the caller may create() it).
   */
  resume(id: string, user: string, transport: FrameTransport): boolean {
    const known = this.byId.get(id);
    if (known === undefined) return false;
    if (known.user !== user) {
      this.log.warn('session id presented by another user; refused');
      transport.close(SESSION_LOST_CLOSE.code, SESSION_LOST_CLOSE.reason);
      return true;
    }
    known.link.attach(transport);
    return true;
  }

  /**
   * A new resumable session `id` on `transport`; it leaves the registry when it ends. `overBudget`
   * (the user's or the bridge's held-bytes budget is spent) cuts off a peer that does not ACK.
   */
  create(id: string, user: string, transport: FrameTransport, logger: Logger, overBudget?: () => boolean): MuxSession {
    const secret = randomBytes(RESUME_SECRET_BYTES);
    const link = new ResumableLink({ limits: this.limits, logger, resumeSecret: secret, ...(overBudget ? { overBudget } : {}) });
    const session = new MuxSession(link, { role: 'bridge', limits: this.limits, logger, keepalive: false });
    const entry: Entry = { user, secret, link, session };
    this.byId.set(id, entry);
    session.on('close', () => {
      if (this.byId.get(id) === entry) this.byId.delete(id);
    });
    link.attach(transport);
    return session;
  }
}
