/**
 * The bridge's file descriptors: the process limit (RLIMIT_NOFILE) and how many are open. Linux
 * /proc only; elsewhere the limit is unknown and nothing is refused for it.
 *
 * Node raises its soft RLIMIT_NOFILE to the hard limit when it starts (PlatformInit), so the soft
 * limit read here is already as high as the process may go; an operator raises the hard limit
 * (systemd LimitNOFILE=, `ulimit -Hn`). Counting open descriptors reads /proc/self/fd, at most once
 * per DESCRIPTOR_SAMPLE_MS; between samples the count moves with what the bridge itself opens and
 * closes (streams, sessions), so a burst of opens is seen at once.
 */
import fs from 'node:fs';

/** How often /proc/self/fd is listed (a listing costs about a microsecond per descriptor). */
const DESCRIPTOR_SAMPLE_MS = 1_000;

export interface NofileLimit {
  readonly soft: number;
  readonly hard: number;
}

/** Parses the "Max open files" line of /proc/PID/limits; null when absent. "unlimited" is Infinity. */
export function parseNofile(limitsText: string): NofileLimit | null {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limitsText);
  if (!m) return null;
  const num = (v: string): number => (v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v));
  const soft = num(m[1] as string);
  const hard = num(m[2] as string);
  return Number.isNaN(soft) || Number.isNaN(hard) ? null : { soft, hard };
}

export function readNofile(): NofileLimit | null {
  try {
    return parseNofile(fs.readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return null;
  }
}

function countOpen(): number | null {
  try {
    return fs.readdirSync('/proc/self/fd').length;
  } catch {
    return null;
  }
}

export class Descriptors {
  private lim: NofileLimit | null;
  private sampled: number | null = null;
  private sampledAt = Number.NEGATIVE_INFINITY;
  private oursAtSample = 0;

  /** `ours()`: descriptors the bridge knows it holds now (sessions, streams). */
  constructor(
    private readonly ours: () => number,
    private readonly readLimit: () => NofileLimit | null = readNofile,
    private readonly count: () => number | null = countOpen,
  ) {
    this.lim = readLimit();
  }

  /** RLIMIT_NOFILE as last read (re-read with every sample: `prlimit` may change it while we run). */
  get limit(): NofileLimit | null {
    return this.lim;
  }

  /** Descriptors open now (estimated between samples), or null when unknown. */
  inUse(now = performance.now()): number | null {
    if (now - this.sampledAt >= DESCRIPTOR_SAMPLE_MS) {
      this.sampledAt = now;
      this.sampled = this.count();
      this.oursAtSample = this.ours();
      this.lim = this.readLimit();
    }
    if (this.sampled === null) return null;
    return Math.max(0, this.sampled + this.ours() - this.oursAtSample);
  }

  /** Descriptors left under the soft limit (Infinity when unknown). */
  left(now = performance.now()): number {
    const used = this.inUse(now);
    const soft = this.limit?.soft ?? Number.POSITIVE_INFINITY;
    return used === null ? Number.POSITIVE_INFINITY : soft - used;
  }
}
