/**
 * Phones, right the first time (issue 14): the built binary's phone set-up as a user reads it —
 * WhatsApp's exact steps on Android and iPhone (with and without --lan, English and Russian), the
 * Telegram tg://socks link with the credentials and its QR code, and no QR code for an address a
 * phone cannot reach (0.0.0.0 with no LAN address, loopback).
 *
 * A LAN address needs an interface: those runs happen in a fresh user and network namespace
 * (`unshare -rn`, TESTING.md) whose only interfaces are loopback and, when asked, a veth pair with
 * 192.168.77.2 — nothing can leave it. The bridge in the link is never reached (port 1 on
 * loopback refuses): the set-up is printed once the ports listen.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, Postern, stopAll, tempDir } from '../helpers/proc.js';

const URI = 'postern://AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8@127.0.0.1:1/p?plain=1';
const LAN_IP = '192.168.77.2';
const EN = { LC_ALL: '', LC_MESSAGES: '', LANG: 'C.UTF-8' };
const RU = { LC_ALL: '', LC_MESSAGES: '', LANG: 'ru_RU.UTF-8' };
/** A row of a QR code as qrText draws it (cli/qr.ts): block characters only. */
const QR_ROW = /^[█▀▄ ]{20,}$/m;

afterAll(stopAll);

/** `postern client …` in a namespace of its own: loopback only, plus a LAN address when `lan`. */
function inNamespace(args: string[], env: NodeJS.ProcessEnv, lan: boolean): Postern {
  const setup = ['ip link set lo up'];
  if (lan) setup.push('ip link add v0 type veth peer name v1', `ip addr add ${LAN_IP}/24 dev v0`, 'ip link set v1 up', 'ip link set v0 up');
  return new Postern(['-rn', 'sh', '-c', `${setup.join(' && ')} && exec "$0" "$@"`, process.execPath, BIN, 'client', '--bridge', URI, ...args], env, { exe: 'unshare' });
}

/** Runs until the phone set-up is printed (its last line contains `last`), then stops; the stderr. */
async function setupText(p: Postern, last: string): Promise<string> {
  try {
    await p.waitFor(() => p.stderr.includes(last), 20_000, `the phone set-up (${last})`);
    return p.stderr;
  } finally {
    await p.stop();
  }
}

describe('WhatsApp: the steps a phone needs', () => {
  it.each([
    ['en', EN, [
      "WhatsApp on a phone (messages, photos and voice notes; calls are not carried by WhatsApp's proxy mode):",
      '  Android: WhatsApp → ⋮ → Settings → Storage and data → Proxy → Use proxy → Set proxy',
      '  iPhone:  WhatsApp → Settings → Storage and Data → Proxy → Use Proxy',
      `    Proxy host: ${LAN_IP}`,
      '    Chat port:  5222',
      '    Media port: 7777',
      '    Use TLS:    off (if your WhatsApp shows this switch)',
      '  Then Save: "Connected" with a green tick means it works.',
    ]],
    ['ru', RU, [
      'WhatsApp на телефоне (сообщения, фото и голосовые; звонки прокси-режим WhatsApp не передаёт):',
      '  Android: WhatsApp → ⋮ → Настройки → Данные и хранилище → Прокси → Использовать прокси → Настроить прокси',
      '  iPhone:  WhatsApp → Настройки → Данные и хранилище → Прокси → Использовать прокси',
      `    Адрес прокси: ${LAN_IP}`,
      '    Порт чата:    5222',
      '    Порт медиа:   7777',
      '    TLS:          выключен (если в вашем WhatsApp есть такой переключатель)',
      '  Затем «Сохранить»: «Подключено» с зелёной галочкой — значит, работает.',
    ]],
  ])('with --lan (%s): Android and iPhone screens, the LAN address as proxy host, chat port 5222 and media port 7777', async (_lang, env, lines) => {
    const text = await setupText(inNamespace(['--lan', '--whatsapp'], { ...env, XDG_CONFIG_HOME: tempDir() }, true), lines[lines.length - 1] as string);
    const all = text.split('\n');
    const at = all.indexOf(lines[0] as string);
    expect(at).toBeGreaterThan(-1);
    expect(all.slice(at, at + lines.length)).toEqual(lines);
    // The ports the steps name are the ones listening, on every interface.
    expect(text).toMatch(/whatsapp chat: 0\.0\.0\.0:5222 → /);
    expect(text).toMatch(/whatsapp media: 0\.0\.0\.0:7777 → /);
  });

  it.each([
    ['en', EN, "  No address for the phone: the proxy listens on 127.0.0.1, which only this computer can reach.", '  To set up a phone: start again with --lan added'],
    ['ru', RU, '  Нет адреса для телефона: прокси слушает 127.0.0.1, а туда может подключиться только этот компьютер.', '  Чтобы настроить телефон: запустите заново, добавив --lan'],
  ])('without --lan (%s): says a phone cannot reach the ports, and the fix', async (_lang, env, why, fix) => {
    const p = new Postern(['client', '--bridge', URI, '--listen', '127.0.0.1:0', '--whatsapp', '--whatsapp-ports', 'chat=0,media=0'], { ...env, XDG_CONFIG_HOME: tempDir() });
    const text = await setupText(p, fix);
    expect(text).toContain(why);
    expect(text).not.toMatch(/Proxy host|Адрес прокси/);
  });
});

describe('Telegram: the tg://socks link with the credentials, and its QR code', () => {
  it('--lan with a LAN address: the link carries the address, port, username and password; a QR code follows', async () => {
    const text = await setupText(inNamespace(['--lan'], { ...EN, XDG_CONFIG_HOME: tempDir() }, true), 'Wi-Fi proxy (');
    const user = /Username: (\S+)/.exec(text)?.[1];
    const pass = /Password: (\S+)/.exec(text)?.[1];
    expect(user).toMatch(/^p[0-9a-f]{8}$/);
    const link = `tg://socks?server=${LAN_IP}&port=1080&user=${user}&pass=${pass}`;
    const lines = text.split('\n');
    const at = lines.indexOf(`  ${link}`);
    expect(at, text).toBeGreaterThan(-1);
    expect(lines[at - 1]).toBe("Telegram: scan this code with the phone's camera (or open the link on the phone), then tap Connect Proxy:");
    expect(lines[at + 1]).toMatch(QR_ROW);
  });

  it.each([
    ['0.0.0.0 with no LAN address', ['--lan', '--listen', '0.0.0.0:0'], true, 'this computer has no network address a phone could reach', "connect this computer to the phone's Wi-Fi network"],
    ['loopback', ['--lan', '--listen', '127.0.0.1:0'], false, 'the proxy listens on 127.0.0.1, which only this computer can reach', 'start without --listen'],
  ])('no QR code for %s: a line says why and what to do', async (_what, args, namespace, why, fix) => {
    const env = { ...EN, XDG_CONFIG_HOME: tempDir() };
    const p = namespace ? inNamespace(args, env, false) : new Postern(['client', '--bridge', URI, ...args], env);
    const text = await setupText(p, fix);
    expect(text).toContain(`  No QR code and no address for phones: ${why}`);
    expect(text).not.toMatch(QR_ROW);
    expect(text).not.toContain('tg://socks?server=0.0.0.0');
    expect(text).not.toContain('Wi-Fi proxy (');
  });
});
