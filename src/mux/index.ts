/** The mux layer (docs/protocol.md §4–§8): frames, codec, streams, sessions. */
export {
  FrameType,
  HEADER_BYTES,
  PROTOCOL_MAX_PAYLOAD_BYTES,
  PING_DATA_BYTES,
  MAX_WINDOW,
  MAX_STREAM_ID,
  OpenCommand,
  AddressType,
  type Frame,
  type StreamFrame,
  type OpenFrame,
  type InvalidOpenFrame,
  type OpenInvalidReason,
  type OpenResultFrame,
  type DataFrame,
  type WindowFrame,
  type FinFrame,
  type ResetFrame,
  type PingFrame,
  type PongFrame,
  type GoAwayFrame,
} from './frame.js';
export { encodeFrame, decodeMessage, allocFrame } from './codec.js';
export { MuxProtocolError, type MuxProtocolReason } from './errors.js';
export { MuxStream, StreamState } from './stream.js';
export {
  MuxSession,
  KEEPALIVE_CLOSE,
  type MuxRole,
  type MuxSessionOptions,
  type MuxOpenOptions,
  type MuxSessionEvents,
  type SessionCloseInfo,
  type IncomingOpen,
} from './session.js';
export { CloseCode, type FrameTransport } from './transport.js';
