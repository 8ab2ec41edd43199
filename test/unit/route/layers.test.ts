import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../helpers/proc.js';

/** The folders each one may import (STYLE.md layout); a route folder sits on core only. */
const ALLOWED: Record<string, readonly string[]> = {
  core: [],
  route: ['core'],
  config: ['core', 'route', 'transport'],
  client: ['core', 'socks', 'http', 'mux', 'transport', 'log', 'route'],
};

function importsOf(dir: string): { file: string; folder: string }[] {
  const out: { file: string; folder: string }[] = [];
  for (const f of fs.readdirSync(path.join(ROOT, 'src', dir))) {
    if (!f.endsWith('.ts')) continue;
    const text = fs.readFileSync(path.join(ROOT, 'src', dir, f), 'utf8');
    for (const m of text.matchAll(/from '\.\.\/([a-z]+)\//g)) out.push({ file: `${dir}/${f}`, folder: m[1]! });
  }
  return out;
}

describe('layers', () => {
  it.each(Object.keys(ALLOWED))('src/%s imports only the folders below it (never bridge/)', (dir) => {
    const bad = importsOf(dir).filter((i) => !ALLOWED[dir]!.includes(i.folder));
    expect(bad).toEqual([]);
  });
});
