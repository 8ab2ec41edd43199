#!/usr/bin/env node
// npm run build:sea → dist/postern-linux-x64: one file that runs Postern with no Node installed.
// Node 20 single executable application: bundle (tsup.sea.config.ts) → SEA blob → copy of this
// node binary with the blob injected (postject). Linux x64 only: the embedded bufferutil binary
// and the node binary are both this platform's.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const out = path.join(root, 'dist');
const target = path.join(out, `postern-${process.platform}-${process.arch}`);
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });

if (process.platform !== 'linux' || process.arch !== 'x64') {
  process.stderr.write(`build:sea: only linux-x64 is supported, not ${process.platform}-${process.arch}\n`);
  process.exit(2);
}

run(process.execPath, [require.resolve('tsup/dist/cli-default.js'), '--config', 'tsup.sea.config.ts']);

const assets = {};
const prebuilt = path.join(root, 'node_modules/bufferutil/prebuilds/linux-x64');
const addon = fs.existsSync(prebuilt) ? fs.readdirSync(prebuilt).find((f) => f.endsWith('.node')) : undefined;
if (addon) assets['bufferutil.node'] = path.join(prebuilt, addon);
else process.stderr.write('build:sea: no bufferutil prebuilt binary: the executable will mask in JS\n');

const seaConfig = path.join(out, 'sea', 'sea-config.json');
const blob = path.join(out, 'sea', 'sea-prep.blob');
fs.writeFileSync(
  seaConfig,
  JSON.stringify({
    main: path.join(out, 'sea', 'postern-sea.cjs'),
    output: blob,
    disableExperimentalSEAWarning: true,
    useCodeCache: false,
    assets,
  }),
);
run(process.execPath, ['--experimental-sea-config', seaConfig]);

fs.copyFileSync(process.execPath, target);
fs.chmodSync(target, 0o755);
run(process.execPath, [
  require.resolve('postject/dist/cli.js'),
  target,
  'NODE_SEA_BLOB',
  blob,
  '--sentinel-fuse',
  'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
]);
process.stdout.write(`build:sea: ${path.relative(root, target)} (${(fs.statSync(target).size / 2 ** 20).toFixed(1)} MiB)\n`);
