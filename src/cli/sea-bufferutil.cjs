'use strict';
// bufferutil inside the single executable: its prebuilt linux-x64 binary travels as the SEA asset
// "bufferutil.node" (scripts/build-sea.mjs). process.dlopen needs a file, so it is written to a
// fresh private directory (mkdtemp, mode 0700), loaded, and unlinked at once (Linux keeps a loaded
// library mapped after unlink). Any failure throws, and ws then masks in JS as it does without
// bufferutil; the client logs which one is active.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const sea = require('node:sea');

const asset = sea.getRawAsset('bufferutil.node');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-'));
const file = path.join(dir, 'bufferutil.node');
try {
  fs.writeFileSync(file, new Uint8Array(asset), { mode: 0o500 });
  const m = { exports: {} };
  process.dlopen(m, file);
  module.exports = m.exports;
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
