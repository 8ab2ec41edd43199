/**
 * The hosts file (hosts(5), /etc/hosts) for the bridge's own resolver: c-ares (dns.Resolver)
 * queries DNS servers only, so the bridge reads the file itself, first, as getaddrinfo would.
 *
 * parseHosts is pure (text in, table out). HostsFile keeps the parsed table and re-reads the file
 * when it changed (size, mtime or inode), checking at most every HOSTS_FILE_RECHECK_MS. Reads are
 * synchronous: a stat every few seconds and a small file, never on libuv's thread pool, which a
 * slow disk or another user's work could otherwise hold up.
 */
import fs from 'node:fs';
import net from 'node:net';
import type { Limits } from '../core/limits.js';
import type { Logger } from '../log/logger.js';

/** name (lower case, no trailing dot) → addresses in file order, without duplicates. */
export type HostsTable = ReadonlyMap<string, readonly string[]>;

/** A host name as hosts(5) and RFC 1123 allow it: labels of letters, digits, '-' and '_' (common in practice), dot-separated. */
const NAME_RE = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** RFC 6761 §6.3: `localhost` and names under it are loopback, and never go to a DNS server. */
export function localhostAnswer(key: string): readonly string[] | undefined {
  return key === 'localhost' || key.endsWith('.localhost') ? ['127.0.0.1', '::1'] : undefined;
}

/** The form a name is looked up under: lower case, one trailing dot removed. */
export function hostsKey(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/**
 * Parses hosts(5) text: per line `ADDRESS NAME [ALIAS…]`, fields separated by spaces or tabs,
 * `#` starts a comment. A line whose address is not an IPv4 or IPv6 literal is skipped, as is a
 * name that is not a valid host name. A name on several lines gets every address, in file order.
 */
export function parseHosts(text: string): HostsTable {
  const table = new Map<string, string[]>();
  for (const raw of text.split(/\r?\n/)) {
    const hash = raw.indexOf('#');
    const line = hash === -1 ? raw : raw.slice(0, hash);
    const fields = line.split(/[ \t]+/).filter((f) => f !== '');
    if (fields.length < 2) continue;
    const address = fields[0] as string;
    // An address with a zone id (fe80::1%eth0) names an interface, not a destination: skipped.
    if (net.isIP(address) === 0 || address.includes('%')) continue;
    for (const name of fields.slice(1)) {
      const key = hostsKey(name);
      if (!NAME_RE.test(key)) continue;
      const list = table.get(key);
      if (list === undefined) table.set(key, [address]);
      else if (!list.includes(address)) list.push(address);
    }
  }
  return table;
}

interface FileStamp {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
}

/** A hosts file, parsed, re-read when it changes. */
export class HostsFile {
  private table: HostsTable = new Map();
  private stamp: FileStamp | null = null;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private problem: string | null = null;

  constructor(
    readonly path: string,
    private readonly limits: Pick<Limits, 'HOSTS_FILE_RECHECK_MS' | 'HOSTS_FILE_MAX_BYTES'>,
    private readonly log: Logger | null = null,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The addresses the file gives `name` (else loopback for `localhost`, RFC 6761), or undefined. */
  lookup(name: string): readonly string[] | undefined {
    this.refresh();
    const key = hostsKey(name);
    return this.table.get(key) ?? localhostAnswer(key);
  }

  /** Names in the table now (metrics, tests). */
  get size(): number {
    this.refresh();
    return this.table.size;
  }

  private refresh(): void {
    const t = this.now();
    if (t - this.checkedAt < this.limits.HOSTS_FILE_RECHECK_MS) return;
    this.checkedAt = t;
    let st: fs.Stats;
    try {
      st = fs.statSync(this.path);
    } catch (err) {
      this.set(new Map(), null, `cannot read ${this.path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); names are resolved by DNS only`);
      return;
    }
    const stamp: FileStamp = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
    const old = this.stamp;
    if (old !== null && old.size === stamp.size && old.mtimeMs === stamp.mtimeMs && old.ino === stamp.ino) return;
    if (st.size > this.limits.HOSTS_FILE_MAX_BYTES) {
      this.set(new Map(), stamp, `${this.path} is larger than HOSTS_FILE_MAX_BYTES (${this.limits.HOSTS_FILE_MAX_BYTES}); names are resolved by DNS only`);
      return;
    }
    let text: string;
    try {
      text = fs.readFileSync(this.path, 'utf8');
    } catch (err) {
      this.set(new Map(), null, `cannot read ${this.path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); names are resolved by DNS only`);
      return;
    }
    this.set(parseHosts(text.slice(0, this.limits.HOSTS_FILE_MAX_BYTES)), stamp, null);
  }

  private set(table: HostsTable, stamp: FileStamp | null, problem: string | null): void {
    const first = this.stamp === null && this.problem === null;
    this.table = table;
    this.stamp = stamp;
    if (problem !== null && problem !== this.problem) this.log?.warn(problem);
    else if (problem === null && !first) this.log?.info({ names: table.size }, 'hosts file re-read');
    this.problem = problem;
  }
}
