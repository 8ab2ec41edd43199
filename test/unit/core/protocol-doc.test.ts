import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makeToken } from '../../../src/transport/auth.js';
import { notFoundResponse } from '../../../src/transport/listener.js';

const doc = fs.readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');

describe('docs/protocol.md stays exact', () => {
  it('gives the token test vector that the implementation produces (§3)', () => {
    const secret = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    const nonce = Buffer.from(Array.from({ length: 16 }, (_, i) => 0xa0 + i));
    const token = Buffer.from(makeToken(secret, '/s3cret/path', 1_700_000_000_000, nonce), 'base64url');
    const block = /give the token bytes\n\n```\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
    expect(Buffer.from(block.replace(/\s+/g, ''), 'hex')).toEqual(token);
  });

  it('shows the exact 404 bytes the bridge sends (§2)', () => {
    const block = /only `Date` varies\):\n\n```\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
    const date = new Date(0);
    const fromDoc = block
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.replace('<IMF-fixdate>', date.toUTCString()).replace(/\\r\\n/g, '\r\n'))
      .join('');
    expect(fromDoc).toBe(notFoundResponse(date, false).toString('latin1'));
  });
});
