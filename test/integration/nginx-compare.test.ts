/**
 * The decoy is nginx (issue 10, docs/protocol.md §2.2): a real nginx 1.22 (Debian's, its default
 * http settings, the same certificate and the same static files), `postern decoy` and a bridge
 * approached without a valid secret get the same probe corpus (test/integration/nginx-corpus.ts);
 * the status line, header names and order (Date aside; Location's port, which is each server's
 * own), the body and how the connection ends must agree — except the documented exceptions
 * listed in the corpus, each with the reason it cannot be matched in Node.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProbe, type ProbeOutcome } from '../helpers/http-probe.js';
import { startNginx, type Nginx } from '../helpers/nginx.js';
import { Postern, stopAll, tempDir } from '../helpers/proc.js';
import { init } from '../helpers/stack.js';
import { HTTP_PROBES, TLS_PROBES, type HttpProbe, type TlsProbe } from './nginx-corpus.js';

/** Short timeouts on both sides, so that how a connection ends is seen in a second or two. */
const KEEPALIVE_S = 1;
const HEADER_TIMEOUT_S = 2;
const LINGER_MS = 500;
const LIMITS = { HANDSHAKE_TIMEOUT_MS: HEADER_TIMEOUT_S * 1000, HTTP_KEEPALIVE_TIMEOUT_MS: KEEPALIVE_S * 1000, HTTP_CLOSE_LINGER_MS: LINGER_MS };
/** A probe is cut (recorded as still open) after this. */
const PROBE_MAX_MS = 3_500;
/** Probes sent at once (to each of the three servers). */
const BATCH = 20;
/** Two ends are the same when their times are this close (timing is noisy on a shared machine). */
const TIMING_SLACK_MS = 700;

interface Outcome {
  text: string;
  end: ProbeOutcome['end'];
  ms: number;
}

async function runHttp(port: number, probe: HttpProbe): Promise<Outcome> {
  const o = await runProbe(port, probe.send, { maxMs: PROBE_MAX_MS, ...(probe.plain === true ? { plain: true } : {}) });
  return { text: o.bytes.toString('latin1'), end: o.end, ms: o.ms };
}

/** `openssl s_client` with the probe's options: what was negotiated, or the alert received. */
function runTls(port: number, probe: TlsProbe): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'decoy.example', ...probe.args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.stdin.end();
    const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('close', () => {
      clearTimeout(t);
      const alert = /alert ([a-z ]+)/.exec(out)?.[1]?.trim();
      const m = /New, (\S+), Cipher is (\S+)/.exec(out);
      const proto = m?.[1];
      const cipher = m?.[2];
      const alpn = /ALPN protocol: (\S+)/.exec(out)?.[1] ?? 'none';
      resolve(alert !== undefined ? `alert ${alert}` : cipher !== undefined && cipher !== '(NONE)' && cipher !== '0000' ? `${proto} ${cipher} alpn=${alpn}` : 'failed');
    });
  });
}

/** Date aside; Location's port and a multipart boundary are each server's own. */
const normalise = (s: string): string =>
  s
    .replace(/\r\nDate: [^\r]*\r\n/g, '\r\nDate: <date>\r\n')
    .replace(/(\r\nLocation: https?:\/\/[^/:\r]+):\d+/g, '$1:<port>')
    .replace(/boundary=\d{10,20}/g, 'boundary=<b>')
    .replace(/\r\n--\d{10,20}(--)?\r\n/g, '\r\n--<b>$1\r\n');

let nginx: Nginx;
let decoyPort = 0;
let bridgePort = 0;
let secretPath = '';

beforeAll(async () => {
  const made = await init();
  const www = path.join(made.dir, 'www');
  fs.mkdirSync(path.join(www, 'docs'), { recursive: true });
  fs.mkdirSync(path.join(www, 'empty'), { recursive: true });
  fs.writeFileSync(path.join(www, 'index.html'), '<!DOCTYPE html>\n<html><head><title>Welcome</title></head><body><h1>It works</h1></body></html>\n');
  fs.writeFileSync(path.join(www, '404.html'), '<h1>lost?</h1>\n');
  fs.writeFileSync(path.join(www, 'docs/index.html'), '<h1>docs</h1>\n');
  fs.writeFileSync(path.join(www, 'style.css'), 'body { color: #333; }\n');
  fs.writeFileSync(path.join(www, 'data.bin'), Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251)));
  const stamp = new Date('2024-03-01T12:00:00Z');
  for (const f of ['index.html', '404.html', 'docs/index.html', 'style.css', 'data.bin']) fs.utimesSync(path.join(www, f), stamp, stamp);

  const cfg = JSON.parse(fs.readFileSync(made.config, 'utf8')) as { path: string; limits?: object; decoy?: object };
  cfg.limits = LIMITS;
  cfg.decoy = { type: 'static', root: 'www' };
  fs.writeFileSync(made.config, JSON.stringify(cfg, null, 2));
  secretPath = cfg.path;

  // Debian's nginx.conf http settings, and a TLS server for the same folder.
  nginx = await startNginx(tempDir('nginx-cmp-'), (port) =>
    [
      'sendfile on; tcp_nopush on; types_hash_max_size 2048;',
      'include /etc/nginx/mime.types;',
      'ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;',
      'ssl_prefer_server_ciphers on;',
      'gzip on;',
      `keepalive_timeout ${KEEPALIVE_S}s; client_header_timeout ${HEADER_TIMEOUT_S}s; lingering_timeout ${LINGER_MS}ms;`,
      'server {',
      `  listen 127.0.0.1:${port} ssl;`,
      `  ssl_certificate ${path.join(made.dir, 'cert.pem')};`,
      `  ssl_certificate_key ${path.join(made.dir, 'key.pem')};`,
      '  default_type application/octet-stream;',
      `  root ${www};`,
      '  index index.html;',
      '  error_page 404 /404.html;',
      '}',
    ].join('\n'),
  );
  const bridge = new Postern(['bridge', '--config', made.config, '--listen', '127.0.0.1:0']);
  const decoy = new Postern(['decoy', '--config', made.config, '--listen', '127.0.0.1:0']);
  bridgePort = await bridge.listening('bridge');
  decoyPort = (await decoy.waitFor((l) => l.msg === 'listening' && l.role === 'decoy', 15_000, 'decoy listening')).port as number;
}, 40_000);

afterAll(async () => {
  await nginx?.stop();
  await stopAll();
});

describe('the decoy answers every probe as nginx 1.22 does (issue 10)', () => {
  it(`HTTP: ${HTTP_PROBES.length} probes — same status, headers, body and end as nginx, from postern decoy and from the bridge`, async () => {
    expect(HTTP_PROBES.length).toBeGreaterThanOrEqual(58);
    const runOne = async (p: HttpProbe): Promise<{ n: Outcome; d: Outcome; b: Outcome }> => {
      const probe = { ...p, send: p.send.map((s) => (typeof s === 'string' ? s.replaceAll('{secret}', secretPath) : s)) };
      const [n, d, b] = await Promise.all([runHttp(nginx.port, probe), runHttp(decoyPort, probe), runHttp(bridgePort, probe)]);
      return { n, d, b };
    };
    const results: Array<{ p: HttpProbe; n: Outcome; d: Outcome; b: Outcome }> = [];
    // In batches, the three servers side by side, so that a busy machine does not blur the timing.
    for (let i = 0; i < HTTP_PROBES.length; i += BATCH) {
      results.push(
        ...(await Promise.all(
          HTTP_PROBES.slice(i, i + BATCH).map(async (p) => ({ p, ...(await runOne(p)) })),
        )),
      );
    }
    const differences = (r: { p: HttpProbe; n: Outcome; d: Outcome; b: Outcome }): { bytesOrEnd: string[]; time: string[] } => {
      const out = { bytesOrEnd: [] as string[], time: [] as string[] };
      for (const [who, o] of [['decoy', r.d], ['bridge', r.b]] as const) {
        const n = r.n;
        if (normalise(o.text) !== normalise(n.text)) out.bytesOrEnd.push(`${r.p.name} [${who}] bytes:\n--- nginx\n${JSON.stringify(normalise(n.text))}\n--- ${who}\n${JSON.stringify(normalise(o.text))}`);
        else if (o.end !== n.end) out.bytesOrEnd.push(`${r.p.name} [${who}] end: nginx ${n.end}, ${who} ${o.end}`);
        else if (Math.abs(o.ms - n.ms) > TIMING_SLACK_MS) out.time.push(`${r.p.name} [${who}] end time: nginx ${Math.round(n.ms)} ms, ${who} ${Math.round(o.ms)} ms`);
      }
      return out;
    };
    const diffs: string[] = [];
    for (const r of results) {
      if (r.p.exception !== undefined) continue;
      const found = differences(r);
      diffs.push(...found.bytesOrEnd);
      if (found.time.length === 0) continue;
      // Timing alone differs: on a loaded machine, run that probe once more, alone, before believing it.
      const again = await runOne(r.p);
      diffs.push(...differences({ p: r.p, ...again }).time);
    }
    expect(diffs.join('\n\n')).toBe('');
    // The table tests what it says: nginx really gave these answers.
    const text = (name: string): string => results.find((r) => r.p.name === name)!.n.text;
    expect(text('Range: one range')).toMatch(/^HTTP\/1\.1 206 Partial Content\r\n/);
    expect(text('URI of 10 KB')).toMatch(/^HTTP\/1\.1 414 /);
    expect(text('HTTP/2.0 request line')).toMatch(/^HTTP\/1\.1 505 /);
    expect(text('plain HTTP on the TLS port')).toMatch(/The plain HTTP request was sent to HTTPS port/);
    expect(text('GET /')).toMatch(/^HTTP\/1\.1 200 OK\r\nServer: nginx\/1\.22\.1\r\n/);
  }, 120_000);

  it(`TLS: ${TLS_PROBES.length} ClientHellos — the same version, cipher and ALPN, or the same alert`, async () => {
    const results = await Promise.all(
      TLS_PROBES.map(async (p) => {
        const [n, d, b] = await Promise.all([runTls(nginx.port, p), runTls(decoyPort, p), runTls(bridgePort, p)]);
        return { p, n, d, b };
      }),
    );
    const diffs = results.filter((r) => r.p.exception === undefined && (r.d !== r.n || r.b !== r.n)).map((r) => `${r.p.name}: nginx "${r.n}", decoy "${r.d}", bridge "${r.b}"`);
    expect(diffs.join('\n')).toBe('');
    expect(results.find((r) => r.p.name === 'TLS 1.2, CAMELLIA only')!.n).toMatch(/CAMELLIA/);
  }, 30_000);
});
