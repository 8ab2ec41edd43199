/**
 * IP address ranges as sorted tables: a lookup is one binary search, so its cost grows with the
 * logarithm of the table, not its length. Pure: no sockets, no DNS.
 *
 * An address is a key of 32-bit words: one word for IPv4, four (most significant first) for IPv6.
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are keyed as the IPv4 address they carry.
 */
import { parseIPv4, parseIPv6 } from '../core/address.js';

/** An address as words: IPv4 → 1 word, IPv6 → 4 words (big-endian order). */
export interface IpKey {
  readonly v: 4 | 6;
  readonly w: Uint32Array;
}

/** Parses an IP literal (IPv6 without brackets or zone) into its key; null when it is not one. */
export function ipKey(text: string): IpKey | null {
  const v4 = parseIPv4(text);
  if (v4 !== null) return { v: 4, w: Uint32Array.of(((v4[0]! << 24) | (v4[1]! << 16) | (v4[2]! << 8) | v4[3]!) >>> 0) };
  if (text.indexOf(':') < 0) return null;
  const b = parseIPv6(text);
  if (b === null) return null;
  const w = new Uint32Array(4);
  for (let i = 0; i < 4; i++) w[i] = ((b[4 * i]! << 24) | (b[4 * i + 1]! << 16) | (b[4 * i + 2]! << 8) | b[4 * i + 3]!) >>> 0;
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return { v: 4, w: Uint32Array.of(w[3]!) };
  return { v: 6, w };
}

/** "a.b.c.d/n", "v6/n" or a bare address (a /32 or /128) → its first and last key; null when malformed. */
export function parseCidrKeys(text: string): { v: 4 | 6; start: Uint32Array; end: Uint32Array } | null {
  const slash = text.indexOf('/');
  const addr = ipKey(slash < 0 ? text : text.slice(0, slash));
  if (addr === null) return null;
  // A mapped IPv6 CIDR ("::ffff:1.2.3.0/120") is an IPv4 one with 96 fewer bits.
  const mapped = addr.v === 4 && text.slice(0, slash < 0 ? undefined : slash).indexOf(':') >= 0;
  const width = addr.v === 4 ? 32 : 128;
  let bits = width;
  if (slash >= 0) {
    const t = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(t)) return null;
    bits = Number(t) - (mapped ? 96 : 0);
    if (bits < 0 || bits > width) return null;
  }
  const start = Uint32Array.from(addr.w);
  const end = Uint32Array.from(addr.w);
  for (let i = 0; i < start.length; i++) {
    const keep = Math.max(0, Math.min(32, bits - 32 * i)); // prefix bits in this word
    const mask = keep === 0 ? 0 : keep === 32 ? 0xffffffff : (0xffffffff << (32 - keep)) >>> 0;
    start[i] = (start[i]! & mask) >>> 0;
    end[i] = (start[i]! | (~mask >>> 0)) >>> 0;
  }
  return { v: addr.v, start, end };
}

function cmp(a: Uint32Array, ai: number, b: Uint32Array, bi: number, width: number): number {
  for (let k = 0; k < width; k++) {
    const x = a[ai + k]!;
    const y = b[bi + k]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** Adds one to a key in place; false on overflow (the key was all ones). */
function increment(w: Uint32Array): boolean {
  for (let i = w.length - 1; i >= 0; i--) {
    if (w[i] !== 0xffffffff) {
      w[i] = w[i]! + 1;
      return true;
    }
    w[i] = 0;
  }
  return false;
}

/** Sorted, non-overlapping ranges of one family, with a value index per range. */
class FamilyTable {
  constructor(
    readonly width: 1 | 4,
    readonly starts: Uint32Array,
    readonly ends: Uint32Array,
    readonly values: Uint32Array,
  ) {}

  get size(): number {
    return this.values.length;
  }

  /** The index of the range holding `key`, or -1. */
  find(key: Uint32Array): number {
    const w = this.width;
    let lo = 0;
    let hi = this.values.length - 1;
    let found = -1;
    // Last range whose start ≤ key.
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (cmp(this.starts, mid * w, key, 0, w) <= 0) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (found < 0 || cmp(key, 0, this.ends, found * w, w) > 0) return -1;
    return found;
  }
}

/** Collects ranges of both families, then builds the sorted tables. */
class FamilyBuilder {
  private starts: number[] = [];
  private ends: number[] = [];
  private values: number[] = [];
  constructor(private readonly width: 1 | 4) {}

  add(start: Uint32Array, end: Uint32Array, value: number): void {
    for (const x of start) this.starts.push(x);
    for (const x of end) this.ends.push(x);
    this.values.push(value);
  }

  /**
   * Sorts by start. With `merge`, overlapping or adjacent ranges become one (values are then
   * meaningless: a membership set); without, a later range that overlaps an earlier one is cut
   * to what is left of it (the first range given for an address wins).
   */
  build(merge: boolean): FamilyTable {
    const w = this.width;
    const n = this.values.length;
    const S = Uint32Array.from(this.starts);
    const E = Uint32Array.from(this.ends);
    const order = Array.from({ length: n }, (_, i) => i);
    order.sort((a, b) => cmp(S, a * w, S, b * w, w) || a - b);
    const os: number[] = [];
    const oe: number[] = [];
    const ov: number[] = [];
    const lastEnd = new Uint32Array(w);
    const next = new Uint32Array(w);
    let have = false;
    for (const i of order) {
      const s = S.subarray(i * w, i * w + w);
      const e = E.subarray(i * w, i * w + w);
      if (have) {
        next.set(lastEnd);
        const room = increment(next); // first key after the previous range
        if (!room || cmp(e, 0, lastEnd, 0, w) <= 0) continue; // wholly covered
        const overlapsOrTouches = cmp(s, 0, next, 0, w) <= 0;
        if (merge && overlapsOrTouches) {
          const at = os.length / w - 1;
          for (let k = 0; k < w; k++) oe[at * w + k] = e[k]!;
          lastEnd.set(e);
          continue;
        }
        const start = cmp(s, 0, next, 0, w) < 0 ? next : s;
        for (let k = 0; k < w; k++) os.push(start[k]!);
      } else {
        for (let k = 0; k < w; k++) os.push(s[k]!);
      }
      for (let k = 0; k < w; k++) oe.push(e[k]!);
      ov.push(this.values[i]!);
      lastEnd.set(e);
      have = true;
    }
    this.starts = [];
    this.ends = [];
    this.values = [];
    return new FamilyTable(w, Uint32Array.from(os), Uint32Array.from(oe), Uint32Array.from(ov));
  }
}

/** A set of IP ranges (CIDRs), IPv4 and IPv6. */
export class IpRangeSet {
  private constructor(
    private readonly v4: FamilyTable,
    private readonly v6: FamilyTable,
  ) {}

  /** Builds from CIDR texts; throws RangeError naming the first malformed one. */
  static fromCidrs(cidrs: Iterable<string>): IpRangeSet {
    const b4 = new FamilyBuilder(1);
    const b6 = new FamilyBuilder(4);
    for (const c of cidrs) {
      const r = parseCidrKeys(c);
      if (r === null) throw new RangeError(`not an IP address or CIDR: "${c}"`);
      (r.v === 4 ? b4 : b6).add(r.start, r.end, 0);
    }
    return new IpRangeSet(b4.build(true), b6.build(true));
  }

  /** Ranges held after merging. */
  get size(): number {
    return this.v4.size + this.v6.size;
  }

  has(key: IpKey): boolean {
    return (key.v === 4 ? this.v4 : this.v6).find(key.w) >= 0;
  }
}

/** IP ranges to a small label (a country code): first range given for an address wins. */
export class IpRangeMap {
  private constructor(
    private readonly v4: FamilyTable,
    private readonly v6: FamilyTable,
    private readonly labels: readonly string[],
  ) {}

  static builder(): IpRangeMapBuilder {
    return new IpRangeMapBuilder((v4, v6, labels) => new IpRangeMap(v4, v6, labels));
  }

  get size(): number {
    return this.v4.size + this.v6.size;
  }

  get(key: IpKey): string | undefined {
    const t = key.v === 4 ? this.v4 : this.v6;
    const i = t.find(key.w);
    return i < 0 ? undefined : this.labels[t.values[i]!];
  }
}

export class IpRangeMapBuilder {
  private readonly b4 = new FamilyBuilder(1);
  private readonly b6 = new FamilyBuilder(4);
  private readonly labels: string[] = [];
  private readonly index = new Map<string, number>();
  constructor(private readonly make: (v4: FamilyTable, v6: FamilyTable, labels: string[]) => IpRangeMap) {}

  private label(l: string): number {
    let i = this.index.get(l);
    if (i === undefined) {
      i = this.labels.length;
      this.labels.push(l);
      this.index.set(l, i);
    }
    return i;
  }

  /** An inclusive IPv4 range as two 32-bit numbers. */
  addV4(start: number, end: number, label: string): void {
    this.b4.add(Uint32Array.of(start), Uint32Array.of(end), this.label(label));
  }

  /** An inclusive IPv6 range as two four-word keys. */
  addV6(start: Uint32Array, end: Uint32Array, label: string): void {
    this.b6.add(start, end, this.label(label));
  }

  build(): IpRangeMap {
    return this.make(this.b4.build(false), this.b6.build(false), this.labels);
  }
}
