// Entry of the single executable (npm run build:sea). It does what bin/postern does for the npm
// package: apply POSTERN_LOW_MEMORY before anything is allocated, then run the CLI.
import v8 from 'node:v8';

if (process.env.POSTERN_LOW_MEMORY === '1') v8.setFlagsFromString('--semi-space-growth-factor=1');

void import('./main.js');
