import { Command, Option } from 'commander';
import crypto from 'node:crypto';
import net from 'node:net';
import { Bridge } from '../bridge/bridge.js';
import { Client } from '../client/client.js';
import { loadBridgeConfig, validateBridgeConfig, type BridgeConfig } from '../config/bridge.js';
import { parseHostPort } from '../core/address.js';
import { PosternError } from '../core/errors.js';
import { defaultLimits } from '../core/limits.js';
import { createLogger, type Logger } from '../log/logger.js';
import { generateSecret } from '../transport/auth.js';
import { generateSelfSigned, spkiSha256 } from '../transport/certs.js';
import { nativeMaskingActive } from '../transport/dialer.js';
import { formatShareUri, parseShareUri } from '../transport/uri.js';
import { initBridge } from './init.js';

declare const POSTERN_VERSION: string;
const VERSION = typeof POSTERN_VERSION === 'string' ? POSTERN_VERSION : '0.0.0-dev';

/** One-line reason on stderr, exit 1. The only place (with main) that exits. */
function fail(err: unknown): never {
  const msg = err instanceof PosternError ? `${err.code}: ${err.message}` : (err as Error)?.message ?? String(err);
  process.stderr.write(`postern: ${msg}\n`);
  process.exit(1);
}

function hostPort(value: string, what: string): { host: string; port: number } {
  const hp = parseHostPort(value);
  if (!hp) throw new PosternError('E_CONFIG', `${what}: expected HOST:PORT, got "${value}"`);
  return hp;
}

function listenError(err: unknown, where: { host: string; port: number }): PosternError {
  // The listener may wrap the system error; look through to its errno.
  const sys = err instanceof PosternError ? (err.cause as NodeJS.ErrnoException | undefined) : (err as NodeJS.ErrnoException);
  const code = sys?.code;
  if (err instanceof PosternError && !code) return err;
  const addr = `${net.isIPv6(where.host) ? `[${where.host}]` : where.host}:${where.port}`;
  if (code === 'EADDRINUSE') return new PosternError('E_CONFIG', `cannot listen on ${addr}: address already in use`);
  if (code === 'EACCES') return new PosternError('E_CONFIG', `cannot listen on ${addr}: permission denied`);
  if (code === 'EADDRNOTAVAIL') return new PosternError('E_CONFIG', `cannot listen on ${addr}: no such local address`);
  return new PosternError('E_CONFIG', `cannot listen on ${addr}: ${code ?? (err as Error)?.message}`);
}

/** SIGINT/SIGTERM → graceful stop then exit 0; a second signal exits at once. */
function onShutdown(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (sig: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal: sig }, 'shutting down');
    stop()
      .catch((err) => log.error({ err: (err as Error).message }, 'error during shutdown'))
      .finally(() => {
        log.flush?.();
        process.exit(0);
      });
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

function logStartup(log: Logger): void {
  log.info({ version: VERSION, node: process.version, nativeMasking: nativeMaskingActive() }, 'postern starting');
}

async function runBridge(opts: { config: string; allowPrivate?: boolean; listen?: string; logLevel?: string }): Promise<void> {
  let config: BridgeConfig;
  const load = () => {
    let c = loadBridgeConfig(opts.config);
    if (opts.allowPrivate) c = { ...c, allowPrivate: true };
    if (opts.listen) c = { ...c, listen: hostPort(opts.listen, '--listen') };
    return c;
  };
  try {
    config = load();
  } catch (err) {
    fail(err);
  }
  const log = createLogger({ level: opts.logLevel ?? config.log.level });
  logStartup(log);
  const bridge = new Bridge({ config, logger: log });
  let addr;
  try {
    addr = await bridge.start();
  } catch (err) {
    fail(listenError(err, config.listen));
  }
  log.info({ role: 'bridge', address: fmt(addr), port: addr.port, tls: config.tls !== null, allowPrivate: config.allowPrivate }, 'listening');
  process.on('SIGHUP', () => {
    try {
      bridge.reload(load());
    } catch (err) {
      log.error({ err: (err as Error).message }, 'reload failed; keeping the previous configuration');
    }
  });
  onShutdown(log, () => bridge.stop());
}

function fmt(a: { host: string; port: number }): string {
  return `${net.isIPv6(a.host) ? `[${a.host}]` : a.host}:${a.port}`;
}

async function runClient(opts: {
  bridge: string;
  listen: string;
  user?: string;
  pass?: string;
  insecureOpenProxy?: boolean;
  logLevel?: string;
}): Promise<void> {
  let client: Client;
  let log: Logger;
  let listen: { host: string; port: number };
  try {
    const bridge = parseShareUri(opts.bridge);
    listen = hostPort(opts.listen, '--listen');
    if ((opts.user === undefined) !== (opts.pass === undefined)) {
      throw new PosternError('E_CONFIG', '--user and --pass go together');
    }
    log = createLogger({ level: opts.logLevel });
    logStartup(log);
    client = new Client({
      bridge,
      listen,
      auth: opts.user !== undefined ? { username: opts.user, password: opts.pass as string } : null,
      allowOpenProxy: opts.insecureOpenProxy === true,
      limits: defaultLimits(),
      logger: log,
    });
  } catch (err) {
    fail(err);
  }
  let addr;
  try {
    addr = await client.start();
  } catch (err) {
    fail(listenError(err, listen));
  }
  log.info({ role: 'socks', address: fmt(addr), port: addr.port, auth: opts.user !== undefined }, 'listening');
  onShutdown(log, () => client.stop(defaultLimits().SHUTDOWN_DRAIN_MS));
}

async function runDemo(opts: { listen: string; allowPrivate?: boolean; logLevel?: string }): Promise<void> {
  let listen: { host: string; port: number };
  try {
    listen = hostPort(opts.listen, '--listen');
  } catch (err) {
    fail(err);
  }
  const log = createLogger({ level: opts.logLevel ?? 'info' });
  logStartup(log);
  // A throwaway bridge on loopback with a fresh key, certificate and secret, all in memory.
  const { keyPem, certPem } = generateSelfSigned({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
  const secret = generateSecret();
  const secretPath = `/${crypto.randomBytes(12).toString('base64url')}`;
  const config = validateBridgeConfig(
    {
      listen: '127.0.0.1:0',
      path: secretPath,
      publicHost: '127.0.0.1',
      tls: null,
      users: [{ name: 'demo', secret: secret.toString('base64url') }],
      allowPrivate: opts.allowPrivate === true,
    },
    '(demo)',
  );
  const bridge = new Bridge({ config: { ...config, tls: { certFile: '', keyFile: '', certPem, keyPem } }, logger: log.child({ demo: 'bridge' }) });
  const baddr = await bridge.start().catch((err) => fail(listenError(err, config.listen)));
  const uri = formatShareUri({ secret, host: '127.0.0.1', port: baddr.port, path: secretPath, pin: spkiSha256(certPem), plain: false, label: 'demo' });
  const client = new Client({
    bridge: parseShareUri(uri),
    listen,
    auth: null,
    allowOpenProxy: false,
    limits: defaultLimits(),
    logger: log.child({ demo: 'client' }),
  });
  const caddr = await client.start().catch((err) => fail(listenError(err, listen)));
  log.info({ role: 'bridge', address: fmt(baddr), port: baddr.port }, 'listening');
  log.info({ role: 'socks', address: fmt(caddr), port: caddr.port }, 'listening');
  const socks = fmt(caddr);
  process.stderr.write(
    [
      '',
      'Postern demo is running: a bridge and a client on this machine, joined by a wss tunnel.',
      `  SOCKS5 proxy:  ${socks}`,
      `  Try it:        curl --socks5-hostname ${socks} https://example.com/`,
      opts.allowPrivate ? '  Private and loopback destinations are allowed (--allow-private).' : '  Loopback and private destinations are refused by the bridge (use --allow-private to allow them).',
      '  Stop with Ctrl-C.',
      '',
    ].join('\n') + '\n',
  );
  onShutdown(log, async () => {
    await client.stop(1_000);
    await bridge.stop(1_000);
  });
}

export function buildProgram(): Command {
  const program = new Command('postern')
    .description('Censorship-circumvention proxy: SOCKS5 in, multiplexed WebSocket-over-TLS tunnel, bridge out')
    .version(VERSION)
    .showHelpAfterError();

  program
    .command('bridge')
    .description('run a bridge: accept authenticated wss sessions and connect their streams out')
    .version(VERSION)
    .requiredOption('--config <file>', 'bridge config file (JSON), as written by "postern init"')
    .option('--allow-private', 'allow loopback, private and link-local destinations (tests, local demos)')
    .option('--listen <host:port>', 'override the listen address of the config file')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action((o) => runBridge(o));

  program
    .command('client')
    .description('run a client: a local SOCKS5 proxy that tunnels to a bridge')
    .version(VERSION)
    .requiredOption('--bridge <uri>', 'the bridge share URI (postern://...)')
    .option('--listen <host:port>', 'SOCKS5 listen address', '127.0.0.1:1080')
    .option('--user <name>', 'require SOCKS5 username/password (RFC 1929) with this user name')
    .option('--pass <password>', 'the SOCKS5 password (with --user)')
    .option('--insecure-open-proxy', 'allow a listener on a non-loopback address without authentication')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action((o) => runClient(o));

  program
    .command('init')
    .description("create a bridge's config, key, certificate and first user; print the share URI")
    .version(VERSION)
    .requiredOption('--dir <dir>', 'folder to write bridge.json, key.pem and cert.pem into')
    .requiredOption('--host <host>', 'public host name or IP that clients will dial')
    .option('--port <port>', 'port to listen on and to put in the URI', '443')
    .option('--listen-host <host>', 'local address to bind', '0.0.0.0')
    .option('--user <name>', 'name of the first user', 'user1')
    .option('--force', 'overwrite existing files')
    .action((o: { dir: string; host: string; port: string; listenHost: string; user: string; force?: boolean }) => {
      try {
        const port = Number(o.port);
        if (!Number.isInteger(port) || port < 1 || port > 65535) throw new PosternError('E_CONFIG', `--port: expected 1..65535, got "${o.port}"`);
        const res = initBridge({ dir: o.dir, host: o.host, port, listenHost: o.listenHost, user: o.user, force: o.force === true });
        process.stderr.write(`wrote ${res.configFile} (and key.pem, cert.pem)\nshare URI for "${o.user}" (keep it secret):\n`);
        process.stdout.write(`${res.uri}\n`);
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('demo')
    .description('run a bridge and a client on loopback, for trying Postern at once')
    .version(VERSION)
    .option('--listen <host:port>', 'SOCKS5 listen address', '127.0.0.1:1080')
    .option('--allow-private', 'let the demo bridge reach loopback and private addresses')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action((o) => runDemo(o));

  return program;
}

process.on('uncaughtException', (err) => {
  process.stderr.write(`postern: internal error: ${err.stack ?? err.message}\n`);
  process.exit(70);
});

buildProgram()
  .parseAsync(process.argv)
  .catch((err) => fail(err));
