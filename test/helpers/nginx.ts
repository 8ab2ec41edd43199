import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ROOT } from './proc.js';
import { freePort } from './ops.js';

/** A file under configs/ and a replacer that insists on finding each example value (the test follows the real file). */
function template(file: string): { sub: (from: string, to: string) => void; text: () => string } {
  let s = fs.readFileSync(path.join(ROOT, file), 'utf8');
  return {
    sub: (from, to) => {
      if (!s.includes(from)) throw new Error(`${file} no longer contains ${JSON.stringify(from)}`);
      s = s.split(from).join(to);
    },
    text: () => s,
  };
}

/** The example values a site template carries, and what a test puts in their place. */
interface SiteValues {
  port: number;
  certFile: string;
  keyFile: string;
  secretPath: string;
  upstreams: number[];
  decoyRoot: string;
}

/** configs/nginx/postern.conf with its example values replaced. */
export function siteFromTemplate(v: SiteValues): string {
  return site('configs/nginx/postern.conf', 'ssl', v);
}

/** configs/nginx/postern-h2.conf (TLS + HTTP/2 at nginx, grpc_pass to h2c bridges) with its example values replaced. */
export function h2SiteFromTemplate(v: SiteValues): string {
  return site('configs/nginx/postern-h2.conf', 'ssl http2', v);
}

/** configs/nginx/postern-packet.conf (TLS + HTTP/2 at nginx, request bodies buffered, proxy_pass HTTP/1.1) with its example values replaced. */
export function packetSiteFromTemplate(v: SiteValues): string {
  return site('configs/nginx/postern-packet.conf', 'ssl http2', v);
}

/** A site template whose `listen 443 <listen>;` lines become one loopback listen on v.port. */
function site(file: string, listen: string, v: SiteValues): string {
  const { sub, text } = template(file);
  sub(`listen 443 ${listen};`, `listen 127.0.0.1:${v.port} ${listen};`);
  sub(`listen [::]:443 ${listen};`, '');
  sub('/etc/letsencrypt/live/bridge.example.org/fullchain.pem', v.certFile);
  sub('/etc/letsencrypt/live/bridge.example.org/privkey.pem', v.keyFile);
  sub('location = /c2VjcmV0LXBhdGgtZXhhbXBsZQ {', `location = ${v.secretPath} {`);
  sub('server 127.0.0.1:8080 max_fails=1 fail_timeout=10s;', v.upstreams.map((p) => `server 127.0.0.1:${p} max_fails=1 fail_timeout=10s;`).join('\n    '));
  sub('root /var/www/postern-decoy;', `root ${v.decoyRoot};`);
  return text();
}

/** configs/nginx/relay-stream.conf (a TCP relay) listening on 127.0.0.1:port, forwarding to 127.0.0.1:target; logs in dir. */
export function relayFromTemplate(v: { port: number; target: number; dir: string }): string {
  const { sub, text } = template('configs/nginx/relay-stream.conf');
  sub('listen 443;', `listen 127.0.0.1:${v.port};`);
  sub('listen [::]:443;', '');
  sub('server 198.51.100.7:443;', `server 127.0.0.1:${v.target};`);
  sub('/var/log/nginx/postern-relay.error.log', path.join(v.dir, 'relay-error.log'));
  return text();
}

/** Debian's libnginx-mod-stream; a build with the module compiled in has no such file. */
const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

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

/**
 * Runs our own nginx (daemon off, pid/logs/temp in dir, 127.0.0.1 only) on a free port; retries a
 * taken port a bounded number of times. `site` goes inside http {}, or with kind 'stream' at the
 * top level (it holds its own stream {} block) with the stream module loaded.
 */
export async function startNginx(dir: string, site: (port: number) => string, kind: 'http' | 'stream' = 'http'): Promise<Nginx> {
  let lastErr = '';
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = await freePort();
    fs.writeFileSync(path.join(dir, 'site.conf'), site(port));
    const temp = (n: string) => {
      fs.mkdirSync(path.join(dir, n), { recursive: true });
      return path.join(dir, n);
    };
    const main = [
      kind === 'stream' && fs.existsSync(STREAM_MODULE) ? `load_module ${STREAM_MODULE};` : '',
      process.getuid?.() === 0 ? 'user root root;' : '',
      'worker_processes 1;',
      `pid ${path.join(dir, 'nginx.pid')};`,
      `error_log ${path.join(dir, 'error.log')} warn;`,
      'events { worker_connections 256; }',
    ];
    const conf = kind === 'stream' ? [...main, `include ${path.join(dir, 'site.conf')};`].join('\n') : [
      ...main,
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
