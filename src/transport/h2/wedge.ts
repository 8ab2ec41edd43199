/**
 * A guard against a Node bug (20.x; the same code is in 22 and 24): HTTP/2 over TLS hangs, instead
 * of failing, on a TCP connection that broke while it was writing (protocol.md §12.8).
 *
 * How it happens. While the HTTP/2 session has a write in flight it stops reading its socket. A
 * reset (RST) that arrives then is not read; the next write of encrypted bytes to the TCP socket
 * fails at once (ECONNRESET/EPIPE). TLS hands that error to the HTTP/2 session, which ignores it
 * (its after-write handler drops the status), and TLS itself never clears its "write in progress"
 * mark after a failed write, so it sends nothing again. The session's next write to TLS then never
 * completes; while it waits the session does not read, so it never sees the reset either. Nothing
 * is reported: no 'error', no 'close', for as long as the process lives. Both ends of the tunnel
 * hold unsent writes while nghttp2's queue is empty and every window is open.
 *
 * What it looks like from outside: TLS holds encrypted bytes (its handle's writeQueueSize) that it
 * does not hand on — the TCP socket has nothing queued (writeQueueSize 0) and its bytesWritten does
 * not move. A healthy TLS socket in that state hands them on within the same event-loop turn (a
 * write to TCP that finished at once is completed by a setImmediate), so the state seen at two
 * checks a timer apart, with TCP's bytesWritten unchanged between them, is the hang.
 */
import type net from 'node:net';

/** What the check reads from the two sockets (internal handle fields: absent, the guard is off). */
export interface WedgeSample {
  /** Encrypted bytes TLS holds, not yet handed to TCP. */
  tlsPending: number;
  /** Bytes TCP has queued in the kernel's stead (libuv's write queue). */
  tcpQueued: number;
  /** Bytes ever handed to the TCP socket. */
  tcpWritten: number;
}

/** The decision, pure: two samples taken a timer apart both show TLS holding bytes that TCP is not writing. */
export function isWedged(prev: WedgeSample, now: WedgeSample): boolean {
  return prev.tlsPending > 0 && now.tlsPending > 0 && prev.tcpQueued === 0 && now.tcpQueued === 0 && now.tcpWritten === prev.tcpWritten;
}

interface HandleView {
  _handle?: { writeQueueSize?: unknown } | null;
  bytesWritten?: unknown;
}

function sample(tlsSock: HandleView, tcp: HandleView): WedgeSample | null {
  const tlsPending = tlsSock._handle?.writeQueueSize;
  const tcpQueued = tcp._handle?.writeQueueSize;
  const tcpWritten = tcp.bytesWritten;
  if (typeof tlsPending !== 'number' || typeof tcpQueued !== 'number' || typeof tcpWritten !== 'number') return null;
  return { tlsPending, tcpQueued, tcpWritten };
}

/**
 * The check for one HTTP/2 connection over TLS, to call on a timer while writes are outstanding:
 * once the connection is hung as described above it destroys the TLS socket (the HTTP/2 session
 * closes with it, and the tunnel session resumes on a new connection) and answers true.
 * `tlsSock` is the TLS socket the HTTP/2 session runs on, `tcp` the TCP socket under it. Null
 * without TLS (plain h2c sees a broken socket by itself) or when this Node's sockets do not show
 * what the check reads.
 */
export function wedgeCheck(tlsSock: net.Socket, tcp: net.Socket): (() => boolean) | null {
  const tlsView = tlsSock as HandleView;
  const tcpView = tcp as HandleView;
  if (tlsSock === tcp || sample(tlsView, tcpView) === null) return null;
  let prev: WedgeSample | null = null;
  return () => {
    const now = sample(tlsView, tcpView);
    const wedged = prev !== null && now !== null && isWedged(prev, now);
    prev = now;
    if (wedged) tlsSock.destroy();
    return wedged;
  };
}
