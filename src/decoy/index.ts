/** The decoy website (docs/protocol.md §2): built-in page, static folder, or reverse proxy. */
import type { DecoyConfig } from '../core/decoy-config.js';
import type { Limits } from '../core/limits.js';
import { createBuiltinDecoy } from './builtin.js';
import type { Decoy } from './decoy.js';
import { createProxyDecoy } from './proxy.js';
import { createStaticDecoy } from './static.js';

export * from './decoy.js';
export type { DecoyConfig } from '../core/decoy-config.js';
export { createBuiltinDecoy } from './builtin.js';
export { createStaticDecoy, contentTypeFor } from './static.js';
export { createProxyDecoy, parseUpstream } from './proxy.js';


export function createDecoy(config: DecoyConfig, limits: Limits, now?: () => number): Decoy {
  const clock = now !== undefined ? { now } : {};
  switch (config.type) {
    case 'builtin':
      return createBuiltinDecoy({ siteTimeMs: config.siteTimeMs, ...clock });
    case 'static':
      return createStaticDecoy({ root: config.root, ...clock });
    case 'proxy':
      return createProxyDecoy({ upstream: config.upstream, limits, ...clock });
  }
}
