/**
 * The bench's own tiny traffic protocol, spoken over direct TCP, the TLS pair and Postern alike.
 * A client opens a connection to the traffic server and sends one 9-byte request:
 *   'D' + uint64be N  → the server sends N bytes, then ends;
 *   'U' + uint64be N  → the client sends N bytes; once all N have arrived the server sends one 'K' byte.
 * The echo server is separate and plainly echoes every byte.
 */
export const OP_DOWNLOAD = 0x44; // 'D'
export const OP_UPLOAD = 0x55; // 'U'
export const UPLOAD_ACK = 0x4b; // 'K'
export const REQUEST_BYTES = 9;

/** Source buffer size: large writes keep the generator off the critical path. */
export const CHUNK_BYTES = 256 * 1024;

export function encodeRequest(op: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(REQUEST_BYTES);
  b[0] = op;
  b.writeBigUInt64BE(BigInt(size), 1);
  return b;
}

/** A buffer of CHUNK_BYTES filled with a non-trivial pattern (not zeros, so nothing can shortcut it). */
export function patternChunk(): Buffer {
  const b = Buffer.allocUnsafe(CHUNK_BYTES);
  for (let i = 0; i < b.length; i++) b[i] = (i * 131 + 7) & 0xff;
  return b;
}

/** Messages between the bench's main thread and its server worker. */
export interface ServerPorts {
  type: 'ready';
  trafficTcpPort: number;
  trafficTlsPort: number;
  echoPort: number;
}
export interface ServerStats {
  type: 'stats';
  id: number;
  echoOpen: number;
  trafficOpen: number;
}
export type ToWorker = { type: 'stats'; id: number } | { type: 'close' };
export type FromWorker = ServerPorts | ServerStats | { type: 'closed' } | { type: 'error'; message: string };

/** workerData for the server worker. */
export interface ServerConfig {
  tlsKey: string;
  tlsCert: string;
}
