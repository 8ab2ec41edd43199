import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { HostsFile, hostsKey, parseHosts } from '../../../src/bridge/hosts.js';

describe('parseHosts (hosts(5))', () => {
  it.each([
    ['one name', '127.0.0.1 a.test\n', { 'a.test': ['127.0.0.1'] }],
    ['aliases and tabs', '127.0.0.1\ta.test\t b.test  c\n', { 'a.test': ['127.0.0.1'], 'b.test': ['127.0.0.1'], c: ['127.0.0.1'] }],
    ['comments, blank lines, CRLF', '# header\r\n\r\n  # indented\r\n10.0.0.1 x.test # trailing comment\r\n', { 'x.test': ['10.0.0.1'] }],
    ['IPv6 and a name on several lines, in file order, no duplicates', '::1 l.test\n127.0.0.1 l.test\n::1 l.test\n', { 'l.test': ['::1', '127.0.0.1'] }],
    ['case and a trailing dot fold', '192.0.2.1 MiXeD.Test.\n', { 'mixed.test': ['192.0.2.1'] }],
    ['a line without a name, a bad address, a bad name are skipped', '127.0.0.1\n999.1.1.1 bad.test\nlocalhost 127.0.0.1\n127.0.0.1 ok.test bad..name -bad.test\n', { 'ok.test': ['127.0.0.1'] }],
    ['an address with a zone id is skipped', 'fe80::1%eth0 z.test\n2001:db8::1%lo z.test\n', {}],
    ['a comment glued to a name ends it', '127.0.0.1 a.test#b.test\n', { 'a.test': ['127.0.0.1'] }],
  ])('%s', (_name, text, want) => {
    expect(Object.fromEntries(parseHosts(text))).toEqual(want);
  });

  it('looks names up by hostsKey (lower case, no trailing dot)', () => {
    expect(hostsKey('Foo.Example.')).toBe('foo.example');
  });

  it('never throws, and gives only IP literals and valid lower-case names, for any text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), fc.array(fc.constantFrom('127.0.0.1 ', '::1 ', 'a.test', '\t', '\n', '#', ' ', 'B.'), { maxLength: 40 }), (junk, parts) => {
        for (const text of [junk, parts.join(''), junk + '\n' + parts.join('')]) {
          for (const [name, addrs] of parseHosts(text)) {
            expect(name).toBe(name.toLowerCase());
            expect(name.endsWith('.')).toBe(false);
            for (const a of addrs) expect(net.isIP(a)).not.toBe(0);
          }
        }
      }),
    );
  });
});

describe('HostsFile', () => {
  it('re-reads the file when it changes, checking at most every HOSTS_FILE_RECHECK_MS', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-hosts-'));
    const file = path.join(dir, 'hosts');
    fs.writeFileSync(file, '127.0.0.1 one.test\n');
    let t = 0;
    const h = new HostsFile(file, { HOSTS_FILE_RECHECK_MS: 1_000, HOSTS_FILE_MAX_BYTES: 4_096 }, null, () => t);
    expect(h.lookup('one.test')).toEqual(['127.0.0.1']);
    expect(h.lookup('two.test')).toBeUndefined();
    expect(h.lookup('LocalHost.')).toEqual(['127.0.0.1', '::1']); // RFC 6761, when the file has no line for it
    expect(h.lookup('a.localhost')).toEqual(['127.0.0.1', '::1']);
    fs.writeFileSync(file, '127.0.0.1 one.test two.test\n');
    t = 500;
    expect(h.lookup('two.test')).toBeUndefined(); // not re-checked yet
    t = 1_000;
    expect(h.lookup('two.test')).toEqual(['127.0.0.1']);
    fs.rmSync(file);
    t = 2_000;
    expect(h.lookup('one.test')).toBeUndefined(); // gone: DNS only
    fs.writeFileSync(file, `${'#'.repeat(5_000)}\n127.0.0.1 big.test\n`);
    t = 3_000;
    expect(h.lookup('big.test')).toBeUndefined(); // over HOSTS_FILE_MAX_BYTES: not read
    fs.rmSync(dir, { recursive: true });
  });
});
