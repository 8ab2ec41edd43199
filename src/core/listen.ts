import type net from 'node:net';

/**
 * Binds a server and resolves with the address it got (port 0 picks a free port). A bind error
 * (EADDRINUSE, EACCES…) rejects; the caller attaches its own 'error' handler for later errors.
 */
export function listenTcp(server: net.Server, host: string, port: number): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      const addr = server.address() as net.AddressInfo;
      resolve({ host: addr.address, port: addr.port });
    });
  });
}

/** Stops a server accepting; resolves once it has closed (at once if it never listened). */
export function closeServer(server: net.Server | null): Promise<void> {
  if (server === null || !server.listening) return Promise.resolve();
  return new Promise<void>((resolve) => server.close(() => resolve()));
}

/**
 * The connections a local listener serves, at most `max` (LOCAL_MAX_CONNECTIONS). admit() refuses
 * a socket beyond that (destroyed at once) and calls `onLimit` once per run of refusals: again
 * only after the set has dropped below the limit.
 */
export class ConnectionSet<C> implements Iterable<C> {
  readonly #items = new Set<C>();
  #atLimit = false;

  constructor(
    private readonly max: number,
    private readonly onLimit: () => void = () => undefined,
  ) {}

  get size(): number {
    return this.#items.size;
  }

  /**
   * True when `socket` may be served: the listener is not `closing` and there is room for one
   * more. Otherwise destroys it and returns false.
   */
  admit(socket: net.Socket, closing = false): boolean {
    if (!closing && this.#items.size < this.max) return true;
    socket.on('error', () => {});
    socket.destroy();
    if (!closing && !this.#atLimit) {
      this.#atLimit = true;
      this.onLimit();
    }
    return false;
  }

  add(item: C): void {
    this.#items.add(item);
  }

  delete(item: C): void {
    this.#items.delete(item);
    if (this.#items.size < this.max) this.#atLimit = false;
  }

  [Symbol.iterator](): Iterator<C> {
    return [...this.#items][Symbol.iterator]();
  }
}
