import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { initBridge } from '../../../src/cli/init.js';
import { qrText } from '../../../src/cli/qr.js';
import { addUser, listUsers, removeUser, shareUser, shareWarning } from '../../../src/cli/users.js';
import { parseShareUri } from '../../../src/transport/uri.js';

async function fresh(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-users-'));
  return (await initBridge({ dir, host: 'bridge.example.org', port: 443, listenHost: '0.0.0.0', user: 'alice', force: false })).configFile;
}

describe('users (config edits)', () => {
  it('adds, shares and removes users, keeping mode 0600 and leaving no temp file', async () => {
    const file = await fresh();
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

  it('never widens the mode past 0600 and refuses bad names, duplicates and unknown users', async () => {
    const file = await fresh();
    fs.chmodSync(file, 0o644);
    addUser(file, 'carol');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(() => addUser(file, 'carol')).toThrow('a user named "carol" already exists');
    expect(() => addUser(file, 'no spaces')).toThrow('user name "no spaces": letters (any alphabet), digits');
    expect(() => removeUser(file, 'dave')).toThrow('no user named "dave" (users: alice, carol)');
    expect(() => shareUser(file, 'dave')).toThrow('no user named "dave"');
  });

  it('shares a link through a relay (--connect): TCP to the relay, the bridge name and pin kept', async () => {
    const file = await fresh();
    const direct = parseShareUri(shareUser(file, 'alice'));
    const relayed = parseShareUri(shareUser(file, 'alice', { connect: '203.0.113.80:8443' }));
    expect(relayed.connect).toEqual({ host: '203.0.113.80', port: 8443 });
    expect({ ...relayed, connect: undefined }).toEqual({ ...direct, connect: undefined });
    expect(relayed.pin).toBeDefined(); // init made a self-signed certificate: the pin is the bridge's
    expect(parseShareUri(shareUser(file, 'alice', { connect: 'relay.example.ru' })).connect).toEqual({ host: 'relay.example.ru', port: 443 });
  });

  it('refuses a bad --connect by name, and adds no user when it is bad', async () => {
    const file = await fresh();
    expect(() => shareUser(file, 'alice', { connect: 'relay.example:0' })).toThrow('--connect relay.example:0: port 0 is not from 1 to 65535');
    expect(() => shareUser(file, 'alice', { connect: '2001:db8::1' })).toThrow('--connect 2001:db8::1: an IPv6 host must be in brackets');
    const before = fs.readFileSync(file, 'utf8');
    expect(() => addUser(file, 'bob', { connect: 'bad host:1' })).toThrow(/: --connect bad host:1: host "bad host" is not a valid host name$/);
    expect(fs.readFileSync(file, 'utf8')).toBe(before);
  });

  it('shares a link for a CDN or reverse proxy: --connect, --sni and --host-header each land in their own field', async () => {
    const file = await fresh();
    const direct = parseShareUri(shareUser(file, 'alice'));
    const fronted = parseShareUri(shareUser(file, 'alice', { connect: '203.0.113.80', sni: 'front.example.net', hostHeader: 'bridge.example.org' }));
    expect(fronted.connect).toEqual({ host: '203.0.113.80', port: 443 });
    expect(fronted.sni).toBe('front.example.net');
    expect(fronted.httpHost).toBe('bridge.example.org');
    expect(fronted.pin).toEqual(direct.pin); // a self-signed certificate stays pinned; the name sent is the front's
    expect({ ...fronted, connect: undefined, sni: undefined, httpHost: undefined }).toEqual({ ...direct, connect: undefined });
    // Without a pin (a CA certificate, e.g. nginx's), --sni replaces the default sni=<publicHost>.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-users-'));
    const res = await initBridge({ dir, host: 'bridge.example.org', port: 443, listenHost: '0.0.0.0', user: 'alice', force: false, front: { sni: 'front.example.net', httpHost: 'bridge.example.org' } });
    expect(parseShareUri(res.uri)).toMatchObject({ sni: 'front.example.net', httpHost: 'bridge.example.org' });
  });

  it('refuses a bad --sni or --host-header by name, and adds no user when one is bad', async () => {
    const file = await fresh();
    expect(() => shareUser(file, 'alice', { sni: '198.51.100.7' })).toThrow('--sni 198.51.100.7: must be a host name, not an IP address');
    expect(() => shareUser(file, 'alice', { sni: 'bad name' })).toThrow('--sni bad name: host "bad name" is not a valid host name');
    expect(() => shareUser(file, 'alice', { hostHeader: 'origin.example:0' })).toThrow('--host-header origin.example:0: port 0 is not from 1 to 65535');
    expect(() => shareUser(file, 'alice', { hostHeader: '2001:db8::1' })).toThrow('--host-header 2001:db8::1: an IPv6 host must be in brackets');
    const before = fs.readFileSync(file, 'utf8');
    expect(() => addUser(file, 'bob', { hostHeader: 'a b' })).toThrow(/: --host-header a b: host "a b" is not a valid host name$/);
    expect(fs.readFileSync(file, 'utf8')).toBe(before);
  });

  it('shares an h2 link with --transport h2 (init and users alike); ws is the default and stays implicit; an unknown name is refused by the flag', async () => {
    const file = await fresh();
    const direct = parseShareUri(shareUser(file, 'alice'));
    const h2Link = shareUser(file, 'alice', { transport: 'h2' });
    expect(h2Link).toContain('transport=h2');
    expect(parseShareUri(h2Link)).toEqual({ ...direct, transport: 'h2' });
    expect(shareUser(file, 'alice', { transport: 'ws' })).toBe(shareUser(file, 'alice'));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-users-'));
    const res = await initBridge({ dir, host: 'bridge.example.org', port: 443, listenHost: '0.0.0.0', user: 'alice', force: false, front: { transport: 'h2' } });
    expect(parseShareUri(res.uri).transport).toBe('h2');
    // The bridge init writes serves the link it prints: HTTP/2 on.
    expect(JSON.parse(fs.readFileSync(res.configFile, 'utf8')).http2).toBe(true);
    expect(shareWarning(res.configFile, { transport: 'h2' })).toBeNull();
    // A bridge that leaves HTTP/2 off: sharing an h2 link says what it needs; ws links say nothing.
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).http2).toBeUndefined();
    expect(shareWarning(file, { transport: 'h2' })).toBe(`note: ${file} leaves HTTP/2 off; this transport=h2 link works only if the bridge runs with --http2 (or set "http2": true in ${file})`);
    expect(shareWarning(file, {})).toBeNull();
    const before = fs.readFileSync(file, 'utf8');
    expect(() => addUser(file, 'bob', { transport: 'quic' })).toThrow(/--transport quic: expected one of ws, h2$/);
    expect(fs.readFileSync(file, 'utf8')).toBe(before);
  });

  it('shares a packet-up link with --mode packet-up beside --transport h2; stream-one stays implicit; --mode without h2 or an unknown mode is refused naming the flag', async () => {
    const file = await fresh();
    const direct = parseShareUri(shareUser(file, 'alice'));
    const packet = shareUser(file, 'alice', { transport: 'h2', mode: 'packet-up' });
    expect(packet).toContain('transport=h2&mode=packet-up');
    expect(parseShareUri(packet)).toEqual({ ...direct, transport: 'h2', mode: 'packet-up' });
    expect(shareUser(file, 'alice', { transport: 'h2', mode: 'stream-one' })).toBe(shareUser(file, 'alice', { transport: 'h2' }));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-users-'));
    const res = await initBridge({ dir, host: 'bridge.example.org', port: 443, listenHost: '0.0.0.0', user: 'alice', force: false, front: { transport: 'h2', mode: 'packet-up' } });
    expect(parseShareUri(res.uri).mode).toBe('packet-up');
    const before = fs.readFileSync(file, 'utf8');
    expect(() => addUser(file, 'bob', { mode: 'packet-up' })).toThrow(/--mode packet-up: needs --transport h2 \(the ws transport has one mode\)$/);
    expect(() => addUser(file, 'bob', { transport: 'h2', mode: 'packets' })).toThrow(/--mode packets: expected one of stream-one, packet-up$/);
    expect(fs.readFileSync(file, 'utf8')).toBe(before);
  });

  it('keeps the file untouched when a change would be invalid', async () => {
    const file = await fresh();
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

  it('takes user names in any alphabet, stored in one Unicode spelling (NFC), and shares them', async () => {
    const file = await fresh();
    const uri = addUser(file, 'Маша');
    expect(parseShareUri(uri).label).toBe('Маша');
    // "é" typed as e + combining accent is the same user as the precomposed "é".
    addUser(file, 'Ren\u0065\u0301');
    expect(listUsers(file)).toContain('Ren\u00e9');
    expect(() => addUser(file, 'Ren\u00e9')).toThrow('already exists');
    expect(shareUser(file, 'Ren\u0065\u0301')).toBe(shareUser(file, 'Ren\u00e9'));
    expect(() => addUser(file, 'Мария Ивановна')).toThrow('letters (any alphabet), digits, ".", "_" or "-"');
  });

  it('makes links from shareCert (the front\'s certificate), not from the unused self-signed one init wrote', async () => {
    const file = await fresh();
    const dir = path.dirname(file);
    const before = parseShareUri(shareUser(file, 'alice')).pin?.toString('hex');
    // Another self-signed certificate stands in for nginx's.
    const front = await initBridge({ dir: path.join(dir, 'front'), host: 'bridge.example.org', port: 443, listenHost: '0.0.0.0', user: 'x', force: false });
    const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    raw.shareCert = 'front/cert.pem';
    fs.writeFileSync(file, JSON.stringify(raw));
    const after = parseShareUri(shareUser(file, 'alice')).pin?.toString('hex');
    expect(after).toBe(parseShareUri(front.uri).pin?.toString('hex'));
    expect(after).toMatch(/^[0-9a-f]{64}$/);
    expect(after).not.toBe(before);
  });
});
