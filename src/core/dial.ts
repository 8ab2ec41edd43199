import net from 'node:net';
import { connectBorrowed } from './borrowed-read.js';
import { PosternError, errorFromSystem } from './errors.js';

/**
 * One TCP connection to an IP address, within `timeoutMs`, abandoned on `signal`. Errors are
 * PosternErrors (errorFromSystem; E_TIMEOUT; E_CANCELLED). Used by the bridge's egress and the
 * client's direct routes. With `borrowed` the socket reads into the process's shared buffer and
 * starts paused (src/core/borrowed-read.ts): for a socket relayed into a mux stream, which copies
 * every read into a frame anyway.
 */
export function connectTcp(address: string, port: number, timeoutMs: number, signal: AbortSignal, borrowed = false): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const opts = { host: address, port, noDelay: true, allowHalfOpen: true };
    const socket = borrowed ? connectBorrowed(opts) : net.connect(opts);
    const cleanup = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      socket.off('connect', onConnect);
    };
    const onError = (err: Error) => {
      cleanup();
      socket.destroy();
      reject(errorFromSystem(err));
    };
    const onConnect = () => {
      cleanup();
      resolve(socket);
    };
    const onAbort = () => {
      cleanup();
      socket.destroy();
      reject(new PosternError('E_CANCELLED'));
    };
    const timer = setTimeout(() => {
      cleanup();
      socket.destroy();
      reject(new PosternError('E_TIMEOUT', 'connect'));
    }, timeoutMs);
    socket.once('error', onError);
    socket.once('connect', onConnect);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
