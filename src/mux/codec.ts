/**
 * Frame codec (docs/protocol.md §4). Pure: no sockets, timers or state.
 *
 * - encodeFrame allocates the header and payload together, once; a DATA payload is copied once.
 * - decodeMessage parses one WebSocket message into its frames. It checks every header before it
 *   looks at the payload (an oversize length is refused from the header alone), and returns DATA
 *   payloads and PING/PONG data as subarrays of the message (no copy). Anything malformed throws
 *   a MuxProtocolError; nothing else is thrown for any input.
 */
import { addressLength, readAddress, readAddressPrefix, writeAddress } from './address.js';
import { MuxProtocolError } from './errors.js';
import { allocWithHeadroom } from './transport.js';
import {
  FrameType,
  HEADER_BYTES,
  OpenCommand,
  PING_DATA_BYTES,
  isStreamFrameType,
  type Frame,
} from './frame.js';

/** OPEN payload bytes before the address: window u32 ‖ cmd u8. */
const OPEN_FIXED_BYTES = 5;
const OPEN_RESULT_BYTES = 5;
const WINDOW_BYTES = 4;
const CODE_BYTES = 1;

/** Frames at least this long get headroom (smaller ones come from Node's shared pool, or are coalesced). */
const HEADROOM_MIN_FRAME_BYTES = 4096;

/**
 * A buffer of HEADER_BYTES + payloadLength with the header written (flags 0) and the payload
 * left for the caller to fill (the stream copies application chunks straight into it). A large
 * one has MESSAGE_HEADROOM_BYTES reserved in front of it for its transport (transport.ts).
 */
export function allocFrame(type: FrameType, streamId: number, payloadLength: number): Buffer {
  const total = HEADER_BYTES + payloadLength;
  const buf = total >= HEADROOM_MIN_FRAME_BYTES ? allocWithHeadroom(total) : Buffer.allocUnsafe(total);
  buf[0] = type;
  buf[1] = 0;
  buf.writeUInt32BE(streamId, 2);
  buf.writeUInt32BE(payloadLength, 6);
  return buf;
}

/** One frame → its bytes. Throws RangeError for a value that does not fit its field. */
export function encodeFrame(frame: Frame): Buffer {
  switch (frame.type) {
    case FrameType.OPEN: {
      const addrLen = frame.target === null ? frame.rest.length : addressLength(frame.target);
      const buf = allocFrame(FrameType.OPEN, frame.streamId, OPEN_FIXED_BYTES + addrLen);
      buf.writeUInt32BE(frame.window, HEADER_BYTES);
      buf.writeUInt8(frame.cmd, HEADER_BYTES + 4);
      if (frame.target === null) frame.rest.copy(buf, HEADER_BYTES + OPEN_FIXED_BYTES);
      else writeAddress(buf, HEADER_BYTES + OPEN_FIXED_BYTES, frame.target);
      return buf;
    }
    case FrameType.OPEN_RESULT: {
      const buf = allocFrame(frame.type, frame.streamId, OPEN_RESULT_BYTES);
      buf.writeUInt8(frame.code, HEADER_BYTES);
      buf.writeUInt32BE(frame.window, HEADER_BYTES + 1);
      return buf;
    }
    case FrameType.DATA: {
      if (frame.payload.length === 0) throw new RangeError('DATA payload must not be empty');
      const buf = allocFrame(frame.type, frame.streamId, frame.payload.length);
      frame.payload.copy(buf, HEADER_BYTES);
      return buf;
    }
    case FrameType.WINDOW: {
      if (frame.increment === 0) throw new RangeError('WINDOW increment must be > 0');
      const buf = allocFrame(frame.type, frame.streamId, WINDOW_BYTES);
      buf.writeUInt32BE(frame.increment, HEADER_BYTES);
      return buf;
    }
    case FrameType.FIN:
      return allocFrame(frame.type, frame.streamId, 0);
    case FrameType.RESET: {
      const buf = allocFrame(frame.type, frame.streamId, CODE_BYTES);
      buf.writeUInt8(frame.code, HEADER_BYTES);
      return buf;
    }
    case FrameType.PING:
    case FrameType.PONG: {
      if (frame.data.length !== PING_DATA_BYTES) throw new RangeError(`PING/PONG data must be ${PING_DATA_BYTES} bytes`);
      const buf = allocFrame(frame.type, 0, PING_DATA_BYTES);
      frame.data.copy(buf, HEADER_BYTES);
      return buf;
    }
    case FrameType.GOAWAY: {
      const buf = allocFrame(frame.type, 0, CODE_BYTES);
      buf.writeUInt8(frame.code, HEADER_BYTES);
      return buf;
    }
    case FrameType.DATAGRAM: {
      if (frame.target === null) throw new RangeError('DATAGRAM needs an address');
      const addrLen = addressLength(frame.target);
      const buf = allocFrame(frame.type, frame.streamId, addrLen + frame.data.length);
      writeAddress(buf, HEADER_BYTES, frame.target);
      frame.data.copy(buf, HEADER_BYTES + addrLen);
      return buf;
    }
    default:
      throw new RangeError(`unknown frame type ${(frame as { type: unknown }).type}`);
  }
}

/**
 * One WebSocket message → its frames, in order. `maxPayload` is the largest payload length
 * accepted (FRAME_MAX_PAYLOAD_BYTES). The whole message is checked before any frame is returned,
 * so a bad frame anywhere means no frame of the message is acted on.
 */
export function decodeMessage(message: Buffer, maxPayload: number): Frame[] {
  if (message.length === 0) throw new MuxProtocolError('empty-message');
  const frames: Frame[] = [];
  let at = 0;
  while (at < message.length) {
    if (message.length - at < HEADER_BYTES) {
      throw new MuxProtocolError('truncated-header', `${message.length - at} bytes left at offset ${at}`);
    }
    const type = message[at] as number;
    // message[at + 1] is flags: reserved, ignored (§4).
    const streamId = message.readUInt32BE(at + 2);
    const length = message.readUInt32BE(at + 6);
    if ((type < FrameType.OPEN || type > FrameType.GOAWAY) && type !== FrameType.DATAGRAM) {
      throw new MuxProtocolError('unknown-type', `0x${type.toString(16).padStart(2, '0')}`);
    }
    if (length > maxPayload) throw new MuxProtocolError('payload-too-large', `${length} > ${maxPayload}`);
    if (isStreamFrameType(type) || type === FrameType.DATAGRAM) {
      if (streamId === 0) throw new MuxProtocolError('stream-id-zero', `type 0x${type.toString(16).padStart(2, '0')}`);
    } else if (streamId !== 0) {
      throw new MuxProtocolError('stream-id-not-zero', `type 0x0${type}`);
    }
    const start = at + HEADER_BYTES;
    const end = start + length;
    if (end > message.length) throw new MuxProtocolError('truncated-payload', `${length} announced, ${message.length - start} present`);
    // §10: a DATAGRAM is a connection message, never numbered, so it travels alone.
    if (type === FrameType.DATAGRAM && (at !== 0 || end !== message.length)) throw new MuxProtocolError('datagram-not-alone');
    frames.push(decodeFrame(message, type, streamId, start, end));
    at = end;
  }
  return frames;
}

function decodeFrame(m: Buffer, type: number, streamId: number, start: number, end: number): Frame {
  const length = end - start;
  switch (type) {
    case FrameType.OPEN: {
      if (length < OPEN_FIXED_BYTES) throw badSize('OPEN', length);
      const window = m.readUInt32BE(start);
      const cmd = m[start + 4] as number;
      const addrStart = start + OPEN_FIXED_BYTES;
      if (cmd !== OpenCommand.CONNECT && cmd !== OpenCommand.UDP_ASSOCIATE) {
        return { type: FrameType.OPEN, streamId, window, cmd, target: null, invalid: 'unknown-command', rest: m.subarray(addrStart, end) };
      }
      const target = readAddress(m, addrStart, end);
      if (typeof target === 'string') {
        return { type: FrameType.OPEN, streamId, window, cmd, target: null, invalid: target, rest: m.subarray(addrStart, end) };
      }
      return { type: FrameType.OPEN, streamId, window, cmd, target };
    }
    case FrameType.OPEN_RESULT:
      if (length !== OPEN_RESULT_BYTES) throw badSize('OPEN_RESULT', length);
      return { type: FrameType.OPEN_RESULT, streamId, code: m[start] as number, window: m.readUInt32BE(start + 1) };
    case FrameType.DATA:
      if (length === 0) throw badSize('DATA', length);
      return { type: FrameType.DATA, streamId, payload: m.subarray(start, end) };
    case FrameType.WINDOW: {
      if (length !== WINDOW_BYTES) throw badSize('WINDOW', length);
      const increment = m.readUInt32BE(start);
      if (increment === 0) throw new MuxProtocolError('window-increment-zero');
      return { type: FrameType.WINDOW, streamId, increment };
    }
    case FrameType.FIN:
      if (length !== 0) throw badSize('FIN', length);
      return { type: FrameType.FIN, streamId };
    case FrameType.RESET:
      if (length !== CODE_BYTES) throw badSize('RESET', length);
      return { type: FrameType.RESET, streamId, code: m[start] as number };
    case FrameType.DATAGRAM: {
      const r = readAddressPrefix(m, start, end);
      if (typeof r === 'string') return { type: FrameType.DATAGRAM, streamId, target: null, data: m.subarray(end, end) };
      return { type: FrameType.DATAGRAM, streamId, target: r.target, data: m.subarray(r.next, end) };
    }
    case FrameType.PING:
      if (length !== PING_DATA_BYTES) throw badSize('PING', length);
      return { type: FrameType.PING, data: m.subarray(start, end) };
    case FrameType.PONG:
      if (length !== PING_DATA_BYTES) throw badSize('PONG', length);
      return { type: FrameType.PONG, data: m.subarray(start, end) };
    default: // FrameType.GOAWAY (the type range was checked by the caller)
      if (length !== CODE_BYTES) throw badSize('GOAWAY', length);
      return { type: FrameType.GOAWAY, code: m[start] as number };
  }
}

function badSize(name: string, length: number): MuxProtocolError {
  return new MuxProtocolError('bad-payload-size', `${name} with ${length} bytes`);
}
