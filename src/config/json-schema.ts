/**
 * JSON Schemas of the config files, for editors (configs/*.schema.json are generated from these by
 * npm run gen:schema). Kept apart from the validators: zod's JSON Schema code is not needed by a
 * running daemon, and the bundle leaves it out as long as only the script and tests import this.
 */
import { bridgeConfigSchema } from './bridge.js';
import { clientConfigSchema } from './client.js';
import * as z from './zod.js';

export function bridgeJsonSchema(): unknown {
  return z.toJSONSchema(bridgeConfigSchema, { io: 'input' });
}

export function clientJsonSchema(): unknown {
  return z.toJSONSchema(clientConfigSchema, { io: 'input' });
}
