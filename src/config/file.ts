import fs from 'node:fs';
import type * as z from './zod.js';
import { PosternError } from '../core/errors.js';

/** A config error that names the file, the field path (if any) and what was expected. */
export function configError(file: string, field: string, message: string): PosternError {
  return new PosternError('E_CONFIG', `${file}: ${field ? `${field}: ` : ''}${message}`);
}

/** ['users', 0, 'name'] → "users[0].name". */
export function fieldPath(p: ReadonlyArray<PropertyKey>): string {
  return p.map((x) => (typeof x === 'number' ? `[${x}]` : `.${String(x)}`)).join('').replace(/^\./, '');
}

/** Validates with a zod schema; the first problem becomes a configError naming its field. */
export function parseWith<S extends z.ZodMiniType>(schema: S, raw: unknown, file: string): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') throw configError(file, fieldPath([...issue.path, issue.keys[0] ?? '']), 'unknown field');
  throw configError(file, fieldPath(issue.path), issue.message);
}

/**
 * A file that exists but may not be read: the error names it, its owner and mode, and who we run as,
 * with the fix (the common case is a root-owned file mounted into a container that runs as a user).
 */
export function unreadableError(file: string, err: unknown): PosternError | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'EACCES' && code !== 'EPERM') return undefined;
  let owner = '';
  try {
    const st = fs.statSync(file);
    owner = ` (owner uid ${st.uid}, mode ${(st.mode & 0o777).toString(8).padStart(4, '0')})`;
  } catch {
    // the folder itself may be unreadable: then nothing more to say about the file
  }
  const me = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const who = me === undefined ? 'this user' : `uid ${me}`;
  return new PosternError(
    'E_CONFIG_UNREADABLE',
    `${file}${owner}: permission denied for ${who}; run Postern as the file's owner, or let ${who} read it (e.g. chown ${me ?? 'USER'} ${file} — in a container, the image's user must own mounted files)`,
    { cause: err },
  );
}

/** Reads and parses a JSON config file; a missing or malformed file is a configError naming it. */
export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw unreadableError(file, err) ?? configError(file, '', `cannot read config file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw configError(file, '', `not valid JSON (${(err as Error).message})`);
  }
}
