/**
 * Sharing the client with phones on the same network (`postern client --lan`):
 * the LAN addresses to tell the phone, and the payloads of the QR codes.
 * Pure functions (the interface list and the random source are passed in) so tests check them.
 */
import type os from 'node:os';
import type { Credentials } from '../core/credentials.js';

/** Non-internal IPv4 addresses of this machine (what a phone on the Wi-Fi can reach). */
export function lanAddresses(ifaces: ReturnType<typeof os.networkInterfaces>): string[] {
  const out: string[] = [];
  for (const list of Object.values(ifaces)) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (a.family !== 'IPv4' && (a.family as unknown) !== 4) continue;
      if (a.address.startsWith('169.254.')) continue; // link-local: no DHCP, not a LAN a phone shares
      if (!out.includes(a.address)) out.push(a.address);
    }
  }
  return out;
}

export interface ShareLinks {
  /** Telegram's SOCKS5 proxy link (Settings → Data and Storage → Proxy opens it). */
  telegram: string;
  /** Text for the phone's Wi-Fi proxy settings (manual HTTP proxy), one field a line. */
  wifi: string;
}

/** The QR payloads for a proxy at server:port with these credentials. */
export function shareLinks(server: string, port: number, creds: Credentials): ShareLinks {
  const e = encodeURIComponent;
  return {
    telegram: `tg://socks?server=${e(server)}&port=${port}&user=${e(creds.username)}&pass=${e(creds.password)}`,
    wifi: ['Wi-Fi proxy: Manual', `Server: ${server}`, `Port: ${port}`, `Username: ${creds.username}`, `Password: ${creds.password}`].join('\n'),
  };
}
