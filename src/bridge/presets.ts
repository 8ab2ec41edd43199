/**
 * Built-in destination allow-lists for `egress.allowOnly.presets`. Data only.
 *
 * A bridge in allow-list mode connects only to names under these domains (suffix match on label
 * boundaries) and to IP literals inside these ranges. Keep each entry tied to a public source.
 */
import { MESSAGING_LIST, type DestinationList } from '../core/messaging.js';

export type EgressPreset = DestinationList;

/** `messaging`: WhatsApp, Telegram and Signal, and nothing else (the list, with its sources, is core/messaging.ts). */
export const MESSAGING_PRESET: EgressPreset = MESSAGING_LIST;

export const PRESETS = { messaging: MESSAGING_PRESET } as const satisfies Record<string, EgressPreset>;
export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];
