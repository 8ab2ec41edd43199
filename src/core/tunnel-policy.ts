/**
 * Tunnel policies that settings choose and the client applies: how several bridges are used, and
 * how much a tunnel connection may carry before the client moves to a new one. Here in core/ so
 * that config/ (which parses them) and client/ (which applies them) share one definition.
 */

/** With several bridges: failover (priority order) or spread (least loaded). */
export type BridgeStrategy = 'failover' | 'spread';
export const BRIDGE_STRATEGIES: readonly BridgeStrategy[] = ['failover', 'spread'];

/** What a connection budget counts: bridge→client bytes (`down`), or both directions together (`both`, docs/protocol.md §9.8). */
export type BudgetCounts = 'down' | 'both';

/** How the per-connection budget is chosen: learned from cuts, fixed (and what it counts), or never. */
export type BudgetPolicy =
  | { readonly mode: 'auto' }
  | { readonly mode: 'off' }
  | { readonly mode: 'fixed'; readonly bytes: number; readonly counts?: BudgetCounts };

/** A fixed budget's text: `[both:]BYTES`, BYTES a decimal count, or KiB with a `k` suffix (`16k`). */
const FIXED_BUDGET_RE = /^(both:)?([1-9][0-9]{0,9})(k?)$/;

/**
 * Parses a budget setting: "auto", "0"/"off" (never), or a byte count ≥ min — `16384` or `16k`
 * counts bridge→client bytes, `both:16k` both directions together. Returns null when the text is
 * none of these (the caller names the field).
 */
export function parseBudget(text: string | number, min: number): BudgetPolicy | null {
  const t = String(text).trim().toLowerCase();
  if (t === 'auto') return { mode: 'auto' };
  if (t === 'off' || t === '0') return { mode: 'off' };
  const m = FIXED_BUDGET_RE.exec(t);
  if (m === null) return null;
  const n = Number(m[2]) * (m[3] === 'k' ? 1024 : 1);
  if (!Number.isSafeInteger(n) || n < min) return null;
  return m[1] === undefined ? { mode: 'fixed', bytes: n } : { mode: 'fixed', bytes: n, counts: 'both' };
}
