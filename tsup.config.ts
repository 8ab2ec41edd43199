import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

// One ESM bundle for the CLI. Traps measured on Node 20 (see ../shared/STACK.md):
// - bundled CommonJS deps call require(): give the bundle a real require via createRequire;
// - bufferutil must stay external, or it cannot find its prebuilt binary and ws silently masks in JS;
// - keep node: prefixes (removeNodeProtocol: false).
export default defineConfig({
  entry: { postern: 'src/cli/main.ts' },
  format: ['esm'],
  platform: 'node',
  target: 'node20',
  outDir: 'dist',
  clean: true,
  sourcemap: true,
  splitting: false,
  // Everything is bundled except ws's optional native helpers: noExternal wins over external in
  // tsup, so the exclusion has to be in this pattern. Bundled, bufferutil silently masks in JS.
  noExternal: [/^(?!bufferutil$|utf-8-validate$)/],
  external: ['bufferutil', 'utf-8-validate'],
  removeNodeProtocol: false,
  define: { POSTERN_VERSION: JSON.stringify(pkg.version) },
  banner: {
    js: "import { createRequire as __postern_createRequire } from 'node:module'; const require = __postern_createRequire(import.meta.url);",
  },
});
