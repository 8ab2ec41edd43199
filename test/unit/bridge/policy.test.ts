import { describe, expect, it } from 'vitest';
import { checkAddress } from '../../../src/bridge/policy.js';

const deny = { allowPrivate: false };
const allowPrivate = { allowPrivate: true };

// Pure decisions only: nothing here connects anywhere.
describe('egress policy (docs/protocol.md §7)', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.0.0.2', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'linkLocal'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['100.127.255.255', 'carrierGradeNat'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'linkLocal'],
    ['fc00::1', 'uniqueLocal'],
    ['fd12:3456::1', 'uniqueLocal'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:169.254.169.254', 'linkLocal'],
    ['::ffff:7f00:1', 'loopback'],
    ['::127.0.0.1', 'loopback'],
    ['::10.0.0.1', 'private'],
    ['::a9fe:a9fe', 'linkLocal'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::a9fe:a9fe', 'linkLocal'],
    ['2002:7f00:1::1', 'loopback'],
    ['2002:c0a8:101::1', 'private'],
    ['2001::1', 'teredo'],
    ['2001:db8::1', 'reserved'],
    ['[::1]', 'loopback'],
    ['not-an-ip', 'invalid'],
  ])('refuses %s (%s) by default', (ip, range) => {
    expect(checkAddress(ip, deny)).toEqual({ allowed: false, range });
  });

  it.each(['8.8.8.8', '1.1.1.1', '149.154.167.50', '157.240.1.1', '2606:4700::1111', '2a03:2880::1', '::ffff:8.8.8.8', '64:ff9b::808:808'])(
    'allows the public address %s',
    (ip) => {
      expect(checkAddress(ip, deny)).toEqual({ allowed: true });
    },
  );

  it.each(['127.0.0.1', '10.0.0.1', '192.168.0.1', '169.254.169.254', '100.64.0.1', '::1', 'fd00::1', '::ffff:127.0.0.1'])(
    'allows the private address %s only when the operator allows private ranges',
    (ip) => {
      expect(checkAddress(ip, allowPrivate)).toEqual({ allowed: true });
      expect(checkAddress(ip, deny).allowed).toBe(false);
    },
  );

  it.each(['0.0.0.0', '::', '224.0.0.1', '255.255.255.255', '240.0.0.1', 'ff02::1'])(
    'refuses %s even when private ranges are allowed',
    (ip) => {
      expect(checkAddress(ip, allowPrivate).allowed).toBe(false);
    },
  );
});
