// Loaded into a daemon with NODE_OPTIONS="--require …" by test/integration/young-generation.test.ts:
// samples the size of V8's young generation (new space) every 10 ms and writes the largest seen to
// $YOUNG_GEN_PROBE_FILE when the process exits. Test-only; never part of the package.
'use strict';
const fs = require('node:fs');
const v8 = require('node:v8');

const file = process.env.YOUNG_GEN_PROBE_FILE;
let maxBytes = 0;
const sample = () => {
  for (const s of v8.getHeapSpaceStatistics()) if (s.space_name === 'new_space') maxBytes = Math.max(maxBytes, s.space_size);
};
if (file) {
  setInterval(sample, 10).unref();
  process.on('exit', () => {
    sample();
    fs.writeFileSync(file, JSON.stringify({ maxNewSpaceBytes: maxBytes }));
  });
}
