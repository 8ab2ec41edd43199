/**
 * Summarises V8 .cpuprofile files (from `npm run bench -- --cpu-prof`): self time by function and
 * by module. Frames in the bundle (dist/postern.js) are attributed to their source module through
 * the bundle's source map.
 *
 *   tsx bench/profile-summary.ts bench/results/prof-<date> [--top N]
 */
import { readFileSync, readdirSync } from 'node:fs';
import { SourceMap } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/**
 * The bundle's source map (dist/postern.js.map, which tsup writes beside it), or null. The bundle has
 * no comments (tsup.config.ts: minifyWhitespace), so a frame's module comes from the map.
 */
function bundleMap(file: string): SourceMap | null {
  try {
    return new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]);
  } catch {
    return null;
  }
}

/** A frame's module: its source file through the bundle's map (src/… or node_modules/…), else its URL. */
function moduleOf(frame: CallFrame, cache: Map<string, SourceMap | null>): string {
  const url = frame.url;
  if (!url) return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  if (!url.startsWith('file://')) return url; // node:internal/…
  const file = fileURLToPath(url);
  if (!file.endsWith(path.join('dist', 'postern.js'))) return path.basename(file);
  if (!cache.has(file)) cache.set(file, bundleMap(file));
  const entry = cache.get(file)?.findEntry(frame.lineNumber, frame.columnNumber) as { originalSource?: string } | undefined;
  const src = entry?.originalSource;
  if (src === undefined) return 'dist/postern.js';
  const i = src.search(/(?:^|\/)(?:src|node_modules)\//);
  return i < 0 ? src : src.slice(src[i] === '/' ? i + 1 : i);
}

function summarise(file: string, top: number): string {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i] as number;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  const total = prof.endTime - prof.startTime;
  const cache = new Map<string, SourceMap | null>();
  const fn = new Map<string, number>();
  const mod = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    const cf = n.callFrame;
    if (cf.functionName === '(idle)') idle += us;
    const m = moduleOf(cf, cache);
    const key = `${cf.functionName || '(anonymous)'}  ${m}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    mod.set(m, (mod.get(m) ?? 0) + us);
  }
  const busy = total - idle;
  const rows = (m: Map<string, number>) =>
    [...m.entries()]
      .filter(([k]) => k !== '(idle)' && !k.startsWith('(idle)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => `  ${((us / busy) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`);
  return [
    `${path.basename(file)}: ${(total / 1e6).toFixed(1)} s profiled, ${(busy / 1e6).toFixed(1)} s busy (percentages are of busy time)`,
    ' self time by module:',
    ...rows(mod),
    ' self time by function:',
    ...rows(fn),
  ].join('\n');
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
const dir = positionals[0];
if (!dir) {
  process.stderr.write('usage: tsx bench/profile-summary.ts DIR_OR_FILE [--top N]\n');
  process.exit(2);
}
let roles: Record<string, string> = {};
try {
  roles = JSON.parse(readFileSync(path.join(dir, 'roles.json'), 'utf8')) as Record<string, string>;
} catch {
  // no roles file: name profiles by file only
}
const files = dir.endsWith('.cpuprofile') ? [dir] : readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dir, f));
for (const f of files) {
  // Node names profiles CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
  const pid = path.basename(f).split('.')[3] ?? '';
  process.stdout.write(`${roles[pid] ? `[${roles[pid]}] ` : ''}${summarise(f, Number(values.top))}\n\n`);
}
