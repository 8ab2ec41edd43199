/**
 * Header padding of the HTTP/2 transport (protocol.md §12.5): every request and response that the
 * transport makes carries a Postern-Padding header of random length, so that HEADERS frame sizes
 * (and so the sizes of the TLS records that carry them) do not repeat from one request to the next.
 */
import { randomBytes, randomInt } from 'node:crypto';

export const PADDING_HEADER = 'postern-padding';
/** The value is 16..256 characters of base64url (random, so HPACK cannot shrink it to an index). */
export const PADDING_MIN_CHARS = 16;
export const PADDING_MAX_CHARS = 256;

export function paddingValue(): string {
  const n = randomInt(PADDING_MIN_CHARS, PADDING_MAX_CHARS + 1);
  return randomBytes(Math.ceil((n * 3) / 4)).toString('base64url').slice(0, n);
}
