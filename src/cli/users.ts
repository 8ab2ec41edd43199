/**
 * `postern users`: edits the users of a bridge config file. Every change is validated with the
 * bridge's own schema, then written atomically (temp file + rename) with the file's mode and owner
 * kept, so a running bridge reloading at any moment reads either the old file or the new one.
 */
import fs from 'node:fs';
import { PosternError } from '../core/errors.js';
import { USER_NAME_RULE, validateBridgeConfig, type BridgeConfig } from '../config/bridge.js';
import { readJsonFile } from '../config/file.js';
import { generateSecret } from '../transport/auth.js';
import { writeFileAtomic } from './init.js';
import { parseFrontOptions, readPem, shareUri, type FrontOptions, type ShareTarget } from './share.js';

interface RawConfig {
  users: Array<{ name: string; secret: string }>;
  [k: string]: unknown;
}

function readRaw(file: string): { raw: RawConfig; config: BridgeConfig; stat: fs.Stats } {
  const raw = readJsonFile(file);
  const config = validateBridgeConfig(raw, file);
  return { raw: raw as RawConfig, config, stat: fs.statSync(file) };
}

function write(file: string, raw: RawConfig, stat: fs.Stats): void {
  validateBridgeConfig(raw, file); // never write a file the bridge would refuse
  // Keep the mode, but never wider than 0600: the file holds every user's secret.
  writeFileAtomic(file, `${JSON.stringify(raw, null, 2)}\n`, stat.mode & 0o600, (tmp) => {
    try {
      fs.chownSync(tmp, stat.uid, stat.gid);
    } catch {
      // not root: the file stays ours, as it was
    }
  });
}

function unknownUser(file: string, name: string, config: BridgeConfig): PosternError {
  return new PosternError('E_CONFIG', `${file}: no user named "${name}" (users: ${config.users.map((u) => u.name).join(', ')})`);
}

export function listUsers(file: string): string[] {
  return readRaw(file).config.users.map((u) => u.name);
}

/** Adds a user with a fresh secret; returns its share URI. */
export function addUser(file: string, given: string, opts: ShareOptions = {}): string {
  const name = given.normalize('NFC'); // one spelling of "é", whatever the keyboard sent
  const { raw, config, stat } = readRaw(file);
  if (config.users.some((u) => u.name === name)) throw new PosternError('E_CONFIG', `${file}: a user named "${name}" already exists`);
  parseFrontOptions(opts, config.publicPort); // refuse before writing
  raw.users = [...raw.users, { name, secret: generateSecret().toString('base64url') }];
  try {
    validateBridgeConfig(raw, file);
  } catch (err) {
    if (err instanceof PosternError && /users\[\d+\]\.name/.test(err.message)) {
      throw new PosternError('E_CONFIG', `user name "${name}": ${USER_NAME_RULE}`);
    }
    throw err;
  }
  write(file, raw, stat);
  return shareUser(file, name, opts);
}

export function removeUser(file: string, given: string): void {
  const name = given.normalize('NFC');
  const { raw, config, stat } = readRaw(file);
  if (!config.users.some((u) => u.name === name)) throw unknownUser(file, name, config);
  if (config.users.length === 1) throw new PosternError('E_CONFIG', `${file}: "${name}" is the only user; add another before removing it`);
  raw.users = raw.users.filter((u) => u.name !== name);
  write(file, raw, stat);
}

/** `connect`: HOST[:PORT] of a relay the link dials; `sni`, `hostHeader`: the TLS name and Host to send (protocol.md §1). */
export interface ShareOptions extends FrontOptions {
  /** A PEM file: the certificate clients see, when not the config's (e.g. nginx's). */
  cert?: string;
}

/** The share URI of a user. */
export function shareUser(file: string, given: string, opts: ShareOptions = {}): string {
  const name = given.normalize('NFC');
  const { config } = readRaw(file);
  const user = config.users.find((u) => u.name === name);
  if (!user) throw unknownUser(file, name, config);
  const certPem = opts.cert !== undefined ? readPem(opts.cert, '--cert') : (config.shareCertPem ?? config.tls?.certPem ?? null);
  const target: ShareTarget = { secret: user.secret, publicHost: config.publicHost, publicPort: config.publicPort, path: config.path, certPem, label: name, ...parseFrontOptions(opts, config.publicPort) };
  return shareUri(target);
}

/**
 * What an operator sharing an h2 link from `file` should know, or null: the link needs a bridge
 * that serves HTTP/2, which is off unless the file says `"http2": true` (or the bridge runs with
 * --http2, which the file cannot show).
 */
export function shareWarning(file: string, opts: FrontOptions): string | null {
  if (opts.transport?.trim() !== 'h2') return null;
  const { config } = readRaw(file);
  if (config.http2) return null;
  return `note: ${file} leaves HTTP/2 off; this transport=h2 link works only if the bridge runs with --http2 (or set "http2": true in ${file})`;
}

/** Sends SIGHUP to the bridge named by a PID or a PID file, so it reloads the config now. */
export function signalReload(pidOrFile: string): number {
  let text = pidOrFile;
  if (!/^\d+$/.test(pidOrFile)) {
    try {
      text = fs.readFileSync(pidOrFile, 'utf8').trim();
    } catch (err) {
      throw new PosternError('E_CONFIG', `--pid ${pidOrFile}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  const pid = Number(text);
  if (!/^\d+$/.test(text) || pid < 2) throw new PosternError('E_CONFIG', `--pid ${pidOrFile}: expected a process id, got "${text.slice(0, 20)}"`);
  try {
    process.kill(pid, 'SIGHUP');
  } catch (err) {
    throw new PosternError('E_CONFIG', `--pid ${pid}: cannot signal (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); the file was changed, reload the bridge yourself`);
  }
  return pid;
}
