/**
 * A minimal RFC 1928 client over net.Socket: no-auth greeting, CONNECT to an IPv4 address.
 * Our own, so that no SOCKS library's cost lands in the figures, and so that the greeting and the
 * request can go out in one write ("pipelined") when the server allows it.
 */
import net from 'node:net';

const GREETING = Buffer.from([0x05, 0x01, 0x00]);

function connectRequest(host: string, port: number): Buffer {
  const octets = host.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !(o >= 0 && o <= 255))) throw new Error(`not an IPv4 address: ${host}`);
  return Buffer.from([0x05, 0x01, 0x00, 0x01, ...octets, port >> 8, port & 0xff]);
}

export interface SocksOptions {
  /** Send greeting and CONNECT in one write instead of waiting for the method reply. */
  pipeline: boolean;
  timeoutMs: number;
}

export class SocksError extends Error {
  constructor(
    message: string,
    readonly reply?: number,
  ) {
    super(message);
  }
}

/**
 * Opens a SOCKS5 CONNECT through proxyPort to host:port. Resolves with the connected socket
 * (no 'data' listener attached, paused) once the success reply has arrived.
 */
export function socksConnect(proxyPort: number, host: string, port: number, opts: SocksOptions): Promise<net.Socket> {
  const request = connectRequest(host, port);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port: proxyPort, noDelay: true });
    let buf: Buffer = Buffer.alloc(0);
    let stage: 'method' | 'reply' = 'method';
    const timer = setTimeout(() => fail(new SocksError(`SOCKS handshake timed out after ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('error', fail);
      sock.off('close', onClose);
    };
    function fail(err: Error): void {
      cleanup();
      sock.destroy();
      reject(err);
    }
    const onClose = (): void => fail(new SocksError('proxy closed the connection during the handshake'));
    const onData = (d: Buffer): void => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      if (stage === 'method') {
        if (buf.length < 2) return;
        if (buf[0] !== 0x05 || buf[1] !== 0x00) return fail(new SocksError(`proxy refused the no-auth method (${buf.subarray(0, 2).toString('hex')})`));
        buf = buf.subarray(2);
        stage = 'reply';
        if (!opts.pipeline) sock.write(request);
      }
      // Reply: VER REP RSV ATYP BND.ADDR BND.PORT
      if (buf.length < 5) return;
      const atyp = buf[3];
      const addrLen = atyp === 0x01 ? 4 : atyp === 0x04 ? 16 : atyp === 0x03 ? 1 + (buf[4] as number) : -1;
      if (addrLen < 0) return fail(new SocksError(`bad ATYP ${atyp} in reply`));
      const total = 4 + addrLen + 2;
      if (buf.length < total) return;
      if (buf[1] !== 0x00) return fail(new SocksError(`CONNECT refused, reply ${buf[1]}`, buf[1]));
      cleanup();
      sock.pause();
      if (buf.length > total) sock.unshift(buf.subarray(total));
      resolve(sock);
    };
    sock.on('data', onData);
    sock.on('error', fail);
    sock.on('close', onClose);
    sock.once('connect', () => {
      sock.write(opts.pipeline ? Buffer.concat([GREETING, request]) : GREETING);
    });
  });
}
