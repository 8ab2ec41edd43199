import { describe, expect, it } from 'vitest';
import { PosternError } from '../../../src/core/errors.js';
import { transportFor } from '../../../src/transport/registry.js';
import { parseShareUri, TRANSPORT_NAMES } from '../../../src/transport/uri.js';

const S = Buffer.alloc(32, 7).toString('base64url');

describe('transportFor (the one choice point: registry.ts)', () => {
  it('gives the ws dialer for a link without transport= and for transport=ws', () => {
    expect(transportFor(parseShareUri(`postern://${S}@b.example/p`)).name).toBe('ws');
    expect(transportFor(parseShareUri(`postern://${S}@b.example/p?transport=ws`)).name).toBe('ws');
  });

  it('names the dialer after the transport it was asked for, for every transport this build has', () => {
    for (const name of TRANSPORT_NAMES) {
      let d;
      try {
        d = transportFor({ transport: name });
      } catch (err) {
        // A transport the URI knows but this build lacks: a clear E_BAD_URI naming it.
        expect(err).toBeInstanceOf(PosternError);
        expect((err as PosternError).code).toBe('E_BAD_URI');
        expect((err as PosternError).message).toContain(`transport=${name}`);
        continue;
      }
      expect(d.name).toBe(name);
    }
  });
});
