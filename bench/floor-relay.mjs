/**
 * The bench's floor: the least a Node TLS tunnel does, to set Postern's figures against. Least
 * work, not most speed: its pipe() writes each 16 KiB TLS chunk as it comes, and Postern's bigger
 * writes have moved more MB/s than it in some runs.
 *
 *   node bench/floor-relay.mjs bridge --cert FILE --key FILE
 *   node bench/floor-relay.mjs client --bridge-port N
 *
 * The client takes SOCKS5 CONNECT without authentication, answers success at once, opens one TLS
 * connection per stream to the bridge, sends "port\n" and then pipe()s both ways. The bridge reads
 * that line and pipe()s to 127.0.0.1:port. No multiplexing, no framing, no authentication, no
 * limits: what Postern adds on top of this is what it costs. Plain JavaScript run by `node`, so that
 * its RSS is a Node process's and not the TypeScript loader's.
 *
 * Loopback only, by construction: both ends listen on 127.0.0.1 and the bridge dials 127.0.0.1 and
 * nothing else, whatever the SOCKS request named. Each prints one JSON line
 * {"msg":"listening","role":"floor-client"|"floor-bridge","port":N} and exits on SIGTERM.
 */
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

const LOOPBACK = '127.0.0.1';
/** Longest header either end waits for before it gives up on a connection. */
const MAX_HEADER_BYTES = 512;

const [role, ...args] = process.argv.slice(2);
const arg = (name) => {
  const i = args.indexOf(name);
  const v = i >= 0 ? args[i + 1] : undefined;
  if (v === undefined) throw new Error(`floor-relay ${role}: ${name} is required`);
  return v;
};
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

/**
 * Collects bytes (starting with `first`) until `parse` returns a result (null: need more), then
 * pauses the socket and hands the result over.
 */
function readHeader(sock, first, parse, done) {
  let buf = first;
  const attempt = () => {
    const r = parse(buf);
    if (r === null) {
      if (buf.length > MAX_HEADER_BYTES) sock.destroy();
      return;
    }
    sock.off('data', onData);
    sock.pause();
    done(r);
  };
  const onData = (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    attempt();
  };
  sock.on('data', onData);
  if (buf.length) attempt();
}

/** Relays both ways once `b` is connected (the callers end both on either side's error or close). */
function join(a, b, rest) {
  if (rest.length) b.write(rest);
  a.pipe(b);
  b.pipe(a);
  a.resume();
}

function bridge() {
  const server = tls.createServer({ cert: fs.readFileSync(arg('--cert')), key: fs.readFileSync(arg('--key')) }, (s) => {
    s.setNoDelay(true);
    s.on('error', () => s.destroy());
    readHeader(
      s,
      Buffer.alloc(0),
      (buf) => {
        const nl = buf.indexOf(10);
        return nl < 0 ? null : { port: Number(buf.subarray(0, nl).toString('latin1')), rest: buf.subarray(nl + 1) };
      },
      ({ port, rest }) => {
        if (!Number.isInteger(port) || port < 1 || port > 65535) return void s.destroy();
        const t = net.connect(port, LOOPBACK, () => {
          t.setNoDelay(true);
          join(s, t, rest);
        });
        t.on('error', () => s.destroy());
        t.on('close', () => s.destroy());
        s.on('close', () => t.destroy());
      },
    );
  });
  server.listen(0, LOOPBACK, () => say({ msg: 'listening', role: 'floor-bridge', port: server.address().port }));
}

/** SOCKS5 greeting: what followed it, or null for "need more". */
const parseGreeting = (buf) => (buf.length < 2 || buf.length < 2 + buf[1] ? null : { rest: buf.subarray(2 + buf[1]) });

/** SOCKS5 CONNECT request: the port and what followed, port 0 for what it cannot take, or null for "need more". */
function parseConnect(buf) {
  if (buf.length < 5) return null;
  const atyp = buf[3];
  const addrLen = atyp === 1 ? 4 : atyp === 4 ? 16 : atyp === 3 ? 1 + buf[4] : -1;
  if (buf[1] !== 1 || addrLen < 0) return { port: 0, rest: Buffer.alloc(0) };
  const end = 4 + addrLen + 2;
  if (buf.length < end) return null;
  return { port: buf.readUInt16BE(end - 2), rest: buf.subarray(end) };
}

function client() {
  const bridgePort = Number(arg('--bridge-port'));
  const server = net.createServer((c) => {
    c.setNoDelay(true);
    c.on('error', () => c.destroy());
    readHeader(c, Buffer.alloc(0), parseGreeting, (greeting) => {
      // "No authentication" at once: a client may wait for it before it sends its request.
      c.write(Buffer.from([5, 0]));
      c.resume();
      readHeader(c, greeting.rest, parseConnect, ({ port, rest }) => {
        if (port === 0) return void c.destroy();
        // Success at once, as Postern's optimistic reply does.
        c.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
        const s = tls.connect({ host: LOOPBACK, port: bridgePort, rejectUnauthorized: false }, () => {
          s.setNoDelay(true);
          s.write(`${port}\n`);
          join(c, s, rest);
        });
        s.on('error', () => c.destroy());
        s.on('close', () => c.destroy());
        c.on('close', () => s.destroy());
      });
    });
  });
  server.listen(0, LOOPBACK, () => say({ msg: 'listening', role: 'floor-client', port: server.address().port }));
}

process.on('SIGTERM', () => process.exit(0));
if (role === 'bridge') bridge();
else if (role === 'client') client();
else {
  process.stderr.write('usage: node bench/floor-relay.mjs bridge --cert FILE --key FILE | client --bridge-port N\n');
  process.exit(2);
}
