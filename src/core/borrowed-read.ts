/**
 * Sockets whose reads land in one process-wide buffer instead of a fresh one per read.
 *
 * A net.Socket reads each chunk into a new ArrayBuffer (64 KiB asked for). On a relay the chunk is
 * copied into a DATA frame at once, so that buffer lives a few microseconds, yet allocating and
 * collecting it costs far more than the copy (Node 20 here: a TLS sender writing 64 KiB chunks used
 * 1.45 ms of CPU per MiB when each was a fresh buffer, 0.93 when copied into reused ones). Node's
 * `onread` option lets a socket read into a buffer we give it; this module gives every such socket
 * the same one, so the bridge's egress sockets (src/bridge/egress.ts) allocate nothing per read.
 *
 * The rule that makes sharing safe: a borrowed-read socket emits no 'data'. Each read goes, while
 * it is being delivered and never after, to the socket's sink (takeReads) and observers
 * (observeReads): they must copy whatever they keep before they return. Node delivers reads one at
 * a time on the one JS thread, so the buffer is never filled while anyone reads it. A socket with
 * no sink yet gets each read as a copy pushed to its readable side, as any socket would.
 * pause()/resume() work as on any socket (Node stops and starts reading for `onread` sockets).
 */
import net from 'node:net';
import { LIMITS } from './limits.js';

/** What a sink or observer is given: valid only until it returns. */
export type BorrowedReadFn = (this: net.Socket, chunk: Buffer) => void;

const kSink = Symbol('borrowedReadSink');
const kObserver = Symbol('borrowedReadObserver');

interface BorrowedSocket extends net.Socket {
  [kSink]?: BorrowedReadFn | null;
  [kObserver]?: (chunk: Buffer) => void;
}

/** The process's read buffer: a read fits in one DATA frame (FRAME_MAX_PAYLOAD_BYTES). Made on first use. */
let shared: Buffer | null = null;

function onRead(this: BorrowedSocket, nread: number, buf: Buffer): boolean {
  const chunk = buf.subarray(0, nread);
  this[kObserver]?.(chunk);
  const sink = this[kSink];
  if (sink) sink.call(this, chunk);
  else this.push(Buffer.from(chunk));
  return true;
}

/**
 * net.connect() with borrowed reads. The socket starts paused: it reads nothing until resume()
 * (relay() resumes it once the sink is set), so no read can come before its sink.
 */
export function connectBorrowed(opts: net.TcpNetConnectOpts): net.Socket {
  shared ??= Buffer.allocUnsafeSlow(LIMITS.FRAME_MAX_PAYLOAD_BYTES);
  const socket = net.connect({ ...opts, onread: { buffer: shared, callback: onRead as unknown as net.OnReadOpts['callback'] } }) as BorrowedSocket;
  socket[kSink] = null;
  socket.pause();
  return socket;
}

/** Whether `s` was made by connectBorrowed(). */
export function isBorrowedRead(s: object): boolean {
  return (s as BorrowedSocket)[kSink] !== undefined;
}

/** Sets the function each read of a borrowed-read `socket` goes to instead of 'data'. */
export function takeReads(socket: net.Socket, sink: BorrowedReadFn): void {
  (socket as BorrowedSocket)[kSink] = sink;
}

/**
 * Calls `observer` with every read of `socket` (byte counters), which must not keep the chunk: on a
 * borrowed-read socket before its sink, on any other as a 'data' listener.
 */
export function observeReads(socket: net.Socket, observer: (chunk: Buffer) => void): void {
  if (isBorrowedRead(socket)) (socket as BorrowedSocket)[kObserver] = observer;
  else socket.on('data', observer);
}
