/**
 * The listener flags of `postern client` (--socks, --http, --forward, --whatsapp…, --lan) turned
 * into Client options, and the phone-sharing printout of --lan.
 */
import net from 'node:net';
import os from 'node:os';
import type { BoundListener, ForwardSpec } from '../client/client.js';
import { parseForward } from '../client/forward.js';
import { generateCredentials, lanAddresses, shareLinks, type Credentials } from '../client/lan.js';
import { whatsappEntries } from '../client/whatsapp.js';
import { parseHostPort } from '../core/address.js';
import { PosternError } from '../core/errors.js';
import { generateSelfSigned } from '../transport/certs.js';
import { qrText } from './qr.js';

export interface ListenerFlags {
  socks?: string[];
  http?: string[];
  forward?: string[];
  whatsapp?: boolean;
  whatsappPorts?: string;
  whatsappTarget?: string;
  lan?: boolean;
}

export interface ListenerSettings {
  listen: { host: string; port: number };
  auth: { username: string; password: string } | null;
  socks: Array<{ host: string; port: number }>;
  http: Array<{ host: string; port: number }>;
  forwards: ForwardSpec[];
}

function hostPort(value: string, what: string): { host: string; port: number } {
  const hp = parseHostPort(value);
  if (!hp) throw new PosternError('E_CONFIG', `${what}: expected HOST:PORT, got "${value}"`);
  return hp;
}

/** Resolves the listener flags against the settings already resolved (listen, auth). */
export function clientListenerFlags(
  flags: ListenerFlags,
  settings: { listen: { host: string; port: number }; listenGiven: boolean; auth: Credentials | null; insecureOpenProxy: boolean },
): ListenerSettings {
  let listen = settings.listen;
  let auth = settings.auth;
  if (flags.lan === true) {
    // Never an open proxy on a LAN: credentials are given or generated, and the opt-out is refused.
    if (settings.insecureOpenProxy) throw new PosternError('E_CONFIG', '--lan never runs an open proxy: drop --insecure-open-proxy');
    if (!settings.listenGiven) listen = { host: '0.0.0.0', port: listen.port };
    if (auth === null) auth = generateCredentials();
  }
  const forwards = (flags.forward ?? []).map((f) => parseForward(f));
  if (flags.whatsapp === true || flags.whatsappPorts !== undefined || flags.whatsappTarget !== undefined) {
    if (flags.whatsapp !== true) throw new PosternError('E_CONFIG', '--whatsapp-ports and --whatsapp-target go with --whatsapp');
    const entries = whatsappEntries(flags.whatsappPorts, flags.whatsappTarget);
    // WhatsApp accepts any certificate on its TLS port; a fresh one each start is enough.
    const cert = entries.some((e) => e.tls) ? generateSelfSigned({ commonName: 'localhost', altNames: ['localhost'] }) : undefined;
    for (const e of entries) {
      forwards.push({
        name: `whatsapp ${e.role}`,
        listen: { host: listen.host, port: e.port },
        target: e.target,
        tls: e.tls ? cert : undefined,
      });
    }
  }
  return {
    listen,
    auth,
    socks: (flags.socks ?? []).map((s) => hostPort(s, '--socks')),
    http: (flags.http ?? []).map((s) => hostPort(s, '--http')),
    forwards,
  };
}

function fmt(host: string, port: number): string {
  return `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
}

/** The addresses a phone should use for a listener bound to `host`. */
function reachableHosts(host: string): { hosts: string[]; note: string | null } {
  const lan = lanAddresses(os.networkInterfaces());
  if (host === '0.0.0.0' || host === '::') {
    return lan.length > 0 ? { hosts: lan, note: null } : { hosts: [host], note: 'no LAN address found on this machine' };
  }
  if (net.isIPv4(host) && host.startsWith('127.')) {
    return { hosts: lan.length > 0 ? lan : [host], note: `the proxy is bound to ${host}: phones cannot reach it until you listen on a LAN address` };
  }
  return { hosts: [host], note: null };
}

/** Prints (stderr) the LAN address, credentials, links and QR codes for phones. */
export function printLanShare(listeners: readonly BoundListener[], creds: Credentials): void {
  const mixed = listeners.find((l) => l.role === 'mixed');
  if (mixed === undefined) return;
  const { hosts, note } = reachableHosts(mixed.host);
  const first = hosts[0] as string;
  const links = shareLinks(first, mixed.port, creds);
  const out: string[] = [
    '',
    'Sharing this tunnel with phones on your network. Keep these credentials private.',
    ...hosts.map((h) => `  Proxy (SOCKS5 and HTTP):  ${fmt(h, mixed.port)}`),
    `  Username: ${creds.username}`,
    `  Password: ${creds.password}`,
    `  PAC URL:  http://${fmt(first, mixed.port)}/proxy.pac`,
  ];
  const wa = listeners.filter((l) => l.name.startsWith('whatsapp '));
  if (wa.length > 0) {
    out.push(`  WhatsApp (Settings → Storage and data → Proxy): host ${first}, ` + wa.map((l) => `${l.name.slice(9)} port ${l.port}`).join(', '));
  }
  if (note !== null) out.push(`  Note: ${note}.`);
  out.push('', `Telegram (scan, or open the link on the phone): ${links.telegram}`, qrText(links.telegram));
  out.push("Wi-Fi proxy settings (Manual; the phone's browser asks for the username and password):", links.wifi, qrText(links.wifi));
  process.stderr.write(`${out.join('\n')}\n`);
}
