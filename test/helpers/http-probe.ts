/**
 * One prober's connection to a web front (the bridge, `postern decoy`, or a real nginx): TLS or
 * plain TCP, bytes and pauses sent in order, everything received kept, and how the connection
 * ended — FIN, reset, or still open when the probe gave up.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface ProbeOutcome {
  bytes: Buffer;
  end: 'fin' | 'reset' | 'open';
  /** From the connection being up (TLS handshake done) to its end. */
  ms: number;
}

/** Bytes (latin1 strings or Buffers) and pauses in ms. */
export type ProbeStep = string | Buffer | number;

/**
 * Plays `steps` on a new connection to 127.0.0.1:`port`. The probe is cut `maxMs` after the
 * connection is up (the handshake itself may wait on a busy machine, up to 3 × `maxMs`).
 */
export function runProbe(port: number, steps: ProbeStep[], opts: { plain?: boolean; maxMs: number; servername?: string }): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let t0 = performance.now();
    let end: ProbeOutcome['end'] = 'fin';
    let done = false;
    const sock: net.Socket =
      opts.plain === true
        ? net.connect({ host: '127.0.0.1', port })
        : tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: opts.servername ?? 'decoy.example', ALPNProtocols: ['http/1.1'] });
    let cut: NodeJS.Timeout | undefined;
    const stop = (): void => {
      end = 'open';
      finish();
      sock.destroy();
    };
    const giveUp = setTimeout(stop, opts.maxMs * 3);
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(cut);
      clearTimeout(giveUp);
      resolve({ bytes: Buffer.concat(chunks), end, ms: performance.now() - t0 });
    };
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') end = 'reset';
    });
    sock.on('close', finish);
    sock.once(opts.plain === true ? 'connect' : 'secureConnect', () => {
      t0 = performance.now();
      cut = setTimeout(stop, opts.maxMs);
      void (async () => {
        for (const step of steps) {
          if (done) return;
          if (typeof step === 'number') await new Promise((r) => setTimeout(r, step));
          else sock.write(typeof step === 'string' ? Buffer.from(step, 'latin1') : step);
        }
      })();
    });
  });
}
