/**
 * The local proxy's credentials, made once and kept (issue 11; issue 14 item 3): every local
 * listener — loopback and `--lan` alike — asks apps for the same username and password, so that
 * Telegram, the browser and the phones set up once keep working across restarts.
 *
 * Stored as JSON `{"username": …, "password": …}` in `local-proxy.json` under the user's config
 * directory: `$XDG_CONFIG_HOME/postern/`, else `$HOME/.config/postern/` (XDG Base Directory spec).
 * The folder is made 0700 and the file 0600; a file others can read is tightened and reported.
 * The file is created by writing a temporary file and hard-linking it into place, so two clients
 * starting at once agree on one pair (the second reads what the first wrote).
 */
import fs from 'node:fs';
import path from 'node:path';
import { userConfigDir } from './paths.js';
import * as z from './zod.js';
import { generateCredentials, type Credentials } from '../core/credentials.js';
import { PosternError } from '../core/errors.js';
import { parseWith, readJsonFile } from './file.js';

export const LOCAL_CREDENTIALS_FILE = 'local-proxy.json';

const schema = z.strictObject({
  username: z.string().check(z.minLength(1), z.maxLength(255), z.refine((s) => !s.includes(':'), 'no ":" (HTTP Basic)')),
  password: z.string().check(z.minLength(1), z.maxLength(255)),
});

/** The user's Postern folder (config/paths.ts); an error when there is none to keep credentials in. */
export function configDir(env: NodeJS.ProcessEnv): string {
  const dir = userConfigDir(env);
  if (dir === undefined) {
    throw new PosternError('E_CONFIG', 'no config directory: set XDG_CONFIG_HOME or HOME (or pass --user and --pass, or --no-auth)');
  }
  return dir;
}

export interface StoredCredentials {
  readonly credentials: Credentials;
  readonly file: string;
  /** True when this call made them (first start with the new default, or --new-credentials). */
  readonly created: boolean;
  /** True when the file was readable by others and was tightened to 0600. */
  readonly tightened: boolean;
}

/** Reads the stored credentials, making and storing new ones when there are none (or `renew`). */
export function localCredentials(env: NodeJS.ProcessEnv, opts: { renew?: boolean; random?: (n: number) => Buffer } = {}): StoredCredentials {
  const dir = configDir(env);
  const file = path.join(dir, LOCAL_CREDENTIALS_FILE);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new PosternError('E_CONFIG', `${dir}: cannot create the config folder (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (opts.renew === true) {
    try {
      fs.unlinkSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new PosternError('E_CONFIG', `${file}: cannot remove (${(err as NodeJS.ErrnoException).code})`);
    }
  }
  if (!fs.existsSync(file)) {
    const made = generateCredentials(opts.random);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, `${JSON.stringify(made, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
      fs.linkSync(tmp, file); // atomic; EEXIST when another client made them first
      return { credentials: made, file, created: true, tightened: false };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new PosternError('E_CONFIG', `${file}: cannot store the proxy credentials (${code ?? (err as Error).message})`);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  let tightened = false;
  const mode = fs.statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    fs.chmodSync(file, 0o600);
    tightened = true;
  }
  const c = parseWith(schema, readJsonFile(file), file);
  return { credentials: { username: c.username, password: c.password }, file, created: false, tightened };
}
