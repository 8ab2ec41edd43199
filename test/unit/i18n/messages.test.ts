import { describe, expect, it } from 'vitest';
import { CATALOGUES, english, localeFromEnv, translator, type MessageKey } from '../../../src/i18n/messages.js';

const placeholders = (text: string): string[] => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!).sort();

describe('message catalogue', () => {
  const keys = Object.keys(CATALOGUES.en) as MessageKey[];

  it('has every message in English and Russian, none empty, with the same placeholders', () => {
    expect(Object.keys(CATALOGUES.ru).sort()).toEqual([...keys].sort());
    for (const key of keys) {
      expect(CATALOGUES.en[key].trim(), key).not.toBe('');
      expect(CATALOGUES.ru[key].trim(), key).not.toBe('');
      expect(placeholders(CATALOGUES.ru[key]), key).toEqual(placeholders(CATALOGUES.en[key]));
    }
  });

  it('is translated: Russian messages are in Cyrillic, except names that stay as they are', () => {
    const sameInBoth = keys.filter((k) => CATALOGUES.ru[k] === CATALOGUES.en[k]);
    // Program names (curl, Telegram) and commands stay as they are.
    expect(sameInBoth).toEqual(['doctor.title.dns', 'client.setup.curl', 'client.setup.curl2', 'client.setup.telegram', 'status.line.bytes']);
    for (const key of keys) if (!sameInBoth.includes(key)) expect(CATALOGUES.ru[key], key).toMatch(/[а-яё]/i);
  });

  it.each([
    [{ LANG: 'ru_RU.UTF-8' }, 'ru'],
    [{ LANG: 'ru' }, 'ru'],
    [{ LANG: 'ru_UA.UTF-8' }, 'ru'],
    [{ LANG: 'en_US.UTF-8' }, 'en'],
    [{ LANG: 'C.UTF-8' }, 'en'],
    [{}, 'en'],
    [{ LANG: 'rus' }, 'en'],
    [{ LC_ALL: 'en_US.UTF-8', LANG: 'ru_RU.UTF-8' }, 'en'], // LC_ALL wins
    [{ LC_MESSAGES: 'ru_RU.UTF-8', LANG: 'en_US.UTF-8' }, 'ru'], // then LC_MESSAGES
    [{ LC_ALL: '', LC_MESSAGES: 'ru_RU.UTF-8' }, 'ru'], // an empty variable is unset
  ] as const)('locale of %j is %s (POSIX order: LC_ALL, LC_MESSAGES, LANG)', (env, locale) => {
    expect(localeFromEnv(env)).toBe(locale);
  });

  it('fills placeholders and leaves an unknown one as it is', () => {
    expect(english('doctor.ok.tcp', { port: 443 })).toBe('connected to port 443');
    expect(translator('ru')('doctor.ok.tcp', { port: 443 })).toBe('соединение с портом 443 установлено');
    expect(english('doctor.ok.tcp')).toBe('connected to port {port}');
  });
});

describe('status line, page, doctor hint and demo messages', () => {
  it('are in both languages with their placeholders filled', () => {
    const ru = translator('ru');
    expect(ru('client.doctorHint', { count: 5, command: 'postern doctor' })).toBe('postern: подключиться к мосту не удалось 5 раз подряд; чтобы узнать почему, выполните: postern doctor');
    expect(english('client.doctorHint', { count: 5, command: 'postern doctor' })).toBe('postern: connecting to the bridge failed 5 times in a row; to find out why, run: postern doctor');
    expect(ru('status.line.tunnel', { state: ru('status.up') })).toBe('туннель: работает');
    expect(ru('demo.running')).toMatch(/^Демо Postern запущено/);
    expect(english('status.units').split(' ')).toHaveLength(ru('status.units').split(' ').length);
  });
});
