import fs from 'node:fs';
import type { z } from 'zod';
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
export function parseWith<S extends z.ZodType>(schema: S, raw: unknown, file: string): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') throw configError(file, fieldPath([...issue.path, issue.keys[0] ?? '']), 'unknown field');
  throw configError(file, fieldPath(issue.path), issue.message);
}

/** Reads and parses a JSON config file; a missing or malformed file is a configError naming it. */
export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw configError(file, '', `cannot read config file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw configError(file, '', `not valid JSON (${(err as Error).message})`);
  }
}
