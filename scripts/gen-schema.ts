// Regenerates configs/bridge.schema.json from the zod schema (a test checks they match).
import fs from 'node:fs';
import { bridgeJsonSchema } from '../src/config/bridge.js';

fs.writeFileSync(new URL('../configs/bridge.schema.json', import.meta.url), `${JSON.stringify(bridgeJsonSchema(), null, 2)}\n`);
