import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ops.js';
import { Postern, ROOT, stopAll, tempDir, testConfigHome } from '../helpers/proc.js';

const exec = promisify(execFile);
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };

describe('npm package', () => {
  it('has no runtime dependencies but two optional ones (everything else is bundled into dist/)', () => {
    expect(pkg.dependencies ?? {}).toEqual({});
    // bufferutil: a native addon that cannot be bundled; the IP-to-country data for `country` route
    // rules: ~25 MB of CSV read only by a client with such a rule, so it stays out of the bundle.
    expect(Object.keys(pkg.optionalDependencies ?? {}).sort()).toEqual(['@ip-location-db/geo-whois-asn-country', 'bufferutil']);
  });

  it('the bundle and its chunks are ASCII, so V8 holds its source one byte per character (one § in a comment doubles it: +2.6 MiB per daemon)', () => {
    const bundles = fs.readdirSync(path.join(ROOT, 'dist')).filter((f) => f.endsWith('.js')).map((f) => `dist/${f}`);
    expect(bundles).toContain('dist/postern.js');
    for (const f of bundles) {
      const text = fs.readFileSync(path.join(ROOT, f), 'latin1');
      const at = text.search(/[^\x00-\x7f]/);
      expect(at === -1 ? 'ASCII' : `${f}: byte ${at}: ${JSON.stringify(text.slice(Math.max(0, at - 40), at + 40))}`).toBe('ASCII');
    }
  });

  it('npm pack → npm install --offline into an empty folder → postern --version, init and demo work', async () => {
    const out = tempDir('postern-pack-');
    const env = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
    const packed = await exec('npm', ['pack', '--json', '--pack-destination', out], { cwd: ROOT, env, timeout: 60_000 });
    const info = (JSON.parse(packed.stdout) as Array<{ filename: string; size: number; files: Array<{ path: string }> }>)[0]!;
    const files = info.files.map((f) => f.path);
    expect(files).toContain('dist/postern.js');
    expect(files).toContain('dist/young-generation.js');
    expect(files).toContain('bin/postern');
    expect(files).toContain('configs/nginx/postern.conf');
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/') || f.endsWith('.map'))).toEqual([]);

    const app = tempDir('postern-install-');
    const t0 = Date.now();
    await exec('npm', ['install', '--offline', '--no-audit', '--no-fund', path.join(out, info.filename)], { cwd: app, env, timeout: 90_000 });
    const installMs = Date.now() - t0;
    const installed = fs.readdirSync(path.join(app, 'node_modules')).filter((n) => !n.startsWith('.'));
    expect(installed.filter((n) => !['postern', 'bufferutil', 'node-gyp-build', '@ip-location-db'].includes(n))).toEqual([]);
    process.stderr.write(`[package] tarball ${info.filename}: ${info.size} bytes; offline install ${installMs} ms\n`);

    const bin = path.join(app, 'node_modules/.bin/postern');
    const version = await exec(bin, ['--version'], { cwd: app, timeout: 20_000 });
    expect(version.stdout.trim()).toBe(pkg.version);

    // Country rules read the installed data package (nothing is downloaded at run time).
    const explain = await exec(bin, ['client', '--route', 'domestic-direct', '--explain', '77.88.8.8:443'], { cwd: app, timeout: 60_000 });
    expect(explain.stdout.trim()).toBe('77.88.8.8:443 → direct by rule 4 "domestic addresses" (domestic-direct)');

    const init = await exec(bin, ['init', '--dir', path.join(app, 'etc'), '--host', '127.0.0.1', '--port', '8443'], { cwd: app, timeout: 20_000 });
    expect(init.stdout.trim()).toMatch(/^postern:\/\/.+@127\.0\.0\.1:8443\//);
    expect(fs.statSync(path.join(app, 'etc/bridge.json')).mode & 0o777).toBe(0o600);

    const demo = spawn(bin, ['demo', '--listen', '127.0.0.1:0'], { cwd: app, env: { ...process.env, XDG_CONFIG_HOME: testConfigHome() }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let stderr = '';
      let stdout = '';
      demo.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      const ready = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), 20_000);
        demo.stderr!.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes('Postern demo is running')) {
            clearTimeout(t);
            resolve(true);
          }
        });
        demo.once('exit', () => {
          clearTimeout(t);
          resolve(false);
        });
      });
      expect(ready, `${stderr}\n${stdout}`).toBe(true);
      expect(stderr).toMatch(/Proxy \(SOCKS5 and HTTP\): +127\.0\.0\.1:\d+\n  Username: \S+\n  Password: \S+/);
    } finally {
      demo.kill('SIGKILL');
    }
  });

  it('the systemd unit verifies, and its ExecStart runs as written after the documented install', async () => {
    const env = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
    const root = tempDir('postern-systemd-');
    const packed = await exec('npm', ['pack', '--json', '--pack-destination', root], { cwd: ROOT, env, timeout: 60_000 });
    const tgz = path.join(root, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename);
    // The unit's header: `sudo npm install -g --prefix /usr/local ./postern-VERSION.tgz`, here into a
    // private /usr/local, and the unit's paths moved there and nowhere else.
    const prefix = path.join(root, 'usr/local');
    await exec('npm', ['install', '-g', '--offline', '--prefix', prefix, tgz], { cwd: root, env, timeout: 90_000 });
    const etc = path.join(root, 'etc/postern');
    const port = await freePort();
    await exec(path.join(prefix, 'bin/postern'), ['init', '--dir', etc, '--host', '127.0.0.1', '--listen-host', '127.0.0.1', '--port', String(port)], { timeout: 20_000 });
    const unit = fs
      .readFileSync(path.join(ROOT, 'configs/systemd/postern-bridge.service'), 'utf8')
      .replaceAll('/usr/local/bin/postern', path.join(prefix, 'bin/postern'))
      .replaceAll('/etc/postern', etc);
    const unitFile = path.join(root, 'postern-bridge.service');
    fs.writeFileSync(unitFile, unit);
    const verify = await exec('systemd-analyze', ['verify', unitFile], { timeout: 30_000 }).catch((e: { stderr: string; code: number }) => e);
    expect('code' in verify ? verify.stderr : '').toBe('');
    const execStart = /^ExecStart=(.+)$/m.exec(unit)![1]!.split(' ');
    expect(execStart[0]).toBe(path.join(prefix, 'bin/postern'));
    // Run exactly that command line (with no `postern` on PATH) and see the bridge listen.
    const bridge = new Postern(execStart.slice(1), { PATH: '/usr/bin:/bin', HOME: root }, { exe: execStart[0]!, cleanEnv: true });
    try {
      expect(await bridge.listening('bridge')).toBe(port);
    } finally {
      await stopAll();
    }
  });
});
