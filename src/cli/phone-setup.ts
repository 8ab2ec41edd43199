/**
 * The phone set-up printed at start (stderr), in the user's language (src/i18n/messages.ts):
 *
 * - with --lan: the address a phone on this network uses, the username and password, and QR codes
 *   for Telegram (a tg://socks link with the credentials) and the phone's Wi-Fi proxy settings;
 * - with --whatsapp: the exact steps in WhatsApp's proxy screen on Android and iPhone, which field
 *   gets which host and port.
 *
 * A QR code or a WhatsApp host is printed only for an address a phone can reach: never for a
 * wildcard (0.0.0.0, ::), a loopback address, or when this computer has no LAN address — instead
 * a line says why, and what to do.
 *
 * WhatsApp's rules followed here are those of its own proxy (github.com/WhatsApp/proxy, FAQ.md
 * question 4 and proxy/src/proxy_config.cfg): the app wraps the chat connection in TLS when the chat
 * port is 443 and speaks plain to every other port; the media port (default 587) is plain TCP to
 * whatsapp.net:443; calls are not carried.
 */
import os from 'node:os';
import type { BoundListener } from '../client/client.js';
import { lanAddresses, shareLinks } from '../client/lan.js';
import { formatHostPort, isLoopbackHost } from '../core/address.js';
import type { Credentials } from '../core/credentials.js';
import { localeFromEnv, translator, type Translate } from '../i18n/messages.js';
import { qrText } from './qr.js';

/** The one port on which WhatsApp's app speaks TLS to a proxy (WhatsApp/proxy FAQ.md, question 4). */
export const WHATSAPP_TLS_PORT = 443;

/** Where a phone reaches a listener bound to `bindHost`, or why it cannot. */
export type PhoneReach = { hosts: string[]; problem: null } | { hosts: []; problem: 'loopback' | 'nolan' };

export function phoneReach(bindHost: string, lan: readonly string[]): PhoneReach {
  if (bindHost === '0.0.0.0' || bindHost === '::') return lan.length > 0 ? { hosts: [...lan], problem: null } : { hosts: [], problem: 'nolan' };
  if (isLoopbackHost(bindHost)) return { hosts: [], problem: 'loopback' };
  return { hosts: [bindHost], problem: null };
}

export interface PhoneSetupOptions {
  /** --lan: share the proxy port with phones. */
  lan: boolean;
  auth: Credentials | null;
}

/** The lines of the phone set-up (no trailing newline); `qr` renders a QR code (tests pass a marker). */
export function phoneSetupLines(
  listeners: readonly BoundListener[],
  opts: PhoneSetupOptions,
  lan: readonly string[],
  t: Translate,
  qr: (text: string) => string = qrText,
): string[] {
  const mixed = listeners.find((l) => l.role === 'mixed');
  if (mixed === undefined) return [];
  const reach = phoneReach(mixed.host, lan);
  const out: string[] = [];
  /** Why a phone cannot reach the proxy, in `line` ('phone.lan.noqr' or 'phone.wa.noaddr'), and what to do. */
  const why = (line: 'phone.lan.noqr' | 'phone.wa.noaddr'): string[] => {
    if (reach.problem === 'nolan') return [t(line, { why: t('phone.why.nolan') }), t('phone.nolan.fix')];
    const example = formatHostPort({ host: lan[0] ?? '192.168.1.20', port: mixed.port });
    return [t(line, { why: t('phone.why.loopback', { host: mixed.host }) }), opts.lan ? t('phone.loopback.fix.lan', { example }) : t('phone.loopback.fix')];
  };

  if (opts.lan && opts.auth !== null) {
    out.push('', t('phone.lan.title'));
    if (reach.problem !== null) {
      out.push(...why('phone.lan.noqr'));
    } else {
      const first = reach.hosts[0] as string;
      const links = shareLinks(first, mixed.port, opts.auth);
      out.push(
        ...reach.hosts.map((h) => t('phone.lan.proxy', { hostPort: formatHostPort({ host: h, port: mixed.port }) })),
        t('phone.lan.username', { username: opts.auth.username }),
        t('phone.lan.password', { password: opts.auth.password }),
        t('phone.lan.pac', { url: `http://${formatHostPort({ host: first, port: mixed.port })}/proxy.pac` }),
        '',
        t('phone.telegram'),
        `  ${links.telegram}`,
        qr(links.telegram),
        t('phone.wifi', { host: first, port: mixed.port }),
        qr(links.wifi),
      );
    }
  }

  const wa = listeners.filter((l) => l.role === 'forward' && l.name.startsWith('whatsapp '));
  if (wa.length > 0) {
    const port = (role: string): number | undefined => wa.find((l) => l.name === `whatsapp ${role}`)?.port;
    const tls = port('chat-tls');
    const chat = port('chat');
    const media = port('media');
    out.push('', t('phone.wa.title'));
    // The entry ports listen on the proxy's host, so they are reached (or not) like it.
    if (reach.problem !== null) {
      out.push(...why('phone.wa.noaddr'));
    } else {
      out.push(t('phone.wa.android'), t('phone.wa.iphone'), t('phone.wa.host', { host: reach.hosts[0] as string }));
      if (tls === WHATSAPP_TLS_PORT) out.push(t('phone.wa.chat.tls', { port: tls }));
      else if (chat !== undefined) out.push(t('phone.wa.chat', { port: chat }));
      else out.push(t('phone.wa.chat.none'));
      out.push(media !== undefined ? t('phone.wa.media', { port: media }) : t('phone.wa.media.none'));
      // WhatsApp's FAQ: TLS on 443 only, with no setting; newer apps may show a switch, which must agree.
      if (tls === WHATSAPP_TLS_PORT || chat !== undefined) out.push(t(tls === WHATSAPP_TLS_PORT ? 'phone.wa.tls.on' : 'phone.wa.tls.off'));
      out.push(t('phone.wa.save'));
      if (tls !== undefined && tls !== WHATSAPP_TLS_PORT) out.push(t('phone.wa.tlsport', { port: tls }));
      out.push(t('phone.wa.open'));
    }
  }
  return out;
}

/** Prints the phone set-up (stderr) for the bound listeners, with this machine's LAN addresses. */
export function printPhoneSetup(listeners: readonly BoundListener[], opts: PhoneSetupOptions, env: NodeJS.ProcessEnv = process.env): void {
  const lines = phoneSetupLines(listeners, opts, lanAddresses(os.networkInterfaces()), translator(localeFromEnv(env)));
  if (lines.length > 0) process.stderr.write(`${lines.join('\n')}\n`);
}
