/**
 * Built-in route presets (`--route PRESET`). Each is rules and a default action; the user's own
 * rules, if any, come before a preset's.
 */
import { MESSAGING_LIST } from '../core/messaging.js';
import type { RouteAction, RuleMatchSpec, RuleSpec } from './rules.js';

export const ROUTE_PRESETS = ['all', 'messaging-only', 'domestic-direct', 'blocked-only'] as const;
export type RoutePresetName = (typeof ROUTE_PRESETS)[number];

export interface RoutePreset {
  readonly rules: readonly RuleSpec[];
  readonly defaultAction: RouteAction;
}

/**
 * The preset's rules. `blocked-only` needs the user's list (parsed from --route-file, one match
 * per kind); the others take none.
 */
export function routePreset(name: RoutePresetName, list?: readonly RuleMatchSpec[]): RoutePreset {
  switch (name) {
    case 'all':
      return { rules: [], defaultAction: 'tunnel' };
    case 'messaging-only':
      // WhatsApp, Telegram, Signal through the tunnel — the very list the bridge's `messaging`
      // egress preset allows — and everything else direct.
      return {
        rules: [
          { name: 'messaging', match: { suffix: MESSAGING_LIST.domains }, action: 'tunnel' },
          { name: 'messaging ranges', match: { cidr: MESSAGING_LIST.ranges }, action: 'tunnel' },
        ],
        defaultAction: 'direct',
      };
    case 'domestic-direct':
      // .ru, .рф (xn--p1ai), .su and addresses in Russia direct; everything else through the tunnel.
      // Messaging always goes through the tunnel, first: the country data places some of
      // Telegram's published ranges (e.g. 91.108.4.0/22) in RU, and those are blocked there.
      return {
        rules: [
          { name: 'messaging', match: { suffix: MESSAGING_LIST.domains }, action: 'tunnel' },
          { name: 'messaging ranges', match: { cidr: MESSAGING_LIST.ranges }, action: 'tunnel' },
          { name: 'domestic names', match: { suffix: ['ru', 'xn--p1ai', 'su'] }, action: 'direct' },
          { name: 'domestic addresses', match: { country: ['RU'] }, action: 'direct' },
        ],
        defaultAction: 'tunnel',
      };
    case 'blocked-only':
      if (list === undefined || list.length === 0) throw new Error('blocked-only needs a list file (--route-file FILE)');
      return {
        rules: list.map((match, i) => ({ name: i === 0 && !match.cidr ? 'blocked list' : 'blocked list ranges', match, action: 'tunnel' as const })),
        defaultAction: 'direct',
      };
  }
}
