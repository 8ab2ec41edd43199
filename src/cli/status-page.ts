/**
 * The client's status page: what `http://127.0.0.1:1080/` shows in a browser on this computer — the
 * tunnel's status (the same model as the status line), the settings for each app, and the phone
 * set-up with QR codes. The HTTP proxy (src/http/server.ts) hands it only GETs from this machine
 * whose Host names the port by a loopback name; everything else still gets the 404.
 *
 * What it shows without credentials, and what it keeps back (README, "The status page"):
 * - `/` and `/status.json`: the tunnel's state, round trip, connections, bytes, last error (its
 *   code's short text, never a message that could name a host), the proxy address and username.
 *   Not the password, not a link or QR code holding it, and not the bridge's name: any program on
 *   this computer can read this page, and the proxy's password exists so that other programs
 *   cannot use the tunnel or learn the bridge through it.
 * - `/reveal`: all of that plus the bridge, the password, the tg:// and Wi-Fi QR codes. It needs
 *   the proxy's own username and password in `Authorization: Basic`; without them the answer is a
 *   401 that makes the browser ask (the user's action). With --no-auth there is no password, and
 *   any program here can use the tunnel anyway: the bridge is shown on `/`.
 * - No script and no external resource; a strict Content-Security-Policy (a per-answer nonce for
 *   the one style element), no CORS header (a page of another origin cannot read the answers),
 *   framing refused, no caching.
 */
import crypto from 'node:crypto';
import os from 'node:os';
import type { BoundListener } from '../client/client.js';
import { lanAddresses, shareLinks } from '../client/lan.js';
import { formatBytes, type StatusSnapshot } from '../client/status.js';
import { formatHostPort, isLoopbackHost } from '../core/address.js';
import type { Credentials } from '../core/credentials.js';
import type { Limits } from '../core/limits.js';
import type { Header } from '../http/codec.js';
import { PROXY_AUTH_REALM, type LocalPageAnswer, type LocalPages } from '../http/server.js';
import { localeFromEnv, translator, type Locale, type Translate } from '../i18n/messages.js';
import { appSetup } from './client-listeners.js';
import { qrSvg } from './qr.js';
import { statusErrorText, tunnelStateText } from './status-line.js';

/** Seconds between the page's own reloads (a meta refresh: no script). */
export const STATUS_PAGE_REFRESH_S = 5;
const QR_SIZE_PX = 240;

export interface StatusPageOptions {
  readonly status: () => StatusSnapshot;
  /** The proxy's username and password (null: --no-auth). */
  readonly auth: Credentials | null;
  /** The bound listeners (read at each request: they are bound after the page is made). */
  readonly listeners: () => readonly BoundListener[];
  readonly limits: Pick<Limits, 'STATUS_PAGE_MAX_BYTES'>;
  readonly env?: NodeJS.ProcessEnv;
}

/** The locale of a request: the first of Accept-Language's languages (by q) we have, else the process's. */
export function pageLocale(headers: readonly Header[], env: NodeJS.ProcessEnv): Locale {
  const value = headers.filter(([k]) => k.toLowerCase() === 'accept-language').map(([, v]) => v).join(',');
  const ranked = value
    .split(',')
    .map((part, i) => {
      const [tag = '', ...params] = part.trim().split(';');
      const q = params.map((p) => /^\s*q=([01](?:\.\d{0,3})?)\s*$/i.exec(p)).find((m) => m !== null);
      return { tag: tag.trim().toLowerCase(), q: q ? Number(q[1]) : 1, i };
    })
    .filter((x) => x.q > 0 && x.tag !== '')
    .sort((a, b) => b.q - a.q || a.i - b.i);
  for (const { tag } of ranked) {
    if (tag === 'ru' || tag.startsWith('ru-')) return 'ru';
    if (tag === 'en' || tag.startsWith('en-')) return 'en';
  }
  return localeFromEnv(env);
}

const esc = (s: string | number): string =>
  String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

/** Headers of every answer: nothing may load, frame, or (without CORS headers) read it elsewhere. */
function pageHeaders(nonce: string | null): Header[] {
  return [
    ['Content-Security-Policy', `default-src 'none'; style-src ${nonce !== null ? `'nonce-${nonce}'` : "'none'"}; img-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'`],
    ['X-Content-Type-Options', 'nosniff'],
    ['X-Frame-Options', 'DENY'],
    ['Referrer-Policy', 'no-referrer'],
    ['Cross-Origin-Resource-Policy', 'same-origin'],
    ['Cross-Origin-Opener-Policy', 'same-origin'],
    ['Cache-Control', 'no-store'],
  ];
}

interface View {
  readonly t: Translate;
  readonly locale: Locale;
  readonly snap: StatusSnapshot;
  /** The password, the bridge and the QR codes may be shown. */
  readonly secrets: boolean;
  readonly auth: Credentials | null;
  readonly mixed: BoundListener | undefined;
  readonly whatsapp: readonly BoundListener[];
}

function statusRows(v: View): string {
  const { t, snap } = v;
  const units = t('status.units').split(' ');
  const rows: Array<[string, string]> = [
    [t('page.tunnel'), `<strong class="${snap.tunnel}">${esc(tunnelStateText(snap.tunnel, t))}</strong>`],
    [t('page.bridge'), esc(v.secrets ? snap.bridge : t('page.bridge.hidden'))],
    [t('page.rtt'), esc(snap.rttMs === null ? t('page.none') : t('page.ms', { ms: snap.rttMs }))],
    [t('page.streams'), esc(snap.streams)],
    [t('page.bytes'), esc(`${formatBytes(snap.bytesUp, units)} / ${formatBytes(snap.bytesDown, units)}`)],
    [t('page.error'), esc(snap.lastError === null ? t('page.none') : statusErrorText(snap.lastError.code, t))],
  ];
  return `<table>${rows.map(([k, val]) => `<tr><th>${esc(k)}</th><td>${val}</td></tr>`).join('')}</table>`;
}

function appsSection(v: View): string {
  const { t, mixed, auth } = v;
  if (mixed === undefined) return '';
  const host = mixed.host === '0.0.0.0' ? '127.0.0.1' : mixed.host === '::' ? '::1' : mixed.host;
  const shown = auth === null ? null : v.secrets ? auth : { username: auth.username, password: 'PASSWORD' };
  const app = appSetup(host, mixed.port, shown);
  const hp = formatHostPort({ host, port: mixed.port });
  const creds =
    auth === null
      ? `<tr><th>${esc(t('page.username'))}</th><td>${esc(t('page.noauth'))}</td></tr>`
      : `<tr><th>${esc(t('page.username'))}</th><td><code>${esc(auth.username)}</code></td></tr>` +
        `<tr><th>${esc(t('page.password'))}</th><td>${v.secrets ? `<code id="password">${esc(auth.password)}</code>` : `<em>${esc(t('page.hidden'))}</em>`}</td></tr>`;
  return [
    `<h2>${esc(t('page.apps'))}</h2>`,
    `<table><tr><th>${esc(t('page.proxy'))}</th><td><code>${esc(hp)}</code></td></tr>${creds}</table>`,
    '<ul>',
    `<li>${esc(t('page.app.telegram', { host, port: mixed.port }))}</li>`,
    `<li>${esc(t('page.app.browser', { host, port: mixed.port, pac: app.pac }))} ${esc(t('page.app.chromium'))}</li>`,
    `<li>${esc(t('page.app.curl'))}<br><code>${esc(app.curlSocks)}</code><br><code>${esc(app.curlHttp)}</code></li>`,
    '</ul>',
  ].join('');
}

function phonesSection(v: View): string {
  const { t, mixed, auth } = v;
  const out = [`<h2>${esc(t('page.phones'))}</h2>`];
  if (mixed === undefined || isLoopbackHost(mixed.host) || auth === null) {
    out.push(`<p>${esc(t('page.phones.off'))}</p>`);
    return out.join('');
  }
  const wildcard = mixed.host === '0.0.0.0' || mixed.host === '::';
  const hosts = wildcard ? lanAddresses(os.networkInterfaces()) : [mixed.host];
  if (hosts.length === 0) {
    out.push(`<p>${esc(t('page.phones.noAddress'))}</p>`);
    return out.join('');
  }
  const first = hosts[0] as string;
  out.push(`<p>${esc(t('page.phones.address', { hostPorts: hosts.map((h) => formatHostPort({ host: h, port: mixed.port })).join(', ') }))}</p>`);
  if (v.whatsapp.length > 0) {
    const ports = v.whatsapp.map((l) => `${l.name.slice('whatsapp '.length)} ${l.port}`).join(', ');
    out.push(`<p>${esc(t('page.phones.whatsapp', { host: first, ports }))}</p>`);
  }
  if (!v.secrets) return out.join('');
  const links = shareLinks(first, mixed.port, auth);
  out.push(
    '<div class="qrs">',
    `<figure>${qrSvg(links.telegram, QR_SIZE_PX, 'Telegram')}<figcaption>${esc(t('page.phones.telegram'))}<br><code>${esc(links.telegram)}</code></figcaption></figure>`,
    `<figure>${qrSvg(links.wifi, QR_SIZE_PX, 'Wi-Fi')}<figcaption>${esc(t('page.phones.wifi'))}<pre>${esc(links.wifi)}</pre></figcaption></figure>`,
    '</div>',
  );
  return out.join('');
}

const STYLE = [
  'body{font:15px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:60em;padding:0 1em;color:#222;background:#fafafa}',
  'h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}',
  'table{border-collapse:collapse}th{text-align:left;font-weight:normal;color:#555;padding:.2em 1.2em .2em 0;vertical-align:top}',
  'code,pre{font:13px ui-monospace,monospace;word-break:break-all;white-space:pre-wrap}',
  '.up{color:#1a7f37}.connecting{color:#9a6700}.down{color:#cf222e}',
  '.qrs{display:flex;flex-wrap:wrap;gap:2em}figure{margin:0;max-width:280px}',
  'a.button{display:inline-block;padding:.4em .9em;border:1px solid #0969da;border-radius:4px;color:#0969da;text-decoration:none}',
  '.note{color:#555;font-size:.9em}',
].join('');

function page(v: View, revealPath: boolean): { html: string; nonce: string } {
  const { t } = v;
  const nonce = crypto.randomBytes(16).toString('base64');
  const reveal =
    v.auth === null
      ? ''
      : v.secrets
        ? `<p><a class="button" href="/">${esc(t('page.hide'))}</a></p>`
        : `<p><a class="button" href="/reveal">${esc(t('page.reveal'))}</a></p><p class="note">${esc(t('page.reveal.why'))}</p>`;
  const html = [
    '<!DOCTYPE html>',
    `<html lang="${v.locale}"><head><meta charset="utf-8">`,
    `<meta http-equiv="refresh" content="${STATUS_PAGE_REFRESH_S}${revealPath ? ';url=/reveal' : ''}">`,
    '<meta name="viewport" content="width=device-width,initial-scale=1">',
    `<title>${esc(t('page.title'))}</title><style nonce="${nonce}">${STYLE}</style></head><body>`,
    `<h1>${esc(t('page.title'))}</h1>`,
    statusRows(v),
    `<p class="note">${esc(t('page.refresh', { seconds: STATUS_PAGE_REFRESH_S }))}</p>`,
    reveal,
    appsSection(v),
    phonesSection(v),
    '</body></html>',
  ].join('\n');
  return { html, nonce };
}

/** The public part of the snapshot as JSON (the bridge only with `secrets`). */
export function statusJson(snap: StatusSnapshot, secrets: boolean): string {
  return `${JSON.stringify({
    tunnel: snap.tunnel,
    bridge: secrets ? snap.bridge : null,
    rttMs: snap.rttMs,
    streams: snap.streams,
    bytesUp: snap.bytesUp,
    bytesDown: snap.bytesDown,
    lastError: snap.lastError?.code ?? null,
    failedDials: snap.failedDials,
  })}\n`;
}

/** The pages: `/`, `/reveal` and `/status.json` (query strings ignored); null for any other path. */
export function statusPages(opts: StatusPageOptions): LocalPages {
  const env = opts.env ?? process.env;
  return (req): LocalPageAnswer | null => {
    const path = req.path.split('?')[0];
    if (path !== '/' && path !== '/reveal' && path !== '/status.json') return null;
    const secretsAllowed = !req.authRequired || req.authorized;
    if (path === '/status.json') {
      return { status: 200, body: statusJson(opts.status(), secretsAllowed), contentType: 'application/json', headers: pageHeaders(null) };
    }
    const locale = pageLocale(req.headers, env);
    const t = translator(locale);
    if (path === '/reveal' && !secretsAllowed) {
      // The browser asks the user for the proxy's username and password, then asks again with them.
      const body = `<!DOCTYPE html><html lang="${locale}"><head><meta charset="utf-8"><title>${esc(t('page.title'))}</title></head><body><p>${esc(t('page.reveal.why'))}</p><p><a href="/">${esc(t('page.title'))}</a></p></body></html>\n`;
      return { status: 401, body, contentType: 'text/html; charset=utf-8', headers: [['WWW-Authenticate', `Basic realm="${PROXY_AUTH_REALM}", charset="UTF-8"`], ...pageHeaders(null)] };
    }
    const listeners = opts.listeners();
    const view: View = {
      t,
      locale,
      snap: opts.status(),
      secrets: path === '/reveal' ? secretsAllowed : !req.authRequired,
      auth: opts.auth,
      mixed: listeners.find((l) => l.role === 'mixed'),
      whatsapp: listeners.filter((l) => l.name.startsWith('whatsapp ')),
    };
    const { html, nonce } = page(view, path === '/reveal');
    if (Buffer.byteLength(html) > opts.limits.STATUS_PAGE_MAX_BYTES) {
      return { status: 500, body: 'status page too large\n', contentType: 'text/plain; charset=utf-8', headers: pageHeaders(null) };
    }
    return { status: 200, body: html, contentType: 'text/html; charset=utf-8', headers: pageHeaders(nonce) };
  };
}
