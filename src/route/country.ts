/**
 * The IP-to-country table for `country` rules, from the npm package
 * @ip-location-db/geo-whois-asn-country (CC0; built from the five regional internet registries'
 * WHOIS data, CC BY 4.0 by the NRO, plus published geofeeds). It ships plain CSV — inclusive
 * ranges as numbers and an ISO 3166-1 alpha-2 code — which our own sorted range table loads.
 *
 * Loaded only when a rule matches by country: a client without one never reads the files.
 * Nothing is downloaded at run time; an update is an npm update.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { IpRangeMap, type IpRangeMapBuilder } from './ranges.js';

export const COUNTRY_PACKAGE = '@ip-location-db/geo-whois-asn-country';
const V4_FILE = 'geo-whois-asn-country-ipv4-num.csv';
const V6_FILE = 'geo-whois-asn-country-ipv6-num.csv';

function eachRow(text: string, row: (start: string, end: string, cc: string) => void): void {
  let from = 0;
  while (from < text.length) {
    let nl = text.indexOf('\n', from);
    if (nl < 0) nl = text.length;
    const a = text.indexOf(',', from);
    const b = a < 0 ? -1 : text.indexOf(',', a + 1);
    if (a > from && b > a && b < nl) {
      const cc = text.slice(b + 1, nl).trim();
      if (/^[A-Z]{2}$/.test(cc)) row(text.slice(from, a), text.slice(a + 1, b), cc);
    }
    from = nl + 1;
  }
}

const MASK32 = 0xffffffffn;
function v6Words(n: bigint): Uint32Array {
  return Uint32Array.of(Number((n >> 96n) & MASK32), Number((n >> 64n) & MASK32), Number((n >> 32n) & MASK32), Number(n & MASK32));
}

/** Builds the table from the package's two CSV texts (IPv4 and IPv6 ranges as decimal numbers). */
export function parseCountryCsv(v4: string, v6: string): IpRangeMap {
  const b: IpRangeMapBuilder = IpRangeMap.builder();
  eachRow(v4, (s, e, cc) => {
    const lo = Number(s);
    const hi = Number(e);
    if (Number.isInteger(lo) && Number.isInteger(hi) && lo >= 0 && hi <= 0xffffffff && lo <= hi) b.addV4(lo, hi, cc);
  });
  eachRow(v6, (s, e, cc) => {
    if (!/^\d+$/.test(s) || !/^\d+$/.test(e)) return;
    b.addV6(v6Words(BigInt(s)), v6Words(BigInt(e)), cc);
  });
  return b.build();
}

/** Reads the installed package's tables. Throws an Error naming the package when it is missing. */
export function loadCountryTable(): IpRangeMap {
  let dir: string;
  try {
    dir = path.dirname(createRequire(import.meta.url).resolve(`${COUNTRY_PACKAGE}/package.json`));
  } catch {
    throw new Error(`country rules need the package ${COUNTRY_PACKAGE} (npm install ${COUNTRY_PACKAGE})`);
  }
  return parseCountryCsv(fs.readFileSync(path.join(dir, V4_FILE), 'latin1'), fs.readFileSync(path.join(dir, V6_FILE), 'latin1'));
}
