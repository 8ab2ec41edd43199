import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { clientJsonSchema } from '../../../src/config/json-schema.js';
import { loadClientConfig, validateClientConfig } from '../../../src/config/client.js';

const EXAMPLE = new URL('../../../configs/client.example.json', import.meta.url).pathname;
const URI_A = 'postern://AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@a.example.org:443/p?pin=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const URI_B = 'postern://BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA@b.example.org:8443/q';

describe('client config file', () => {
  it('loads the example in configs/', () => {
    const c = loadClientConfig(EXAMPLE);
    expect(c.bridges).toHaveLength(1);
    expect(c.listen).toBe('127.0.0.1:1080');
  });

  it('matches the committed JSON Schema in configs/client.schema.json', () => {
    const committed = JSON.parse(fs.readFileSync(new URL('../../../configs/client.schema.json', import.meta.url), 'utf8'));
    expect(committed).toEqual(JSON.parse(JSON.stringify(clientJsonSchema())));
  });

  it.each([
    [{ bridges: [URI_A], listen: 1080 }, 'f.json: listen: '],
    [{ bridges: [URI_A], colour: 'red' }, 'f.json: colour: unknown field'],
    [{ bridges: [URI_A], log: { level: 'loud' } }, 'f.json: log.level: '],
    [{ bridges: ['http://x'] }, 'f.json: bridges[0]: a postern:// share URI (invalid bridge URI: scheme must be postern://)'],
    [{ bridges: [] }, 'f.json: bridges: at least one share URI'],
    [{ bridges: [URI_A], auth: { username: 'u' } }, 'f.json: auth.password: '],
    [{ bridges: Array(17).fill(URI_A) }, 'f.json: bridges: at most 16 share URIs'],
    [{ bridges: [URI_A], socks: ['nowhere'] }, 'f.json: socks[0]: HOST:PORT'],
    [{ bridges: [URI_A], http: ['127.0.0.1:1', 'x:'] }, 'f.json: http[1]: HOST:PORT'],
    [{ bridges: [URI_A], forward: ['8080=127.0.0.1:80', '9000'] }, 'f.json: forward[1]: expected [HOST:]PORT=HOST:PORT, got "9000"'],
    [{ bridges: [URI_A], forward: ['9000=example.org'] }, 'f.json: forward[0]: expected HOST:PORT after "=", got "example.org"'],
    [{ bridges: [URI_A], whatsapp: true, whatsappPorts: 'chat=99999' }, 'f.json: whatsappPorts: e.g. "chat-tls=443,chat=5222,media=587" (bad port "99999" for chat)'],
    [{ bridges: [URI_A], whatsapp: true, whatsappPorts: 'voice=1' }, 'unknown role "voice"'],
    [{ bridges: [URI_A], whatsappPorts: 'chat=5222' }, 'f.json: whatsappPorts: goes with "whatsapp": true'],
    [{ bridges: [URI_A], lan: 'yes' }, 'f.json: lan: '],
  ])('names the file and field (case %#)', (raw, msg) => {
    expect(() => validateClientConfig(raw, 'f.json')).toThrow(msg);
  });
});
