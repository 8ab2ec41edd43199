/**
 * The start-up printout of `postern client`: where to point apps on this device, with the
 * credentials (the pair given, else the stored one: config/client-settings.ts), a curl line per
 * protocol, the Telegram link and the browser set-up. Phones: src/cli/phone-setup.ts.
 */
import type { BoundListener } from '../client/client.js';
import { shareLinks } from '../client/lan.js';
import type { ClientSettings } from '../config/client-settings.js';
import { formatHostPort, isLoopbackHost } from '../core/address.js';
import type { Credentials } from '../core/credentials.js';
import { localeFromEnv, translator } from '../i18n/messages.js';

/** What the start-up printout needs of the resolved settings (config/client-settings.ts). */
export type ListenerSettings = Pick<ClientSettings, 'auth' | 'stored'>;

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
