/**
 * Capping the TLS records a connection sends (protocol.md §9.8): on a path that cuts connections,
 * a record cut short is lost whole, so small records let the peer keep what got through. Shared by
 * every transport's setRecordMaxBytes.
 */

/** TLS record payload bounds (RFC 8446 §5.1 maximum; OpenSSL's smallest max_send_fragment). */
const TLS_RECORD_MAX_BYTES = 16_384;
const TLS_RECORD_MIN_BYTES = 512;

/** A socket that may be a TLS socket (a plain one, or one without setMaxSendFragment, is left alone). */
export type RecordCappable = object;

/** Caps `socket`'s TLS records near `bytes` (within the bounds above); no effect without TLS. */
export function capTlsRecords(socket: RecordCappable | undefined, bytes: number): void {
  try {
    // An HTTP/2 session's socket is a proxy that throws once the session has let go of it.
    const tls = socket as { setMaxSendFragment?: unknown } | undefined;
    if (typeof tls?.setMaxSendFragment !== 'function') return;
    (tls.setMaxSendFragment as (n: number) => boolean).call(tls, Math.max(TLS_RECORD_MIN_BYTES, Math.min(TLS_RECORD_MAX_BYTES, Math.floor(bytes))));
  } catch {
    // gone: nothing to cap
  }
}
