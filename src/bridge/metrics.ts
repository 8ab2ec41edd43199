/**
 * Counters and gauges with the Prometheus text exposition format (version 0.0.4), written by
 * hand: # HELP and # TYPE lines, one sample per label set, label values escaped. Pure: no I/O.
 */

export type Labels = Readonly<Record<string, string>>;

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly samples: Map<string, { labels: Labels; value: number }>;
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Label value escaping of the text format: backslash, double quote and newline. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escaping: backslash and newline. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escapeLabelValue(labels[k] as string)}"`)
    .join(',');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

export class Counter {
  constructor(private readonly family: Family) {}
  /** Adds n (≥ 0) to the sample with these labels. */
  inc(labels: Labels = {}, n = 1): void {
    if (!(n >= 0)) throw new RangeError('a counter only goes up');
    const key = labelKey(labels);
    const s = this.family.samples.get(key);
    if (s) s.value += n;
    else this.family.samples.set(key, { labels: { ...labels }, value: n });
  }
  get(labels: Labels = {}): number {
    return this.family.samples.get(labelKey(labels))?.value ?? 0;
  }
  /** A handle on one label set, for hot paths (no key building per increment). */
  labels(labels: Labels): { inc(n?: number): void } {
    const key = labelKey(labels);
    let s = this.family.samples.get(key);
    if (!s) {
      s = { labels: { ...labels }, value: 0 };
      this.family.samples.set(key, s);
    }
    const sample = s;
    return {
      inc(n = 1) {
        sample.value += n;
      },
    };
  }
}

export class Gauge {
  constructor(private readonly family: Family) {}
  set(value: number, labels: Labels = {}): void {
    const key = labelKey(labels);
    const s = this.family.samples.get(key);
    if (s) s.value = value;
    else this.family.samples.set(key, { labels: { ...labels }, value });
  }
  get(labels: Labels = {}): number {
    return this.family.samples.get(labelKey(labels))?.value ?? 0;
  }
  /** Sets to 0 every sample whose `label` is not in `keep` (a per-user gauge of users now gone). */
  zeroExcept(label: string, keep: ReadonlySet<string>): void {
    for (const s of this.family.samples.values()) {
      const v = s.labels[label];
      if (v !== undefined && !keep.has(v)) s.value = 0;
    }
  }
}

export class Registry {
  private readonly families = new Map<string, Family>();
  /** Called before each render to refresh gauges read from live state. */
  private readonly collectors: Array<() => void> = [];

  private family(name: string, help: string, type: Family['type']): Family {
    if (!NAME_RE.test(name)) throw new Error(`bad metric name ${name}`);
    if (type === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
    if (this.families.has(name)) throw new Error(`metric ${name} registered twice`);
    const f: Family = { name, help, type, samples: new Map() };
    this.families.set(name, f);
    return f;
  }

  counter(name: string, help: string): Counter {
    return new Counter(this.family(name, help, 'counter'));
  }

  gauge(name: string, help: string): Gauge {
    return new Gauge(this.family(name, help, 'gauge'));
  }

  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  /** The whole exposition, one family after another, ending in a newline. */
  render(): string {
    for (const c of this.collectors) c();
    const out: string[] = [];
    for (const f of this.families.values()) {
      out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`);
      out.push(`# TYPE ${f.name} ${f.type}`);
      // A counter or gauge without labels reports 0 before its first change.
      if (f.samples.size === 0) {
        out.push(`${f.name} 0`);
        continue;
      }
      for (const { labels, value } of f.samples.values()) {
        for (const k of Object.keys(labels)) if (!LABEL_RE.test(k)) throw new Error(`bad label name ${k}`);
        const key = labelKey(labels);
        out.push(`${f.name}${key ? `{${key}}` : ''} ${formatValue(value)}`);
      }
    }
    return `${out.join('\n')}\n`;
  }
}

/** Content-Type of the text exposition format. */
export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The bridge's metrics. Label values are fixed words or user names (config-restricted characters). */
export function bridgeMetrics(registry = new Registry()) {
  return {
    registry,
    sessions: registry.gauge('postern_sessions', 'Sessions open now.'),
    sessionsTotal: registry.counter('postern_sessions_total', 'Sessions accepted since start.'),
    sessionsRefused: registry.counter('postern_sessions_refused_total', 'Authenticated sessions turned away, by reason.'),
    streams: registry.gauge('postern_streams', 'Streams open now.'),
    streamsTotal: registry.counter('postern_streams_total', 'Streams opened to a target since start.'),
    streamsRefused: registry.counter('postern_streams_refused_total', 'Stream opens refused, by error code.'),
    streamIdleResets: registry.counter('postern_stream_idle_resets_total', 'Streams reset for idleness.'),
    bytesUp: registry.counter('postern_upload_bytes_total', 'Bytes from clients to targets.'),
    bytesDown: registry.counter('postern_download_bytes_total', 'Bytes from targets to clients.'),
    userBytes: registry.counter('postern_user_bytes_total', 'Bytes carried per user and direction (up: client to target).'),
    authFailures: registry.counter('postern_auth_failures_total', 'Upgrades with a rejected credential, by reason.'),
    policyRefusals: registry.counter('postern_policy_refusals_total', 'Stream opens refused by egress policy, by reason.'),
    handshakeTimeouts: registry.counter('postern_handshake_timeouts_total', 'Connections dropped for not finishing the TLS handshake or request head in time.'),
    // Budgets (docs/protocol.md §7.1, src/core/limits.ts USER_MAX_* and BRIDGE_MAX_*).
    bufferedBytes: registry.gauge('postern_buffered_bytes', 'Bytes the bridge may be made to hold: open streams\' receive windows, sessions\' send queues and resume buffers.'),
    userBufferedBytes: registry.gauge('postern_user_buffered_bytes', 'Bytes held per user (as postern_buffered_bytes), detached sessions included.'),
    userStreams: registry.gauge('postern_user_streams', 'Streams open or connecting per user (UDP associations included).'),
    userDescriptors: registry.gauge('postern_user_descriptors', 'Descriptors held per user: a socket per stream, association and session.'),
    descriptors: registry.gauge('postern_descriptors', 'File descriptors open in the bridge process.'),
    descriptorLimit: registry.gauge('postern_descriptor_limit', 'The process\'s RLIMIT_NOFILE (soft; 0 when unknown).'),
    budgetRefusals: registry.counter('postern_budget_refusals_total', 'New streams refused because a budget is spent, by budget.'),
    reloads: registry.counter('postern_config_reloads_total', 'Configuration reloads, by result.'),
    // UDP ASSOCIATE (docs/protocol.md §10). UDP payload bytes are also in the upload/download and per-user byte totals.
    udpAssociations: registry.gauge('postern_udp_associations', 'UDP associations open now.'),
    udpAssociationsTotal: registry.counter('postern_udp_associations_total', 'UDP associations accepted since start.'),
    udpAssociationsRefused: registry.counter('postern_udp_associations_refused_total', 'UDP association opens refused, by error code.'),
    udpAssociationEnds: registry.counter('postern_udp_association_ends_total', 'UDP associations ended, by reason (closed by the client or session, idle, error).'),
    udpDatagrams: registry.counter('postern_udp_datagrams_total', 'UDP datagrams relayed, by direction (up: client to target).'),
    udpBytes: registry.counter('postern_udp_bytes_total', 'UDP payload bytes relayed, by direction (up: client to target).'),
    udpDropped: registry.counter('postern_udp_datagrams_dropped_total', 'UDP datagrams dropped at the bridge, by reason.'),
  };
}
export type BridgeMetrics = ReturnType<typeof bridgeMetrics>;
