/**
 * The fixed-destination forward spec of `--forward` and the config file's `forward` (like ssh -L).
 */
import { parseHostPort, targetFromHost, type Target } from '../core/address.js';
import { PosternError } from '../core/errors.js';

/** One fixed-destination listener: what the client's ForwardSpec takes (it adds a certificate for TLS). */
export interface ForwardSetting {
  readonly name: string;
  readonly listen: { host: string; port: number };
  readonly target: Target;
}

/** --forward [host:]port=host:port; the local host defaults to 127.0.0.1. */
export function parseForward(spec: string, what = '--forward'): ForwardSetting {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new PosternError('E_CONFIG', `${what}: expected [HOST:]PORT=HOST:PORT, got "${spec}"`);
  const local = spec.slice(0, eq);
  const listen = /^\d{1,5}$/.test(local) ? { host: '127.0.0.1', port: Number(local) } : parseHostPort(local);
  if (listen === null || listen.port > 65535) throw new PosternError('E_CONFIG', `${what}: bad local address "${local}"`);
  const dest = parseHostPort(spec.slice(eq + 1));
  if (dest === null || dest.port === 0) throw new PosternError('E_CONFIG', `${what}: expected HOST:PORT after "=", got "${spec.slice(eq + 1)}"`);
  return { name: 'forward', listen, target: targetFromHost(dest.host, dest.port) };
}

