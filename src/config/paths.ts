import path from 'node:path';

/**
 * The user's Postern folder: $XDG_CONFIG_HOME/postern, else $HOME/.config/postern (XDG Base
 * Directory: a relative XDG_CONFIG_HOME is ignored); undefined when neither is set. It holds the
 * default client config (client.json) and the local proxy's credentials (local-proxy.json).
 */
export function userConfigDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg !== undefined && path.isAbsolute(xdg)) return path.join(xdg, 'postern');
  const home = env.HOME;
  return home === undefined || home === '' ? undefined : path.join(home, '.config', 'postern');
}

/** The client config read when no --config or $POSTERN_CONFIG names one (only if it exists). */
export function defaultClientConfigFile(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dir = userConfigDir(env);
  return dir === undefined ? undefined : path.join(dir, 'client.json');
}
