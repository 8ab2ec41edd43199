/**
 * Tunnel policies that settings choose and the client applies: how several bridges are used, and
 * how much a tunnel connection may carry before the client moves to a new one. Here in core/ so
 * that config/ (which parses them) and client/ (which applies them) share one definition.
 */

/** With several bridges: failover (priority order) or spread (least loaded). */
export type BridgeStrategy = 'failover' | 'spread';
export const BRIDGE_STRATEGIES: readonly BridgeStrategy[] = ['failover', 'spread'];

/** How the per-connection budget is chosen: learned from cuts, fixed, or never. */
export type BudgetPolicy = { readonly mode: 'auto' } | { readonly mode: 'off' } | { readonly mode: 'fixed'; readonly bytes: number };

/**
 * Parses a budget setting: "auto", "0"/"off" (never), or a byte count ≥ min. Returns null when
 * the text is none of these (the caller names the field).
 */
export function parseBudget(text: string | number, min: number): BudgetPolicy | null {
  const t = String(text).trim().toLowerCase();
  if (t === 'auto') return { mode: 'auto' };
  if (t === 'off' || t === '0') return { mode: 'off' };
  const n = Number(t);
  if (!Number.isSafeInteger(n) || n < min) return null;
  return { mode: 'fixed', bytes: n };
}
