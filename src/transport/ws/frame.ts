/**
 * WebSocket frames the transport writes itself, beside ws (RFC 6455 §5.2, §5.3): the bridge's
 * unmasked ones, whose header goes into the headroom in front of a DATA frame, and the client's
 * masked ones, made in one of a few buffers kept for reuse (src/transport/ws/ws-transport.ts)
 * where ws would mask each into a fresh buffer (a 64 KiB allocation per DATA frame, which the
 * collector then has to sweep). The bytes on the wire are the same as ws's: FIN and the binary
 * opcode, the shortest length form, and for the client the mask bit, a random 4-byte key and the
 * payload XORed with it (with bufferutil's native mask where it loads, as ws does, else the same
 * loop in JavaScript).
 */
import { randomFillSync } from 'node:crypto';
import { createRequire } from 'node:module';

type MaskFn = (source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number) => void;

/** RFC 6455 §5.2: FIN set, opcode 0x2 (binary). */
const WS_FIN_BINARY = 0x82;
/** RFC 6455 §5.2: the mask bit of the second byte. */
const WS_MASK_BIT = 0x80;
/** RFC 6455 §5.2: payload lengths from this one on take a 16-bit, and from the next one a 64-bit, extended length. */
const WS_LEN16_MIN = 126;
const WS_LEN64_MIN = 65_536;
/** RFC 6455 §5.2: the longest header of an unmasked frame (2 bytes and a 64-bit length). */
export const WS_UNMASKED_HEADER_MAX_BYTES = 10;
/** RFC 6455 §5.2: the longest header of a masked frame (2 bytes, a 64-bit length, the 4-byte key). */
export const WS_MASKED_HEADER_MAX_BYTES = 14;
/** Keys drawn from the CSPRNG at a time (4 bytes each). */
const KEY_POOL_BYTES = 1024;

let bufferUtil: MaskFn | null | undefined;

/** bufferutil's mask(), as ws loads it; null where it does not load or WS_NO_BUFFER_UTIL is set. Never throws. */
export function nativeMask(): MaskFn | null {
  if (bufferUtil === undefined) {
    bufferUtil = null;
    if (!process.env.WS_NO_BUFFER_UTIL) {
      try {
        // A literal require('bufferutil') where the bundle has one (the ESM bundle's banner makes
        // it; the single executable resolves it to its embedded copy), else from this module.
        const mod = (typeof require === 'function' ? require('bufferutil') : createRequire(import.meta.url)('bufferutil')) as { mask?: unknown };
        if (typeof mod.mask === 'function') bufferUtil = mod.mask as MaskFn;
      } catch {
        // JavaScript masking
      }
    }
  }
  return bufferUtil;
}

/** The same XOR in JavaScript, where bufferutil does not load (as ws falls back). */
export function jsMask(source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number): void {
  for (let i = 0; i < length; i++) output[offset + i] = (source[i] as number) ^ (mask[i & 3] as number);
}

const keys = Buffer.alloc(KEY_POOL_BYTES);
let keyAt = KEY_POOL_BYTES;

/** A fresh random masking key (RFC 6455 §5.3), valid until the next call. */
function nextKey(): Buffer {
  if (keyAt === KEY_POOL_BYTES) {
    randomFillSync(keys);
    keyAt = 0;
  }
  const key = keys.subarray(keyAt, keyAt + 4);
  keyAt += 4;
  return key;
}

/** Bytes of the header before the key (2, 4 or 10) of a frame carrying `len` bytes: the shortest length form. */
function headerBytes(len: number): number {
  return len < WS_LEN16_MIN ? 2 : len < WS_LEN64_MIN ? 4 : 10;
}

/** Writes the header of one unfragmented binary frame of `len` bytes at the start of `out`, up to the key. */
function writeHeader(out: Buffer, len: number, masked: boolean): void {
  const maskBit = masked ? WS_MASK_BIT : 0;
  out[0] = WS_FIN_BINARY;
  if (len < WS_LEN16_MIN) {
    out[1] = maskBit | len;
  } else if (len < WS_LEN64_MIN) {
    out[1] = maskBit | WS_LEN16_MIN;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = maskBit | 127;
    out.writeUInt32BE(0, 2); // messages are far below 2^32 bytes (WS_MAX_MESSAGE_BYTES)
    out.writeUInt32BE(len, 6);
  }
}

/**
 * Writes the header of one unmasked, unfragmented binary frame (the bridge's) into the headroom in
 * front of `message` (at least WS_UNMASKED_HEADER_MAX_BYTES) and returns header and message as one
 * buffer.
 */
export function unmaskedFrame(message: Buffer): Buffer {
  const h = headerBytes(message.length);
  const out = Buffer.from(message.buffer, message.byteOffset - h, message.length + h);
  writeHeader(out, message.length, false);
  return out;
}

/**
 * Writes one masked, unfragmented binary frame carrying `message` into `out` (which must hold
 * message.length + WS_MASKED_HEADER_MAX_BYTES) and returns the part of `out` that is the frame.
 * `message` is left as it was.
 */
export function maskedFrame(message: Buffer, out: Buffer): Buffer {
  const len = message.length;
  const h = headerBytes(len) + 4;
  writeHeader(out, len, true);
  const key = nextKey();
  key.copy(out, h - 4);
  (nativeMask() ?? jsMask)(message, key, out, h, len);
  return out.subarray(0, h + len);
}
