import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configDir, localCredentials } from '../../../src/config/local-credentials.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'postern-cred-'));

describe('stored local proxy credentials', () => {
  it('lives under $XDG_CONFIG_HOME/postern, else $HOME/.config/postern (a relative XDG_CONFIG_HOME is ignored)', () => {
    expect(configDir({ XDG_CONFIG_HOME: '/x/cfg', HOME: '/h' })).toBe('/x/cfg/postern');
    expect(configDir({ XDG_CONFIG_HOME: 'rel', HOME: '/h' })).toBe('/h/.config/postern');
    expect(configDir({ HOME: '/h' })).toBe('/h/.config/postern');
    expect(() => configDir({})).toThrow(/set XDG_CONFIG_HOME or HOME/);
  });

  it('is made once (0600 in a 0700 folder) and read back unchanged', () => {
    const env = { XDG_CONFIG_HOME: tmp() };
    const a = localCredentials(env);
    expect(a.created).toBe(true);
    expect(fs.statSync(a.file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(a.file)).mode & 0o777).toBe(0o700);
    const b = localCredentials(env);
    expect(b.created).toBe(false);
    expect(b.credentials).toEqual(a.credentials);
    expect(fs.readdirSync(path.dirname(a.file))).toEqual(['local-proxy.json']); // no temp file left
  });

  it('renews on request', () => {
    const env = { XDG_CONFIG_HOME: tmp() };
    const a = localCredentials(env);
    const b = localCredentials(env, { renew: true });
    expect(b.created).toBe(true);
    expect(b.credentials.password).not.toBe(a.credentials.password);
  });

  it('tightens a file others can read, and names the file and field of a bad one', () => {
    const env = { XDG_CONFIG_HOME: tmp() };
    const a = localCredentials(env);
    fs.chmodSync(a.file, 0o644);
    const b = localCredentials(env);
    expect(b.tightened).toBe(true);
    expect(fs.statSync(a.file).mode & 0o777).toBe(0o600);
    fs.writeFileSync(a.file, '{"username":"a:b","password":"x"}');
    expect(() => localCredentials(env)).toThrow(`${a.file}: username: no ":" (HTTP Basic)`);
  });

  it('two clients starting at once agree on one pair (the file is linked into place)', () => {
    const env = { XDG_CONFIG_HOME: tmp() };
    const dir = configDir(env);
    fs.mkdirSync(dir, { recursive: true });
    // The other client won the race: its file appears between our existence check and our link.
    const theirs = { username: 'ptheirs', password: 'their-password' };
    const realLink = fs.linkSync;
    (fs as { linkSync: typeof fs.linkSync }).linkSync = (src, dst) => {
      fs.writeFileSync(dst, JSON.stringify(theirs), { mode: 0o600 });
      return realLink(src, dst);
    };
    try {
      expect(localCredentials(env)).toMatchObject({ credentials: theirs, created: false });
    } finally {
      (fs as { linkSync: typeof fs.linkSync }).linkSync = realLink;
    }
  });
});
