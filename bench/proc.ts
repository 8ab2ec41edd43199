/** Reads a process's memory and CPU figures from /proc (Linux only). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond = 100;
try {
  ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // keep the Linux default
}

export interface MemSample {
  /** VmRSS, KiB. */
  rssKiB: number;
  /** RssAnon, KiB (heap and buffers; excludes mapped files such as the node binary). */
  anonKiB: number;
  /** VmHWM (peak RSS), KiB. */
  hwmKiB: number;
}

function field(status: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) : Number.NaN;
}

export function readMem(pid: number): MemSample {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rssKiB: field(s, 'VmRSS'), anonKiB: field(s, 'RssAnon'), hwmKiB: field(s, 'VmHWM') };
}

/** User + system CPU time consumed so far, in milliseconds. */
export function readCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // comm may contain spaces: fields after the closing parenthesis are space-separated.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return ((utime + stime) * 1000) / ticksPerSecond;
}

/** Machine-wide busy and total CPU time since boot, ms summed over all CPUs (from /proc/stat). */
export function readSystemCpuMs(): { busyMs: number; totalMs: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] as string;
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busyMs: ((total - idle) * 1000) / ticksPerSecond, totalMs: (total * 1000) / ticksPerSecond };
}
