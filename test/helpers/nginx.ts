import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ROOT } from './proc.js';
import { freePort } from './ops.js';

/** configs/nginx/postern.conf with its example values replaced (each must be found: the test follows the real file). */
export function siteFromTemplate(v: { port: number; certFile: string; keyFile: string; secretPath: string; upstreams: number[]; decoyRoot: string }): string {
  let s = fs.readFileSync(path.join(ROOT, 'configs/nginx/postern.conf'), 'utf8');
  const sub = (from: string, to: string): void => {
    if (!s.includes(from)) throw new Error(`configs/nginx/postern.conf no longer contains ${JSON.stringify(from)}`);
    s = s.split(from).join(to);
  };
  sub('listen 443 ssl;', `listen 127.0.0.1:${v.port} ssl;`);
  sub('listen [::]:443 ssl;', '');
  sub('/etc/letsencrypt/live/bridge.example.org/fullchain.pem', v.certFile);
  sub('/etc/letsencrypt/live/bridge.example.org/privkey.pem', v.keyFile);
  sub('location = /c2VjcmV0LXBhdGgtZXhhbXBsZQ {', `location = ${v.secretPath} {`);
  sub('server 127.0.0.1:8080 max_fails=1 fail_timeout=10s;', v.upstreams.map((p) => `server 127.0.0.1:${p} max_fails=1 fail_timeout=10s;`).join('\n    '));
  sub('root /var/www/postern-decoy;', `root ${v.decoyRoot};`);
  return s;
}

export interface Nginx {
  child: ChildProcess;
  port: number;
  dir: string;
  stop(): Promise<void>;
}

/** nginx on PATH, else Debian's /usr/sbin/nginx (sbin is not on every user's PATH). */
const NGINX = fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
const START_ATTEMPTS = 3;
const START_TIMEOUT_MS = 10_000;

/** Runs our own nginx (daemon off, pid/logs/temp in dir, 127.0.0.1 only) on a free port; retries a taken port a bounded number of times. */
export async function startNginx(dir: string, site: (port: number) => string): Promise<Nginx> {
  let lastErr = '';
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = await freePort();
    fs.writeFileSync(path.join(dir, 'site.conf'), site(port));
    const temp = (n: string) => {
      fs.mkdirSync(path.join(dir, n), { recursive: true });
      return path.join(dir, n);
    };
    const conf = [
      process.getuid?.() === 0 ? 'user root root;' : '',
      'worker_processes 1;',
      `pid ${path.join(dir, 'nginx.pid')};`,
      `error_log ${path.join(dir, 'error.log')} warn;`,
      'events { worker_connections 256; }',
      'http {',
      `  access_log ${path.join(dir, 'access.log')};`,
      '  default_type text/html;',
      `  client_body_temp_path ${temp('body')};`,
      `  proxy_temp_path ${temp('proxy')};`,
      `  fastcgi_temp_path ${temp('fastcgi')};`,
      `  uwsgi_temp_path ${temp('uwsgi')};`,
      `  scgi_temp_path ${temp('scgi')};`,
      `  include ${path.join(dir, 'site.conf')};`,
      '}',
    ].join('\n');
    fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
    const child = spawn(NGINX, ['-e', path.join(dir, 'error.log'), '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const deadline = Date.now() + START_TIMEOUT_MS;
    let up = false;
    while (Date.now() < deadline && child.exitCode === null) {
      up = await new Promise<boolean>((r) => {
        const s = net.connect({ host: '127.0.0.1', port }, () => {
          s.destroy();
          r(true);
        });
        s.once('error', () => r(false));
      });
      if (up) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(t);
      }
    };
    if (up && child.exitCode === null) return { child, port, dir, stop };
    await stop();
    const log = fs.existsSync(path.join(dir, 'error.log')) ? fs.readFileSync(path.join(dir, 'error.log'), 'utf8') : '';
    lastErr = `${stderr}\n${log}`;
    if (!/Address already in use/.test(lastErr)) break;
  }
  throw new Error(`nginx did not start: ${lastErr}`);
}
