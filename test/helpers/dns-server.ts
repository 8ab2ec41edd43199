/**
 * A tiny DNS server for tests (RFC 1035 §4), on loopback UDP, port 0: it answers A queries for
 * the names it is given, black-holes (never answers) names `blackhole` picks, and answers
 * NXDOMAIN for the rest; AAAA queries for an answered name get an empty NOERROR (no IPv6).
 * It counts every query it receives, by name.
 */
import dgram from 'node:dgram';

export interface TestDns {
  readonly port: number;
  /** "127.0.0.1:PORT", for the bridge's dns.servers. */
  readonly server: string;
  /** Queries received per name (lower case), every type. */
  readonly queries: Map<string, number>;
  close(): Promise<void>;
}

interface Question {
  readonly id: number;
  readonly name: string;
  readonly type: number;
  /** Bytes of the question section (name, type, class), echoed in the answer. */
  readonly question: Buffer;
}

/** Parses a one-question query; null when malformed (a test server only needs this much). */
function parseQuery(msg: Buffer): Question | null {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return null;
  const labels: string[] = [];
  let off = 12;
  for (;;) {
    const len = msg[off];
    if (len === undefined || len > 63) return null;
    off++;
    if (len === 0) break;
    if (off + len > msg.length) return null;
    labels.push(msg.toString('latin1', off, off + len));
    off += len;
  }
  if (off + 4 > msg.length) return null;
  const type = msg.readUInt16BE(off);
  return { id: msg.readUInt16BE(0), name: labels.join('.').toLowerCase(), type, question: msg.subarray(12, off + 4) };
}

function reply(q: Question, rcode: number, a: string | null): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  header.writeUInt16BE(0x8180 | rcode, 2); // QR, RD, RA
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(a === null ? 0 : 1, 6);
  if (a === null) return Buffer.concat([header, q.question]);
  const rr = Buffer.alloc(16);
  rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
  rr.writeUInt16BE(1, 2); // A
  rr.writeUInt16BE(1, 4); // IN
  rr.writeUInt32BE(60, 6); // TTL
  rr.writeUInt16BE(4, 10);
  a.split('.').forEach((p, i) => rr.writeUInt8(Number(p), 12 + i));
  return Buffer.concat([header, q.question, rr]);
}

export async function startTestDns(answers: Readonly<Record<string, string>>, blackhole: (name: string) => boolean): Promise<TestDns> {
  const sock = dgram.createSocket('udp4');
  const queries = new Map<string, number>();
  sock.on('message', (msg, rinfo) => {
    const q = parseQuery(msg);
    if (q === null) return;
    queries.set(q.name, (queries.get(q.name) ?? 0) + 1);
    if (blackhole(q.name)) return;
    const a = answers[q.name];
    const out = a === undefined ? reply(q, 3, null) : reply(q, 0, q.type === 1 ? a : null);
    sock.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
  const port = sock.address().port;
  return {
    port,
    server: `127.0.0.1:${port}`,
    queries,
    close: () => new Promise<void>((resolve) => sock.close(() => resolve())),
  };
}
