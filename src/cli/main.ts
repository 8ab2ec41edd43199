// First: it sets V8's young generation before the rest of the bundle allocates anything.
import './young-generation.js';
import { Command, Option } from 'commander';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Bridge } from '../bridge/bridge.js';
import { watchConfigFile } from '../bridge/config-watch.js';
import { Client, type BoundListener } from '../client/client.js';
import { resolveBridgeSettings, validateBridgeConfig, type BridgeConfig, type BridgeFlags } from '../config/bridge.js';
import { formatHostPort, isLoopbackHost, parseHostPort, targetFromHost } from '../core/address.js';
import { exitStatus, PosternError } from '../core/errors.js';
import { defaultLimits } from '../core/limits.js';
import { createLogger, loadPrettyLog, type Logger } from '../log/logger.js';
import { generateSecret, parseFeatures } from '../transport/auth.js';
import { spkiSha256 } from '../transport/certs.js';
import { nativeMaskingActive } from '../transport/ws/dialer.js';
import { createDecoyListener } from '../transport/listener.js';
import { createDecoy } from '../decoy/index.js';
import { DEFAULT_TRANSPORT, H2_MODES, TRANSPORT_NAMES, formatShareUri, parseShareUri } from '../transport/uri.js';
import { resolveClientSettings, type ClientFlags } from '../config/client-settings.js';
import { WallStore, defaultWallFile } from '../client/wall.js';
import { doctorCommand } from './doctor.js';
import { initBridge } from './init.js';
import { qrText } from './qr.js';
import { appSetup, noAuthWarning, printLocalSetup } from './client-listeners.js';
import { localCredentials } from '../config/local-credentials.js';
import { printPhoneSetup } from './phone-setup.js';
import { ClientRoute, explainLine, systemLocalResolver, type LocalResolver } from '../client/route.js';
import { ClientStatus } from './client-status.js';
import { localeFromEnv, translator } from '../i18n/messages.js';
import { addUser, listUsers, removeUser, shareUser, shareWarning, signalReload, type ShareOptions } from './users.js';
import { parseFrontOptions, type FrontOptions } from './share.js';

declare const POSTERN_VERSION: string;
const VERSION = typeof POSTERN_VERSION === 'string' ? POSTERN_VERSION : '0.0.0-dev';

/** One-line reason on stderr, exit with the error's status (exitStatus). The only place (with main) that exits. */
function fail(err: unknown): never {
  const msg = err instanceof PosternError ? `${err.code}: ${err.message}` : (err as Error)?.message ?? String(err);
  process.stderr.write(`postern: ${msg}\n`);
  process.exit(exitStatus(err instanceof PosternError ? err.code : undefined));
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
  const addr = formatHostPort(where);
  if (code === 'EADDRINUSE') {
    return new PosternError('E_ADDR_IN_USE', `cannot listen on ${addr}: another program uses it; stop that program, or choose another port (--listen HOST:PORT)`);
  }
  if (code === 'EACCES') {
    const low = where.port > 0 && where.port < 1024;
    return new PosternError(
      'E_LISTEN_DENIED',
      low
        ? `cannot listen on ${addr}: ports below 1024 need privileges; run as root, or grant the capability (sudo setcap cap_net_bind_service=+ep "$(readlink -f "$(command -v node)")"; the systemd unit does this with AmbientCapabilities), or use a port of 1024 or more, e.g. --listen ${formatHostPort({ host: where.host, port: 8443 })}`
        : `cannot listen on ${addr}: permission denied`,
    );
  }
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

async function runBridge(opts: BridgeFlags): Promise<void> {
  let config: BridgeConfig;
  // The file, then the flags (src/config/bridge.ts), again on every reload.
  const load = () => resolveBridgeSettings(opts).config;
  try {
    config = load();
  } catch (err) {
    fail(err);
  }
  const log = createLogger({ level: opts.logLevel ?? config.log.level });
  logStartup(log);
  const bridge = new Bridge({ config, logger: log, ...testBridgeFeatures() });
  let addr;
  try {
    addr = await bridge.start();
  } catch (err) {
    fail(listenError(err, config.listen));
  }
  log.info({ role: 'bridge', address: formatHostPort(addr), port: addr.port, tls: config.tls !== null, allowPrivate: config.allowPrivate }, 'listening');
  // Users and policy are reloaded on SIGHUP and when the config file changes (a failed reload
  // keeps the running config and logs why).
  process.on('SIGHUP', () => bridge.reloadFrom(load, 'SIGHUP'));
  const watcher = watchConfigFile(opts.config, config.limits.CONFIG_WATCH_DEBOUNCE_MS, () => bridge.reloadFrom(load, 'file'), log);
  onShutdown(log, () => {
    watcher.close();
    return bridge.stop();
  });
}

/** `postern decoy`: the bridge's decoy website alone — same config, certificate and limits, no tunnel. */
async function runDecoy(opts: { config: string; listen?: string; logLevel?: string; http2?: boolean }): Promise<void> {
  let config: BridgeConfig;
  try {
    config = resolveBridgeSettings(opts).config;
  } catch (err) {
    fail(err);
  }
  const log = createLogger({ level: opts.logLevel ?? config.log.level });
  logStartup(log);
  const listener = createDecoyListener({
    host: config.listen.host,
    port: config.listen.port,
    tls: config.tls ? { keyPem: config.tls.keyPem, certPem: config.tls.certPem } : null,
    decoy: createDecoy(config.decoy, config.limits),
    limits: config.limits,
    logger: log,
    http2: config.http2,
  });
  let addr;
  try {
    addr = await listener.listen();
  } catch (err) {
    fail(listenError(err, config.listen));
  }
  log.info({ role: 'decoy', address: formatHostPort(addr), port: addr.port, tls: config.tls !== null, decoy: config.decoy.type }, 'listening');
  onShutdown(log, () => listener.close());
}

/**
 * TESTING ONLY: $POSTERN_TEST_BRIDGE_FEATURES (comma-separated, may be empty) replaces the features
 * the bridge announces in its 101 (protocol.md §2), so tests can play a bridge older than a feature.
 */
function testBridgeFeatures(): { features?: string[] } {
  const text = process.env.POSTERN_TEST_BRIDGE_FEATURES;
  return text === undefined ? {} : { features: [...parseFeatures(text)] };
}

/**
 * TESTING ONLY: $POSTERN_TEST_HOSTS, a JSON object of name → [addresses], replaces the system's
 * lookups for routing (a name not in it does not resolve), so tests give names to loopback
 * addresses and never query real DNS.
 */
function localResolver(): LocalResolver {
  const text = process.env.POSTERN_TEST_HOSTS;
  if (text === undefined || text === '') return systemLocalResolver;
  const table = JSON.parse(text) as Record<string, string[]>;
  return async (name) => {
    const found = Object.hasOwn(table, name.toLowerCase()) ? table[name.toLowerCase()] : undefined;
    if (found === undefined) throw Object.assign(new Error('not in POSTERN_TEST_HOSTS'), { code: 'ENOTFOUND' });
    return found;
  };
}

/** `postern client --explain HOST[:PORT]` (repeatable): which rule matches each and its action; nothing is started. */
async function runExplain(opts: ClientFlags, all: readonly string[]): Promise<void> {
  try {
    const settings = resolveClientSettings({ flags: opts, env: process.env }, { forExplain: true }).route;
    const route = new ClientRoute({ router: settings.router, resolver: localResolver(), limits: defaultLimits(), allowLanPrivate: settings.allowLanPrivate });
    for (const what of all) {
      const hp = parseHostPort(what) ?? (/^[^:\s]+$|^\[[^\]]+\]$/.test(what) ? { host: what, port: 443 } : null);
      if (hp === null) throw new PosternError('E_CONFIG', `--explain: expected HOST or HOST:PORT, got "${what}"`);
      const target = targetFromHost(hp.host, hp.port);
      const routed = await route.route(target, new AbortController().signal);
      process.stdout.write(`${explainLine(target, routed)}\n`);
    }
  } catch (err) {
    fail(err);
  }
}

/** A secret read from a file (--pass-file, --bridge-file): its lines, without blank and # lines. */
function secretLines(file: string, flag: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new PosternError('E_CONFIG', `${flag} ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length === 0) throw new PosternError('E_CONFIG', `${flag} ${file}: the file is empty`);
  return lines;
}

/** --bridge-file and --pass-file: secrets that then need not sit in /proc/PID/cmdline. */
function readSecretFiles<T extends { bridge?: string | string[]; bridgeFile?: string; pass?: string; passFile?: string }>(opts: T): T {
  const out = { ...opts };
  if (opts.bridgeFile !== undefined) {
    const given = opts.bridge === undefined ? [] : Array.isArray(opts.bridge) ? opts.bridge : [opts.bridge];
    out.bridge = [...secretLines(opts.bridgeFile, '--bridge-file'), ...given];
  }
  if (opts.passFile !== undefined) {
    if (opts.pass !== undefined) throw new PosternError('E_CONFIG', '--pass and --pass-file: give one');
    const lines = secretLines(opts.passFile, '--pass-file');
    if (lines.length > 1) throw new PosternError('E_CONFIG', `--pass-file ${opts.passFile}: expected one line (the password), found ${lines.length}`);
    out.pass = lines[0];
  }
  return out;
}

type RunClientOptions = ClientFlags & { bridgeFile?: string; passFile?: string; explain?: string[]; status?: boolean };

/** Commander collector for a repeatable option. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

async function runClient(given: RunClientOptions): Promise<void> {
  let client: Client;
  let log: Logger;
  let settings: ReturnType<typeof resolveClientSettings>;
  let opts: RunClientOptions;
  // The status line, the status page and the doctor hint (src/cli/client-status.ts).
  const status = new ClientStatus(given.status);
  try {
    opts = readSecretFiles(given);
    if (opts.explain !== undefined) return await runExplain(opts, opts.explain);
    // Defaults → config file → environment (POSTERN_*) → flags, resolved once (src/config/client-settings.ts).
    settings = resolveClientSettings({ flags: opts, env: process.env });
    log = createLogger({ level: settings.logLevel, ...status.logOptions() });
    logStartup(log);
    const s = settings;
    // WhatsApp accepts any certificate on its TLS port; a fresh one each start is enough.
    const cert = s.whatsapp.some((e) => e.tls) ? (await import('../transport/self-signed.js')).generateSelfSigned({ commonName: 'localhost', altNames: ['localhost'] }) : undefined;
    client = new Client({
      bridge: s.bridges[0] as (typeof s.bridges)[number],
      bridges: s.bridges,
      strategy: s.strategy,
      rotate: s.rotate,
      ...(s.budget !== undefined ? { budget: s.budget } : {}),
      wallStore: new WallStore(defaultWallFile(), s.limits.WALL_BUDGET_TTL_MS, (err) => log.warn({ err: err.message }, 'cannot read or write the learned connection budgets')),
      listen: s.listen,
      socksListen: s.socks,
      httpListen: s.http,
      forwards: [...s.forwards, ...s.whatsapp.map((w) => ({ name: w.name, listen: w.listen, target: w.target, tls: w.tls ? cert : undefined }))],
      auth: s.auth,
      allowOpenProxy: s.insecureOpenProxy,
      exactReplies: s.exactReplies,
      limits: s.limits,
      logger: log,
      route: { ...s.route, resolver: localResolver() },
      localPages: status.pages({ auth: s.auth, listeners: () => client.listeners, limits: s.limits }),
    });
  } catch (err) {
    fail(err);
  }
  let addr;
  try {
    addr = await client.start();
  } catch (err) {
    fail(listenError(err, settings.listen));
  }
  const auth = settings.auth !== null;
  log.info({ role: 'socks', address: formatHostPort(addr), port: addr.port, auth, http: true }, 'listening');
  for (const l of client.listeners.slice(1)) log.info({ role: l.role, name: l.name, address: formatHostPort(l), port: l.port }, 'listening');
  if (!auth) process.stderr.write(noAuthWarning(addr.host, addr.port));
  printLocalSetup(client.listeners, settings);
  printPhoneSetup(client.listeners, { lan: settings.lan, auth: settings.auth });
  status.start(client.tunnel, settings.limits, {
    ...(opts.bridgeFile !== undefined ? { bridgeFile: opts.bridgeFile } : {}),
    bridgeFlag: opts.bridgeFile === undefined && opts.bridge !== undefined,
    bridgeEnv: opts.bridge === undefined && opts.bridgeFile === undefined && Boolean(process.env.POSTERN_BRIDGE),
    ...(settings.configFile !== undefined ? { configFile: settings.configFile } : {}),
  });
  // Bytes per route action (never destinations): on SIGUSR2 and at shutdown.
  const counters = () => log.info({ route: client.route.stats.snapshot() }, 'route counters');
  process.on('SIGUSR2', counters);
  onShutdown(log, () => {
    status.stop();
    counters();
    return client.stop(defaultLimits().SHUTDOWN_DRAIN_MS);
  });
}

async function runDemo(opts: { listen: string; allowPrivate?: boolean; logLevel?: string; auth?: boolean; status?: boolean }): Promise<void> {
  let listen: { host: string; port: number };
  let creds: { username: string; password: string } | null = null;
  try {
    listen = hostPort(opts.listen, '--listen');
    if (!isLoopbackHost(listen.host)) throw new PosternError('E_CONFIG', `--listen: the demo listens on loopback only, got "${opts.listen}"`);
    // The same stored credentials as `postern client`: what the user sets up now keeps working.
    if (opts.auth !== false) creds = localCredentials(process.env).credentials;
  } catch (err) {
    fail(err);
  }
  const status = new ClientStatus(opts.status);
  const log = createLogger({ level: opts.logLevel ?? 'info', ...status.logOptions() });
  logStartup(log);
  // A throwaway bridge on loopback with a fresh key, certificate and secret, all in memory.
  const { generateSelfSigned } = await import('../transport/self-signed.js');
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
  const client: Client = new Client({
    bridge: parseShareUri(uri),
    listen,
    auth: creds,
    allowOpenProxy: false,
    limits: defaultLimits(),
    logger: log.child({ demo: 'client' }),
    localPages: status.pages({ auth: creds, listeners: (): readonly BoundListener[] => client.listeners, limits: defaultLimits() }),
  });
  const caddr = await client.start().catch((err) => fail(listenError(err, listen)));
  log.info({ role: 'bridge', address: formatHostPort(baddr), port: baddr.port }, 'listening');
  log.info({ role: 'socks', address: formatHostPort(caddr), port: caddr.port, auth: creds !== null }, 'listening');
  if (creds === null) process.stderr.write(noAuthWarning(caddr.host, caddr.port));
  const app = appSetup(caddr.host, caddr.port, creds);
  const t = translator(localeFromEnv(process.env));
  process.stderr.write(
    [
      '',
      t('demo.running'),
      t('demo.proxy', { hostPort: formatHostPort(caddr) }),
      ...(creds !== null ? [t('client.setup.username', { username: creds.username }), t('client.setup.password', { password: creds.password })] : []),
      t('demo.try', { socks: app.curlSocks, http: app.curlHttp }),
      t('client.setup.page', { url: `http://${formatHostPort(caddr)}/` }),
      t(opts.allowPrivate ? 'demo.private.allowed' : 'demo.private.refused'),
      t('demo.stop'),
      '',
    ].join('\n') + '\n',
  );
  status.start(client.tunnel, defaultLimits(), null);
  onShutdown(log, async () => {
    status.stop();
    await client.stop(1_000);
    await bridge.stop(1_000);
  });
}

/** The URI on stdout; its QR code on stderr when asked or when stderr is a terminal. */
function printShare(uri: string, qr: boolean | undefined): void {
  process.stdout.write(`${uri}\n`);
  if (qr === true || process.stderr.isTTY === true) process.stderr.write(qrText(uri));
}

export function buildProgram(): Command {
  const program = new Command('postern')
    .description('Censorship-circumvention proxy: SOCKS5 in, multiplexed WebSocket-over-TLS tunnel, bridge out')
    .version(VERSION)
    // A usage error: one line, then the command's usage (not its whole help), exit status 2.
    // Both settings are inherited by the subcommands made below.
    .configureOutput({ outputError: (str, write) => write(`postern: ${str.replace(/^error: /, '')}`) })
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : exitStatus('E_USAGE')));

  program
    .command('bridge')
    .description('run a bridge: accept authenticated wss sessions and connect their streams out')
    .version(VERSION)
    .requiredOption('--config <file>', 'bridge config file (JSON), as written by "postern init"')
    .option('--allow-private', 'allow loopback, private and link-local destinations (tests, local demos)')
    .option('--listen <host:port>', 'override the listen address of the config file')
    .option('--plain', 'serve plain ws (no TLS) on loopback, behind a TLS-terminating proxy such as nginx')
    .option('--insecure-plain-listen', 'with --plain, allow a non-loopback listen address (the proxy link must be private)')
    .option('--http2', 'serve HTTP/2 too: ALPN h2, h2c and the h2 transport (config "http2": true; default off)')
    .option('--no-http2', 'serve HTTP/1.1 and WebSocket only, whatever the config says (config "http2": false, the default)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action((o) => runBridge(o));

  program
    .command('client')
    .description('run a client: a local SOCKS5 and HTTP proxy that tunnels to a bridge; apps must give the username and password it prints')
    .version(VERSION)
    .option('--bridge <uri>', 'the bridge share URI (postern://...); repeat for several bridges [env: POSTERN_BRIDGE]', collect)
    .option('--bridge-file <file>', 'read the share URI(s) from this file, one a line (keeps it out of the process list)')
    .addOption(new Option('--strategy <name>', 'with several bridges: failover (priority order) or spread (least loaded)').choices(['failover', 'spread']))
    .option('--keepalive-ms <ms>', 'a connection silent this long is dead and the session resumes on a new one (default 20000)')
    .option('--resume-timeout-ms <ms>', 'a session not resumed within this time is ended and its streams reset (default 60000)')
    .option('--rotate-bytes <n>', 'move the session to a fresh connection after this many bytes on one (default: never)')
    .option('--rotate-ms <ms>', 'move the session to a fresh connection after this long on one (default: never)')
    .option('--conn-budget <bytes>', 'bytes per tunnel connection before moving to a new one, for networks that freeze or reset connections after a few KB: auto (learned, default), off, bytes from the bridge (16384 or 16k), or both:BYTES counting both directions')
    .option('--dial-interval-ms <ms>', 'new tunnel connections (TLS handshakes) start at least this far apart (default 40)')
    .option('--dial-burst <n>', 'at most this many new tunnel connections within 500 ms (default 3; 0: no such cap)')
    .option('--config <file>', 'client config file (JSON, see configs/client.schema.json) [env: POSTERN_CONFIG]')
    .option('--listen <host:port>', 'the proxy port, SOCKS5 and HTTP (default: 127.0.0.1:1080) [env: POSTERN_LISTEN]')
    .option('--user <name>', 'the username apps must give (SOCKS5 RFC 1929 and HTTP Basic); default: one made on first start and kept [env: POSTERN_USER]')
    .option('--pass <password>', 'the password, with --user; prefer --pass-file or POSTERN_PASS [env: POSTERN_PASS]')
    .option('--pass-file <file>', 'read the password from this file (keeps it out of the process list)')
    .option('--new-credentials', 'replace the stored username and password with new ones')
    .option('--no-auth', 'no username or password, on loopback listeners only (any app on this device can then use the tunnel)')
    .option('--insecure-open-proxy', 'with --no-auth, allow a non-loopback listener too (anyone who reaches it can use the tunnel)')
    .option('--exact-replies', 'answer CONNECT only once the bridge has connected, with the exact error code (one more round trip) [env: POSTERN_EXACT_REPLIES=1]')
    .option('--socks <host:port>', 'also a SOCKS5-only listener here (repeatable)', collect)
    .option('--http <host:port>', 'also an HTTP-proxy-only listener here (repeatable)', collect)
    .option('--forward <[host:]port=host:port>', 'like ssh -L: connections to the local port go to the fixed destination (repeatable; no password, so off loopback needs --lan)', collect)
    .option('--whatsapp', "WhatsApp proxy entry point on the --listen host: chat port 5222, media port 7777 (no password; reaches WhatsApp's servers only; phones need --lan)")
    .option('--whatsapp-ports <list>', 'WhatsApp ports, e.g. chat=5222,media=7777; chat-tls=443 adds the TLS chat port (WhatsApp uses TLS on port 443 only); off turns a role off')
    .option('--whatsapp-target <list>', "TESTING ONLY: replace WhatsApp's servers, e.g. chat=HOST:PORT,media=HOST:PORT")
    .option('--lan', 'share with phones on this network: listen on 0.0.0.0 (or the --listen host) with a password, print links and QR codes')
    .option('--route <preset>', 'which destinations use the tunnel: all (default), messaging-only, domestic-direct, blocked-only (with --route-file)')
    .option('--route-file <file>', 'for --route blocked-only: the list of what goes through the tunnel, one domain or CIDR a line')
    .option('--allow-lan-private', 'let direct routes from a --lan listener reach this computer and private networks')
    .option('--explain <host[:port]>', 'print which route rule matches a destination and its action, then exit (repeatable)', collect)
    .option('--no-status', 'no live status line on the terminal (also POSTERN_NO_STATUS=1; never shown when stderr is not a terminal)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .addHelpText(
      'after',
      [
        '',
        'Apps must give the username and password the client prints at start (made on first start and',
        'kept in $XDG_CONFIG_HOME/postern/local-proxy.json, else ~/.config/postern/local-proxy.json).',
        '',
        'Examples:',
        '  postern client --bridge-file ~/.config/postern/bridge.txt',
        "  POSTERN_BRIDGE='postern://…' postern client",
        '  postern client --bridge-file ~/.config/postern/bridge.txt --user me --pass-file ~/.config/postern/pass.txt',
        '  postern client --bridge-file ~/.config/postern/bridge.txt --lan --whatsapp',
      ].join('\n'),
    )
    .action((o) => runClient(o));

  // Fronting options of a share link (protocol.md §1 connect, sni, host; README "Behind a CDN or reverse proxy").
  const connectOpt = () =>
    new Option('--connect <host:port>', 'a relay (TCP forwarder, e.g. nginx stream) or CDN address the link dials instead of the bridge; TLS name and pin stay the bridge\'s');
  const sniOpt = () => new Option('--sni <name>', 'the TLS server name the link sends (and verifies without a pin), when not the bridge\'s host: a CDN or front\'s name');
  const hostHeaderOpt = () => new Option('--host-header <name[:port]>', 'the HTTP Host (HTTP/2 :authority) the link asks for, when not the TLS name: the name a CDN or reverse proxy routes to the bridge');
  const transportOpt = () => new Option('--transport <name>', `how the link carries the session: ${TRANSPORT_NAMES.join(' or ')} (HTTP/2, for fronts and CDNs that pass no WebSocket)`).default(undefined, DEFAULT_TRANSPORT);
  const modeOpt = () => new Option('--mode <name>', `with --transport h2, how the session is carried: ${H2_MODES.join(' or ')} (for fronts that buffer request bodies)`).default(undefined, H2_MODES[0]);
  const frontOptions = (o: FrontOptions): FrontOptions => ({
    ...(o.transport !== undefined ? { transport: o.transport } : {}),
    ...(o.mode !== undefined ? { mode: o.mode } : {}),
    ...(o.connect !== undefined ? { connect: o.connect } : {}),
    ...(o.sni !== undefined ? { sni: o.sni } : {}),
    ...(o.hostHeader !== undefined ? { hostHeader: o.hostHeader } : {}),
  });

  program
    .command('init')
    .description("create a bridge's config, key, certificate and first user; print the share URI")
    .version(VERSION)
    .requiredOption('--dir <dir>', 'folder to write bridge.json, key.pem and cert.pem into')
    .requiredOption('--host <host>', 'public host name or IP that clients will dial')
    .option('--port <port>', 'port to listen on and to put in the URI', '443')
    .option('--public-port <port>', 'port clients dial, when it is not --port (a container\'s published port, NAT, a front)')
    .option('--listen-host <host>', 'local address to bind', '0.0.0.0')
    .option('--user <name>', 'name of the first user', 'user1')
    .option('--force', 'overwrite existing files')
    .option('--cert <file>', 'use this existing certificate (e.g. Let\'s Encrypt fullchain.pem) instead of a self-signed one')
    .option('--key <file>', 'the private key of --cert')
    .addOption(connectOpt())
    .addOption(sniOpt())
    .addOption(hostHeaderOpt())
    .addOption(transportOpt())
    .addOption(modeOpt())
    .option('--qr', 'print a QR code of the share URI (default: when stderr is a terminal)')
    .action(async (o: { dir: string; host: string; port: string; publicPort?: string; listenHost: string; user: string; force?: boolean; cert?: string; key?: string; qr?: boolean } & FrontOptions) => {
      try {
        const portOf = (text: string, flag: string): number => {
          const n = Number(text);
          if (!/^\d+$/.test(text) || n < 1 || n > 65535) throw new PosternError('E_USAGE', `${flag}: expected 1..65535, got "${text}"`);
          return n;
        };
        const port = portOf(o.port, '--port');
        const publicPort = o.publicPort !== undefined ? portOf(o.publicPort, '--public-port') : undefined;
        if ((o.cert === undefined) !== (o.key === undefined)) throw new PosternError('E_CONFIG', '--cert and --key go together');
        const existing = o.cert !== undefined ? { certFile: o.cert, keyFile: o.key as string } : undefined;
        const front = parseFrontOptions(frontOptions(o), publicPort ?? port); // refuse before writing
        const res = await initBridge({ dir: o.dir, host: o.host, port, ...(publicPort !== undefined ? { publicPort } : {}), listenHost: o.listenHost, user: o.user, force: o.force === true, ...(existing ? { existing } : {}), front });
        process.stderr.write(`wrote ${res.configFile}${existing ? '' : ' (and key.pem, cert.pem)'}\nshare URI for "${o.user}" (keep it secret):\n`);
        printShare(res.uri, o.qr);
      } catch (err) {
        fail(err);
      }
    });

  const users = program.command('users').description("manage a bridge's users: add, remove, list, share").version(VERSION);
  const configOpt = () => new Option('--config <file>', 'bridge config file').default('/etc/postern/bridge.json');
  const shareOptions = (o: { cert?: string } & FrontOptions): ShareOptions => ({
    ...(o.cert !== undefined ? { cert: o.cert } : {}),
    ...frontOptions(o),
  });
  const pidOpt = () => new Option('--pid <pid-or-file>', 'send SIGHUP to this bridge process (a PID or a PID file) so it reloads now');
  users
    .command('add <name>')
    .description('add a user with a fresh secret and print its share URI')
    .addOption(configOpt())
    .addOption(pidOpt())
    .option('--cert <file>', 'certificate clients see, when not the config\'s (e.g. nginx\'s)')
    .addOption(connectOpt())
    .addOption(sniOpt())
    .addOption(hostHeaderOpt())
    .addOption(transportOpt())
    .addOption(modeOpt())
    .option('--qr', 'also print a QR code (default: when stderr is a terminal)')
    .action((name: string, o: { config: string; pid?: string; cert?: string; qr?: boolean } & FrontOptions) => {
      try {
        const uri = addUser(o.config, name, shareOptions(o));
        const warning = shareWarning(o.config, o);
        if (warning !== null) process.stderr.write(`${warning}\n`);
        process.stderr.write(`added "${name}" to ${o.config}\n`);
        if (o.pid !== undefined) process.stderr.write(`sent SIGHUP to ${signalReload(o.pid)}\n`);
        process.stderr.write(`share URI for "${name}" (keep it secret):\n`);
        printShare(uri, o.qr);
      } catch (err) {
        fail(err);
      }
    });
  users
    .command('remove <name>')
    .description('remove a user (a running bridge refuses it after it reloads)')
    .addOption(configOpt())
    .addOption(pidOpt())
    .action((name: string, o: { config: string; pid?: string }) => {
      try {
        removeUser(o.config, name);
        process.stderr.write(`removed "${name}" from ${o.config}\n`);
        if (o.pid !== undefined) process.stderr.write(`sent SIGHUP to ${signalReload(o.pid)}\n`);
      } catch (err) {
        fail(err);
      }
    });
  users
    .command('list')
    .description('print the user names, one a line')
    .addOption(configOpt())
    .action((o: { config: string }) => {
      try {
        for (const n of listUsers(o.config)) process.stdout.write(`${n}\n`);
      } catch (err) {
        fail(err);
      }
    });
  users
    .command('share <name>')
    .description("print a user's share URI")
    .addOption(configOpt())
    .option('--cert <file>', 'certificate clients see, when not the config\'s (e.g. nginx\'s)')
    .addOption(connectOpt())
    .addOption(sniOpt())
    .addOption(hostHeaderOpt())
    .addOption(transportOpt())
    .addOption(modeOpt())
    .option('--qr', 'also print a QR code (default: when stderr is a terminal)')
    .action((name: string, o: { config: string; cert?: string; qr?: boolean } & FrontOptions) => {
      try {
        const uri = shareUser(o.config, name, shareOptions(o));
        const warning = shareWarning(o.config, o);
        if (warning !== null) process.stderr.write(`${warning}\n`);
        printShare(uri, o.qr);
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('doctor [share-uri]')
    .description('check a share link step by step: DNS, TCP, TLS and pin, authentication, a test stream, throughput (the link: the argument, else --bridge-file, --config, $POSTERN_BRIDGE or the default client config file)')
    .version(VERSION)
    .option('--json', 'print a machine-readable report (secrets redacted)')
    .option('--target <host:port>', 'where the test stream goes through the bridge (default: example.com:80)')
    .option('--download <url>', 'an http:// URL (1 MiB or more) to sample throughput through the bridge')
    .option('--config <file>', 'take the link from this client config file (its first bridge) [env: POSTERN_CONFIG]')
    .option('--bridge-file <file>', 'take the link from this file (its first link), as the client\'s --bridge-file')
    .action(async (uri: string | undefined, o: { json?: boolean; target?: string; download?: string; config?: string; bridgeFile?: string }) => {
      let code: number;
      try {
        code = await doctorCommand(uri, o);
      } catch (err) {
        fail(err);
      }
      process.exit(code);
    });

  program
    .command('decoy')
    .description("serve only a bridge's decoy website (same config and certificate, no tunnel), e.g. to compare it with the bridge")
    .version(VERSION)
    .requiredOption('--config <file>', 'bridge config file (JSON)')
    .option('--listen <host:port>', 'override the listen address of the config file')
    .option('--http2', 'serve the decoy over HTTP/2 too (config "http2": true; default off)')
    .option('--no-http2', 'serve HTTP/1.1 only (config "http2": false, the default)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action((o) => runDecoy(o));

  program
    .command('demo')
    .description('run a bridge and a client on loopback, for trying Postern at once')
    .version(VERSION)
    .option('--listen <host:port>', 'SOCKS5 and HTTP proxy listen address (loopback)', '127.0.0.1:1080')
    .option('--allow-private', 'let the demo bridge reach loopback and private addresses')
    .option('--no-auth', 'no username or password (any app on this device can use the proxy)')
    .option('--no-status', 'no live status line on the terminal (also POSTERN_NO_STATUS=1)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action((o) => runDemo(o));

  // After an error, each command prints its own usage line and where to find the rest.
  const withUsage = (cmd: Command, prefix: string): void => {
    const name = `${prefix}${cmd.name()}`;
    cmd.showHelpAfterError(`Usage: ${name} ${cmd.usage()}\n(run "${name} --help" for all options)`);
    for (const sub of cmd.commands) withUsage(sub, `${name} `);
  };
  withUsage(program, '');
  return program;
}

process.on('uncaughtException', (err) => {
  process.stderr.write(`postern: internal error: ${err.stack ?? err.message}\n`);
  process.exit(70);
});

// pino-pretty first, when stdout is a terminal (src/log/logger.ts); a daemon under a service manager never loads it.
loadPrettyLog()
  .then(() => buildProgram().parseAsync(process.argv))
  .catch((err) => fail(err));
