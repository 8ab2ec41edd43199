/**
 * The client's tunnel flags (issue 3): several bridges, the strategy among them, and the
 * keepalive / resume bounds. Parsed here so that the CLI only forwards them.
 */
import { PosternError } from '../core/errors.js';
import { LIMIT_BOUNDS, LIMITS, defaultLimits, type LimitName, type Limits } from '../core/limits.js';
import { parseShareUri, type BridgeInfo } from '../transport/uri.js';
import type { BridgeStrategy } from './tunnel.js';
import { parseBudget, type BudgetPolicy } from './wall.js';

export interface TunnelFlags {
  /** Every --bridge, in order (commander collects repeats into an array). */
  bridge?: string | string[];
  strategy?: string;
  keepaliveMs?: string;
  resumeTimeoutMs?: string;
  rotateBytes?: string;
  rotateMs?: string;
  connBudget?: string;
  dialIntervalMs?: string;
}

export interface TunnelSettings {
  /** The first --bridge (for the config resolver, which knows env and config file too). */
  first: string | undefined;
  /** Bridges after the first, parsed. */
  more: BridgeInfo[];
  strategy: BridgeStrategy;
  limits: Limits;
  /** Connection rotation budget (0: off). */
  rotate: { bytes: number; ms: number };
  /** --conn-budget (absent: the config file's, else each share link's, else learned). */
  budget: BudgetPolicy | undefined;
}

/** Commander collector for a repeatable option. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function limitValue(flag: string, text: string, name: LimitName): number {
  const n = Number(text);
  const [min, max] = LIMIT_BOUNDS[name];
  if (!Number.isInteger(n) || n < min || n > max) throw new PosternError('E_CONFIG', `${flag}: expected an integer in ${min}..${max}, got "${text}"`);
  return n;
}

export function resolveTunnelFlags(flags: TunnelFlags): TunnelSettings {
  const list = flags.bridge === undefined ? [] : Array.isArray(flags.bridge) ? flags.bridge : [flags.bridge];
  const more = list.slice(1).map((u, i) => {
    try {
      return parseShareUri(u);
    } catch (err) {
      throw new PosternError('E_BAD_URI', `--bridge #${i + 2}: ${(err as Error).message}`);
    }
  });
  const strategy = flags.strategy ?? 'failover';
  if (strategy !== 'failover' && strategy !== 'spread') throw new PosternError('E_CONFIG', `--strategy: expected failover or spread, got "${strategy}"`);
  const over: Partial<Limits> = {};
  if (flags.keepaliveMs !== undefined) {
    // Dead after this long without a byte; a PING goes out after half of it.
    over.KEEPALIVE_TIMEOUT_MS = limitValue('--keepalive-ms', flags.keepaliveMs, 'KEEPALIVE_TIMEOUT_MS');
    over.KEEPALIVE_INTERVAL_MS = Math.max(LIMIT_BOUNDS.KEEPALIVE_INTERVAL_MS[0], Math.floor(over.KEEPALIVE_TIMEOUT_MS / 2));
  }
  if (flags.dialIntervalMs !== undefined) {
    over.DIAL_MIN_INTERVAL_MS = limitValue('--dial-interval-ms', flags.dialIntervalMs, 'DIAL_MIN_INTERVAL_MS');
  }
  let connBudget: BudgetPolicy | undefined;
  if (flags.connBudget !== undefined) {
    const min = LIMITS.CONN_BUDGET_MIN_BYTES;
    const parsed = parseBudget(flags.connBudget, min);
    if (parsed === null) throw new PosternError('E_CONFIG', `--conn-budget: expected auto, off (or 0), or a byte count ≥ ${min}, got "${flags.connBudget}"`);
    connBudget = parsed;
  }
  if (flags.resumeTimeoutMs !== undefined) {
    over.SESSION_RESUME_TIMEOUT_MS = limitValue('--resume-timeout-ms', flags.resumeTimeoutMs, 'SESSION_RESUME_TIMEOUT_MS');
  }
  const budget = (flag: string, text: string | undefined, min: number): number => {
    if (text === undefined) return 0;
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) throw new PosternError('E_CONFIG', `${flag}: expected an integer ≥ ${min}, got "${text}"`);
    return n;
  };
  const rotate = { bytes: budget('--rotate-bytes', flags.rotateBytes, 64 * 1024), ms: budget('--rotate-ms', flags.rotateMs, 1_000) };
  return { first: list[0], more, strategy, limits: defaultLimits(over), rotate, budget: connBudget };
}
