/**
 * The client's live status line on a terminal: one line at the bottom of stderr, redrawn in place
 * at most once per STATUS_LINE_INTERVAL_MS — tunnel state, bridge, RTT, open streams, bytes each
 * way, and the last error while the tunnel is not up. Log records (pretty, on the same terminal)
 * and messages are printed above it: the line is cleared, the record written, the line drawn
 * again (`around`, `print`).
 *
 * Shown only when stderr is a terminal, TERM is not "dumb", and neither --no-status nor
 * POSTERN_NO_STATUS=1 is given; never under systemd, in a pipe or in tests. NO_COLOR (any value)
 * keeps the line but drops its colour.
 */
import { formatBytes, type StatusSnapshot, type TunnelView } from '../client/status.js';
import type { ErrorCode } from '../core/errors.js';
import type { MessageKey, Translate } from '../i18n/messages.js';

const CLEAR = '\r\x1b[2K';
const COLOUR: Record<TunnelView, string> = { up: '\x1b[32m', connecting: '\x1b[33m', down: '\x1b[31m' };
const RESET = '\x1b[0m';

/** Whether to show the line: see the file's comment. */
export function statusLineWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv, flag: boolean | undefined): boolean {
  if (flag === false) return false;
  if (env.POSTERN_NO_STATUS !== undefined && env.POSTERN_NO_STATUS !== '' && env.POSTERN_NO_STATUS !== '0') return false;
  if (env.TERM === 'dumb') return false;
  return stream.isTTY === true;
}

export function tunnelStateText(view: TunnelView, t: Translate): string {
  return t(view === 'up' ? 'status.up' : view === 'connecting' ? 'status.connecting' : 'status.down');
}

const ERROR_TEXT: Partial<Record<ErrorCode, MessageKey>> = {
  E_DIAL: 'status.error.E_DIAL',
  E_TLS: 'status.error.E_TLS',
  E_PIN_MISMATCH: 'status.error.E_PIN_MISMATCH',
  E_AUTH_REJECTED: 'status.error.E_AUTH_REJECTED',
  E_CLOCK_SKEW: 'status.error.E_CLOCK_SKEW',
  E_HANDSHAKE_TIMEOUT: 'status.error.E_HANDSHAKE_TIMEOUT',
  E_TUNNEL_DOWN: 'status.error.E_TUNNEL_DOWN',
};

/** A failed dial's code in a few words (never the error's own message, which may name hosts). */
export function statusErrorText(code: ErrorCode, t: Translate): string {
  const key = ERROR_TEXT[code];
  return key !== undefined ? t(key) : t('status.error.other', { code });
}

/**
 * The line's text, cut to `width` characters (a wrapped line could not be redrawn in place); with
 * `colour`, the state word is coloured (escape sequences do not count towards the width).
 */
export function statusLineText(s: StatusSnapshot, t: Translate, width: number, colour = false): string {
  const units = t('status.units').split(' ');
  const state = tunnelStateText(s.tunnel, t);
  const parts = [
    t('status.line.tunnel', { state }),
    t('status.line.bridge', { name: s.bridge }),
    ...(s.rttMs !== null ? [t('status.line.rtt', { ms: s.rttMs })] : []),
    t('status.line.streams', { count: s.streams }),
    t('status.line.bytes', { up: formatBytes(s.bytesUp, units), down: formatBytes(s.bytesDown, units) }),
    ...(s.lastError !== null ? [t('status.line.error', { error: statusErrorText(s.lastError.code, t) })] : []),
  ];
  let text = parts.join(' | ');
  const max = Math.max(10, width - 1);
  if ([...text].length > max) text = `${[...text].slice(0, max - 1).join('')}…`;
  if (!colour) return text;
  const at = text.indexOf(state);
  return at < 0 ? text : `${text.slice(0, at)}${COLOUR[s.tunnel]}${state}${RESET}${text.slice(at + state.length)}`;
}

/** A terminal stream: where the line is drawn. */
export interface StatusStream {
  write(s: string): unknown;
  readonly columns?: number;
}

export class StatusLine {
  private timer: NodeJS.Timeout | null = null;
  private shown = false;
  /** The text drawn last: redrawn as it is after a record, so that the content changes at most once per interval. */
  private last = '';

  constructor(
    private readonly stream: StatusStream,
    private readonly snapshot: () => StatusSnapshot,
    private readonly t: Translate,
    private readonly intervalMs: number,
    private readonly colour: boolean,
  ) {}

  start(): void {
    if (this.timer !== null) return;
    this.draw();
    this.timer = setInterval(() => this.draw(), this.intervalMs);
    this.timer.unref();
  }

  /** Clears the line for good (at shutdown). */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.clear();
  }

  /** Runs `write` (which prints whole lines to the same terminal) with the line out of the way. */
  around(write: () => void): void {
    const was = this.shown;
    this.clear();
    try {
      write();
    } finally {
      if (was && this.timer !== null) this.redraw();
    }
  }

  /** Prints text (whole lines) above the line. */
  print(text: string): void {
    this.around(() => this.stream.write(text));
  }

  private clear(): void {
    if (!this.shown) return;
    this.stream.write(CLEAR);
    this.shown = false;
  }

  private draw(): void {
    // A terminal that reports no size (0 columns, as a bare pseudo-terminal) is taken as 80 wide.
    const columns = this.stream.columns !== undefined && this.stream.columns > 0 ? this.stream.columns : 80;
    this.last = statusLineText(this.snapshot(), this.t, columns, this.colour);
    this.redraw();
  }

  private redraw(): void {
    this.stream.write(`${CLEAR}${this.last}`);
    this.shown = true;
  }
}
