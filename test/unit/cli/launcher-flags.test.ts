import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LAUNCHER_NODE_FLAGS } from '../../../src/cli/launcher-flags.js';
import { ROOT } from '../../helpers/proc.js';

describe('bin/postern first line', () => {
  it('starts node with LAUNCHER_NODE_FLAGS, which the tests and benches pass when they start `node bin/postern`', () => {
    const first = fs.readFileSync(path.join(ROOT, 'bin/postern'), 'utf8').split('\n')[0];
    expect(first).toBe(`#!/usr/bin/env -S node ${LAUNCHER_NODE_FLAGS.join(' ')}`);
    // Each a flag node takes on its command line (node rejects unknown ones at start).
    for (const f of LAUNCHER_NODE_FLAGS) expect(f).toMatch(/^--[a-z0-9-]+(=[^\s]+)?$/);
  });
});
