/**
 * Node flags that bin/postern's first line passes to node (`#!/usr/bin/env -S node …`): what can
 * only be set on the command line, before V8 makes its isolate. Kept here, free of side effects,
 * so that the tests and benches that start `node bin/postern` pass the same flags a user's shell
 * does (test/unit/cli/launcher-flags.test.ts checks that the two agree).
 *
 * `--no-concurrent-recompilation`: V8 compiles hot functions with its optimising compiler on the
 * main thread instead of on its worker threads. A worker's compile jobs take their scratch memory
 * from that thread's malloc arena, which keeps it once the job is done: a daemon that had optimised
 * its relay paths (during its first bulk transfer) held 5–6 MiB more for good. Measured side by side
 * (two pairs, one with `--concurrent-recompilation` after this flag, the same build): with 1,000
 * idle streams after 64 MiB each way and a warm-up cycle, client 73.7 against 80.1 MiB and bridge
 * 71.6 against 78.0, the non-heap anonymous memory 3.1–3.2 against 8.1–8.7 MiB; daemon CPU per MiB
 * and new-stream latency unchanged (`npx tsx bench/ab.ts dist/postern.js dist/postern.js
 * --a-flags=--concurrent-recompilation`, 5 and 8 rounds: CPU per MiB within 2 %, latency +3 % in
 * one run and −6 % in the other). V8 reads the flag only when it starts: set later
 * (v8.setFlagsFromString) it changes nothing, so it is here and not in young-generation.ts; the
 * single executable (npm run build:sea) cannot pass it on Node 20.
 */
export const LAUNCHER_NODE_FLAGS: readonly string[] = ['--no-concurrent-recompilation'];
