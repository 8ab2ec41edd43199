/**
 * WhatsApp's own proxy protocol, built on forward listeners. WhatsApp takes neither SOCKS nor
 * HTTP proxies: its in-app proxy setting (proxy host, chat port, media port) expects a host whose
 * ports relay raw bytes to WhatsApp's servers. Destinations and ports follow WhatsApp's published
 * proxy (github.com/WhatsApp/proxy: README "An Overview of the WhatsApp Proxy Architecture",
 * FAQ.md question 4, and proxy/src/proxy_config.cfg, HAProxy):
 *
 *   frontend  :443 (TLS, self-signed cert)  → backend g.whatsapp.net:5222   (chat)
 *   frontend  :5222 (plain)                 → backend g.whatsapp.net:5222   (chat, "Jabber")
 *   frontend  :80 (plain)                   → backend g.whatsapp.net:80     (chat over HTTP port)
 *   frontend  :587, :7777 (plain)           → backend whatsapp.net:443      (media, *.whatsapp.net)
 *
 * The app chooses TLS by the port alone (FAQ.md, question 4): TLS when the chat port is 443, plain
 * on every other port, with no setting to change it. So a TLS listener helps only on port 443;
 * anywhere else the app would speak plain to it and fail. The chat-tls role is therefore off
 * unless given a port (`chat-tls=443`, which needs the privilege to bind a port below 1024).
 *
 * Their HAProxy adds a PROXY protocol header (`send-proxy`) towards g.whatsapp.net so that
 * WhatsApp sees the phone's address; we do not: the bridge's connection looks like a direct
 * client (as an app without a proxy connects), and the phone's address stays private.
 *
 * Defaults are unprivileged: chat 5222 (plain, WhatsApp's own port), media 7777 (the second media
 * port of WhatsApp's proxy; 587 is privileged). The phone gets the computer's address as the proxy
 * host, 5222 as the chat port and 7777 as the media port (src/cli/phone-setup.ts prints the steps).
 */
import { targetFromHost, type Target } from '../core/address.js';
import { parseHostPort } from '../core/address.js';
import { PosternError } from '../core/errors.js';

export type WhatsAppRole = 'chat-tls' | 'chat' | 'http' | 'media';
export const WHATSAPP_ROLES: readonly WhatsAppRole[] = ['chat-tls', 'chat', 'http', 'media'];

/** Destinations as WhatsApp's own proxy relays them (see the module comment). */
export const WHATSAPP_TARGETS = {
  chat: { host: 'g.whatsapp.net', port: 5222 },
  http: { host: 'g.whatsapp.net', port: 80 },
  media: { host: 'whatsapp.net', port: 443 },
} as const;

/** Default local ports (unprivileged; chat-tls and http have none and are off by default). */
export const WHATSAPP_DEFAULT_PORTS: Readonly<Partial<Record<WhatsAppRole, number>>> = {
  chat: 5222,
  media: 7777,
};

export interface WhatsAppEntry {
  role: WhatsAppRole;
  port: number;
  tls: boolean;
  target: Target;
}

function parseList(s: string, what: string): Array<[string, string]> {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0)
    .map((item) => {
      const eq = item.indexOf('=');
      if (eq <= 0) throw new PosternError('E_CONFIG', `${what}: expected NAME=VALUE, got "${item}"`);
      return [item.slice(0, eq), item.slice(eq + 1)] as [string, string];
    });
}

/**
 * The listeners of the WhatsApp entry point. `ports`: "chat-tls=443,chat=5222,http=8080,media=7777"
 * (given roles override the defaults; `off` turns a role off, 0 picks a free port). `targets`:
 * "chat=HOST:PORT,http=HOST:PORT,media=HOST:PORT" replaces WhatsApp's servers — for tests only.
 */
export function whatsappEntries(ports?: string, targets?: string): WhatsAppEntry[] {
  const portOf: Partial<Record<WhatsAppRole, number>> = { ...WHATSAPP_DEFAULT_PORTS };
  for (const [k, v] of parseList(ports ?? '', '--whatsapp-ports')) {
    if (!(WHATSAPP_ROLES as readonly string[]).includes(k)) {
      throw new PosternError('E_CONFIG', `--whatsapp-ports: unknown role "${k}" (expected ${WHATSAPP_ROLES.join(', ')})`);
    }
    if (v === 'off') {
      delete portOf[k as WhatsAppRole];
      continue;
    }
    const n = Number(v);
    if (!/^\d{1,5}$/.test(v) || n > 65535) throw new PosternError('E_CONFIG', `--whatsapp-ports: bad port "${v}" for ${k}`);
    portOf[k as WhatsAppRole] = n;
  }
  const dest: Record<keyof typeof WHATSAPP_TARGETS, Target> = {
    chat: targetFromHost(WHATSAPP_TARGETS.chat.host, WHATSAPP_TARGETS.chat.port),
    http: targetFromHost(WHATSAPP_TARGETS.http.host, WHATSAPP_TARGETS.http.port),
    media: targetFromHost(WHATSAPP_TARGETS.media.host, WHATSAPP_TARGETS.media.port),
  };
  for (const [k, v] of parseList(targets ?? '', '--whatsapp-target')) {
    if (!(k in dest)) throw new PosternError('E_CONFIG', `--whatsapp-target: unknown target "${k}" (expected chat, http, media)`);
    const hp = parseHostPort(v);
    if (hp === null || hp.port === 0) throw new PosternError('E_CONFIG', `--whatsapp-target: expected HOST:PORT for ${k}, got "${v}"`);
    dest[k as keyof typeof dest] = targetFromHost(hp.host, hp.port);
  }
  const out: WhatsAppEntry[] = [];
  for (const role of WHATSAPP_ROLES) {
    const port = portOf[role];
    if (port === undefined) continue;
    const target = role === 'chat-tls' || role === 'chat' ? dest.chat : role === 'http' ? dest.http : dest.media;
    out.push({ role, port, tls: role === 'chat-tls', target });
  }
  return out;
}
