import path from 'node:path';
import { Postern, runPostern, tempDir } from './proc.js';

export interface Stack {
  dir: string;
  uri: string;
  bridge: Postern;
  client: Postern;
  bridgePort: number;
  socksPort: number;
}

/** The session transports (protocol.md §1 transport=). */
export type Transport = 'ws' | 'h2';
export const TRANSPORTS: readonly Transport[] = ['ws', 'h2'];

/** Adds transport=h2 to a share URI (ws is the default and is left unsaid). */
export function withTransport(uri: string, transport: Transport): string {
  if (transport === 'ws') return uri;
  const u = new URL(uri);
  u.searchParams.set('transport', transport);
  return u.toString();
}

/** Rewrites the port of a postern:// URI (init writes the public port; tests listen on port 0). */
export function withPort(uri: string, port: number): string {
  const u = new URL(uri);
  u.port = String(port);
  return u.toString();
}

/** `postern init` into a fresh folder; returns the folder and the share URI it printed. */
export async function init(extra: string[] = []): Promise<{ dir: string; uri: string; config: string }> {
  const dir = tempDir();
  const r = await runPostern(['init', '--dir', dir, '--host', '127.0.0.1', '--port', '443', ...extra]);
  if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
  const uri = r.stdout.trim().split('\n').pop() as string;
  return { dir, uri, config: path.join(dir, 'bridge.json') };
}

/**
 * A bridge on loopback. It serves HTTP/1.1 and WebSocket only (--no-http2) unless `transport` is
 * 'h2': the client offers h2 in ALPN and would otherwise carry even a ws link over HTTP/2
 * (protocol.md §12.1), and the ws tests are to exercise WebSocket.
 */
export async function startBridge(config: string, extra: string[] = ['--allow-private'], transport: Transport = 'ws'): Promise<{ bridge: Postern; port: number }> {
  const bridge = new Postern(['bridge', '--config', config, '--listen', '127.0.0.1:0', ...extra, ...(transport === 'ws' ? ['--no-http2'] : ['--http2'])]);
  return { bridge, port: await bridge.listening('bridge') };
}

/**
 * A client on loopback. Tests about something other than the local proxy's login run it with
 * `--no-auth` (today's behaviour on loopback); with `--user`, `--lan` or `auth: true` it asks for
 * credentials as by default (test/integration/local-auth.test.ts covers that).
 */
export async function startClient(uri: string, extra: string[] = [], opts: { auth?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<{ client: Postern; port: number }> {
  const auth = opts.auth === true || extra.includes('--user') || extra.includes('--lan') || extra.includes('--pass-file');
  const client = new Postern(['client', '--bridge', uri, '--listen', '127.0.0.1:0', ...(auth ? [] : ['--no-auth']), ...extra], opts.env);
  const port = await client.listening('socks');
  return { client, port };
}

/** init → bridge (allow-private, loopback, port 0) → client (loopback, port 0), tunnel up. */
export async function startStack(opts: { bridgeArgs?: string[]; clientArgs?: string[]; transport?: Transport } = {}): Promise<Stack> {
  const { dir, uri: initUri, config } = await init();
  const transport = opts.transport ?? 'ws';
  const { bridge, port: bridgePort } = await startBridge(config, opts.bridgeArgs, transport);
  const uri = withTransport(withPort(initUri, bridgePort), transport);
  const { client, port: socksPort } = await startClient(uri, opts.clientArgs);
  await client.waitFor((l) => l.msg === 'tunnel to bridge up', 15_000, 'tunnel up');
  return { dir, uri, bridge, client, bridgePort, socksPort };
}
