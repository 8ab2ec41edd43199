import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { initBridge } from '../../../src/cli/init.js';
import { qrText } from '../../../src/cli/qr.js';
import { addUser, listUsers, removeUser, shareUser } from '../../../src/cli/users.js';
import { parseShareUri } from '../../../src/transport/uri.js';

function fresh(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-users-'));
  return initBridge({ dir, host: 'bridge.example.org', port: 443, listenHost: '0.0.0.0', user: 'alice', force: false }).configFile;
}

describe('users (config edits)', () => {
  it('adds, shares and removes users, keeping mode 0600 and leaving no temp file', () => {
    const file = fresh();
    fs.chmodSync(file, 0o600);
    const uri = addUser(file, 'bob');
    expect(parseShareUri(uri).label).toBe('bob');
    expect(shareUser(file, 'bob')).toBe(uri);
    expect(listUsers(file)).toEqual(['alice', 'bob']);
    removeUser(file, 'alice');
    expect(listUsers(file)).toEqual(['bob']);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.dirname(file)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('never widens the mode past 0600 and refuses bad names, duplicates and unknown users', () => {
    const file = fresh();
    fs.chmodSync(file, 0o644);
    addUser(file, 'carol');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(() => addUser(file, 'carol')).toThrow('a user named "carol" already exists');
    expect(() => addUser(file, 'no spaces')).toThrow('user name "no spaces": letters (any alphabet), digits');
    expect(() => removeUser(file, 'dave')).toThrow('no user named "dave" (users: alice, carol)');
    expect(() => shareUser(file, 'dave')).toThrow('no user named "dave"');
  });

  it('keeps the file untouched when a change would be invalid', () => {
    const file = fresh();
    const before = fs.readFileSync(file, 'utf8');
    expect(() => removeUser(file, 'alice')).toThrow('is the only user');
    expect(fs.readFileSync(file, 'utf8')).toBe(before);
  });
});

describe('qrText', () => {
  it('draws a square code with a quiet zone, every line the same width', () => {
    const lines = qrText('postern://example').trimEnd().split('\n');
    const widths = new Set(lines.map((l) => [...l].length));
    expect(widths.size).toBe(1);
    const w = [...lines[0]!].length;
    expect(Math.abs(w - lines.length * 2)).toBeLessThanOrEqual(1);
    expect(lines[0]).toMatch(/^\u2588+$/);
  });

  it('takes user names in any alphabet, stored in one Unicode spelling (NFC), and shares them', () => {
    const file = fresh();
    const uri = addUser(file, 'Маша');
    expect(parseShareUri(uri).label).toBe('Маша');
    // "é" typed as e + combining accent is the same user as the precomposed "é".
    addUser(file, 'Ren\u0065\u0301');
    expect(listUsers(file)).toContain('Ren\u00e9');
    expect(() => addUser(file, 'Ren\u00e9')).toThrow('already exists');
    expect(shareUser(file, 'Ren\u0065\u0301')).toBe(shareUser(file, 'Ren\u00e9'));
    expect(() => addUser(file, 'Мария Ивановна')).toThrow('letters (any alphabet), digits, ".", "_" or "-"');
  });

  it('makes links from shareCert (the front\'s certificate), not from the unused self-signed one init wrote', () => {
    const file = fresh();
    const dir = path.dirname(file);
    const before = parseShareUri(shareUser(file, 'alice')).pin?.toString('hex');
    // Another self-signed certificate stands in for nginx's.
    const front = initBridge({ dir: path.join(dir, 'front'), host: 'bridge.example.org', port: 443, listenHost: '0.0.0.0', user: 'x', force: false });
    const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    raw.shareCert = 'front/cert.pem';
    fs.writeFileSync(file, JSON.stringify(raw));
    const after = parseShareUri(shareUser(file, 'alice')).pin?.toString('hex');
    expect(after).toBe(parseShareUri(front.uri).pin?.toString('hex'));
    expect(after).toMatch(/^[0-9a-f]{64}$/);
    expect(after).not.toBe(before);
  });
});
