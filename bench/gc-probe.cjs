// Loaded into a daemon by bench/gc.ts (node --require): on SIGUSR2 it writes what the daemon has
// spent and holds to $POSTERN_GC_PROBE_DIR/<pid>.json: CPU time, garbage-collector time and count
// by kind (PerformanceObserver 'gc'), RSS by mapping (/proc/self/smaps) and V8's heap spaces.
// Bench-only: never part of the package.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const v8 = require('node:v8');
const { PerformanceObserver, constants } = require('node:perf_hooks');

const dir = process.env.POSTERN_GC_PROBE_DIR;
const KINDS = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak',
};
const gc = {};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = KINDS[e.detail?.kind] ?? 'other';
    const g = (gc[kind] ??= { count: 0, ms: 0 });
    g.count++;
    g.ms += e.duration;
  }
}).observe({ entryTypes: ['gc'] });

/** RSS in KiB by what is mapped: the node binary, other files, the brk heap, anonymous memory. */
function rssByMapping() {
  const out = { node: 0, files: 0, brk: 0, anon: 0 };
  let kind = 'anon';
  for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const name = m[1] ?? '';
      kind = name === '' ? 'anon' : name === '[heap]' ? 'brk' : name === process.execPath ? 'node' : name.startsWith('/') ? 'files' : 'anon';
      continue;
    }
    const r = /^Rss:\s+(\d+) kB/.exec(line);
    if (r) out[kind] += Number(r[1]);
  }
  return out;
}

if (dir) {
  process.on('SIGUSR2', () => {
    const u = process.cpuUsage();
    const spaces = {};
    for (const s of v8.getHeapSpaceStatistics()) if (s.physical_space_size > 0) spaces[s.space_name] = { physicalKiB: s.physical_space_size >> 10, usedKiB: s.space_used_size >> 10 };
    const snapshot = { cpuMs: (u.user + u.system) / 1000, gc, rssKiB: process.memoryUsage().rss >> 10, rss: rssByMapping(), spaces };
    fs.writeFileSync(path.join(dir, `${process.pid}.json.tmp`), JSON.stringify(snapshot));
    fs.renameSync(path.join(dir, `${process.pid}.json.tmp`), path.join(dir, `${process.pid}.json`));
  });
}
