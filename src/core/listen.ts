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
