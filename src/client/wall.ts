/**
 * Walls (issue 16, docs/protocol.md §9.8): networks that freeze or reset every TCP connection
 * after a fixed number of server→client bytes. The client learns the byte count from the
 * connections it loses, adopts a per-connection budget safely below it, and remembers it per
 * bridge across restarts in $XDG_STATE_HOME/postern/walls.json.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Limits } from '../core/limits.js';
import type { BridgeInfo } from '../transport/uri.js';

/** Cuts at most this far apart (a fraction of the largest) count as the same wall… */
const WALL_MATCH_FRACTION = 0.125;
/** …and this many in a row make a wall (fewer would take a path that cuts at random for one). */
const WALL_MATCH_COUNT = 3;
/** The budget adopted is this fraction of the lower of the two cuts: handshakes vary in size. */
const WALL_SAFETY_FRACTION = 0.85;
/** The state file holds at most this many bridges (oldest forgotten first). */
const WALL_STORE_MAX_BRIDGES = 256;

/** What a wall counts: bridge→client bytes only (a freeze), or both directions together. */
export type WallCounts = 'down' | 'both';

/** A learned wall: the budget to keep below it, and which bytes it counts. */
export interface Wall {
  readonly budget: number;
  readonly counts: WallCounts;
}

/**
 * A learned budget confirms itself (connections move before it, so none shows the wall is gone):
 * now and then one connection is given this many times the budget — a probe…
 */
const WALL_PROBE_FACTOR = 2;
/** …the first after this many connections under the budget (a restart costs one probe, ~1 s under a freeze wall)… */
const WALL_PROBE_FIRST_CONNS = 4;
/** …the gap doubling each time a probe runs into the wall, up to this many (~40 s at 6 dials/s): a real wall costs a probe's freeze rarely. */
const WALL_PROBE_MAX_CONNS = 256;

/**
 * While a probe's disproof is remembered (WALL_DISPROVED_TTL_MS), a wall at or below what the probe
 * carried needs this many agreeing cuts among the latest WALL_WINDOW_CUTS (not WALL_MATCH_COUNT):
 * a real wall that came since cuts nearly every connection at it; cuts that agree by chance, or
 * at a count that repeats for another reason (a reset discards what the kernel held unread, so
 * the client's count is often the handshake plus one 64 KiB read), do so five times far less often.
 * Six (the whole window, none skipped) would keep a real reset wall, whose counts often come
 * short, unlearned for dozens of cuts (replayed on measured cuts: up to 39).
 */
const WALL_DISPROVED_MATCH_COUNT = 5;

/** What a probe connection showed: the wall is gone (budget forgotten), it held (next probe later), or nothing. */
export type ProbeOutcome = 'forgotten' | 'confirmed' | 'inconclusive';

/** A cut counts toward a wall that counts both directions only if it sent at least this fraction of what it received. */
const WALL_BOTH_MIN_UP_FRACTION = 0.125;

/** The learner looks at this many latest cuts: a wall is WALL_MATCH_COUNT of them that agree, the others not against it… */
const WALL_WINDOW_CUTS = 6;
/** …and at most this many of those others skipped (short, but with maxima that reach the wall): a path that cuts at random is no wall. */
const WALL_MAX_SKIPPED_CUTS = 1;

/**
 * What one lost connection carried, as far as the client can tell: `down` and `up` are what is
 * known to have crossed (what the client read; what the bridge says it received), `downMax` and
 * `upMax` what may have (what the bridge says it sent; what the client sent). Without the bridge's
 * TALLY (§9.8.1) the client knows no more than it counted: the maxima are the counts.
 */
export interface CutBytes {
  readonly down: number;
  readonly up?: number;
  readonly downMax?: number;
  readonly upMax?: number;
}

interface Cut {
  readonly down: number;
  readonly total: number;
  readonly downMax: number;
  readonly totalMax: number;
}

/** What a probe that carried past its wall showed: no wall of each kind at or below these counts, until `until` (clock ms). */
interface Disproved {
  readonly down: number;
  readonly both: number;
  readonly until: number;
}

/** A wall seen in the latest cuts: the lowest count of the cuts that agree, and how far apart they are. */
interface Seen {
  readonly at: number;
  readonly spread: number;
}

/**
 * Learns a wall from the bytes each lost connection had carried: WALL_MATCH_COUNT cuts among the
 * latest WALL_WINDOW_CUTS within WALL_MATCH_FRACTION of each other, between CONN_BUDGET_MIN_BYTES
 * and WALL_MAX_BYTES, give a budget of WALL_SAFETY_FRACTION × the lowest one — provided no cut
 * since the first of them says otherwise: none carried more than they did, and none could have
 * carried clearly less (its maximum, §9.8.1, below the wall). A cut whose count is low but whose
 * maximum reaches the wall says nothing (a reset can make the reader lose what arrived last: its
 * count is short, the sender's is not) and is skipped, once (WALL_MAX_SKIPPED_CUTS). Without maxima (an older bridge) every cut
 * is its own maximum, so the WALL_MATCH_COUNT cuts must come in a row.
 *
 * What is compared is either the bytes received (a wall on bridge→client bytes, `down`) or the
 * bytes both ways (`both`, a wall that counts upstream too): whichever agrees more closely, `down`
 * on a tie, and `both` only when the cuts carried real upstream traffic (a cut with little, whose
 * sum agrees with theirs, is then neither one of them nor against them nor skipped). A budget only ever moves
 * down while it is remembered (a lower wall replaces a higher one; a `down` budget gives way to a
 * `both` one that cuts still fall under); it expires after WALL_BUDGET_TTL_MS, or sooner when a
 * probe (nextConnection, observeProbe) carries past the wall it was learned from. Such a probe
 * shows that there is no wall at or below what it carried: for WALL_DISPROVED_TTL_MS after it, a
 * wall whose agreeing cuts all lie within that needs WALL_DISPROVED_MATCH_COUNT of them.
 */
export class WallLearner {
  private cuts: Cut[] = [];
  /** Connections under the budget between probes (WALL_PROBE_FIRST_CONNS doubling to WALL_PROBE_MAX_CONNS)… */
  private probeGap = WALL_PROBE_FIRST_CONNS;
  /** …and those given the budget since the last probe (or since the budget was adopted). */
  private sinceProbe = 0;
  /** What the latest probes that forgot a budget carried (the highest while remembered), or null. */
  private disproved: Disproved | null = null;

  constructor(
    private readonly limits: Limits,
    public budget: number | null = null,
    public counts: WallCounts = 'down',
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * A connection was lost after receiving `down` and sending `up` bytes (on the wire, as far as
   * the client knows; with the bridge's TALLY also the most that can have crossed): the new budget
   * when it changed, else null (`counts` says what it counts).
   */
  observeCut(down: number, up = 0, max: { down: number; up: number } | null = null): number | null {
    const u = Math.max(0, up);
    const downMax = Math.max(down, max?.down ?? down);
    const cut: Cut = { down, total: down + u, downMax, totalMax: downMax + Math.max(u, max?.up ?? u) };
    this.cuts = [...this.cuts, cut].slice(-WALL_WINDOW_CUTS);
    const downSeen = this.counts === 'down' ? this.seen('down') : null;
    const bothSeen = this.seen('both');
    let wall: Wall | null = null;
    if (downSeen !== null && (bothSeen === null || downSeen.spread <= bothSeen.spread)) wall = { counts: 'down', budget: Math.floor(WALL_SAFETY_FRACTION * downSeen.at) };
    else if (bothSeen !== null) wall = { counts: 'both', budget: Math.floor(WALL_SAFETY_FRACTION * bothSeen.at) };
    if (wall === null) return null;
    const next = Math.max(this.limits.CONN_BUDGET_MIN_BYTES, wall.budget);
    // A lower budget of the same kind, or the first `both` one (cuts fell under the `down` one).
    if (this.budget !== null && wall.counts === this.counts && next >= this.budget) return null;
    this.budget = next;
    this.counts = wall.counts;
    this.cuts = [];
    this.resetProbes();
    return next;
  }

  /**
   * A connection is about to be attached: the budget it gets (null: none). Every probeGap-th
   * connection under a budget is a probe (`probe`): it gets WALL_PROBE_FACTOR × the budget, so that
   * it carries clearly more than the wall the budget was learned from, if the wall is still there
   * (report how it ended with observeProbe).
   */
  nextConnection(): { budget: number; probe: boolean } | null {
    if (this.budget === null) return null;
    if (this.sinceProbe < this.probeGap) {
      this.sinceProbe++;
      return { budget: this.budget, probe: false };
    }
    this.sinceProbe = 0;
    return { budget: WALL_PROBE_FACTOR * this.budget, probe: true };
  }

  /**
   * How a probe connection ended: moved (`cut` false: at its larger budget, or by rotation) or cut,
   * having carried `carried` (as for observeCut; the maxima only matter for a cut). The wall the
   * budget was learned from is at about budget / WALL_SAFETY_FRACTION (the lowest of the cuts that
   * agreed). If the probe is known to have carried more than that / (1 − WALL_MATCH_FRACTION) — past
   * where any cut that agreed could have been — the wall is gone: the budget is forgotten
   * ('forgotten'; the cuts seen are cleared too): only what is known to have crossed (`down`, `up`)
   * counts for this. If it was cut and can have carried at least that × (1 − WALL_MATCH_FRACTION)
   * (its maximum, §9.8.1: a reset often costs the reader its last bytes, on a wall counting both
   * ways most of them), it may have run into the wall: the gap to the next probe doubles
   * ('confirmed'), so that a real wall costs a probe rarely. Otherwise (moved early, or cut before
   * it can have reached the wall — observeCut weighs that like any cut) it showed nothing: the
   * next probe comes after the same gap.
   */
  observeProbe(carried: CutBytes, cut: boolean): ProbeOutcome {
    if (this.budget === null) return 'inconclusive';
    const up = Math.max(0, carried.up ?? 0);
    const downMax = Math.max(carried.down, carried.downMax ?? carried.down);
    const n = this.counts === 'down' ? carried.down : carried.down + up;
    const nMax = this.counts === 'down' ? downMax : downMax + Math.max(up, carried.upMax ?? up);
    const wall = this.budget / WALL_SAFETY_FRACTION;
    if (n > wall / (1 - WALL_MATCH_FRACTION)) {
      this.disprove(carried.down, carried.down + up);
      this.budget = null;
      this.counts = 'down';
      this.cuts = [];
      this.resetProbes();
      return 'forgotten';
    }
    if (!cut || nMax < (1 - WALL_MATCH_FRACTION) * wall) return 'inconclusive';
    this.probeGap = Math.min(WALL_PROBE_MAX_CONNS, 2 * this.probeGap);
    return 'confirmed';
  }

  /**
   * A probe carried `down` bytes from the bridge and `down + up` both ways, known to have crossed:
   * no wall of either kind is at or below that (remembered for WALL_DISPROVED_TTL_MS, 0: not at all;
   * a higher count replaces a lower one, and each disproof restarts the time).
   */
  private disprove(down: number, both: number): void {
    if (this.limits.WALL_DISPROVED_TTL_MS <= 0) return;
    const live = this.disprovedNow();
    this.disproved = {
      down: Math.max(down, live?.down ?? 0),
      both: Math.max(both, live?.both ?? 0),
      until: this.now() + this.limits.WALL_DISPROVED_TTL_MS,
    };
  }

  /** The disproof still remembered, or null. */
  private disprovedNow(): Disproved | null {
    if (this.disproved !== null && this.now() > this.disproved.until) this.disproved = null;
    return this.disproved;
  }

  /** Connections under the budget between probes now (for tests and the log). */
  get probeEvery(): number {
    return this.probeGap;
  }

  private resetProbes(): void {
    this.probeGap = WALL_PROBE_FIRST_CONNS;
    this.sinceProbe = 0;
  }

  /**
   * Whether a cut can be one of those that show a wall of this kind (`upstream` false: leaving out
   * the rule that a cut on a two-way wall carried real upstream traffic).
   */
  private evidence(c: Cut, kind: WallCounts, upstream = true): boolean {
    const { CONN_BUDGET_MIN_BYTES: min, WALL_MAX_BYTES: max } = this.limits;
    const n = kind === 'down' ? c.down : c.total;
    if (!(Number.isFinite(n) && n >= min && n <= max)) return false;
    if (upstream && kind === 'both' && c.total - c.down < WALL_BOTH_MIN_UP_FRACTION * c.down) return false;
    // Under a budget a connection carries about the budget, so cuts near it say nothing of a wall:
    // only one clearly below it (the wall moved lower), or under a `down` budget a `both` one.
    if (this.budget === null || (kind === 'both' && this.counts === 'down')) return true;
    return n < WALL_SAFETY_FRACTION * this.budget;
  }

  /** The wall of this kind the latest cuts show (see the class), or null. */
  private seen(kind: WallCounts): Seen | null {
    const lo = (c: Cut): number => (kind === 'down' ? c.down : c.total);
    const hi = (c: Cut): number => (kind === 'down' ? c.downMax : c.totalMax);
    const tops = this.cuts.filter((c) => this.evidence(c, kind)).sort((a, b) => lo(b) - lo(a));
    const disproved = this.disprovedNow()?.[kind] ?? 0;
    for (const top of tops) {
      const t = lo(top);
      // Every cut that agrees is at most `t`: within what a probe carried, more of them must agree.
      const needed = t <= disproved ? WALL_DISPROVED_MATCH_COUNT : WALL_MATCH_COUNT;
      // The cuts that agree with `top`, from the latest one that is against them on.
      for (let from = 0; from < this.cuts.length; from++) {
        const since = this.cuts.slice(from);
        const members = since.filter((c) => tops.includes(c) && lo(c) <= t && lo(c) >= (1 - WALL_MATCH_FRACTION) * t);
        if (members.length < needed) break;
        const at = Math.min(...members.map(lo));
        const span = since.slice(since.indexOf(members[0] as Cut));
        // On a two-way wall, a cut that carried almost only downstream cannot be one of the cuts
        // (they must show upstream traffic counts), but one whose count agrees with them, as they
        // do with each other, is no sign against them either: neither against nor skipped.
        const agrees = (c: Cut): boolean =>
          kind === 'both' && !tops.includes(c) && this.evidence(c, kind, false) && lo(c) >= (1 - WALL_MATCH_FRACTION) * t && (1 - WALL_MATCH_FRACTION) * lo(c) <= at;
        const others = span.filter((c) => !members.includes(c) && !agrees(c));
        const against = others.some((c) => lo(c) > t || hi(c) < (1 - WALL_MATCH_FRACTION) * at);
        if (!against && others.length <= WALL_MAX_SKIPPED_CUTS) return { at, spread: (t - at) / t };
      }
    }
    return null;
  }
}

/**
 * The handshake cap (§9.8): when the next dial to a bridge may start, given when the latest ones
 * started (oldest first): DIAL_MIN_INTERVAL_MS after the last, and no more than DIAL_BURST_MAX
 * within any DIAL_BURST_WINDOW_MS (a burst rule of 0 is off).
 */
export function dialSlotAt(starts: readonly number[], limits: Pick<Limits, 'DIAL_MIN_INTERVAL_MS' | 'DIAL_BURST_MAX' | 'DIAL_BURST_WINDOW_MS'>): number {
  const { DIAL_MIN_INTERVAL_MS: gap, DIAL_BURST_MAX: burst, DIAL_BURST_WINDOW_MS: window } = limits;
  let at = starts.length === 0 ? Number.NEGATIVE_INFINITY : (starts[starts.length - 1] as number) + gap;
  if (burst > 0 && window > 0 && starts.length >= burst) at = Math.max(at, (starts[starts.length - burst] as number) + window);
  return at;
}

/** The key a bridge's wall is stored under: a hash, so the state file names no bridge address. */
export function wallKey(info: BridgeInfo): string {
  const pin = info.pin === undefined ? '' : Buffer.from(info.pin).toString('base64url');
  return createHash('sha256').update(`${info.host}|${info.port}|${info.sni ?? ''}|${pin}`).digest('base64url').slice(0, 22);
}

/** $XDG_STATE_HOME/postern/walls.json (default ~/.local/state/postern/walls.json). */
export function defaultWallFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME !== undefined && path.isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'postern', 'walls.json');
}

interface WallEntry {
  budgetBytes: number;
  /** Unix ms. */
  learnedAt: number;
  /** Absent in files written before walls counting both ways were learned: 'down'. */
  counts?: WallCounts;
}

/**
 * Learned budgets on disk. Never throws: an unreadable or malformed file is treated as empty, a
 * failed write is reported through `onError` and otherwise ignored (the budget is relearned).
 */
export class WallStore {
  constructor(
    readonly file: string,
    private readonly ttlMs: number,
    private readonly onError: (err: Error) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  private read(): Record<string, WallEntry> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(this.file, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.onError(err as Error);
      return {};
    }
    const out: Record<string, WallEntry> = {};
    const bridges = (parsed as { bridges?: unknown } | null)?.bridges;
    if (typeof bridges !== 'object' || bridges === null) return out;
    for (const [k, v] of Object.entries(bridges as Record<string, unknown>)) {
      const e = v as Partial<WallEntry> | null;
      if (typeof e?.budgetBytes === 'number' && Number.isSafeInteger(e.budgetBytes) && e.budgetBytes > 0 && typeof e.learnedAt === 'number') {
        out[k] = { budgetBytes: e.budgetBytes, learnedAt: e.learnedAt, ...(e.counts === 'both' ? { counts: 'both' as const } : {}) };
      }
    }
    return out;
  }

  /** The remembered budget for `key`, or null (none, or older than the TTL). */
  get(key: string): number | null {
    return this.getWall(key)?.budget ?? null;
  }

  /** The remembered wall for `key` (budget and what it counts), or null. */
  getWall(key: string): Wall | null {
    const e = this.read()[key];
    if (e === undefined || this.now() - e.learnedAt > this.ttlMs) return null;
    return { budget: e.budgetBytes, counts: e.counts ?? 'down' };
  }

  set(key: string, budgetBytes: number, counts: WallCounts = 'down'): void {
    const all = this.read();
    all[key] = { budgetBytes, learnedAt: this.now(), ...(counts === 'both' ? { counts } : {}) };
    this.write(all);
  }

  /** Forgets `key`'s budget (a probe showed the wall is gone); the file is left alone if it had none. */
  delete(key: string): void {
    const all = this.read();
    if (!Object.hasOwn(all, key)) return;
    delete all[key];
    this.write(all);
  }

  private write(all: Record<string, WallEntry>): void {
    const kept = Object.entries(all)
      .filter(([, e]) => this.now() - e.learnedAt <= this.ttlMs)
      .sort((a, b) => b[1].learnedAt - a[1].learnedAt)
      .slice(0, WALL_STORE_MAX_BRIDGES);
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      fs.writeFileSync(tmp, `${JSON.stringify({ version: 1, bridges: Object.fromEntries(kept) }, null, 2)}\n`, { mode: 0o600 });
      fs.renameSync(tmp, this.file);
    } catch (err) {
      this.onError(err as Error);
      try {
        fs.rmSync(tmp, { force: true });
      } catch {
        // nothing more to do
      }
    }
  }
}
