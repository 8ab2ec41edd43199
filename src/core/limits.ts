/**
 * Every limit, timeout and count in Postern, in one place.
 * Units are in the names (_MS, _BYTES, _COUNT). Config may override a value only within
 * the bounds given in LIMIT_BOUNDS (checked by the config loader).
 */
export const LIMITS = {
  // ── SOCKS / local listeners ───────────────────────────────────────────────
  /** A local app must finish the SOCKS greeting + auth + request within this time. */
  SOCKS_HANDSHAKE_TIMEOUT_MS: 10_000,
  /** Bytes buffered from an app before its SOCKS request is complete (greeting+auth+request max ≈ 780 B). */
  SOCKS_HANDSHAKE_MAX_BYTES: 4_096,
  /** Early payload an app may pipeline after its request, held until the stream opens. */
  SOCKS_EARLY_DATA_MAX_BYTES: 64 * 1024,
  /** Open local connections per listener; beyond this new ones are refused. */
  LOCAL_MAX_CONNECTIONS: 4_096,

  // ── Mux (wire protocol) ──────────────────────────────────────────────────
  /** Largest frame payload either side sends or accepts (checked from the header before buffering). */
  FRAME_MAX_PAYLOAD_BYTES: 64 * 1024,
  /** Largest WebSocket message accepted (several frames may share a message). */
  WS_MAX_MESSAGE_BYTES: 256 * 1024,
  /** Initial per-stream receive window, both directions: the most unacknowledged bytes in flight per stream. */
  STREAM_WINDOW_BYTES: 512 * 1024,
  /** Concurrent streams one session may hold open. */
  SESSION_MAX_STREAMS: 4_096,
  /** Stop feeding the WebSocket when its socket buffers more than this; resume on drain. */
  SESSION_WRITE_HIGH_WATER_BYTES: 1024 * 1024,
  /** A stream must get its OPEN_RESULT within this time (bridge connect timeout + slack). */
  STREAM_OPEN_TIMEOUT_MS: 15_000,
  /** Interval between keepalive pings on an idle session. */
  KEEPALIVE_INTERVAL_MS: 10_000,
  /** A session with no frame received for this long is considered dead. */
  KEEPALIVE_TIMEOUT_MS: 20_000,

  // ── Transport ────────────────────────────────────────────────────────────
  /** TLS + HTTP upgrade must complete within this time (nginx's client_header_timeout is 60 s). */
  HANDSHAKE_TIMEOUT_MS: 60_000,
  /** The client gives up dialing a bridge after this time. */
  DIAL_TIMEOUT_MS: 15_000,
  /** Largest HTTP request header the bridge accepts (nginx default large_client_header_buffers 4×8k). */
  HTTP_MAX_HEADER_BYTES: 16 * 1024,
  /** Accepted clock difference for an auth token timestamp. */
  AUTH_WINDOW_MS: 120_000,
  /** Nonces remembered to refuse replays (each kept for 2 × AUTH_WINDOW_MS). */
  AUTH_REPLAY_CACHE_COUNT: 100_000,
  /** Client reconnect backoff: first delay and cap. */
  RECONNECT_MIN_MS: 250,
  RECONNECT_MAX_MS: 15_000,

  // ── Bridge egress ────────────────────────────────────────────────────────
  /** The bridge gives up a TCP connect to a target after this time (→ TIMEOUT). */
  EGRESS_CONNECT_TIMEOUT_MS: 10_000,
  /** DNS resolution of a target gives up after this time (→ DNS_FAILURE). */
  EGRESS_DNS_TIMEOUT_MS: 5_000,
  /** Sessions a bridge holds at once. */
  BRIDGE_MAX_SESSIONS: 1_024,

  // ── Process ──────────────────────────────────────────────────────────────
  /** On SIGINT/SIGTERM, open streams get this long to finish before they are reset. */
  SHUTDOWN_DRAIN_MS: 5_000,
} as const;

export type LimitName = keyof typeof LIMITS;
export type Limits = { -readonly [K in LimitName]: number };

/** Inclusive bounds a config file may set each limit within. */
export const LIMIT_BOUNDS: { readonly [K in LimitName]: readonly [min: number, max: number] } = {
  SOCKS_HANDSHAKE_TIMEOUT_MS: [1_000, 120_000],
  SOCKS_HANDSHAKE_MAX_BYTES: [2_048, 65_536],
  SOCKS_EARLY_DATA_MAX_BYTES: [0, 1024 * 1024],
  LOCAL_MAX_CONNECTIONS: [1, 65_536],
  FRAME_MAX_PAYLOAD_BYTES: [65_536, 65_536], // a wire constant (docs/protocol.md §4)
  WS_MAX_MESSAGE_BYTES: [16 * 1024, 4 * 1024 * 1024],
  STREAM_WINDOW_BYTES: [64 * 1024, 16 * 1024 * 1024],
  SESSION_MAX_STREAMS: [1, 65_536],
  SESSION_WRITE_HIGH_WATER_BYTES: [64 * 1024, 64 * 1024 * 1024],
  STREAM_OPEN_TIMEOUT_MS: [1_000, 120_000],
  KEEPALIVE_INTERVAL_MS: [1_000, 300_000],
  KEEPALIVE_TIMEOUT_MS: [2_000, 600_000],
  HANDSHAKE_TIMEOUT_MS: [1_000, 300_000],
  DIAL_TIMEOUT_MS: [1_000, 120_000],
  HTTP_MAX_HEADER_BYTES: [4_096, 65_536],
  AUTH_WINDOW_MS: [10_000, 3_600_000],
  AUTH_REPLAY_CACHE_COUNT: [1_000, 10_000_000],
  RECONNECT_MIN_MS: [10, 60_000],
  RECONNECT_MAX_MS: [100, 600_000],
  EGRESS_CONNECT_TIMEOUT_MS: [500, 120_000],
  EGRESS_DNS_TIMEOUT_MS: [500, 60_000],
  BRIDGE_MAX_SESSIONS: [1, 1_000_000],
  SHUTDOWN_DRAIN_MS: [0, 600_000],
};

export function defaultLimits(overrides: Partial<Limits> = {}): Limits {
  return { ...LIMITS, ...overrides };
}
