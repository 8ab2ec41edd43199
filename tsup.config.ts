import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

// The CLI as an ESM bundle (with chunks that only some commands load). Traps measured on Node 20 (see ../shared/STACK.md):
// - bundled CommonJS deps call require(): give the bundle a real require via createRequire;
// - bufferutil must stay external, or it cannot find its prebuilt binary and ws silently masks in JS;
// - keep node: prefixes (removeNodeProtocol: false).
export default defineConfig({
  // young-generation: loaded by bin/postern before the bundle, whose compilation would otherwise
  // already grow V8's young generation (src/cli/young-generation.ts).
  entry: { postern: 'src/cli/main.ts', 'young-generation': 'src/cli/young-generation.ts' },
  format: ['esm'],
  platform: 'node',
  target: 'node20',
  outDir: 'dist',
  clean: true,
  sourcemap: true,
  // Chunks: what only some commands load (node-forge for certificates, pino-pretty) stays out of
  // the source a running bridge or client holds (827 KB instead of 1.3 MB).
  splitting: true,
  // Everything is bundled except ws's optional native helpers: noExternal wins over external in
  // tsup, so the exclusion has to be in this pattern. Bundled, bufferutil silently masks in JS.
  noExternal: [/^(?!bufferutil$|utf-8-validate$)/],
  external: ['bufferutil', 'utf-8-validate'],
  removeNodeProtocol: false,
  // No comments in the bundle: one non-ASCII character anywhere (a § or — in a comment) makes V8
  // hold the whole source as UTF-16, 2.6 MiB more in every daemon (checked in test/integration/ops-package.test.ts).
  minifyWhitespace: true,
  define: { POSTERN_VERSION: JSON.stringify(pkg.version) },
  banner: {
    js: "import { createRequire as __postern_createRequire } from 'node:module'; const require = __postern_createRequire(import.meta.url);",
  },
});
