import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

export type { Logger };

export interface LogOptions {
  level?: string;
  /** Human-readable output; default: when stdout is a terminal. */
  pretty?: boolean;
  /** Where pretty output goes instead of stdout (the client's status line wraps stdout to keep itself below the records). */
  prettyDestination?: NodeJS.WritableStream;
  /** Operator opt-in: log destinations and client addresses. Off by default (privacy). */
  logDestinations?: boolean;
}

/** Paths pino replaces with [redacted] wherever they appear in a log object. */
export const REDACT_PATHS = [
  'secret',
  'password',
  'pass',
  'token',
  'authorization',
  'pin',
  'uri',
  '*.secret',
  '*.password',
  '*.pass',
  '*.token',
  '*.authorization',
  '*.uri',
  'req.headers.authorization',
];

let pretty: typeof PinoPretty | undefined;

/**
 * Loads pino-pretty (about 1.5 MiB of heap once loaded) when a terminal will read the log: call it
 * before createLogger. A daemon under a service manager (stdout not a terminal) never loads it.
 */
export async function loadPrettyLog(): Promise<void> {
  if (pretty === undefined && process.stdout.isTTY === true) pretty = (await import('pino-pretty')).default;
}

/** One pino logger for a daemon: JSON lines to stdout, or pretty in-process (no worker transport). */
export function createLogger(opts: LogOptions = {}, destination?: NodeJS.WritableStream): Logger {
  const options = {
    level: opts.level ?? process.env.POSTERN_LOG_LEVEL ?? 'info',
    base: undefined,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  // Pretty only once loadPrettyLog loaded it (it loads it only for a terminal); JSON lines otherwise.
  const usePretty = opts.pretty ?? (destination === undefined && process.stdout.isTTY === true);
  if (usePretty && pretty !== undefined) {
    return pino(
      options,
      // NO_COLOR (https://no-color.org): any value turns colour off.
      pretty({ sync: true, colorize: process.stdout.isTTY === true && !process.env.NO_COLOR, ignore: 'pid,hostname', ...(opts.prettyDestination !== undefined ? { destination: opts.prettyDestination } : {}) }),
    );
  }
  return pino(options, destination ?? pino.destination({ fd: 1, sync: false }));
}

/** A logger that drops everything (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
