/**
 * The config validators use zod's tree-shakable "mini" build: classic zod costs about 6 MiB of heap
 * in every running bridge and client, mini well under 1 MiB (bench: start RSS). Its English messages
 * are loaded here, once, so that config errors read as they always did ("Invalid input: expected …").
 */
import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

config(en());

// Importers write `import * as z from './zod.js'`: a namespace import the bundler can shake (only the
// parts used are bundled), where re-exporting zod's namespace object would pull in all of zod.
export * from 'zod/mini';
