import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../helpers/ops.js';
import { Postern, ROOT, stopAll, tempDir } from '../helpers/proc.js';
import { deterministicBytes, httpServer, sha256, type Local } from '../helpers/servers.js';
import type http from 'node:http';

const exec = promisify(execFile);
const EXE = path.join(ROOT, `dist/postern-${process.platform}-${process.arch}`);
const supported = process.platform === 'linux' && process.arch === 'x64';

/** Splits the demo's printed "Try it:" command into words (it quotes nothing but may). */
function words(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
}

describe.runIf(supported)('the single executable (npm run build:sea)', () => {
  let web: Local<http.Server>;
  let home: string;
  // Nothing on PATH, no Node: the file must carry everything it needs.
  const bare = (): NodeJS.ProcessEnv => ({ PATH: '', HOME: home, XDG_CONFIG_HOME: path.join(home, '.config') });

  beforeAll(async () => {
    await exec(process.execPath, [path.join(ROOT, 'scripts/build-sea.mjs')], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
    web = await httpServer();
    home = tempDir('postern-sea-');
  }, 120_000);

  afterAll(async () => {
    await stopAll();
    await web?.close();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  it('is one executable file that prints its version with an empty PATH', async () => {
    expect(fs.statSync(EXE).mode & 0o111).not.toBe(0);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const p = new Postern(['--version'], bare(), { exe: EXE, cleanEnv: true });
    const { code } = await p.exited;
    expect(code).toBe(0);
    expect(p.stdout.trim()).toBe(pkg.version);
  });

  it('runs the demo with an empty PATH, masks natively, and carries 1 MiB intact with the command it prints', async () => {
    const demo = new Postern(['demo', '--listen', '127.0.0.1:0', '--allow-private'], bare(), { exe: EXE, cleanEnv: true });
    const start = await demo.waitFor((l) => l.msg === 'postern starting', 15_000, 'start line');
    expect(start.nativeMasking).toBe(true); // bufferutil came from the embedded asset
    await demo.listening('socks');
    await demo.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'demo tunnel');
    const tryLine = demo.stderr.split('\n').find((l) => /^\s*\S.*:\s+curl /.test(l) && l.includes('curl '));
    expect(tryLine, demo.stderr).toBeDefined();
    const printed = words(tryLine!.slice(tryLine!.indexOf('curl ') + 5));
    const proxyArgs = printed.slice(0, -1); // the demo's example URL is last; ask for ours instead
    const file = path.join(home, 'mib');
    const r = await curl([...proxyArgs, '--output', file, `http://localhost:${web.port}/bytes/1048576`]);
    expect(r.code, r.stderr).toBe(0);
    expect(sha256(fs.readFileSync(file))).toBe(sha256(deterministicBytes(1048576)));
    const exit = await demo.stop('SIGTERM');
    expect(exit.code).toBe(0);
  });
});
