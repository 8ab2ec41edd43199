/**
 * Share links for the users of a bridge config: the secret from the config, the public host, port
 * and path, and how the client verifies TLS — a pin when the certificate is self-signed (or the
 * operator asks for one), else CA verification with sni=<publicHost>.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { PosternError } from '../core/errors.js';
import { unreadableError } from '../config/file.js';
import { spkiSha256 } from '../transport/certs.js';
import type { HostPort } from '../core/address.js';
import { DEFAULT_TRANSPORT, H2_MODES, TRANSPORT_NAMES, formatShareUri, parseConnectAddress, parseHttpHost, parseSni, type BridgeInfo, type H2Mode, type TransportName } from '../transport/uri.js';

/** True when the certificate signs itself (no CA vouches for it, so clients must pin it). */
export function isSelfSigned(certPem: string): boolean {
  const cert = new X509Certificate(certPem);
  return cert.issuer === cert.subject && cert.verify(cert.publicKey);
}

export interface ShareTarget {
  secret: Buffer;
  publicHost: string;
  publicPort: number;
  path: string;
  /** The certificate clients will see, or null when it is not known (then CA verification). */
  certPem: string | null;
  label: string;
  /** A relay (plain TCP forwarder) clients dial instead of publicHost:publicPort; protocol.md §1 `connect`. */
  connect?: HostPort;
  /** The TLS server name to send (protocol.md §1 `sni`), when not publicHost. */
  sni?: string;
  /** The Host header / `:authority` to send (protocol.md §1 `host`), when not the default. */
  httpHost?: string;
  /** The transport the link names (protocol.md §1 `transport`); absent: the default (ws). */
  transport?: TransportName;
  /** How an h2 link carries the session (protocol.md §1 `mode`); absent: stream-one. */
  mode?: H2Mode;
}

/** The fronting options of a link as typed on the command line (`--connect`, `--sni`, `--host-header`). */
export interface FrontOptions {
  connect?: string;
  sni?: string;
  hostHeader?: string;
  /** `--transport ws|h2`. */
  transport?: string;
  /** `--mode stream-one|packet-up` (h2 only). */
  mode?: string;
}

/** The share URI of one user. */
export function shareUri(t: ShareTarget): string {
  const info: BridgeInfo = { secret: t.secret, host: t.publicHost, port: t.publicPort, path: t.path, plain: false, label: t.label };
  if (t.connect !== undefined) info.connect = t.connect;
  if (t.httpHost !== undefined) info.httpHost = t.httpHost;
  if (t.transport !== undefined && t.transport !== DEFAULT_TRANSPORT) info.transport = t.transport;
  if (t.mode !== undefined && t.mode !== H2_MODES[0]) info.mode = t.mode;
  if (t.certPem !== null && isSelfSigned(t.certPem)) info.pin = spkiSha256(t.certPem);
  if (t.sni !== undefined) info.sni = t.sni;
  else if (info.pin === undefined && net.isIP(t.publicHost) === 0) info.sni = t.publicHost;
  return formatShareUri(info);
}

/** Runs a URI parameter's parser on an option's value; its error names the option instead of the parameter. */
function optionValue<T>(option: string, param: string, text: string, parse: (t: string) => T): T {
  try {
    return parse(text.trim());
  } catch (err) {
    const reason = (err as Error).message.replace(/^.*?URI: /, '').replace(new RegExp(`^${param}:? `), '');
    throw new PosternError('E_CONFIG', `${option} ${text}: ${reason}`);
  }
}

/**
 * `--connect HOST[:PORT]` (the relay; port default: the bridge's public port), `--sni NAME` and
 * `--host-header NAME[:PORT]`, checked as the link's `connect`, `sni` and `host` are (protocol.md §1);
 * errors name the option.
 */
export function parseFrontOptions(o: FrontOptions, publicPort: number): LinkOptions {
  const out: LinkOptions = {};
  if (o.connect !== undefined) out.connect = optionValue('--connect', 'connect', o.connect, (t) => parseConnectAddress(t, publicPort));
  if (o.sni !== undefined) out.sni = optionValue('--sni', 'sni', o.sni, parseSni);
  if (o.hostHeader !== undefined) out.httpHost = optionValue('--host-header', 'host', o.hostHeader, parseHttpHost);
  if (o.transport !== undefined) out.transport = parseTransportOption(o.transport);
  if (o.mode !== undefined) out.mode = parseModeOption(o.mode, out.transport ?? DEFAULT_TRANSPORT);
  return out;
}

/** What a link says beyond the bridge's own address: fronting (`connect`, `sni`, `host`), `transport` and `mode`. */
export type LinkOptions = Pick<ShareTarget, 'connect' | 'sni' | 'httpHost' | 'transport' | 'mode'>;

/** `--mode NAME`: one of H2_MODES, and only with `--transport h2`; the error names the option and the fix. */
export function parseModeOption(text: string, transport: TransportName): H2Mode {
  const mode = H2_MODES.find((m) => m === text.trim());
  if (mode === undefined) throw new PosternError('E_CONFIG', `--mode ${text}: expected one of ${H2_MODES.join(', ')}`);
  if (transport !== 'h2') throw new PosternError('E_CONFIG', `--mode ${mode}: needs --transport h2 (the ${transport} transport has one mode)`);
  return mode;
}

/** `--transport NAME`: one of TRANSPORT_NAMES; the error names the option and the choices. */
export function parseTransportOption(text: string): TransportName {
  const name = TRANSPORT_NAMES.find((n) => n === text.trim());
  if (name === undefined) throw new PosternError('E_CONFIG', `--transport ${text}: expected one of ${TRANSPORT_NAMES.join(', ')}`);
  return name;
}

/** Reads a PEM file named on the command line; errors name the option and the file. */
export function readPem(file: string, option: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw unreadableError(file, err) ?? new PosternError('E_CONFIG', `${option} ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!text.includes('-----BEGIN')) throw new PosternError('E_CONFIG', `${option} ${file}: not a PEM file`);
  return text;
}
