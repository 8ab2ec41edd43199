/** The resolved `decoy` section of bridge.json: made by config/, served by decoy/. */
export type DecoyConfig =
  | { readonly type: 'builtin'; readonly siteTimeMs: number }
  | { readonly type: 'static'; readonly root: string }
  | { readonly type: 'proxy'; readonly upstream: string };
