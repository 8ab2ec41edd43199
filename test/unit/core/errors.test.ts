import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERRORS, PosternError, SocksReply, WireCode, errorFromSystem, errorFromWire } from '../../../src/core/errors.js';

const doc = fs.readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');

describe('error catalogue', () => {
  it.each(Object.keys(ERRORS))('documents %s in docs/protocol.md §6.1', (code) => {
    expect(doc).toContain(`| \`${code}\` |`);
  });

  it.each(Object.entries(WireCode))('documents wire code %s in docs/protocol.md §6', (name, value) => {
    expect(doc).toContain(`| \`0x${value.toString(16).padStart(2, '0')}\` | ${name} |`);
  });

  it.each([
    [WireCode.NOT_ALLOWED, SocksReply.NOT_ALLOWED],
    [WireCode.NETWORK_UNREACHABLE, SocksReply.NETWORK_UNREACHABLE],
    [WireCode.HOST_UNREACHABLE, SocksReply.HOST_UNREACHABLE],
    [WireCode.CONNECTION_REFUSED, SocksReply.CONNECTION_REFUSED],
    [WireCode.TIMEOUT, SocksReply.TTL_EXPIRED],
    [WireCode.DNS_FAILURE, SocksReply.HOST_UNREACHABLE],
    [0x7f, SocksReply.GENERAL_FAILURE],
  ])('turns wire code %i from the bridge into SOCKS reply %i (RFC 1928 §6)', (wire, reply) => {
    expect(errorFromWire(wire).socksReply).toBe(reply);
  });

  it('round-trips every wire-mapped error through its wire code', () => {
    for (const code of Object.keys(ERRORS) as Array<keyof typeof ERRORS>) {
      const e = new PosternError(code);
      if (!code.startsWith('E_') || e.wire === WireCode.OK) continue;
      expect(errorFromWire(e.wire).wire).toBe(e.wire);
    }
  });

  it.each([
    ['ECONNREFUSED', 'E_CONN_REFUSED'],
    ['ENETUNREACH', 'E_NET_UNREACHABLE'],
    ['EHOSTUNREACH', 'E_HOST_UNREACHABLE'],
    ['ETIMEDOUT', 'E_TIMEOUT'],
    ['ENOTFOUND', 'E_DNS'],
    ['ECONNRESET', 'E_CONN_RESET'],
    ['EWHATEVER', 'E_GENERAL'],
  ])('maps the system error %s to %s', (errno, code) => {
    expect(errorFromSystem(Object.assign(new Error(errno), { code: errno })).code).toBe(code);
  });
});
