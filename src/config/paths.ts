import os from 'node:os';
import path from 'node:path';

/**
 * The user's Postern folder: $XDG_CONFIG_HOME/postern, else ~/.config/postern (XDG Base Directory).
 * It holds the default client config (client.json) and what the client keeps between runs.
 */
export function userConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(env.HOME || os.homedir(), '.config');
  return path.join(base, 'postern');
}

/** The client config read when no --config or $POSTERN_CONFIG names one (only if it exists). */
export function defaultClientConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(userConfigDir(env), 'client.json');
}
