/**
 * `postern doctor`: checks a share link step by step, each with its timing, and says which step
 * failed and what to do about it. Steps: URI parse, DNS, TCP, TLS and pin, WebSocket upgrade and
 * authentication, a test stream's round-trip time, and a throughput sample (past the first 16 KB
 * and past 1 MiB, where resets and throttling show).
 *
 * Nothing here prints; the caller renders the events. No result holds the secret, the path or the
 * pin of the link.
 */
import dns from 'node:dns/promises';
import net from 'node:net';
import tls from 'node:tls';
import { formatHostPort, targetFromHost, type Target } from '../core/address.js';
import { PosternError } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import type { Logger } from '../log/logger.js';
import { MuxSession } from '../mux/session.js';
import type { MuxStream } from '../mux/stream.js';
import { peerSpkiSha256, pinMatches } from '../transport/certs.js';
import { errnoOf } from '../transport/dialer.js';
import { CLIENT_TLS_MIN_PROTOCOL, clientHelloOptions, tlsProtocolTooOld } from '../transport/tls-profile.js';
import type { Dialer } from '../transport/types.js';
import { DEFAULT_TRANSPORT, H2_MODES, parseShareUri, type BridgeInfo } from '../transport/uri.js';
import { english, type Translate } from '../i18n/messages.js';

export type StepName = 'uri' | 'dns' | 'tcp' | 'tls' | 'auth' | 'stream' | 'throughput';
export type StepStatus = 'ok' | 'fail' | 'skip' | 'warn';

/** A step's title in the reader's language. */
export function stepTitle(step: StepName, t: Translate = english): string {
  return t(`doctor.title.${step}`);
}

export interface StepResult {
  step: StepName;
  status: StepStatus;
  ms: number;
  /** What was found (ok/warn/skip) or what went wrong (fail). Never holds a secret. */
  detail: string;
  /** For a failure: what to do about it. */
  hint?: string;
  /** Machine-readable figures (ms, bytes, MB/s…). */
  data?: Record<string, number | string>;
}

export interface DoctorOptions {
  uri: string;
  limits: Limits;
  logger: Logger;
  /** Where the test stream goes (through the bridge); default example.com:80. */
  target?: { host: string; port: number };
  /** An http:// URL the throughput sample downloads through the bridge; none → skipped. */
  download?: string;
  onStart?: (step: StepName) => void;
  onResult?: (r: StepResult) => void;
  /** The language of details and hints (default English, as in --json). */
  t?: Translate;
  /** Opens the test connection (transport/registry.ts bridgeDialer); its problem() with the link fails the uri step. */
  dialer: Dialer;
}

export const DEFAULT_TARGET = { host: 'example.com', port: 80 };
/** Throughput marks: after the first 16 KB (initial windows, slow start) and after 1 MiB. */
export const FIRST_MARK_BYTES = 16 * 1024;
export const SECOND_MARK_BYTES = 1024 * 1024;
const PINGS_COUNT = 3;

/** Thrown inside a step: ends it as a failure with this detail and hint. */
class StepFailure extends Error {
  constructor(
    readonly detail: string,
    readonly hint: string,
    readonly data?: Record<string, number | string>,
  ) {
    super(detail);
  }
}

/** The messages doctor can end with; README's troubleshooting section quotes each (a test checks). */
const HINT_NAMES = [
  'badUri',
  'dns',
  'refused',
  'relayRefused',
  'tcpTimeout',
  'reset',
  'pin',
  'untrusted',
  'tlsFailed',
  'tlsOld',
  'alpn',
  'alpn.h2',
  'notFound',
  'notBridge',
  'clock',
  'upgradeCut',
  'stream',
  'throughputCut',
] as const;
type HintName = (typeof HINT_NAMES)[number];
/** The hints in English (README's troubleshooting section quotes each; a test checks). */
export const HINTS = Object.fromEntries(HINT_NAMES.map((h) => [h, english(`doctor.hint.${h}`)])) as Record<HintName, string>;


function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(onTimeout()), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Runs every step in order, stopping at the first failure. Returns all results. */
export async function runDoctor(o: DoctorOptions): Promise<StepResult[]> {
  const t = o.t ?? english;
  const hint = (h: HintName): string => t(`doctor.hint.${h}`);
  const results: StepResult[] = [];
  const run = async (step: StepName, fn: () => Promise<Omit<StepResult, 'step' | 'ms'>>): Promise<boolean> => {
    o.onStart?.(step);
    const t0 = performance.now();
    let r: StepResult;
    try {
      r = { step, ms: 0, ...(await fn()) };
    } catch (err) {
      if (err instanceof StepFailure) {
        r = { step, ms: 0, status: 'fail', detail: err.detail, hint: err.hint };
        if (err.data) r.data = err.data;
      } else {
        r = { step, ms: 0, status: 'fail', detail: t('doctor.fail.unexpected', { message: (err as Error).message }), hint: t('doctor.hint.bug') };
      }
    }
    r.ms = Math.round(performance.now() - t0);
    results.push(r);
    o.onResult?.(r);
    return r.status !== 'fail';
  };
  const skipRest = (from: StepName[]): void => {
    for (const step of from) {
      const r: StepResult = { step, status: 'skip', ms: 0, detail: t('doctor.skip.earlier') };
      results.push(r);
      o.onResult?.(r);
    }
  };
  const order: StepName[] = ['uri', 'dns', 'tcp', 'tls', 'auth', 'stream', 'throughput'];
  const after = (s: StepName) => order.slice(order.indexOf(s) + 1);

  let info!: BridgeInfo;
  let address!: string;
  let session: MuxSession | undefined;
  let transportName = '?';
  try {
    if (
      !(await run('uri', async () => {
        try {
          info = parseShareUri(o.uri);
          const problem = o.dialer.problem(info);
          if (problem !== null) throw new PosternError('E_BAD_URI', problem);
        } catch (err) {
          throw new StepFailure(t('doctor.fail.uri', { reason: (err as Error).message }), hint('badUri'));
        }
        // The names a front routes by (protocol.md §1 sni, host), when the link sets them.
        const names = [
          ...(info.sni !== undefined ? [t('doctor.ok.uri.sni', { name: info.sni })] : []),
          ...(info.httpHost !== undefined ? [t('doctor.ok.uri.host', { host: info.httpHost })] : []),
        ];
        const how = [t(info.plain ? 'doctor.ok.uri.plain' : info.pin ? 'doctor.ok.uri.pin' : 'doctor.ok.uri.ca'), ...names].join(', ');
        if (info.connect !== undefined) {
          return { status: 'ok', detail: t('doctor.ok.uri.relay', { hostPort: formatHostPort(info), relay: formatHostPort(info.connect), how }) };
        }
        return { status: 'ok', detail: t('doctor.ok.uri', { hostPort: formatHostPort(info), how }) };
      }))
    )
      return (skipRest(after('uri')), results);

    // TCP goes to the relay when the link names one (protocol.md §1 connect); TLS still checks the bridge.
    const relay = info.connect !== undefined;
    const dial = info.connect ?? info;
    if (
      !(await run('dns', async () => {
        if (net.isIP(dial.host) !== 0) {
          address = dial.host;
          return { status: 'ok', detail: t(relay ? 'doctor.ok.dns.literal.relay' : 'doctor.ok.dns.literal') };
        }
        try {
          const all = await withTimeout(dns.lookup(dial.host, { all: true }), o.limits.DIAL_TIMEOUT_MS, () => new Error('ETIMEOUT'));
          address = all[0]!.address;
          return { status: 'ok', detail: t(all.length === 1 ? 'doctor.ok.dns.one' : 'doctor.ok.dns', { host: dial.host, count: all.length }), data: { addresses: all.length } };
        } catch (err) {
          throw new StepFailure(t('doctor.fail.dns', { host: dial.host, code: errnoOf(err) }), hint('dns'));
        }
      }))
    )
      return (skipRest(after('dns')), results);

    let sock: net.Socket | undefined;
    if (
      !(await run('tcp', async () => {
        sock = await connectTcp(address, dial.port, o.limits.DIAL_TIMEOUT_MS, t, relay);
        return { status: 'ok', detail: t(relay ? 'doctor.ok.tcp.relay' : 'doctor.ok.tcp', { port: dial.port }) };
      }))
    )
      return (skipRest(after('tcp')), results);

    const tlsOk = await run('tls', async () => {
      const s = sock!;
      try {
        if (info.plain) return { status: 'skip', detail: t('doctor.skip.tls.plain') };
        return await checkTls(s, info, o.limits.DIAL_TIMEOUT_MS, t, (alpn) => o.dialer.alpnProblem(info, alpn));
      } finally {
        s.destroy();
      }
    });
    if (!tlsOk) return (skipRest(after('tls')), results);

    if (
      !(await run('auth', async () => {
        try {
          const transport = await o.dialer.dial(info, { limits: o.limits, logger: o.logger });
          transportName = transport.transportName ?? '?';
          session = new MuxSession(transport, { role: 'client', limits: o.limits, logger: o.logger });
          session.on('close', () => undefined);
        } catch (err) {
          throw authFailure(err, t);
        }
        const rtts: number[] = [];
        for (let i = 0; i < PINGS_COUNT; i++) {
          rtts.push(await withTimeout(session.ping(), o.limits.DIAL_TIMEOUT_MS, () => new StepFailure(t('doctor.fail.pings'), hint('upgradeCut'))));
        }
        const ping = Math.round(Math.min(...rtts) * 10) / 10;
        // h2 carries a session in one of two modes (protocol.md §12.2, §12.3): say which the link used.
        const mode = transportName === 'h2' ? (info.mode ?? H2_MODES[0]) : undefined;
        const shown = mode !== undefined ? `${transportName} (${mode})` : transportName;
        return { status: 'ok', detail: t('doctor.ok.auth', { ms: ping, transport: shown }), data: { pingMs: ping, transport: transportName, ...(mode !== undefined ? { mode } : {}) } };
      }))
    )
      return (skipRest(after('auth')), results);

    const target = targetFromHost((o.target ?? DEFAULT_TARGET).host, (o.target ?? DEFAULT_TARGET).port);
    if (
      !(await run('stream', async () => {
        const t0 = performance.now();
        const stream = await openStream(session!, target, t);
        const openMs = Math.round(performance.now() - t0);
        stream.destroy();
        return { status: 'ok', detail: t('doctor.ok.stream', { ms: openMs }), data: { openMs } };
      }))
    )
      return (skipRest(after('stream')), results);

    await run('throughput', async () => {
      if (o.download === undefined) return { status: 'skip', detail: t('doctor.skip.throughput') };
      return sampleThroughput(session!, o.download, o.limits.DOCTOR_DOWNLOAD_TIMEOUT_MS, t);
    });
    return results;
  } finally {
    session?.close();
  }
}

/** `relay`: the address is the link's relay (connect=), and the messages say so. */
function connectTcp(host: string, port: number, timeoutMs: number, t: Translate, relay: boolean): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new StepFailure(t(relay ? 'doctor.fail.tcp.timeout.relay' : 'doctor.fail.tcp.timeout', { port, ms: timeoutMs }), t('doctor.hint.tcpTimeout')));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      s.on('error', () => undefined);
      resolve(s);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      const code = errnoOf(err);
      if (code === 'ECONNREFUSED') reject(new StepFailure(t(relay ? 'doctor.fail.tcp.refused.relay' : 'doctor.fail.tcp.refused', { port }), t(relay ? 'doctor.hint.relayRefused' : 'doctor.hint.refused')));
      else if (code === 'ECONNRESET') reject(new StepFailure(t('doctor.fail.tcp.reset'), t('doctor.hint.reset')));
      else reject(new StepFailure(t('doctor.fail.tcp.other', { code }), t('doctor.hint.tcpTimeout')));
    });
  });
}

/**
 * TLS handshake on an open socket; checks the pin (or the CA chain and name without one), then that
 * the link's transport can run on the ALPN the bridge chose (`alpnProblem`: Dialer.alpnProblem).
 */
function checkTls(
  sock: net.Socket,
  info: BridgeInfo,
  timeoutMs: number,
  t: Translate,
  alpnProblem: (alpn: string | null) => string | null,
): Promise<Omit<StepResult, 'step' | 'ms'>> {
  return new Promise((resolve, reject) => {
    const servername = info.sni ?? (net.isIP(info.host) === 0 ? info.host : undefined);
    const opts: tls.ConnectionOptions = { ...clientHelloOptions(), socket: sock, host: info.host, rejectUnauthorized: false };
    if (servername !== undefined) opts.servername = servername;
    const s = tls.connect(opts);
    let done = false;
    const finish = (f: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      f();
    };
    const timer = setTimeout(() => finish(() => reject(new StepFailure(t('doctor.fail.tls.timeout', { ms: timeoutMs }), t('doctor.hint.tlsFailed')))), timeoutMs);
    s.on('error', (err) => {
      const code = errnoOf(err);
      if (code === 'ECONNRESET') finish(() => reject(new StepFailure(t('doctor.fail.tls.reset'), t('doctor.hint.reset'))));
      else if (/alert/i.test(err.message)) finish(() => reject(new StepFailure(t('doctor.fail.tls.alert', { alert: err.message.replace(/^.*alert /i, '').slice(0, 60) }), t('doctor.hint.tlsFailed'))));
      else finish(() => reject(new StepFailure(t('doctor.fail.tls.other', { code }), t('doctor.hint.tlsFailed'))));
    });
    s.once('close', () => finish(() => reject(new StepFailure(t('doctor.fail.tls.closed'), t('doctor.hint.reset')))));
    s.once('secureConnect', () => {
      const version = s.getProtocol() ?? '?';
      if (tlsProtocolTooOld(s.getProtocol())) {
        finish(() => reject(new StepFailure(t('doctor.fail.tls.old', { version, min: CLIENT_TLS_MIN_PROTOCOL }), t('doctor.hint.tlsOld'))));
        return;
      }
      // The protocol the bridge's front chose (ALPN), which decides the transport (registry.ts chooseDialer).
      const alpn = typeof s.alpnProtocol === 'string' ? s.alpnProtocol : null;
      const data = { tls: version, alpn: alpn ?? 'none' };
      const protocol = alpn ?? t('doctor.ok.tls.noAlpn');
      if (info.pin !== undefined) {
        if (!pinMatches(peerSpkiSha256(s), info.pin)) {
          finish(() => reject(new StepFailure(t('doctor.fail.pin'), t('doctor.hint.pin'))));
          return;
        }
      } else if (!s.authorized) {
        const why = String(s.authorizationError ?? 'not verified');
        finish(() => reject(new StepFailure(t('doctor.fail.untrusted', { why }), t('doctor.hint.untrusted'))));
        return;
      }
      const problem = alpnProblem(alpn);
      if (problem !== null) {
        const transport = info.transport ?? DEFAULT_TRANSPORT;
        finish(() => reject(new StepFailure(t('doctor.fail.tls.alpn', { protocol, transport }), t(transport === 'h2' ? 'doctor.hint.alpn.h2' : 'doctor.hint.alpn'))));
        return;
      }
      if (info.pin !== undefined) {
        finish(() => resolve({ status: 'ok', detail: t('doctor.ok.tls.pin', { version, protocol }), data }));
      } else {
        finish(() => resolve({ status: 'ok', detail: t('doctor.ok.tls.ca', { version, protocol, name: servername ?? info.host }), data }));
      }
    });
  });
}

/** Maps a dial error (after TCP and TLS passed on their own) to what it means for the user. */
function authFailure(err: unknown, t: Translate): StepFailure {
  const e = err instanceof PosternError ? err : new PosternError('E_DIAL', (err as Error).message);
  const code: string = e.code;
  if (code === 'E_CLOCK_SKEW') {
    const by = /differs by (\d+) s/.exec(e.message)?.[1];
    return new StepFailure(t('doctor.fail.clock', { by: by !== undefined ? t('doctor.fail.clock.by', { seconds: by }) : '' }), t('doctor.hint.clock'));
  }
  if (code === 'E_AUTH_REJECTED') {
    const status = /answered (\d{3})/.exec(e.message)?.[1];
    if (status === '404') return new StepFailure(t('doctor.fail.auth.404'), t('doctor.hint.notFound'));
    if (status !== undefined) return new StepFailure(t('doctor.fail.auth.status', { status }), t('doctor.hint.notBridge'));
    return new StepFailure(t('doctor.fail.auth.notws'), t('doctor.hint.notBridge'));
  }
  if (code === 'E_PIN_MISMATCH') return new StepFailure(t('doctor.fail.pin'), t('doctor.hint.pin'));
  if (code === 'E_TLS') return new StepFailure(t('doctor.fail.auth.tls2'), t('doctor.hint.tlsFailed'));
  return new StepFailure(t('doctor.fail.auth.cut'), t('doctor.hint.upgradeCut'));
}

async function openStream(session: MuxSession, target: Target, t: Translate): Promise<MuxStream> {
  try {
    return await session.open(target);
  } catch (err) {
    const code = err instanceof PosternError ? err.code : 'E_GENERAL';
    throw new StepFailure(t('doctor.fail.stream', { code }), t('doctor.hint.stream'));
  }
}

/** Downloads an http:// URL through the session; times the first 16 KB and 1 MiB of body. */
async function sampleThroughput(session: MuxSession, url: string, timeoutMs: number, t: Translate): Promise<Omit<StepResult, 'step' | 'ms'>> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StepFailure(t('doctor.fail.download.url'), t('doctor.hint.downloadUrl'));
  }
  if (u.protocol !== 'http:') throw new StepFailure(t('doctor.fail.download.scheme'), t('doctor.hint.downloadUrl'));
  const port = u.port === '' ? 80 : Number(u.port);
  const stream = await openStream(session, targetFromHost(u.hostname, port), t);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    let header = Buffer.alloc(0);
    let body = 0;
    let first: number | undefined;
    let second: number | undefined;
    let inBody = false;
    let settled = false;
    const done = (f: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.destroy();
      f();
    };
    const figures = (): Record<string, number | string> => {
      const out: Record<string, number | string> = { bytes: body };
      if (first !== undefined) out.first16KiBMs = Math.round(first);
      if (second !== undefined) {
        out.first1MiBMs = Math.round(second);
        out.mbps = Math.round(((SECOND_MARK_BYTES - FIRST_MARK_BYTES) * 8) / ((second - (first ?? 0)) * 1000) * 10) / 10;
      }
      return out;
    };
    const report = (): void => {
      const d = figures();
      if (second !== undefined) {
        done(() => resolve({ status: 'ok', detail: t('doctor.ok.throughput', { first: d.first16KiBMs!, second: d.first1MiBMs!, mbps: d.mbps! }), data: d }));
      } else {
        done(() => resolve({ status: 'warn', detail: t('doctor.warn.throughput.short', { bytes: body }), data: d }));
      }
    };
    const timer = setTimeout(() => {
      if (second !== undefined) report();
      else done(() => reject(new StepFailure(t('doctor.fail.stalled', { bytes: body, ms: timeoutMs }), t('doctor.hint.throughputCut'), figures())));
    }, timeoutMs);
    stream.on('data', (chunk: Buffer) => {
      if (!inBody) {
        header = Buffer.concat([header, chunk]);
        const end = header.indexOf('\r\n\r\n');
        if (end < 0) {
          if (header.length > 16 * 1024) done(() => reject(new StepFailure(t('doctor.fail.download.nothttp'), t('doctor.hint.downloadFile'))));
          return;
        }
        const status = /^HTTP\/1\.[01] (\d{3})/.exec(header.toString('latin1', 0, Math.min(end, 64)))?.[1];
        if (status !== '200') {
          done(() => reject(new StepFailure(status !== undefined ? t('doctor.fail.download.status', { status }) : t('doctor.fail.download.nothttp'), t('doctor.hint.downloadFile'))));
          return;
        }
        inBody = true;
        body = header.length - end - 4;
      } else {
        body += chunk.length;
      }
      const now = performance.now() - t0;
      if (first === undefined && body >= FIRST_MARK_BYTES) first = now;
      if (second === undefined && body >= SECOND_MARK_BYTES) {
        second = now;
        report();
      }
    });
    stream.once('end', () => {
      if (second === undefined) report();
    });
    stream.once('error', (err) => {
      done(() => reject(new StepFailure(t('doctor.fail.reset', { bytes: body, code: err instanceof PosternError ? err.code : errnoOf(err) }), t('doctor.hint.throughputCut'), figures())));
    });
    const host = u.port === '' ? u.hostname : `${u.hostname}:${u.port}`;
    stream.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: postern-doctor\r\nAccept: */*\r\nConnection: close\r\n\r\n`);
  });
}

/** The link with its secret, path and pin removed, for reports. */
export function redactUri(uri: string): string {
  try {
    const info = parseShareUri(uri);
    const query = [info.pin ? 'pin=[redacted]' : '', info.connect ? `connect=${formatHostPort(info.connect)}` : ''].filter((q) => q !== '');
    return `postern://[redacted]@${formatHostPort(info)}/[redacted]${query.length > 0 ? `?${query.join('&')}` : ''}`;
  } catch {
    return '[redacted]';
  }
}
