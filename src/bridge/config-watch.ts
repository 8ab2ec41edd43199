/**
 * Watches a config file for changes and calls back once things settle. It watches the file's
 * folder, not the file: editors and tools (`postern users`, sed -i, vim) replace the file by
 * writing a temporary one and renaming it over, which a watch on the old inode would miss.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/logger.js';

export interface ConfigWatcher {
  close(): void;
}

/**
 * Calls `onChange` debounceMs after the last change event for `file`, and only when the file's
 * text differs from what it was at the previous call (or at start): renames, touches and
 * unrelated files in the folder do not reload.
 */
export function watchConfigFile(file: string, debounceMs: number, onChange: () => void, log: Logger): ConfigWatcher {
  const dir = path.dirname(path.resolve(file));
  const base = path.basename(file);
  const read = (): string | null => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return null;
    }
  };
  let last = read();
  let timer: NodeJS.Timeout | null = null;
  const fire = () => {
    timer = null;
    const text = read();
    // Missing for a moment (between unlink and rename) or unchanged: wait for the next event.
    if (text === null || text === last) return;
    last = text;
    onChange();
  };
  let watcher: fs.FSWatcher;
  try {
    watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
      if (name !== null && name !== base) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(fire, debounceMs);
    });
  } catch (err) {
    log.warn({ err: (err as NodeJS.ErrnoException).code ?? (err as Error).message }, 'cannot watch the config folder; reload with SIGHUP');
    return { close() {} };
  }
  watcher.on('error', (err: NodeJS.ErrnoException) => {
    log.warn({ err: err.code ?? err.message }, 'config watch stopped; reload with SIGHUP');
    watcher.close();
  });
  return {
    close() {
      if (timer) clearTimeout(timer);
      watcher.close();
    },
  };
}
