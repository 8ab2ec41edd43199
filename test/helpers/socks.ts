import net from 'node:net';

/** A minimal, explicit SOCKS5 client for tests that need exact bytes (RFC 1928). */
export function connectRaw(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host, allowHalfOpen: true });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * After a write() that said false: resolves true when `s` drains or closes, false when `timeoutMs`
 * passes first (none: no time limit). Whichever comes first removes the others: a listener left per
 * wait grew past Node's limit of 10 on long transfers (MaxListenersExceededWarning).
 */
export function drainOrClose(s: net.Socket, timeoutMs?: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (v: boolean): void => {
      if (t !== undefined) clearTimeout(t);
      s.off('drain', onGo);
      s.off('close', onGo);
      resolve(v);
    };
    const onGo = (): void => done(true);
    const t = timeoutMs === undefined ? undefined : setTimeout(() => done(false), timeoutMs);
    s.on('drain', onGo);
    s.on('close', onGo);
  });
}

/** Reads exactly n bytes (bounded by timeout). */
export function readN(s: net.Socket, n: number, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const t = setTimeout(() => done(new Error(`timed out reading ${n} bytes (got ${buf.length})`)), timeoutMs);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= n) {
        const rest = buf.subarray(n);
        done(null, buf.subarray(0, n));
        // Put back what belongs to the next reader (after pausing, so it is not re-emitted here).
        if (rest.length) s.unshift(rest);
      }
    };
    const onEnd = () => done(new Error(`closed after ${buf.length} of ${n} bytes`));
    const done = (err: Error | null, v?: Buffer) => {
      clearTimeout(t);
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('close', onEnd);
      s.pause();
      if (err) reject(err);
      else resolve(v as Buffer);
    };
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('close', onEnd);
    s.resume();
  });
}

/**
 * Resolves when the peer closes; reports whether it was a clean end or a reset. A reset that arrives
 * in the same wakeup as the last data is reported by libuv as a clean end (POLLHUP after a partial
 * read is taken for EOF): where data and reset may come together, check with a plain recv() client
 * (open-replies.test.ts does, from Python).
 */
export function closeKind(s: net.Socket, timeoutMs = 10_000): Promise<'end' | 'reset' | 'timeout'> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve('timeout'), timeoutMs);
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(e.code === 'ECONNRESET' ? 'reset' : 'reset');
    });
    s.on('end', () => {
      clearTimeout(t);
      resolve('end');
    });
    s.resume();
  });
}

export function ipv4Request(ip: string, port: number, cmd = 1): Buffer {
  return Buffer.from([5, cmd, 0, 1, ...ip.split('.').map(Number), port >> 8, port & 255]);
}

export function domainRequest(name: string, port: number): Buffer {
  const n = Buffer.from(name);
  return Buffer.concat([Buffer.from([5, 1, 0, 3, n.length]), n, Buffer.from([port >> 8, port & 255])]);
}

export function ipv6Request(bytes16: number[], port: number): Buffer {
  return Buffer.from([5, 1, 0, 4, ...bytes16, port >> 8, port & 255]);
}

/** Greeting (no auth) + CONNECT; resolves with the reply code and the socket ready for data. */
export async function socksConnect(port: number, request: Buffer): Promise<{ socket: net.Socket; reply: number }> {
  const s = await connectRaw(port);
  s.write(Buffer.concat([Buffer.from([5, 1, 0]), request]));
  const method = await readN(s, 2);
  if (method[1] !== 0) throw new Error(`method ${method[1]}`);
  const head = await readN(s, 4);
  const atyp = head[3];
  const rest = atyp === 1 ? 6 : atyp === 4 ? 18 : (await readN(s, 1))[0]! + 2;
  await readN(s, rest);
  return { socket: s, reply: head[1]! };
}
