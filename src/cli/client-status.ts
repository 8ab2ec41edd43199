/**
 * What a running `postern client` shows the person at the computer, beside its log records: the
 * live status line on a terminal (status-line.ts), the status page on the proxy port
 * (status-page.ts), and — once, after repeated failed dials — the `postern doctor` command that
 * checks this client's link. All three read one StatusModel (src/client/status.ts).
 */
import { Writable } from 'node:stream';
import type { BoundListener } from '../client/client.js';
import { StatusModel, type StatusSnapshot } from '../client/status.js';
import type { Tunnel } from '../client/tunnel.js';
import type { Credentials } from '../core/credentials.js';
import type { Limits } from '../core/limits.js';
import type { LocalPages } from '../http/server.js';
import { localeFromEnv, translator, type Translate } from '../i18n/messages.js';
import type { LogOptions } from '../log/logger.js';
import { shellWord } from './client-listeners.js';
import { StatusLine, statusLineWanted } from './status-line.js';
import { statusPages } from './status-page.js';

/** Where the client's link came from: `postern doctor` must be told the same. */
export interface LinkSource {
  readonly bridgeFile?: string;
  /** The link was given with --bridge (on the command line: not repeated on the terminal). */
  readonly bridgeFlag: boolean;
  /** $POSTERN_BRIDGE (doctor reads it too). */
  readonly bridgeEnv: boolean;
  /** The config file the link came from. */
  readonly configFile?: string;
}

/** The `postern doctor` command that checks the link this client uses (never the link itself). */
export function doctorCommandFor(src: LinkSource, t: Translate): string {
  if (src.bridgeFile !== undefined) return `postern doctor --bridge-file ${shellWord(src.bridgeFile)}`;
  if (src.bridgeFlag) return `postern doctor '${t('client.doctorHint.flagLink')}'`;
  if (src.bridgeEnv) return 'postern doctor';
  if (src.configFile !== undefined) return `postern doctor --config ${shellWord(src.configFile)}`;
  return 'postern doctor';
}

export class ClientStatus {
  readonly t: Translate;
  /** The line is shown (stderr is a terminal and nobody said no). */
  readonly live: boolean;
  private line: StatusLine | null = null;
  private model: StatusModel | null = null;

  constructor(
    flag: boolean | undefined,
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {
    this.t = translator(localeFromEnv(env));
    this.live = statusLineWanted(stderr, env, flag);
  }

  /** Logger options: pretty records on the terminal go around the line. */
  logOptions(): Pick<LogOptions, 'prettyDestination'> {
    if (!this.live || process.stdout.isTTY !== true) return {};
    const out = process.stdout;
    const dest = new Writable({
      write: (chunk: Buffer | string, _enc, cb) => {
        const around = (): void => void out.write(chunk);
        if (this.line !== null) this.line.around(around);
        else around();
        cb();
      },
    });
    return { prettyDestination: dest };
  }

  /** The status page for the proxy ports; it reads the model once start() made it. */
  pages(o: { auth: Credentials | null; listeners: () => readonly BoundListener[]; limits: Limits }): LocalPages {
    return statusPages({ status: () => this.snapshot(), auth: o.auth, listeners: o.listeners, limits: o.limits, env: this.env });
  }

  /** Once the client started: the model, the doctor hint (none without a link source: the demo), and the line. */
  start(tunnel: Tunnel, limits: Limits, link: LinkSource | null): void {
    this.model = new StatusModel(tunnel, limits, (count) => {
      if (link !== null) this.print(`${this.t('client.doctorHint', { count, command: doctorCommandFor(link, this.t) })}\n`);
    });
    if (!this.live) return;
    const colour = this.env.NO_COLOR === undefined || this.env.NO_COLOR === '';
    this.line = new StatusLine(this.stderr, () => this.snapshot(), this.t, limits.STATUS_LINE_INTERVAL_MS, colour);
    this.line.start();
  }

  snapshot(): StatusSnapshot {
    if (this.model === null) {
      return { tunnel: 'connecting', bridge: '', rttMs: null, streams: 0, bytesUp: 0, bytesDown: 0, lastError: null, failedDials: 0, bridges: [] };
    }
    return this.model.snapshot();
  }

  /** Text for the person at the terminal (whole lines), above the line when there is one. */
  print(text: string): void {
    if (this.line !== null) this.line.print(text);
    else this.stderr.write(text);
  }

  stop(): void {
    this.line?.stop();
    this.line = null;
    this.model?.close();
  }
}
