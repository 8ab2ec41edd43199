/**
 * The listener flags of `postern client` (--socks, --http, --forward, --whatsapp…, --lan,
 * --no-auth) turned into Client options, the start-up printout (where to point apps, with the
 * credentials), and the phone-sharing printout of --lan.
 *
 * Every SOCKS and HTTP listener asks for a username and password unless --no-auth (loopback only):
 * the pair given (--user/--pass, $POSTERN_USER/$POSTERN_PASS, the config file's auth), else the
 * one stored under the config folder (config/local-credentials.ts), made on first start.
 */
import net from 'node:net';
import os from 'node:os';
import type { BoundListener, ForwardSpec } from '../client/client.js';
import { parseForward } from '../client/forward.js';
import { lanAddresses, shareLinks } from '../client/lan.js';
import { whatsappEntries } from '../client/whatsapp.js';
import type { StoredCredentials } from '../config/local-credentials.js';
import { formatHostPort, isLoopbackHost, parseHostPort } from '../core/address.js';
import type { Credentials } from '../core/credentials.js';
import { localeFromEnv, translator } from '../i18n/messages.js';
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
  /** Commander's negatable `--no-auth`: false when given. */
  auth?: boolean;
}

export interface ListenerSettings {
  listen: { host: string; port: number };
  auth: Credentials | null;
  /** Where the credentials came from, when from the store (null: given, or --no-auth). */
  stored: StoredCredentials | null;
  socks: Array<{ host: string; port: number }>;
  http: Array<{ host: string; port: number }>;
  forwards: ForwardSpec[];
}

function hostPort(value: string, what: string): { host: string; port: number } {
  const hp = parseHostPort(value);
  if (!hp) throw new PosternError('E_CONFIG', `${what}: expected HOST:PORT, got "${value}"`);
  return hp;
}

/**
 * Resolves the listener flags against the settings already resolved (listen, auth). `stored` reads
 * (or makes) the stored credentials; it is called only when they are needed.
 */
export function clientListenerFlags(
  flags: ListenerFlags,
  settings: { listen: { host: string; port: number }; listenGiven: boolean; auth: Credentials | null; insecureOpenProxy: boolean },
  stored: () => StoredCredentials,
): ListenerSettings {
  let listen = settings.listen;
  const noAuth = flags.auth === false;
  if (flags.lan === true) {
    // Never an open proxy on a LAN: the opt-outs are refused.
    if (settings.insecureOpenProxy) throw new PosternError('E_CONFIG', '--lan never runs an open proxy: drop --insecure-open-proxy');
    if (noAuth) throw new PosternError('E_CONFIG', '--no-auth is for loopback listeners only; --lan always asks for the username and password');
    if (!settings.listenGiven) listen = { host: '0.0.0.0', port: listen.port };
  }
  const socks = (flags.socks ?? []).map((s) => hostPort(s, '--socks'));
  const http = (flags.http ?? []).map((s) => hostPort(s, '--http'));
  let auth = settings.auth;
  let kept: StoredCredentials | null = null;
  if (noAuth) {
    if (auth !== null) {
      throw new PosternError('E_CONFIG', '--no-auth conflicts with the username and password given (--user/--pass, $POSTERN_USER/$POSTERN_PASS or the config file\'s "auth"): drop one');
    }
    const open = [listen, ...socks, ...http].find((l) => !isLoopbackHost(l.host));
    if (open !== undefined && !settings.insecureOpenProxy) {
      throw new PosternError('E_CONFIG', `--no-auth is for loopback listeners only, and ${formatHostPort(open)} is not loopback: drop --no-auth, or listen on 127.0.0.1`);
    }
  } else if (auth === null) {
    kept = stored();
    auth = kept.credentials;
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
  // Forwards and WhatsApp entry points have no password (their apps cannot send one): off
  // loopback, anyone who can reach the port uses the tunnel (to that one destination).
  if (flags.lan !== true) {
    const open = forwards.find((f) => !isLoopbackHost(f.listen.host));
    if (open !== undefined) {
      throw new PosternError(
        'E_CONFIG',
        `${open.name} on ${formatHostPort(open.listen)}: a forward or WhatsApp port has no password, so off loopback anyone on the network can use it; add --lan to agree, or listen on 127.0.0.1`,
      );
    }
  }
  return { listen, auth, stored: kept, socks, http, forwards };
}

/** A word safe to paste into a POSIX shell as is, else single-quoted. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9@%+=:,./_-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** What to type into each app for the proxy at host:port: curl lines, the Telegram link, the browser set-up. */
export function appSetup(host: string, port: number, creds: Credentials | null): { curlSocks: string; curlHttp: string; telegram: string; pac: string } {
  const e = encodeURIComponent;
  const hp = formatHostPort({ host, port });
  const userinfo = creds !== null ? `${e(creds.username)}:${e(creds.password)}@` : '';
  const telegram =
    creds !== null ? shareLinks(host, port, creds).telegram : `tg://socks?server=${e(host)}&port=${port}`;
  return {
    curlSocks: `curl --proxy ${shellWord(`socks5h://${userinfo}${hp}`)} https://example.com/`,
    curlHttp: `curl --proxy ${shellWord(`http://${userinfo}${hp}`)} https://example.com/`,
    telegram,
    pac: `http://${hp}/proxy.pac`,
  };
}

/**
 * The start-up printout (stderr): where to point apps, the credentials, a curl line per
 * protocol, the Telegram link and the browser set-up; the forward and WhatsApp ports with who can
 * reach them; on first start with stored credentials, what to change in Telegram and the browser.
 * In the user's language (src/i18n/messages.ts).
 */
export function printLocalSetup(listeners: readonly BoundListener[], settings: ListenerSettings, env: NodeJS.ProcessEnv = process.env): void {
  const mixed = listeners.find((l) => l.role === 'mixed');
  if (mixed === undefined) return;
  const t = translator(localeFromEnv(env));
  // A wildcard bind is reached on loopback from this machine.
  const host = mixed.host === '0.0.0.0' ? '127.0.0.1' : mixed.host === '::' ? '::1' : mixed.host;
  const creds = settings.auth;
  const app = appSetup(host, mixed.port, creds);
  const hostPort = formatHostPort({ host, port: mixed.port });
  const out: string[] = ['', t('client.setup.point', { hostPort })];
  if (creds !== null) {
    out.push(t('client.setup.username', { username: creds.username }), t('client.setup.password', { password: creds.password }));
    if (settings.stored !== null) out.push(t('client.setup.kept', { file: tildePath(settings.stored.file, env) }));
  } else {
    out.push(t('client.setup.noauth'));
  }
  out.push(
    t('client.setup.curl', { command: app.curlSocks }),
    t('client.setup.curl2', { command: app.curlHttp }),
    t('client.setup.telegram', { link: app.telegram }),
    t('client.setup.browser', { host, port: mixed.port, asks: creds !== null ? t('client.setup.browser.asks') : '' }),
    t('client.setup.pac', { url: app.pac }),
    t('client.setup.page', { url: `http://${hostPort}/` }),
  );
  const same = creds !== null ? t('client.setup.also.same') : '';
  for (const l of listeners) {
    if (l.role === 'socks') out.push(t('client.setup.also.socks', { hostPort: formatHostPort(l), same }));
    if (l.role === 'http') out.push(t('client.setup.also.http', { hostPort: formatHostPort(l), same }));
  }
  for (const l of listeners.filter((x) => x.role === 'forward')) {
    out.push(
      t('client.setup.forward', {
        name: l.name === 'forward' ? t('client.setup.forward.name') : l.name,
        hostPort: formatHostPort(l),
        dest: t(l.name.startsWith('whatsapp ') ? 'client.setup.forward.dest.whatsapp' : 'client.setup.forward.dest.fixed'),
        who: t(isLoopbackHost(l.host) ? 'client.setup.forward.who.local' : 'client.setup.forward.who.lan'),
      }),
    );
  }
  if (settings.stored?.tightened === true) out.push(t('client.setup.tightened', { file: settings.stored.file }));
  if (settings.stored?.created === true && creds !== null) {
    const userinfo = `${creds.username}:${creds.password}`;
    out.push(
      '',
      t('client.migrate.1'),
      t('client.migrate.2'),
      t('client.migrate.telegram', { hostPort, username: creds.username, password: creds.password }),
      t('client.migrate.telegram.link'),
      t('client.migrate.browser', { hostPort }),
      t('client.migrate.scripts', { socks: `socks5h://${userinfo}@${hostPort}`, http: `http://${userinfo}@${hostPort}` }),
      t('client.migrate.noauth'),
    );
  }
  process.stderr.write(`${out.join('\n')}\n`);
}

/** The one-line warning of --no-auth: what it allows. */
export function noAuthWarning(host: string, port: number, env: NodeJS.ProcessEnv = process.env): string {
  return `${translator(localeFromEnv(env))('client.noauth.warning', { hostPort: formatHostPort({ host, port }) })}\n`;
}

function tildePath(file: string, env: NodeJS.ProcessEnv): string {
  const home = env.HOME;
  return home !== undefined && home !== '' && file.startsWith(`${home}/`) ? `~${file.slice(home.length)}` : file;
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
    ...hosts.map((h) => `  Proxy (SOCKS5 and HTTP):  ${formatHostPort({ host: h, port: mixed.port })}`),
    `  Username: ${creds.username}`,
    `  Password: ${creds.password}`,
    `  PAC URL:  http://${formatHostPort({ host: first, port: mixed.port })}/proxy.pac`,
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
