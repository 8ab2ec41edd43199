import { describe, expect, it } from 'vitest';
import { lanAddresses, shareLinks } from '../../../src/client/lan.js';
import { generateCredentials } from '../../../src/core/credentials.js';
import { WHATSAPP_TARGETS, whatsappEntries } from '../../../src/config/whatsapp.js';
import { phoneReach, phoneSetupLines } from '../../../src/cli/phone-setup.js';
import type { BoundListener } from '../../../src/client/client.js';
import { translator } from '../../../src/i18n/messages.js';

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
  it("relays to WhatsApp's published destinations by default (github.com/WhatsApp/proxy); no TLS port unless asked, since the app uses TLS on port 443 only", () => {
    expect(WHATSAPP_TARGETS).toEqual({
      chat: { host: 'g.whatsapp.net', port: 5222 },
      http: { host: 'g.whatsapp.net', port: 80 },
      media: { host: 'whatsapp.net', port: 443 },
    });
    expect(whatsappEntries()).toEqual([
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

describe('phone set-up printout (src/cli/phone-setup.ts)', () => {
  const en = translator('en');
  const ru = translator('ru');
  const creds = { username: 'pa1b2c3d4', password: 'secret-pw' };
  const QR = (text: string): string => `[QR ${text}]`;
  const mixed = (host: string, port = 1080): BoundListener => ({ role: 'mixed', name: 'mixed', host, port }) as BoundListener;
  const wa = (host: string, role: string, port: number): BoundListener => ({ role: 'forward', name: `whatsapp ${role}`, host, port }) as BoundListener;

  it.each([
    ['0.0.0.0', ['192.168.1.20'], { hosts: ['192.168.1.20'], problem: null }],
    ['::', ['192.168.1.20', '10.0.0.5'], { hosts: ['192.168.1.20', '10.0.0.5'], problem: null }],
    ['0.0.0.0', [], { hosts: [], problem: 'nolan' }],
    ['::', [], { hosts: [], problem: 'nolan' }],
    ['127.0.0.1', ['192.168.1.20'], { hosts: [], problem: 'loopback' }],
    ['::1', ['192.168.1.20'], { hosts: [], problem: 'loopback' }],
    ['localhost', [], { hosts: [], problem: 'loopback' }],
    ['192.168.1.20', [], { hosts: ['192.168.1.20'], problem: null }],
  ])('a phone reaches a listener on %s (LAN %j) at %j', (host, lan, want) => {
    expect(phoneReach(host, lan)).toEqual(want);
  });

  it('--lan: the LAN address, the credentials, the Telegram link with them and its QR code', () => {
    const out = phoneSetupLines([mixed('0.0.0.0')], { lan: true, auth: creds }, ['192.168.1.20'], en, QR).join('\n');
    expect(out).toContain('  Proxy (SOCKS5 and HTTP): 192.168.1.20:1080');
    expect(out).toContain('tg://socks?server=192.168.1.20&port=1080&user=pa1b2c3d4&pass=secret-pw');
    expect(out).toContain('[QR tg://socks?server=192.168.1.20&port=1080&user=pa1b2c3d4&pass=secret-pw]');
    expect(out).toContain('[QR Wi-Fi proxy: Manual');
  });

  it.each([
    ['0.0.0.0', [], 'no network address a phone could reach', "connect this computer to the phone's Wi-Fi"],
    ['127.0.0.1', ['192.168.1.20'], 'the proxy listens on 127.0.0.1', '--listen 192.168.1.20:1080'],
  ])('--lan on %s (LAN %j): no QR code and no link, but why and what to do', (host, lan, why, fix) => {
    const out = phoneSetupLines([mixed(host)], { lan: true, auth: creds }, lan, en, QR).join('\n');
    expect(out).not.toContain('[QR');
    expect(out).not.toContain('tg://');
    expect(out).toContain(why);
    expect(out).toContain(fix);
  });

  it('--whatsapp with --lan: the steps on Android and iPhone, which field gets which port, calls not carried', () => {
    const out = phoneSetupLines([mixed('0.0.0.0'), wa('0.0.0.0', 'chat', 5222), wa('0.0.0.0', 'media', 7777)], { lan: true, auth: creds }, ['192.168.1.20'], en, QR);
    const at = out.indexOf("WhatsApp on a phone (messages, photos and voice notes; calls are not carried by WhatsApp's proxy mode):");
    expect(out.slice(at, at + 8)).toEqual([
      "WhatsApp on a phone (messages, photos and voice notes; calls are not carried by WhatsApp's proxy mode):",
      '  Android: WhatsApp → ⋮ → Settings → Storage and data → Proxy → Use proxy → Set proxy',
      '  iPhone:  WhatsApp → Settings → Storage and Data → Proxy → Use Proxy',
      '    Proxy host: 192.168.1.20',
      '    Chat port:  5222',
      '    Media port: 7777',
      '    Use TLS:    off (if your WhatsApp shows this switch)',
      '  Then Save: "Connected" with a green tick means it works.',
    ]);
  });

  it('WhatsApp: port 443 is the TLS chat port; a TLS port elsewhere is flagged as unusable by the app', () => {
    const on443 = phoneSetupLines([mixed('0.0.0.0'), wa('0.0.0.0', 'chat-tls', 443), wa('0.0.0.0', 'chat', 5222)], { lan: true, auth: creds }, ['10.0.0.2'], en, QR);
    expect(on443).toContain('    Chat port:  443 (WhatsApp wraps it in TLS)');
    expect(on443).toContain('    Use TLS:    on (if your WhatsApp shows this switch)');
    expect(on443.join('\n')).toContain('Media port: none');
    const on8443 = phoneSetupLines([mixed('0.0.0.0'), wa('0.0.0.0', 'chat-tls', 8443), wa('0.0.0.0', 'chat', 5222)], { lan: true, auth: creds }, ['10.0.0.2'], en, QR);
    expect(on8443).toContain('    Chat port:  5222');
    expect(on8443.join('\n')).toContain('the chat-tls port 8443 is not for the app');
  });

  it('--whatsapp without --lan: no host for the phone, but how to reach it (in Russian too)', () => {
    const ls = [mixed('127.0.0.1'), wa('127.0.0.1', 'chat', 5222), wa('127.0.0.1', 'media', 7777)];
    const out = phoneSetupLines(ls, { lan: false, auth: creds }, ['192.168.1.20'], en, QR).join('\n');
    expect(out).toContain('the proxy listens on 127.0.0.1, which only this computer can reach');
    expect(out).toContain('start again with --lan added');
    expect(out).not.toContain('Proxy host');
    const r = phoneSetupLines(ls, { lan: false, auth: creds }, ['192.168.1.20'], ru, QR).join('\n');
    expect(r).toContain('запустите заново, добавив --lan');
    expect(r).toContain('звонки прокси-режим WhatsApp не передаёт');
  });
});

describe('the README phone sections show what is printed', () => {
  const creds = { username: 'p1a2b3c4d', password: 'PASSWORD' };
  const l = (role: string, name: string, host: string, port: number): BoundListener => ({ role, name, host, port }) as BoundListener;
  /** Every line the README examples come from: --lan with a LAN address, with none, and --whatsapp without --lan. */
  const rendered = (t: ReturnType<typeof translator>, qr: string): Set<string> => {
    const wa = (host: string) => [l('forward', 'whatsapp chat', host, 5222), l('forward', 'whatsapp media', host, 7777)];
    const q = () => qr;
    return new Set([
      ...phoneSetupLines([l('mixed', 'mixed', '0.0.0.0', 1080), ...wa('0.0.0.0')], { lan: true, auth: creds }, ['192.168.1.20'], t, q),
      ...phoneSetupLines([l('mixed', 'mixed', '0.0.0.0', 1080)], { lan: true, auth: creds }, [], t, q),
      ...phoneSetupLines([l('mixed', 'mixed', '127.0.0.1', 1080), ...wa('127.0.0.1')], { lan: false, auth: creds }, ['192.168.1.20'], t, q),
    ]);
  };
  it.each([
    ['README.md', 'en', '(QR code)', /^(Phones on this network|WhatsApp on a phone|  No QR code)/],
    ['README.ru.md', 'ru', '(QR-код)', /^(Телефоны в этой сети|WhatsApp на телефоне|  Нет QR-кода)/],
  ] as const)('%s', async (file, locale, qr, first) => {
    const fs = await import('node:fs');
    const text = fs.readFileSync(new URL(`../../../${file}`, import.meta.url), 'utf8');
    // Fenced blocks, by lines: a fence opens (with or without a language) and the next one closes.
    const blocks: string[][] = [];
    let open: string[] | null = null;
    for (const line of text.split('\n')) {
      if (/^\s*```/.test(line)) {
        if (open === null) open = [];
        else {
          blocks.push(open);
          open = null;
        }
      } else if (open !== null) open.push(line);
    }
    const phone = blocks.filter((b) => first.test(b[0] ?? ''));
    expect(phone.length).toBe(4);
    const have = rendered(translator(locale), qr);
    const missing = phone.flat().filter((line) => line !== '' && !have.has(line));
    expect(missing).toEqual([]);
  });
});
