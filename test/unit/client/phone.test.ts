import { describe, expect, it } from 'vitest';
import { lanAddresses, shareLinks } from '../../../src/client/lan.js';
import { generateCredentials } from '../../../src/core/credentials.js';
import { WHATSAPP_TARGETS, whatsappEntries } from '../../../src/client/whatsapp.js';

describe('phone sharing payloads', () => {
  it('builds the Telegram tg://socks link and the Wi-Fi proxy text', () => {
    const links = shareLinks('192.168.1.20', 1080, { username: 'pa1b2c3d4', password: 'x-y_z' });
    expect(links.telegram).toBe('tg://socks?server=192.168.1.20&port=1080&user=pa1b2c3d4&pass=x-y_z');
    expect(links.wifi).toBe('Wi-Fi proxy: Manual\nServer: 192.168.1.20\nPort: 1080\nUsername: pa1b2c3d4\nPassword: x-y_z');
  });

  it('percent-encodes credentials the user chose', () => {
    const links = shareLinks('10.0.0.2', 8080, { username: 'a b', password: 'p&q=r#s' });
    expect(links.telegram).toBe('tg://socks?server=10.0.0.2&port=8080&user=a%20b&pass=p%26q%3Dr%23s');
    const u = new URL(links.telegram.replace('tg://', 'http://x/'));
    expect(u.searchParams.get('pass')).toBe('p&q=r#s');
  });

  it('generates URL-safe random credentials (32-bit user tag, 96-bit password)', () => {
    const seq = [Buffer.from([1, 2, 3, 4]), Buffer.alloc(12, 0xff)];
    const c = generateCredentials((n) => {
      const b = seq.shift() as Buffer;
      expect(b.length).toBe(n);
      return b;
    });
    // A leading "-" or "_" becomes "x": the password is never read as a command-line option.
    expect(c).toEqual({ username: 'p01020304', password: 'x_______________' });
    const a = generateCredentials();
    const b = generateCredentials();
    expect(a.password).not.toBe(b.password);
    expect(a.password).toMatch(/^[A-Za-z0-9][A-Za-z0-9_-]{15}$/);
  });

  it('lists non-internal IPv4 addresses only, once each', () => {
    const ifaces = {
      lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }],
      eth0: [
        { address: '192.168.1.20', family: 'IPv4', internal: false },
        { address: 'fe80::1', family: 'IPv6', internal: false },
      ],
      wlan0: [
        { address: '169.254.3.3', family: 'IPv4', internal: false },
        { address: '10.1.2.3', family: 'IPv4', internal: false },
        { address: '192.168.1.20', family: 'IPv4', internal: false },
      ],
    } as unknown as Parameters<typeof lanAddresses>[0];
    expect(lanAddresses(ifaces)).toEqual(['192.168.1.20', '10.1.2.3']);
  });
});

describe('WhatsApp entry point', () => {
  it("relays to WhatsApp's published destinations by default (github.com/WhatsApp/proxy)", () => {
    expect(WHATSAPP_TARGETS).toEqual({
      chat: { host: 'g.whatsapp.net', port: 5222 },
      http: { host: 'g.whatsapp.net', port: 80 },
      media: { host: 'whatsapp.net', port: 443 },
    });
    expect(whatsappEntries()).toEqual([
      { role: 'chat-tls', port: 8443, tls: true, target: { kind: 'domain', host: 'g.whatsapp.net', port: 5222 } },
      { role: 'chat', port: 5222, tls: false, target: { kind: 'domain', host: 'g.whatsapp.net', port: 5222 } },
      { role: 'media', port: 7777, tls: false, target: { kind: 'domain', host: 'whatsapp.net', port: 443 } },
    ]);
  });

  it('takes ports and (for tests) targets by role', () => {
    const e = whatsappEntries('chat-tls=443,chat=off,http=80,media=587', 'chat=127.0.0.1:9,media=[::1]:10');
    expect(e.map((x) => [x.role, x.port, x.tls, x.target.host, x.target.port])).toEqual([
      ['chat-tls', 443, true, '127.0.0.1', 9],
      ['http', 80, false, 'g.whatsapp.net', 80],
      ['media', 587, false, '::1', 10],
    ]);
  });

  it.each([
    ['voice=1', undefined, 'unknown role'],
    ['chat=70000', undefined, 'bad port'],
    ['chat', undefined, 'expected NAME=VALUE'],
    [undefined, 'video=1.2.3.4:5', 'unknown target'],
    [undefined, 'chat=nohost', 'expected HOST:PORT'],
  ])('refuses ports %j targets %j', (ports, targets, msg) => {
    expect(() => whatsappEntries(ports, targets)).toThrow(msg);
  });
});
