// Regenerates configs/bridge.schema.json and configs/client.schema.json from the zod schemas (tests check they match).
import fs from 'node:fs';
import { bridgeJsonSchema, clientJsonSchema } from '../src/config/json-schema.js';

fs.writeFileSync(new URL('../configs/bridge.schema.json', import.meta.url), `${JSON.stringify(bridgeJsonSchema(), null, 2)}\n`);
fs.writeFileSync(new URL('../configs/client.schema.json', import.meta.url), `${JSON.stringify(clientJsonSchema(), null, 2)}\n`);
