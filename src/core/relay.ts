import type { Duplex } from 'node:stream';
import type net from 'node:net';
import { isBorrowedRead, takeReads } from './borrowed-read.js';

/** What relay() keeps for one pair: shared by both ends. */
interface RelayState {
  done: boolean;
  /** Sources that ended cleanly (2: the relay is done). */
  ended: number;
  readonly onDone: ((err?: Error) => void) | undefined;
}

/** Each end of a relay carries its peer and the pair's state under this key. */
const kRelay = Symbol('relay');
interface RelayEnd extends Duplex {
  [kRelay]?: { readonly peer: Duplex; readonly state: RelayState };
}

/**
 * Joins two duplex streams both ways with backpressure (a source is paused while its destination's
 * write() says it is full and it still holds bytes, and resumed on its 'drain') and half-close (a source's end ends only
 * that direction). An error or abort on either side destroys the other with an error, so that a
 * truncated stream is never presented as a clean end: a net.Socket is reset (RST), not closed with FIN.
 *
 * What pipe() does for this, without its closures: the listeners below are shared by every relay
 * and find their pair through the emitter they are called on, so an idle relayed connection costs
 * one small object and two references instead of some twenty closures.
 *
 * A borrowed-read socket (src/core/borrowed-read.ts) gives its reads to the relay's sink instead
 * of 'data': each goes to the peer's writeBorrowed() when it has one (a mux stream, which copies
 * into frames what leaves now and copies the rest), else as a copy to write().
 */
export function relay(a: Duplex, b: Duplex, onDone?: (err?: Error) => void): void {
  const state: RelayState = { done: false, ended: 0, onDone };
  (a as RelayEnd)[kRelay] = { peer: b, state };
  (b as RelayEnd)[kRelay] = { peer: a, state };
  wire(a, b);
  wire(b, a);
}

function wire(from: Duplex, to: Duplex): void {
  if (isBorrowedRead(from)) takeReads(from as net.Socket, onBorrowedData);
  else from.on('data', onData);
  from.on('end', onEnd);
  from.on('error', onError);
  from.on('close', onClose);
  to.on('drain', onDrain);
  // As pipe(): a source paused before (a socket held during a handshake) starts flowing, unless
  // its destination is already full.
  if (to.writableNeedDrain) from.pause();
  else from.resume();
}

function onData(this: RelayEnd, chunk: Buffer): void {
  const r = this[kRelay];
  if (r === undefined || r.state.done) return;
  // Paused only while the destination still holds bytes: write() also says false for a chunk
  // larger than its high-water mark that left at once (a 64 KiB read into a socket, or into a
  // stream with credit), and pausing then would only stop and restart reading for nothing.
  if (!r.peer.write(chunk) && r.peer.writableLength > 0) this.pause();
}

/** A peer that can take a chunk it must not keep (MuxStream.writeBorrowed). */
interface BorrowingWritable extends Duplex {
  writeBorrowed?(chunk: Buffer): boolean;
}

/** onData for a borrowed-read source: `chunk` is the shared buffer, valid only until this returns. */
function onBorrowedData(this: net.Socket, chunk: Buffer): void {
  const r = (this as RelayEnd)[kRelay];
  if (r === undefined || r.state.done) return;
  const peer = r.peer as BorrowingWritable;
  const ok = typeof peer.writeBorrowed === 'function' ? peer.writeBorrowed(chunk) : peer.write(Buffer.from(chunk));
  if (!ok && peer.writableLength > 0) this.pause();
}

/** The peer (our destination) can take more: let it have our source's bytes again. */
function onDrain(this: RelayEnd): void {
  const r = this[kRelay];
  if (r !== undefined && !r.state.done) r.peer.resume();
}

function onEnd(this: RelayEnd): void {
  const r = this[kRelay];
  if (r === undefined) return;
  r.peer.end();
  if (++r.state.ended === 2) finish(r.state);
}

/** An error on one side resets the other (even after both ends: a late reset is still passed on). */
function onError(this: RelayEnd, err: Error): void {
  abort(this, err);
}

/** 'close' without a clean 'end' (destroyed with no error) is also a truncation. */
function onClose(this: RelayEnd): void {
  const r = this[kRelay];
  if (r !== undefined && !r.state.done && !this.readableEnded) abort(this, new Error('peer closed without end'));
}

function abort(from: RelayEnd, err: Error): void {
  const r = from[kRelay];
  if (r === undefined) return;
  from.removeListener('data', onData);
  destroyHard(r.peer, err);
  finish(r.state, err);
}

function finish(state: RelayState, err?: Error): void {
  if (state.done) return;
  state.done = true;
  state.onDone?.(err);
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
