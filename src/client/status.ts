/**
 * The client's status as people see it — on the live status line (src/cli/status-line.ts) and on
 * the status page the proxy port serves (src/cli/status-page.ts): one model both read, built from
 * the Tunnel's own counters (no polling of sockets, nothing per chunk). It also notices repeated
 * failed dials, so that the client can say once to run `postern doctor`.
 */
import type { ErrorCode } from '../core/errors.js';
import type { Limits } from '../core/limits.js';
import type { BridgeStatus, Tunnel, TunnelStatus } from './tunnel.js';

/** up: a bridge takes streams; connecting: the first dial, or a resume, is under way; down: every bridge failed its last dial. */
export type TunnelView = 'up' | 'connecting' | 'down';

export interface StatusSnapshot {
  readonly tunnel: TunnelView;
  /** The bridge new streams go to (or, while down, the first one): its label or host:port. */
  readonly bridge: string;
  readonly rttMs: number | null;
  /** Streams open through the tunnel (every bridge). */
  readonly streams: number;
  /** Bytes to and from the bridges since start (every bridge, every session). */
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** The latest failed dial of any bridge, while it is the latest news (null once a bridge is up). */
  readonly lastError: { readonly code: ErrorCode; readonly at: number } | null;
  /** Failed dials since the tunnel was last up. */
  readonly failedDials: number;
  readonly bridges: readonly BridgeStatus[];
}

/** The snapshot of a tunnel's status (pure: the tests feed it statuses). */
export function statusSnapshot(t: TunnelStatus): StatusSnapshot {
  const bridges = t.bridges;
  const inUse = bridges.find((b) => b.usable) ?? bridges[0];
  let streams = 0;
  let up = 0;
  let down = 0;
  let lastError: StatusSnapshot['lastError'] = null;
  for (const b of bridges) {
    streams += b.streams;
    up += b.sentBytes;
    down += b.receivedBytes;
    if (b.lastError !== null && (lastError === null || b.lastError.at > lastError.at)) lastError = b.lastError;
  }
  const tunnel: TunnelView = t.state === 'up' ? 'up' : t.state === 'backoff' ? 'down' : 'connecting';
  return {
    tunnel,
    bridge: inUse?.name ?? '',
    rttMs: inUse?.usable === true && inUse.rttMs !== null ? Math.round(inUse.rttMs) : null,
    streams,
    bytesUp: up,
    bytesDown: down,
    lastError: tunnel === 'up' ? null : lastError,
    failedDials: t.failedDialsInRow,
    bridges,
  };
}

/** The status of one client's tunnel, read on demand; calls `onRepeatedFailures` once. */
export class StatusModel {
  private hinted = false;
  private readonly unwatch: () => void;

  constructor(
    private readonly tunnel: Tunnel,
    limits: Limits,
    onRepeatedFailures: (failedDials: number) => void,
  ) {
    this.unwatch = tunnel.watch(() => {
      if (this.hinted) return;
      const n = tunnel.status.failedDialsInRow;
      if (n < limits.DOCTOR_HINT_AFTER_FAILED_DIALS_COUNT) return;
      this.hinted = true;
      onRepeatedFailures(n);
    });
  }

  snapshot(): StatusSnapshot {
    return statusSnapshot(this.tunnel.status);
  }

  close(): void {
    this.unwatch();
  }
}

/** Bytes for people: 0 B, 1.5 KB, 12 MB, 3.2 GB (powers of 1024, one decimal below 10). */
export function formatBytes(n: number, units: readonly string[] = ['B', 'KB', 'MB', 'GB', 'TB']): string {
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const text = i === 0 || v >= 10 ? String(Math.round(v)) : v.toFixed(1);
  return `${text} ${units[i]}`;
}
