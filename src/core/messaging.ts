/**
 * Destination lists shared by the bridge (egress allow-list presets, src/bridge/presets.ts) and the
 * client (route presets, src/route/presets.ts): one list in one place. Data only.
 *
 * Domains are suffixes matched on label boundaries ("telegram.org" covers telegram.org and any name
 * ending in ".telegram.org"); ranges are CIDRs for apps that connect by IP address. Keep each entry
 * tied to a public source.
 */

export interface DestinationList {
  /** Domain suffixes: "telegram.org" matches telegram.org and any name ending in ".telegram.org". */
  readonly domains: readonly string[];
  /** CIDR ranges an IP-literal destination may fall in. */
  readonly ranges: readonly string[];
}

/**
 * `messaging`: WhatsApp, Telegram and Signal, and nothing else.
 *
 * - WhatsApp: its apps and media use whatsapp.net / whatsapp.com (chat on 443 and 5222 per
 *   https://developers.facebook.com/docs/whatsapp/guides/network-requirements), wa.me links;
 *   media and profile pictures are also served from Meta's CDN (fbcdn.net), so it is included.
 * - Telegram: telegram.org, t.me, telegram.me, tdesktop.com, telesco.pe, and the data-centre
 *   ranges Telegram publishes at https://core.telegram.org/resources/cidr.txt (checked 2026-11:
 *   the list no longer holds 95.161.64.0/20 and now holds 91.105.192.0/23). Telegram apps
 *   connect to data centres by IP address, hence the ranges.
 * - Signal: signal.org (chat, storage, cdn*, sfu.voip, updates*, contentproxy …) and the
 *   legacy whispersystems.org (textsecure-service.whispersystems.org), as in Signal's own
 *   proxy destination map (github.com/signalapp/Signal-TLS-Proxy,
 *   data/haproxy/signal-destinations.map); signal.art, signal.me and signal.group serve its
 *   sticker, contact and group links.
 */
export const MESSAGING_LIST: DestinationList = {
  domains: [
    // WhatsApp
    'whatsapp.net',
    'whatsapp.com',
    'wa.me',
    'fbcdn.net',
    // Telegram
    'telegram.org',
    't.me',
    'telegram.me',
    'tdesktop.com',
    'telesco.pe',
    // Signal
    'signal.org',
    'whispersystems.org',
    'signal.art',
    'signal.me',
    'signal.group',
  ],
  ranges: [
    // Telegram, https://core.telegram.org/resources/cidr.txt
    '91.108.56.0/22',
    '91.108.4.0/22',
    '91.108.8.0/22',
    '91.108.16.0/22',
    '91.108.12.0/22',
    '149.154.160.0/20',
    '91.105.192.0/23',
    '91.108.20.0/22',
    '185.76.151.0/24',
    '2001:b28:f23d::/48',
    '2001:b28:f23f::/48',
    '2001:67c:4e8::/48',
    '2001:b28:f23c::/48',
    '2a0a:f280::/32',
  ],
};
