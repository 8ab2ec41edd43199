import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';
import type { Plugin } from 'esbuild';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

// The single-executable build (npm run build:sea, scripts/build-sea.mjs). Node 20's SEA runs one
// CommonJS script whose `require` loads only built-ins, so everything is bundled into one CJS file
// and bufferutil (a native addon) is embedded as a SEA asset and loaded with process.dlopen by the
// virtual module below (bundled as a package it could not find its prebuilt binary).
const bufferutilFromAsset: Plugin = {
  name: 'bufferutil-from-sea-asset',
  setup(build) {
    build.onResolve({ filter: /^bufferutil$/ }, () => ({ path: 'bufferutil', namespace: 'sea-bufferutil' }));
    build.onLoad({ filter: /.*/, namespace: 'sea-bufferutil' }, () => ({
      loader: 'js',
      resolveDir: process.cwd(),
      contents: 'module.exports = require("./src/cli/sea-bufferutil.cjs");',
    }));
  },
};

export default defineConfig({
  entry: { 'postern-sea': 'src/cli/sea.ts' },
  format: ['cjs'],
  platform: 'node',
  target: 'node20',
  outDir: 'dist/sea',
  clean: true,
  sourcemap: false,
  splitting: false,
  shims: true,
  noExternal: [/.*/],
  removeNodeProtocol: false,
  // ASCII only, as the npm bundle (tsup.config.ts): V8 keeps a source with any non-ASCII character as UTF-16.
  minifyWhitespace: true,
  define: { POSTERN_VERSION: JSON.stringify(pkg.version) },
  esbuildPlugins: [bufferutilFromAsset],
});
