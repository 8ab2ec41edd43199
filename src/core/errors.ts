/**
 * The error catalogue. Every error Postern raises on purpose is a PosternError with a stable
 * string `code`. Errors that cross the tunnel carry a one-byte wire code (docs/protocol.md §6)
 * and know what they become for the app: a SOCKS reply (RFC 1928 §6) and an HTTP status.
 */

/** Wire codes carried in OPEN_RESULT, RESET and GOAWAY frames. Values are part of the protocol. */
export const WireCode = {
  OK: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TIMEOUT: 0x06,
  DNS_FAILURE: 0x07,
  PROTOCOL_ERROR: 0x08,
  STREAM_LIMIT: 0x09,
  CANCELLED: 0x0a,
  CONNECTION_RESET: 0x0b,
  FLOW_CONTROL_ERROR: 0x0c,
  INTERNAL_ERROR: 0x0d,
  GOING_AWAY: 0x0e,
} as const;
export type WireCode = (typeof WireCode)[keyof typeof WireCode];

/** SOCKS5 reply codes, RFC 1928 §6. */
export const SocksReply = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;
export type SocksReply = (typeof SocksReply)[keyof typeof SocksReply];

interface CodeInfo {
  readonly wire: WireCode;
  readonly socks: SocksReply;
  readonly http: number;
  readonly message: string;
}

/** Stable error codes. Each is documented in docs/protocol.md (a test checks). */
export const ERRORS = {
  // Target-side outcomes reported by the bridge
  E_GENERAL: { wire: WireCode.GENERAL_FAILURE, socks: SocksReply.GENERAL_FAILURE, http: 502, message: 'general failure at the bridge' },
  E_NOT_ALLOWED: { wire: WireCode.NOT_ALLOWED, socks: SocksReply.NOT_ALLOWED, http: 403, message: 'destination forbidden by bridge policy' },
  E_NET_UNREACHABLE: { wire: WireCode.NETWORK_UNREACHABLE, socks: SocksReply.NETWORK_UNREACHABLE, http: 502, message: 'network unreachable from the bridge' },
  E_HOST_UNREACHABLE: { wire: WireCode.HOST_UNREACHABLE, socks: SocksReply.HOST_UNREACHABLE, http: 502, message: 'host unreachable from the bridge' },
  E_CONN_REFUSED: { wire: WireCode.CONNECTION_REFUSED, socks: SocksReply.CONNECTION_REFUSED, http: 502, message: 'connection refused by the destination' },
  E_TIMEOUT: { wire: WireCode.TIMEOUT, socks: SocksReply.TTL_EXPIRED, http: 504, message: 'destination did not answer in time' },
  E_DNS: { wire: WireCode.DNS_FAILURE, socks: SocksReply.HOST_UNREACHABLE, http: 502, message: 'destination name could not be resolved by the bridge' },
  E_PROTOCOL: { wire: WireCode.PROTOCOL_ERROR, socks: SocksReply.GENERAL_FAILURE, http: 502, message: 'protocol error' },
  E_STREAM_LIMIT: { wire: WireCode.STREAM_LIMIT, socks: SocksReply.GENERAL_FAILURE, http: 503, message: 'too many streams on this session' },
  E_CANCELLED: { wire: WireCode.CANCELLED, socks: SocksReply.GENERAL_FAILURE, http: 502, message: 'stream cancelled' },
  E_CONN_RESET: { wire: WireCode.CONNECTION_RESET, socks: SocksReply.GENERAL_FAILURE, http: 502, message: 'connection reset by the destination' },
  E_FLOW_CONTROL: { wire: WireCode.FLOW_CONTROL_ERROR, socks: SocksReply.GENERAL_FAILURE, http: 502, message: 'peer exceeded the flow-control window' },
  E_INTERNAL: { wire: WireCode.INTERNAL_ERROR, socks: SocksReply.GENERAL_FAILURE, http: 500, message: 'internal error' },
  E_GOING_AWAY: { wire: WireCode.GOING_AWAY, socks: SocksReply.GENERAL_FAILURE, http: 503, message: 'peer is shutting down' },
  // Local errors (never on the wire as such; sent as the nearest wire code where one is needed)
  E_TUNNEL_DOWN: { wire: WireCode.GENERAL_FAILURE, socks: SocksReply.GENERAL_FAILURE, http: 502, message: 'no connection to the bridge' },
  E_SESSION_CLOSED: { wire: WireCode.CANCELLED, socks: SocksReply.GENERAL_FAILURE, http: 502, message: 'tunnel session closed' },
  E_PIN_MISMATCH: { wire: WireCode.GENERAL_FAILURE, socks: SocksReply.GENERAL_FAILURE, http: 502, message: "bridge certificate does not match the pinned key" },
  E_TLS: { wire: WireCode.GENERAL_FAILURE, socks: SocksReply.GENERAL_FAILURE, http: 502, message: 'TLS handshake with the bridge failed' },
  E_AUTH_REJECTED: { wire: WireCode.GENERAL_FAILURE, socks: SocksReply.GENERAL_FAILURE, http: 502, message: 'bridge did not accept our credential (wrong secret or path)' },
  E_CLOCK_SKEW: { wire: WireCode.GENERAL_FAILURE, socks: SocksReply.GENERAL_FAILURE, http: 502, message: "this computer's clock differs from the bridge's by more than the token window" },
  E_DIAL: { wire: WireCode.GENERAL_FAILURE, socks: SocksReply.GENERAL_FAILURE, http: 502, message: 'could not reach the bridge' },
  E_BAD_URI: { wire: WireCode.GENERAL_FAILURE, socks: SocksReply.GENERAL_FAILURE, http: 500, message: 'invalid bridge URI' },
  E_CONFIG: { wire: WireCode.GENERAL_FAILURE, socks: SocksReply.GENERAL_FAILURE, http: 500, message: 'invalid configuration' },
  E_SOCKS_PROTOCOL: { wire: WireCode.PROTOCOL_ERROR, socks: SocksReply.GENERAL_FAILURE, http: 400, message: 'malformed SOCKS message' },
  E_SOCKS_AUTH: { wire: WireCode.NOT_ALLOWED, socks: SocksReply.NOT_ALLOWED, http: 407, message: 'SOCKS authentication failed' },
  E_ROUTE_BLOCKED: { wire: WireCode.NOT_ALLOWED, socks: SocksReply.NOT_ALLOWED, http: 403, message: 'destination blocked by a route rule' },
  E_ROUTE_PRIVATE: { wire: WireCode.NOT_ALLOWED, socks: SocksReply.NOT_ALLOWED, http: 403, message: "a direct route from a LAN listener may not reach this computer's own or private networks (route.allowLanPrivate)" },
  E_HANDSHAKE_TIMEOUT: { wire: WireCode.TIMEOUT, socks: SocksReply.TTL_EXPIRED, http: 408, message: 'handshake timed out' },
  // Local errors of the command line: each says what to do, and exits with its own status (exitStatus)
  E_USAGE: { wire: WireCode.GENERAL_FAILURE, socks: SocksReply.GENERAL_FAILURE, http: 500, message: 'usage' },
  E_CONFIG_UNREADABLE: { wire: WireCode.GENERAL_FAILURE, socks: SocksReply.GENERAL_FAILURE, http: 500, message: 'cannot read a file' },
  E_FILE_EXISTS: { wire: WireCode.GENERAL_FAILURE, socks: SocksReply.GENERAL_FAILURE, http: 500, message: 'file exists' },
  E_ADDR_IN_USE: { wire: WireCode.GENERAL_FAILURE, socks: SocksReply.GENERAL_FAILURE, http: 500, message: 'address already in use' },
  E_LISTEN_DENIED: { wire: WireCode.GENERAL_FAILURE, socks: SocksReply.GENERAL_FAILURE, http: 500, message: 'permission denied' },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof ERRORS;

export class PosternError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    super(detail ? `${ERRORS[code].message}: ${detail}` : ERRORS[code].message, options);
    this.name = 'PosternError';
    this.code = code;
  }
  get wire(): WireCode {
    return ERRORS[this.code].wire;
  }
  get socksReply(): SocksReply {
    return ERRORS[this.code].socks;
  }
  get httpStatus(): number {
    return ERRORS[this.code].http;
  }
}

const WIRE_TO_CODE: ReadonlyMap<number, ErrorCode> = new Map<number, ErrorCode>([
  [WireCode.GENERAL_FAILURE, 'E_GENERAL'],
  [WireCode.NOT_ALLOWED, 'E_NOT_ALLOWED'],
  [WireCode.NETWORK_UNREACHABLE, 'E_NET_UNREACHABLE'],
  [WireCode.HOST_UNREACHABLE, 'E_HOST_UNREACHABLE'],
  [WireCode.CONNECTION_REFUSED, 'E_CONN_REFUSED'],
  [WireCode.TIMEOUT, 'E_TIMEOUT'],
  [WireCode.DNS_FAILURE, 'E_DNS'],
  [WireCode.PROTOCOL_ERROR, 'E_PROTOCOL'],
  [WireCode.STREAM_LIMIT, 'E_STREAM_LIMIT'],
  [WireCode.CANCELLED, 'E_CANCELLED'],
  [WireCode.CONNECTION_RESET, 'E_CONN_RESET'],
  [WireCode.FLOW_CONTROL_ERROR, 'E_FLOW_CONTROL'],
  [WireCode.INTERNAL_ERROR, 'E_INTERNAL'],
  [WireCode.GOING_AWAY, 'E_GOING_AWAY'],
]);

/** The error a wire code received from the peer stands for (unknown codes → E_GENERAL). */
export function errorFromWire(wire: number, detail?: string): PosternError {
  return new PosternError(WIRE_TO_CODE.get(wire) ?? 'E_GENERAL', detail);
}

/** Maps a Node socket/DNS error (err.code) from an egress attempt to our catalogue. */
export function errorFromSystem(err: unknown): PosternError {
  if (err instanceof PosternError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
      return new PosternError('E_CONN_REFUSED', code, { cause: err });
    case 'ENETUNREACH':
    case 'ENETDOWN':
      return new PosternError('E_NET_UNREACHABLE', code, { cause: err });
    case 'EHOSTUNREACH':
    case 'EHOSTDOWN':
    case 'EADDRNOTAVAIL':
      return new PosternError('E_HOST_UNREACHABLE', code, { cause: err });
    case 'ETIMEDOUT':
      return new PosternError('E_TIMEOUT', code, { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
    case 'EAI_NONAME':
    case 'ENODATA':
    case 'ESERVFAIL':
      return new PosternError('E_DNS', code, { cause: err });
    case 'ECONNRESET':
    case 'EPIPE':
      return new PosternError('E_CONN_RESET', code, { cause: err });
    default:
      return new PosternError('E_GENERAL', code || (err as Error | undefined)?.message, { cause: err });
  }
}

/**
 * The process exit status for an error that ends a command (sysexits.h): usage 2 (as commander and
 * most tools), configuration 78 (EX_CONFIG), a file that cannot be read 66 (EX_NOINPUT), one that
 * should not be overwritten 73 (EX_CANTCREAT), a port in use 69 (EX_UNAVAILABLE), a port not
 * allowed 77 (EX_NOPERM); anything else 1.
 */
export function exitStatus(code: ErrorCode | undefined): number {
  switch (code) {
    case 'E_USAGE':
      return 2;
    case 'E_CONFIG':
    case 'E_BAD_URI':
      return 78;
    case 'E_CONFIG_UNREADABLE':
      return 66;
    case 'E_FILE_EXISTS':
      return 73;
    case 'E_ADDR_IN_USE':
      return 69;
    case 'E_LISTEN_DENIED':
      return 77;
    default:
      return 1;
  }
}
