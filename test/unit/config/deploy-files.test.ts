import fs from 'node:fs';
import { describe, expect, it } from 'vitest';

const read = (p: string) => fs.readFileSync(new URL(`../../../configs/${p}`, import.meta.url), 'utf8');
/** Directives in effect (comments dropped). */
const active = (text: string) => text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');

describe('deployment files in configs/', () => {
  it('the systemd unit is hardened and restarts on failure', () => {
    const unit = active(read('systemd/postern-bridge.service'));
    for (const d of [
      'NoNewPrivileges=yes',
      'PrivateTmp=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'ReadOnlyPaths=/etc/postern',
      'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
      'AmbientCapabilities=CAP_NET_BIND_SERVICE',
      'Restart=on-failure',
      'User=postern',
      'ExecReload=/bin/kill -HUP $MAINPID',
    ]) {
      expect(unit).toContain(d);
    }
    expect(unit).toMatch(/^ExecStart=\/usr\/local\/bin\/postern bridge --config \/etc\/postern\/bridge\.json$/m);
  });

  it('the Dockerfile runs on node:20-slim as a non-root user', () => {
    const df = active(read('Dockerfile'));
    expect(df.match(/^FROM node:20-slim/gm)?.length).toBe(2);
    expect(df).toMatch(/^USER node$/m);
  });

  it('the nginx site proxies the secret path as a WebSocket without buffering', () => {
    const site = active(read('nginx/postern.conf'));
    for (const d of [
      'proxy_http_version 1.1;',
      'proxy_set_header Upgrade $http_upgrade;',
      'proxy_set_header Connection $postern_connection_upgrade;',
      'proxy_read_timeout 1h;',
      'proxy_buffering off;',
      'listen 443 ssl;',
    ]) {
      expect(site).toContain(d);
    }
    expect(site).not.toMatch(/\bhttp2\b/);
  });

  it('the nginx site sends every connection of a session to one bridge (hash on Postern-Session, else the token)', () => {
    const site = active(read('nginx/postern.conf'));
    expect(site).toMatch(/map \$http_postern_session \$postern_route \{\s*""\s+\$http_authorization;\s*default\s+\$http_postern_session;\s*\}/);
    expect(site).toMatch(/upstream postern_bridges \{\s*hash \$postern_route consistent;/);
  });

  it('the relay is a plain TCP forwarder (nginx stream) that logs no client addresses', () => {
    const relay = active(read('nginx/relay-stream.conf'));
    expect(relay).toMatch(/^stream \{/m);
    expect(relay).not.toMatch(/\bhttp\s*\{|\bssl\b|proxy_protocol/);
    expect(relay).toContain('proxy_pass postern_bridge;');
    expect(relay).toContain('access_log off;');
  });
});
