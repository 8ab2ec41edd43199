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
  /** Largest request head the local HTTP proxy reads (nginx: large_client_header_buffers 4×8k); larger → 431. */
  HTTP_PROXY_HEAD_MAX_BYTES: 32 * 1024,
  /** An app must finish an HTTP request head within this time once it started it (→ 408). */
  HTTP_PROXY_HEAD_TIMEOUT_MS: 10_000,
  /** An idle keep-alive connection to the local HTTP proxy is closed after this (nginx keepalive_timeout 75 s). */
  HTTP_PROXY_IDLE_TIMEOUT_MS: 75_000,
  /** Failed logins to a local listener one source may make per window before its answers are slowed (core/auth-throttle.ts). */
  LOCAL_AUTH_FREE_FAILURES_COUNT: 10,
  /** The window those failures are counted in. */
  LOCAL_AUTH_FAILURE_WINDOW_MS: 60_000,
  /** Past the free failures, a wrong login is answered only after this long (slows guessing). */
  LOCAL_AUTH_FAILURE_DELAY_MS: 2_000,
  /** Slowed answers one source may have pending; past this its attempts are refused unchecked (≤ 4 guesses/s). */
  LOCAL_AUTH_DELAYED_PER_SOURCE_COUNT: 8,
  /** Sources whose failures are remembered; the oldest is forgotten first. */
  LOCAL_AUTH_TRACKED_SOURCES_COUNT: 1_024,

  // ── Mux (wire protocol) ──────────────────────────────────────────────────
  /** Largest frame payload either side sends or accepts (checked from the header before buffering). */
  FRAME_MAX_PAYLOAD_BYTES: 64 * 1024,
  /** Largest WebSocket message accepted (several frames may share a message). */
  WS_MAX_MESSAGE_BYTES: 256 * 1024,
  /** Initial per-stream receive window, both directions: the most unacknowledged bytes in flight per stream. */
  STREAM_WINDOW_BYTES: 512 * 1024,
  /**
   * DATA the opener may send on a stream before its OPEN_RESULT (docs/protocol.md §5.1): the app's
   * first bytes (a TLS ClientHello, an HTTP request) travel with the OPEN instead of a round trip
   * later. A wire constant both sides must agree on; the bridge holds at most this much per
   * pending open, and drops it if the open is refused.
   */
  STREAM_EARLY_DATA_BYTES: 16 * 1024,
  /** Concurrent streams one session may hold open. */
  SESSION_MAX_STREAMS: 4_096,
  /**
   * Stop feeding the WebSocket when its socket buffers more than this; resume on drain. Small, so
   * that datagrams (calls) wait behind little stream data: 256 KiB measured no slower than 1 MiB on
   * loopback, 10 and 100 Mbit/s links, and cut a call's delay beside 4 uploads at 10 Mbit/s from
   * 1.17 s to 0.86 s median (npm run bench:call).
   */
  SESSION_WRITE_HIGH_WATER_BYTES: 256 * 1024,
  /**
   * A bridge stops reading a session's transport while more than this is waiting to be sent on it,
   * whatever the queued frames are (control replies too: PONG, OPEN_RESULT, RESET), and reads again
   * once half has left. Far above what honest writers queue (data stops at the write high water);
   * clients always read, so two peers never both wait (docs/protocol.md §5.3).
   */
  SESSION_SEND_QUEUE_MAX_BYTES: 2 * 1024 * 1024,
  /**
   * OPENs a session may have refused (OPEN_RESULT ≠ 0, or RESET 0x08 for a frame on a stream never
   * opened) in a burst, and per second after it; past that rate the session is ended as a protocol
   * violation (close 1002 "too many refused opens"). A browser's blocked or failing requests stay far below.
   */
  SESSION_REFUSED_OPEN_BURST_COUNT: 2_048,
  SESSION_REFUSED_OPENS_PER_SECOND: 512,
  /** A stream must get its OPEN_RESULT within this time (bridge connect timeout + slack). */
  STREAM_OPEN_TIMEOUT_MS: 15_000,
  /** Interval between keepalive pings on an idle session. */
  KEEPALIVE_INTERVAL_MS: 10_000,
  /** A session with no frame received for this long is considered dead. */
  KEEPALIVE_TIMEOUT_MS: 20_000,
  /** A session whose connection was lost is ended (its streams reset) if not resumed within this time. */
  SESSION_RESUME_TIMEOUT_MS: 60_000,
  /**
   * Writers stall while more than this many sent bytes, of every kept message (DATA and control),
   * await the peer's ACK (resend memory cap).
   */
  SESSION_RESUME_BUFFER_MAX_BYTES: 32 * 1024 * 1024,
  /**
   * Past SESSION_RESUME_BUFFER_MAX_BYTES plus this, kept for a peer that does not acknowledge, the
   * session is ended (close 1008 "resume buffer full"): control replies go on after writers stall,
   * and an honest peer acknowledges long before.
   */
  SESSION_RESUME_OVERFLOW_BYTES: 4 * 1024 * 1024,
  /** A receiver acknowledges at least every this many received bytes (bounds the peer's resend queue). */
  RESUME_ACK_BYTES: 64 * 1024,
  /** …and at most this long after an unacknowledged message arrived. */
  RESUME_ACK_DELAY_MS: 100,
  /** A stream request arriving while no bridge connection is up waits this long before it fails. */
  TUNNEL_WAIT_MS: 10_000,

  // ── Walls: connections frozen or cut after a few KB (docs/protocol.md §9.7, §9.8) ──
  /** Floor of the freeze timeout: bytes owed and nothing received for this long (or a few RTTs) → the connection is cut. */
  FREEZE_MIN_MS: 300,
  /** The freeze timeout is at least this many smoothed RTTs (plus the peer's ACK delay). */
  FREEZE_TIMEOUT_RTTS: 4,
  /** The freeze timeout before any RTT was measured on the session. */
  FREEZE_NO_RTT_MS: 1_000,
  /** After this long without a byte the path may be asleep (a phone's radio wakes in ~1–2 s)… */
  FREEZE_IDLE_GAP_MS: 5_000,
  /** …so a request sent after such a gap gets at least this long before the connection is judged frozen. */
  FREEZE_AFTER_IDLE_MS: 2_500,
  /** Silence this long after the peer sent session messages (or 2 RTTs) → one probe PING to learn whether the path froze. */
  FREEZE_PROBE_MIN_MS: 100,
  /** A sender under a connection budget keeps this much of it for connection messages (MOVE, ACK, PONG). */
  CONN_BUDGET_RESERVE_BYTES: 512,
  /** Smallest per-connection budget (learned, configured or asked for by a peer); smaller is raised to this. */
  CONN_BUDGET_MIN_BYTES: 4_096,
  /** Cuts of connections that carried more than this are not taken for a wall. */
  WALL_MAX_BYTES: 1024 * 1024,
  /** A learned budget is forgotten after this long (the wall may have moved or gone); it is relearned in three cuts. */
  WALL_BUDGET_TTL_MS: 7 * 24 * 3_600_000,
  /**
   * A probe that carried past a learned wall makes a wall within what it carried need more agreeing
   * cuts (5 of 6, not 3) for this long (0: never): a session's worth of not re-learning what it
   * disproved; a real wall that comes meanwhile costs about two cuts more, so longer costs little.
   */
  WALL_DISPROVED_TTL_MS: 3_600_000,
  /** New connections (TLS handshakes) to one bridge start at least this far apart (three never land in one instant). */
  DIAL_MIN_INTERVAL_MS: 40,
  /**
   * At most DIAL_BURST_MAX new connections to one bridge start within any DIAL_BURST_WINDOW_MS
   * (0: no window): the censor flags more than 3 within ~400 ms; the window is 25 % longer so that
   * jitter on the path (tens of ms on a loaded phone) cannot squeeze four into 400 ms. A burst of
   * 3 serves a move and its standby at once; sustained, 3 per 500 ms = 6 per second.
   */
  DIAL_BURST_MAX: 3,
  DIAL_BURST_WINDOW_MS: 500,
  /** A standby connection (TLS done, upgrade not sent) not needed within this long is closed (the bridge allows 60 s). */
  STANDBY_IDLE_MAX_MS: 10_000,
  /**
   * A write that meets a reset waits this long for the bytes already received to be read (and
   * counted, §9.8.1) before the socket is dropped. Every reset pays it in full (the read side rarely
   * ends first): at 100 ms the 3 × 8 MiB resilience test over ws took 44–58 s instead of 7–15 s.
   */
  WRITE_RESET_READ_MS: 20,

  // ── Transport ────────────────────────────────────────────────────────────
  /** The TLS handshake and the first request head together must complete within this time of the accept (nginx's client_header_timeout is 60 s). */
  HANDSHAKE_TIMEOUT_MS: 60_000,
  /** The client gives up dialing a bridge after this time. */
  DIAL_TIMEOUT_MS: 15_000,
  /**
   * No longer read: the web front's head limits are nginx's fixed buffers (1k + 4×8k,
   * decoy/http-head.ts), because a different limit would tell it from nginx. Kept so configs setting it still load.
   */
  HTTP_MAX_HEADER_BYTES: 16 * 1024,
  /** A kept-alive connection to the bridge's web front must send its next request within this (nginx keepalive_timeout 75 s). */
  HTTP_KEEPALIVE_TIMEOUT_MS: 75_000,
  /** The bridge's web front closes a connection this long after a `Connection: close` answer if the peer has not (nginx lingering_timeout 5 s). */
  HTTP_CLOSE_LINGER_MS: 5_000,
  /** HTTP/2 transport: per-stream receive window raised to this once a session is authenticated (before: nginx's 64 KiB). */
  H2_STREAM_WINDOW_BYTES: 4 * 1024 * 1024,
  /** HTTP/2 transport: connection receive window (bytes in flight on one connection before the reader consumes them). */
  H2_CONNECTION_WINDOW_BYTES: 16 * 1024 * 1024,
  /** HTTP/2 transport: after a graceful close the peer has this long to end its body before the stream is reset. */
  H2_CLOSE_TIMEOUT_MS: 5_000,
  /** HTTP/2 over TLS: while writes are outstanding, the connection is checked this often for the hang of a broken TCP connection Node does not report (transport/h2/wedge.ts). */
  H2_WEDGE_CHECK_MS: 20,
  /** packet-up (§12.3): one upstream POST's body at most (under nginx's default client_max_body_size, 1 MiB; above one record). */
  PACKET_POST_MAX_BYTES: 512 * 1024,
  /** packet-up: a connection's first POST is at most this (then each answered POST doubles the size), so a connection cut early still delivers something. */
  PACKET_POST_FIRST_BYTES: 8 * 1024,
  /** packet-up: upstream POSTs a client has unanswered, and how far ahead of the next one the bridge takes (and holds) a POST, per session. */
  PACKET_WINDOW_COUNT: 8,
  /** packet-up: a POST's body must arrive within this (nginx client_body_timeout 60 s), and its answer before the client gives up. */
  PACKET_POST_TIMEOUT_MS: 60_000,
  /** Largest request body the proxy decoy passes upstream (nginx client_max_body_size 1 MiB → 413). */
  DECOY_MAX_BODY_BYTES: 1024 * 1024,
  /** The proxy decoy answers 504 when its upstream is silent this long (nginx proxy_read_timeout 60 s). */
  DECOY_PROXY_TIMEOUT_MS: 60_000,
  /** Concurrent connections the proxy decoy opens to its upstream; more requests wait. */
  DECOY_PROXY_MAX_SOCKETS_COUNT: 256,
  /** Accepted clock difference for an auth token timestamp. */
  AUTH_WINDOW_MS: 120_000,
  /**
   * Nonces remembered per user to refuse replays (each kept for 2 × AUTH_WINDOW_MS, 4 min by
   * default). A full cache refuses that user's new tokens (decoy answer) rather than forget a
   * nonce: 4,096 allows 17 upgrades/s for 4 min per user (a client makes one per reconnect), ≈ 0.5 MB.
   */
  AUTH_REPLAY_CACHE_PER_USER_COUNT: 4_096,
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
  /** Sessions one user may hold at once (one client normally holds one; reconnects overlap briefly). */
  BRIDGE_MAX_SESSIONS_PER_USER: 32,
  /**
   * Budgets per user (every session of the user, detached ones included, until they end). Bytes held:
   * each open stream's receive window (what the user may make us hold in it), plus every resume
   * buffer and send queue of the user's sessions. At a budget the user's new streams are refused
   * (OPEN_RESULT 0x09); other users are not affected.
   */
  USER_MAX_BUFFERED_BYTES: 512 * 1024 * 1024,
  /**
   * Near a buffer budget a new stream gets a smaller receive window (what is left / 32); one that
   * would get less than this is refused instead (0x09).
   */
  STREAM_MIN_WINDOW_BYTES: 16 * 1024,
  /** Streams (TCP and UDP associations) one user may have open or connecting at once, over all sessions. */
  USER_MAX_STREAMS: 1_024,
  /** Descriptors one user may hold: a socket per stream, association and session. */
  USER_MAX_DESCRIPTORS: 1_024,
  /** The same budgets for the whole bridge. */
  BRIDGE_MAX_BUFFERED_BYTES: 1024 * 1024 * 1024,
  BRIDGE_MAX_STREAMS: 16_384,
  /**
   * Descriptors kept free under the process's RLIMIT_NOFILE for new sessions, listeners and files:
   * when fewer are left, new streams are refused (0x09) before a new session could fail.
   */
  BRIDGE_DESCRIPTOR_RESERVE_COUNT: 128,
  /** A bridge stream with no byte either way for this long is reset (Xray's connIdle is 300 s). */
  STREAM_IDLE_TIMEOUT_MS: 300_000,
  /** A bridge session with no stream for this long is closed (the client redials on demand). */
  SESSION_IDLE_TIMEOUT_MS: 600_000,
  /** DNS lookups a bridge runs at once; more wait in a queue. */
  EGRESS_DNS_MAX_CONCURRENT: 64,
  /** Lookups that may wait for a slot; beyond this a stream is refused at once (→ DNS_FAILURE). */
  EGRESS_DNS_MAX_QUEUED: 1_024,
  /** Lookups one user runs at once (a share of EGRESS_DNS_MAX_CONCURRENT, so one user cannot hold every slot). */
  EGRESS_DNS_MAX_CONCURRENT_PER_USER: 8,
  /** Lookups one user may have pending (running + waiting); beyond this only that user's streams are refused at once (→ DNS_FAILURE). */
  EGRESS_DNS_MAX_PENDING_PER_USER: 64,
  /** The bridge re-reads /etc/hosts (or dns.hostsFile) when it changed, checking at most this often. */
  HOSTS_FILE_RECHECK_MS: 5_000,
  /** A hosts file larger than this is not read (the bridge logs it and uses DNS alone). */
  HOSTS_FILE_MAX_BYTES: 1024 * 1024,
  /** Default per-user bandwidth cap, each direction; 0 = none (a user's maxBytesPerSecond overrides). */
  USER_MAX_BYTES_PER_SECOND: 0,
  /** Config file changes within this time are folded into one reload (editors write in steps). */
  CONFIG_WATCH_DEBOUNCE_MS: 300,

  // ── Diagnostics ──────────────────────────────────────────────────────────
  /** `postern doctor` stops its throughput sample after this time (a slow link still gets a figure). */
  DOCTOR_DOWNLOAD_TIMEOUT_MS: 30_000,
  /** After this many failed tunnel dials in a row (no bridge up meanwhile) the client says, once, to run `postern doctor`. */
  DOCTOR_HINT_AFTER_FAILED_DIALS_COUNT: 5,
  /** The live status line on a terminal is redrawn at most once per this interval. */
  STATUS_LINE_INTERVAL_MS: 1_000,
  /** Longest status page (HTML, with its QR codes) the client renders; a bigger one is refused with 500 (it never is). */
  STATUS_PAGE_MAX_BYTES: 256 * 1024,

  // ── Logs ─────────────────────────────────────────────────────────────────
  /** Refused streams and refused upgrades are logged as one info summary per this interval (each one at debug). */
  LOG_SUMMARY_INTERVAL_MS: 60_000,

  // ── Process ──────────────────────────────────────────────────────────────
  /**
   * A young-generation GC runs each time the process's ArrayBuffers have grown by this much since
   * the last one, looked at as mux messages are sent or received (process-wide; 0: V8 alone decides,
   * after 32 MiB of dead buffers, which glibc then keeps as RSS, and which V8 counts towards a full
   * collection: src/core/young-gc.ts).
   */
  YOUNG_GC_EVERY_BYTES: 4 * 1024 * 1024,
  /** On SIGINT/SIGTERM, open streams get this long to finish before they are reset. */
  SHUTDOWN_DRAIN_MS: 5_000,

  // ── UDP (SOCKS5 UDP ASSOCIATE, docs/protocol.md §10) ──────────────────────
  /** An association with no datagram either way for this long is ended (RFC 4787 REQ-5: at least 2 min). */
  UDP_ASSOCIATION_IDLE_MS: 120_000,
  /** A DATAGRAM is dropped, not queued, when the transport already buffers more than SESSION_WRITE_HIGH_WATER_BYTES plus this. */
  UDP_SEND_HEADROOM_BYTES: 256 * 1024,
  /** Largest datagram payload relayed (bigger ones are dropped); 65,507 is the most IPv4 UDP carries. */
  UDP_MAX_DATAGRAM_BYTES: 65_507,
  /** UDP associations open at once on a bridge (each holds a socket); beyond this, OPEN_RESULT 0x09. */
  UDP_BRIDGE_MAX_ASSOCIATIONS: 1_024,
  /** Remote endpoints one association remembers sending to (only they may answer); the oldest is forgotten. */
  UDP_ASSOCIATION_MAX_PEERS: 256,
  /** Resolved names one association caches, and for how long. */
  UDP_DNS_CACHE_COUNT: 64,
  UDP_DNS_CACHE_MS: 60_000,
  /** Datagrams per association waiting on a name being resolved; later ones are dropped. */
  UDP_DNS_PENDING_COUNT: 16,
  /** Bytes a UDP socket may have waiting to be sent (client relay → app, bridge → destinations); past this, datagrams are dropped, not queued. */
  UDP_LOCAL_SEND_QUEUE_BYTES: 256 * 1024,

  // ── Client routing (direct routes) ────────────────────────────────────────
  /** A direct connection from the client machine must be established within this time (as the bridge's egress). */
  DIRECT_CONNECT_TIMEOUT_MS: 10_000,
  /** A local lookup a route needs (a direct destination, or an address rule) must answer within this time. */
  ROUTE_DNS_TIMEOUT_MS: 5_000,
  /** Local lookups in progress at once for routing; past this a destination that needs one is refused (E_DNS). */
  ROUTE_DNS_MAX_CONCURRENT: 64,
  /** Entries one route list file may hold (bounds the memory a file takes: 500,000 names ≈ 60 MiB of heap). */
  ROUTE_LIST_MAX_ENTRIES: 2_000_000,
  /** Size of one route list file read (read whole, at start-up). */
  ROUTE_LIST_MAX_BYTES: 128 * 1024 * 1024,
  /** Names the served PAC file carries (PAC engines parse it on every load); rules past this stay with the proxy. */
  PAC_MAX_ENTRIES: 20_000,
} as const;

export type LimitName = keyof typeof LIMITS;
export type Limits = { -readonly [K in LimitName]: number };

/** Inclusive bounds a config file may set each limit within. */
export const LIMIT_BOUNDS: { readonly [K in LimitName]: readonly [min: number, max: number] } = {
  SOCKS_HANDSHAKE_TIMEOUT_MS: [1_000, 120_000],
  SOCKS_HANDSHAKE_MAX_BYTES: [2_048, 65_536],
  SOCKS_EARLY_DATA_MAX_BYTES: [0, 1024 * 1024],
  LOCAL_MAX_CONNECTIONS: [1, 65_536],
  HTTP_PROXY_HEAD_MAX_BYTES: [4_096, 1024 * 1024],
  HTTP_PROXY_HEAD_TIMEOUT_MS: [1_000, 120_000],
  HTTP_PROXY_IDLE_TIMEOUT_MS: [1_000, 3_600_000],
  LOCAL_AUTH_FREE_FAILURES_COUNT: [0, 1_000],
  LOCAL_AUTH_FAILURE_WINDOW_MS: [1_000, 3_600_000],
  LOCAL_AUTH_FAILURE_DELAY_MS: [0, 60_000],
  LOCAL_AUTH_DELAYED_PER_SOURCE_COUNT: [1, 1_024],
  LOCAL_AUTH_TRACKED_SOURCES_COUNT: [16, 1_000_000],
  FRAME_MAX_PAYLOAD_BYTES: [65_536, 65_536], // a wire constant (docs/protocol.md §4)
  WS_MAX_MESSAGE_BYTES: [16 * 1024, 4 * 1024 * 1024],
  STREAM_WINDOW_BYTES: [64 * 1024, 16 * 1024 * 1024],
  STREAM_EARLY_DATA_BYTES: [16 * 1024, 16 * 1024], // a wire constant (docs/protocol.md §5.1)
  SESSION_MAX_STREAMS: [1, 65_536],
  SESSION_WRITE_HIGH_WATER_BYTES: [64 * 1024, 64 * 1024 * 1024],
  SESSION_SEND_QUEUE_MAX_BYTES: [1024 * 1024, 256 * 1024 * 1024],
  SESSION_REFUSED_OPEN_BURST_COUNT: [16, 1_000_000],
  SESSION_REFUSED_OPENS_PER_SECOND: [1, 1_000_000],
  STREAM_OPEN_TIMEOUT_MS: [1_000, 120_000],
  KEEPALIVE_INTERVAL_MS: [1_000, 300_000],
  KEEPALIVE_TIMEOUT_MS: [2_000, 600_000],
  SESSION_RESUME_TIMEOUT_MS: [1_000, 3_600_000],
  SESSION_RESUME_BUFFER_MAX_BYTES: [1024 * 1024, 1024 * 1024 * 1024],
  SESSION_RESUME_OVERFLOW_BYTES: [256 * 1024, 1024 * 1024 * 1024],
  RESUME_ACK_BYTES: [4_096, 16 * 1024 * 1024],
  RESUME_ACK_DELAY_MS: [1, 10_000],
  TUNNEL_WAIT_MS: [100, 120_000],
  FREEZE_MIN_MS: [50, 60_000],
  FREEZE_TIMEOUT_RTTS: [2, 64],
  FREEZE_NO_RTT_MS: [100, 60_000],
  FREEZE_IDLE_GAP_MS: [500, 600_000],
  FREEZE_AFTER_IDLE_MS: [100, 60_000],
  FREEZE_PROBE_MIN_MS: [10, 60_000],
  CONN_BUDGET_RESERVE_BYTES: [256, 64 * 1024],
  CONN_BUDGET_MIN_BYTES: [2_048, 1024 * 1024],
  WALL_MAX_BYTES: [16 * 1024, 64 * 1024 * 1024],
  WALL_BUDGET_TTL_MS: [60_000, 365 * 24 * 3_600_000],
  WALL_DISPROVED_TTL_MS: [0, 7 * 24 * 3_600_000],
  DIAL_MIN_INTERVAL_MS: [0, 60_000],
  DIAL_BURST_MAX: [0, 100],
  DIAL_BURST_WINDOW_MS: [0, 60_000],
  STANDBY_IDLE_MAX_MS: [100, 50_000],
  WRITE_RESET_READ_MS: [0, 5_000],
  HANDSHAKE_TIMEOUT_MS: [1_000, 300_000],
  DIAL_TIMEOUT_MS: [1_000, 120_000],
  HTTP_MAX_HEADER_BYTES: [4_096, 65_536],
  HTTP_KEEPALIVE_TIMEOUT_MS: [1_000, 600_000],
  HTTP_CLOSE_LINGER_MS: [100, 60_000],
  H2_STREAM_WINDOW_BYTES: [64 * 1024, 64 * 1024 * 1024],
  H2_CONNECTION_WINDOW_BYTES: [64 * 1024, 256 * 1024 * 1024],
  H2_CLOSE_TIMEOUT_MS: [100, 60_000],
  H2_WEDGE_CHECK_MS: [5, 1_000],
  PACKET_POST_MAX_BYTES: [300 * 1024, 1024 * 1024],
  PACKET_POST_FIRST_BYTES: [1024, 1024 * 1024],
  PACKET_WINDOW_COUNT: [1, 64],
  PACKET_POST_TIMEOUT_MS: [1_000, 600_000],
  DECOY_MAX_BODY_BYTES: [0, 64 * 1024 * 1024],
  DECOY_PROXY_TIMEOUT_MS: [1_000, 600_000],
  DECOY_PROXY_MAX_SOCKETS_COUNT: [1, 65_536],
  AUTH_WINDOW_MS: [10_000, 3_600_000],
  AUTH_REPLAY_CACHE_PER_USER_COUNT: [16, 1_000_000],
  RECONNECT_MIN_MS: [10, 60_000],
  RECONNECT_MAX_MS: [100, 600_000],
  EGRESS_CONNECT_TIMEOUT_MS: [500, 120_000],
  EGRESS_DNS_TIMEOUT_MS: [500, 60_000],
  BRIDGE_MAX_SESSIONS: [1, 1_000_000],
  BRIDGE_MAX_SESSIONS_PER_USER: [1, 1_000_000],
  USER_MAX_BUFFERED_BYTES: [16 * 1024 * 1024, 64 * 1024 * 1024 * 1024],
  STREAM_MIN_WINDOW_BYTES: [16 * 1024, 16 * 1024 * 1024], // never below STREAM_EARLY_DATA_BYTES: early data must fit the first window
  USER_MAX_STREAMS: [1, 1_000_000],
  USER_MAX_DESCRIPTORS: [2, 1_000_000],
  BRIDGE_MAX_BUFFERED_BYTES: [16 * 1024 * 1024, 1024 * 1024 * 1024 * 1024],
  BRIDGE_MAX_STREAMS: [1, 10_000_000],
  BRIDGE_DESCRIPTOR_RESERVE_COUNT: [16, 65_536],
  STREAM_IDLE_TIMEOUT_MS: [1_000, 86_400_000],
  SESSION_IDLE_TIMEOUT_MS: [1_000, 86_400_000],
  EGRESS_DNS_MAX_CONCURRENT: [1, 4_096],
  EGRESS_DNS_MAX_QUEUED: [0, 65_536],
  EGRESS_DNS_MAX_CONCURRENT_PER_USER: [1, 4_096],
  EGRESS_DNS_MAX_PENDING_PER_USER: [1, 65_536],
  HOSTS_FILE_RECHECK_MS: [100, 3_600_000],
  HOSTS_FILE_MAX_BYTES: [4_096, 64 * 1024 * 1024],
  USER_MAX_BYTES_PER_SECOND: [0, 10 * 1024 * 1024 * 1024],
  CONFIG_WATCH_DEBOUNCE_MS: [50, 10_000],
  LOG_SUMMARY_INTERVAL_MS: [1_000, 3_600_000],
  DOCTOR_HINT_AFTER_FAILED_DIALS_COUNT: [1, 1_000],
  STATUS_LINE_INTERVAL_MS: [1_000, 60_000],
  STATUS_PAGE_MAX_BYTES: [16 * 1024, 4 * 1024 * 1024],
  SHUTDOWN_DRAIN_MS: [0, 600_000],
  YOUNG_GC_EVERY_BYTES: [0, 1024 * 1024 * 1024],
  DOCTOR_DOWNLOAD_TIMEOUT_MS: [1_000, 600_000],
  UDP_ASSOCIATION_IDLE_MS: [1_000, 86_400_000],
  UDP_SEND_HEADROOM_BYTES: [0, 64 * 1024 * 1024],
  UDP_MAX_DATAGRAM_BYTES: [512, 65_507],
  UDP_BRIDGE_MAX_ASSOCIATIONS: [0, 65_536],
  UDP_ASSOCIATION_MAX_PEERS: [1, 65_536],
  UDP_DNS_CACHE_COUNT: [0, 65_536],
  UDP_DNS_CACHE_MS: [0, 3_600_000],
  UDP_DNS_PENDING_COUNT: [0, 4_096],
  UDP_LOCAL_SEND_QUEUE_BYTES: [16 * 1024, 64 * 1024 * 1024],
  DIRECT_CONNECT_TIMEOUT_MS: [500, 120_000],
  ROUTE_DNS_TIMEOUT_MS: [500, 60_000],
  ROUTE_DNS_MAX_CONCURRENT: [1, 4_096],
  ROUTE_LIST_MAX_ENTRIES: [1, 10_000_000],
  ROUTE_LIST_MAX_BYTES: [1024, 1024 * 1024 * 1024],
  PAC_MAX_ENTRIES: [0, 1_000_000],
};

export function defaultLimits(overrides: Partial<Limits> = {}): Limits {
  return { ...LIMITS, ...overrides };
}

/**
 * The send-queue bound a transport stops reading at: SESSION_SEND_QUEUE_MAX_BYTES, raised when
 * needed above what honest writers may queue by themselves (the write high water, a message past
 * it, and the datagram headroom), so that two honest peers never both stop reading.
 */
export function sendQueueBound(l: Limits): number {
  return Math.max(l.SESSION_SEND_QUEUE_MAX_BYTES, 2 * (l.SESSION_WRITE_HIGH_WATER_BYTES + l.UDP_SEND_HEADROOM_BYTES + l.WS_MAX_MESSAGE_BYTES));
}
