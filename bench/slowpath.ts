/**
 * "New stream over a slow path" (issue 12): a delay relay (test/helpers/faulty-relay.ts) between
 * client and bridge adds D ms each way, so the tunnel's round trip is about 2·D. On a warm tunnel,
 * time from starting a SOCKS5 connection to the first echoed byte (pipelined greeting + CONNECT,
 * then 1 byte once the reply is in), for the default (optimistic) client and an --exact-replies
 * client side by side, and the default client over transport=h2 (issue 13), samples interleaved.
 * Also, as a floor, a plain TCP echo through a relay with
 * the same delay (one round trip and the relay's own cost).
 */
import { FaultyRelay } from '../test/helpers/faulty-relay.js';
import { startPair, type Pair } from './daemons.js';
import { connectEchoMicros, directConnector, socksConnector } from './measure.js';
import { median, quantile, sleep } from './stats.js';

/** Delay each way (ms) for each slow-path case; the first is the one with targets. */
export const SLOW_DELAYS_MS = [25, 75] as const;
/** Targets at the first delay, as a multiple of the nominal RTT (2·D). */
export const TARGET_SLOW_DEFAULT_RTT = 1.3;
export const TARGET_SLOW_EXACT_RTT = 2.3;

const WARMUP = 5;
/** Pause between samples, so that one sample's closing frames are not in the next one's way. */
const GAP_MS = 20;

export interface SlowCase {
  delayMs: number;
  rttMs: number;
  samples: number;
  floor: Quantiles;
  default: Quantiles;
  exact: Quantiles;
  /** The default client over transport=h2 (issue 13: within 10 % of ws). */
  h2: Quantiles;
}
export interface Quantiles {
  p50Ms: number;
  p90Ms: number;
}

const q = (xs: number[]): Quantiles => ({ p50Ms: median(xs), p90Ms: quantile(xs, 0.9) });

export async function measureSlowPath(
  echoPort: number,
  samples: number,
  start: { logLevel: string; startTimeoutMs: number; bridgeLimits: Record<string, number> },
  log: (m: string) => void,
): Promise<SlowCase[]> {
  const relays: FaultyRelay[] = [];
  const pairs: Pair[] = [];
  const via = async (target: number): Promise<number> => {
    const r = new FaultyRelay({ target });
    relays.push(r);
    return r.listen();
  };
  try {
    // Three client/bridge pairs (ws, ws --exact-replies, h2), each behind its own relay; the floor
    // is a fourth relay to the echo server.
    for (const clientArgs of [[], ['--exact-replies']]) {
      pairs.push(await startPair({ nodeFlags: [], ...start, clientArgs, via }));
    }
    pairs.push(await startPair({ nodeFlags: [], ...start, clientArgs: [], via, transport: 'h2' }));
    const floorPort = await via(echoPort);
    const [optimistic, exact, h2] = pairs as [Pair, Pair, Pair];
    const connectors = {
      floor: directConnector(floorPort),
      default: socksConnector(optimistic.socksPort, echoPort, true),
      exact: socksConnector(exact.socksPort, echoPort, true),
      h2: socksConnector(h2.socksPort, echoPort, true),
    };
    const out: SlowCase[] = [];
    for (const d of SLOW_DELAYS_MS) {
      for (const r of relays) r.delayMs = d;
      log(`slow path: ${d} ms each way, ${WARMUP} warm-up + ${samples} samples per client`);
      const got: Record<keyof typeof connectors, number[]> = { floor: [], default: [], exact: [], h2: [] };
      for (let i = 0; i < WARMUP + samples; i++) {
        for (const k of ['floor', 'default', 'exact', 'h2'] as const) {
          const ms = (await connectEchoMicros(connectors[k])) / 1000;
          if (i >= WARMUP) got[k].push(ms);
          await sleep(GAP_MS);
        }
      }
      const c: SlowCase = { delayMs: d, rttMs: 2 * d, samples, floor: q(got.floor), default: q(got.default), exact: q(got.exact), h2: q(got.h2) };
      log(`slow path ${d} ms: floor p50 ${c.floor.p50Ms.toFixed(1)} ms, default p50 ${c.default.p50Ms.toFixed(1)} ms, exact p50 ${c.exact.p50Ms.toFixed(1)} ms, h2 p50 ${c.h2.p50Ms.toFixed(1)} ms`);
      out.push(c);
    }
    return out;
  } finally {
    for (const p of pairs) await p.stop();
    for (const r of relays) await r.close();
  }
}

/** Report lines and target verdicts for the slow-path cases. */
export function slowPathReport(cases: SlowCase[]): { lines: string[]; targets: { name: string; value: number; limit: string; pass: boolean }[] } {
  const lines: string[] = [];
  const targets: { name: string; value: number; limit: string; pass: boolean }[] = [];
  const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
  const lpad = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
  lines.push(`4. New stream over a slow path: delay relay between client and bridge, SOCKS CONNECT → first echoed byte on a warm tunnel,`);
  lines.push(`   ${cases[0]?.samples ?? 0} interleaved samples per row; ×RTT is time to first byte / (2 × delay)`);
  lines.push(`   ${pad('', 34)}${lpad('p50 ms', 9)}${lpad('p90 ms', 9)}${lpad('p50 ×RTT', 10)}${lpad('p90 ×RTT', 10)}`);
  for (const c of cases) {
    const row = (label: string, x: Quantiles): string =>
      `   ${pad(label, 34)}${lpad(x.p50Ms.toFixed(1), 9)}${lpad(x.p90Ms.toFixed(1), 9)}${lpad((x.p50Ms / c.rttMs).toFixed(2), 10)}${lpad((x.p90Ms / c.rttMs).toFixed(2), 10)}`;
    lines.push(`   ${c.delayMs} ms each way (RTT ${c.rttMs} ms):`);
    lines.push(row('  TCP echo through the relay (floor)', c.floor));
    lines.push(row('  Postern default (optimistic)', c.default));
    lines.push(row('  Postern --exact-replies', c.exact));
    lines.push(row('  Postern default over h2', c.h2));
    lines.push(`   ${pad('  h2 / ws (default), p50', 34)}${lpad(`${(c.h2.p50Ms / c.default.p50Ms).toFixed(2)}×`, 9)}`);
  }
  const first = cases[0];
  if (first) {
    const d = first.default.p50Ms / first.rttMs;
    const e = first.exact.p50Ms / first.rttMs;
    lines.push(
      `   at RTT ${first.rttMs} ms: default p50 ${d.toFixed(2)}× (target ≤ ${TARGET_SLOW_DEFAULT_RTT}×: ${d <= TARGET_SLOW_DEFAULT_RTT ? 'PASS' : 'FAIL'}),` +
        ` exact p50 ${e.toFixed(2)}× (target ≤ ${TARGET_SLOW_EXACT_RTT}×: ${e <= TARGET_SLOW_EXACT_RTT ? 'PASS' : 'FAIL'})`,
    );
    targets.push({ name: `new stream over ${first.rttMs} ms RTT, default p50 ×RTT`, value: d, limit: `<= ${TARGET_SLOW_DEFAULT_RTT}`, pass: d <= TARGET_SLOW_DEFAULT_RTT });
    targets.push({ name: `new stream over ${first.rttMs} ms RTT, --exact-replies p50 ×RTT`, value: e, limit: `<= ${TARGET_SLOW_EXACT_RTT}`, pass: e <= TARGET_SLOW_EXACT_RTT });
  }
  return { lines, targets };
}
