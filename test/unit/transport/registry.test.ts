import { afterEach, describe, expect, it } from 'vitest';
import { PosternError } from '../../../src/core/errors.js';
import { defaultLimits } from '../../../src/core/limits.js';
import { silentLogger } from '../../../src/log/logger.js';
import { spkiSha256 } from '../../../src/transport/certs.js';
import { generateSelfSigned } from '../../../src/transport/self-signed.js';
import { bridgeDialer, chooseDialer } from '../../../src/transport/registry.js';
import { parseShareUri, TRANSPORT_NAMES } from '../../../src/transport/uri.js';
import { startBridge, stopAll, track } from './helpers.js';

const S = Buffer.alloc(32, 7).toString('base64url');
const limits = defaultLimits();
const logger = silentLogger();
afterEach(stopAll);

describe('bridgeDialer (the one choice point: registry.ts)', () => {
  it('has no problem with a link without transport= or with transport=ws', () => {
    expect(bridgeDialer.problem(parseShareUri(`postern://${S}@b.example/p`))).toBeNull();
    expect(bridgeDialer.problem(parseShareUri(`postern://${S}@b.example/p?transport=ws`))).toBeNull();
  });

  it('for a transport the URI knows but this build lacks, says so naming it, and dial rejects with E_BAD_URI before sending anything', async () => {
    for (const name of TRANSPORT_NAMES) {
      const problem = bridgeDialer.problem({ transport: name } as never);
      if (problem === null) continue;
      expect(problem).toContain(`transport=${name}`);
      // Port 9 on loopback: nothing listens, so an attempt to connect would fail with E_DIAL instead.
      const err = await bridgeDialer.dial({ secret: Buffer.alloc(32), host: '127.0.0.1', port: 9, path: '/', plain: true, transport: name }, { limits, logger }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PosternError);
      expect((err as PosternError).code).toBe('E_BAD_URI');
    }
  });

  it('lets the bridge’s ALPN choice pick the transport over TLS, the link alone without it', () => {
    expect(chooseDialer({}, 'http/1.1')).toMatchObject({ name: 'ws' });
    expect(chooseDialer({}, null)).toMatchObject({ name: 'ws' });
    // No transport of this build runs on this protocol: refused before a byte is sent, naming both.
    const err = chooseDialer({}, 'x-none');
    expect(err).toBeInstanceOf(PosternError);
    expect((err as PosternError).code).toBe('E_TLS');
    expect((err as PosternError).message).toMatch(/: the bridge's front chose x-none \(ALPN x-none\); the WebSocket transport needs HTTP\/1\.1 there \(transport=ws\)$/);
    const h2 = chooseDialer({}, 'h2');
    if (h2 instanceof PosternError) expect(h2.message).toMatch(/chose HTTP\/2 \(ALPN h2\); the WebSocket transport needs HTTP\/1\.1 there/);
    else expect(h2.alpn).toContain('h2');
  });

  it('dials the ws transport by default, over TLS (ALPN http/1.1) and plain, and says so', async () => {
    const cert = generateSelfSigned({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
    for (const tlsOn of [true, false]) {
      const b = await startBridge(tlsOn ? { tls: cert, pin: spkiSha256(cert.certPem) } : { tls: null });
      const t = track(await bridgeDialer.dial(b.info(), { limits, logger }));
      expect(t.transportName).toBe('ws');
      expect((await b.nextSession()).transport.transportName).toBe('ws');
    }
  });
});
