import type { Duplex } from 'node:stream';
import type net from 'node:net';

/**
 * Joins two duplex streams both ways with backpressure (pipe pauses a source whose
 * destination is full) and half-close (a source's end ends only that direction).
 * An error or abort on either side destroys the other with an error, so that a truncated
 * stream is never presented as a clean end: a net.Socket is reset (RST), not closed with FIN.
 */
export function relay(a: Duplex, b: Duplex, onDone?: (err?: Error) => void): void {
  let done = false;
  let ended = 0;
  const finish = (err?: Error) => {
    if (done) return;
    done = true;
    onDone?.(err);
  };
  const abort = (from: Duplex, to: Duplex, err: Error) => {
    from.unpipe(to);
    destroyHard(to, err);
    finish(err);
  };
  const wire = (from: Duplex, to: Duplex) => {
    from.pipe(to, { end: true });
    from.on('error', (err: Error) => abort(from, to, err));
    // 'close' without a clean 'end' (destroyed with no error) is also a truncation.
    from.on('close', () => {
      if (!from.readableEnded && !done) abort(from, to, new Error('peer closed without end'));
    });
    from.on('end', () => {
      if (++ended === 2) finish();
    });
  };
  wire(a, b);
  wire(b, a);
}

/** Destroys a stream so its peer sees an abort: RST for TCP sockets, an error otherwise. */
export function destroyHard(s: Duplex, err?: Error): void {
  if (s.destroyed) return;
  const sock = s as net.Socket;
  if (typeof sock.resetAndDestroy === 'function' && !sock.connecting && sock.readyState !== 'closed') {
    try {
      sock.resetAndDestroy();
      return;
    } catch {
      // fall through
    }
  }
  s.destroy(err);
}
