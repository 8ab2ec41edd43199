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
import type { BudgetPolicy } from '../core/tunnel-policy.js';
import type { BridgeInfo } from '../transport/uri.js';

/** Cuts at most this far apart (a fraction of the largest) count as the same wall… */
const WALL_MATCH_FRACTION = 0.125;
/** …and this many in a row make a wall (fewer would take a path that cuts at random for one). */
const WALL_MATCH_COUNT = 3;
/** The budget adopted is this fraction of the lower of the two cuts: handshakes vary in size. */
const WALL_SAFETY_FRACTION = 0.85;
/** The state file holds at most this many bridges (oldest forgotten first). */
const WALL_STORE_MAX_BRIDGES = 256;

/**
 * Learns a wall from the bytes each lost connection had received: WALL_MATCH_COUNT cuts in a row
 * within WALL_MATCH_FRACTION of each other, between CONN_BUDGET_MIN_BYTES and WALL_MAX_BYTES, give a
 * budget of WALL_SAFETY_FRACTION × the lower one. A budget only ever moves down while it is
 * remembered (a lower wall replaces a higher one); it expires after WALL_BUDGET_TTL_MS.
 */
export class WallLearner {
  private cuts: number[] = [];

  constructor(
    private readonly limits: Limits,
    public budget: number | null = null,
  ) {}

  /** A connection was lost after receiving `bytes`: the new budget when it changed, else null. */
  observeCut(bytes: number): number | null {
    const { CONN_BUDGET_MIN_BYTES: min, WALL_MAX_BYTES: max } = this.limits;
    // Under a budget a connection reads about the budget, so cuts near it say nothing of a wall:
    // only one clearly below it (the wall moved lower) counts.
    const ceiling = this.budget === null ? max : WALL_SAFETY_FRACTION * this.budget;
    if (!Number.isFinite(bytes) || bytes < min || bytes > ceiling) {
      this.cuts = [];
      return null;
    }
    this.cuts = [...this.cuts, bytes].slice(-WALL_MATCH_COUNT);
    if (this.cuts.length < WALL_MATCH_COUNT) return null;
    const lo = Math.min(...this.cuts);
    const hi = Math.max(...this.cuts);
    if (hi - lo > WALL_MATCH_FRACTION * hi) return null;
    const next = Math.max(min, Math.floor(WALL_SAFETY_FRACTION * lo));
    if (this.budget !== null && next >= this.budget) return null;
    this.budget = next;
    this.cuts = [];
    return next;
  }
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
        out[k] = { budgetBytes: e.budgetBytes, learnedAt: e.learnedAt };
      }
    }
    return out;
  }

  /** The remembered budget for `key`, or null (none, or older than the TTL). */
  get(key: string): number | null {
    const e = this.read()[key];
    if (e === undefined || this.now() - e.learnedAt > this.ttlMs) return null;
    return e.budgetBytes;
  }

  set(key: string, budgetBytes: number): void {
    const all = this.read();
    all[key] = { budgetBytes, learnedAt: this.now() };
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
