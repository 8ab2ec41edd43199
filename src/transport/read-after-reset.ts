/**
 * A write that fails because the peer reset the connection (ECONNRESET, EPIPE) makes Node destroy
 * the socket at once, and whatever the kernel had already received for it, but the process had
 * not yet read, is lost unread. On a path that resets every connection after a byte count
 * (docs/protocol.md §9.8) that is often most of what crossed last, and a side that counts the bytes
 * it read on a cut connection (the client's own count, the bridge's TALLY, §9.8.1) would count
 * almost nothing. So the socket's destroy on such a write error waits, at most `ms`, for the read
 * side to end: the bytes already received are read (and counted), the RST then ends the read with
 * its own error, and the socket is destroyed as it would have been. Any other destroy (a read error,
 * a close, ours) goes through at once.
 */
import type net from 'node:net';

function isWriteReset(err: unknown): boolean {
  const e = err as (NodeJS.ErrnoException & { syscall?: string }) | undefined;
  return e?.syscall === 'write' && (e.code === 'ECONNRESET' || e.code === 'EPIPE');
}

export function readAfterWriteReset(socket: net.Socket, ms: number): void {
  const destroy = socket.destroy.bind(socket);
  let held: { err: Error; timer: NodeJS.Timeout } | null = null;
  socket.destroy = (err?: Error): net.Socket => {
    if (held !== null) {
      // Further failed writes while the read side drains change nothing.
      if (isWriteReset(err)) return socket;
      clearTimeout(held.timer);
      const first = held.err;
      held = null;
      return destroy(err ?? first);
    }
    if (!isWriteReset(err) || socket.destroyed || socket.readableEnded) return destroy(err);
    const timer = setTimeout(() => {
      held = null;
      destroy(err);
    }, ms);
    timer.unref();
    held = { err: err as Error, timer };
    return socket;
  };
}
