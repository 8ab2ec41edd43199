import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAUNCHER_NODE_FLAGS } from '../../src/cli/launcher-flags.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** POSTERN_TEST_BIN runs another build (e.g. a private one while others rebuild dist/). */
export const BIN = process.env.POSTERN_TEST_BIN ?? path.join(ROOT, 'bin/postern');

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/**
 * The config folder every started process gets unless a test passes its own XDG_CONFIG_HOME:
 * a temporary one per test worker, so that no test reads or writes the user's real
 * ~/.config/postern (the client stores its credentials there).
 */
let workerConfigHome: string | null = null;
export function testConfigHome(): string {
  return (workerConfigHome ??= fs.mkdtempSync(path.join(os.tmpdir(), 'postern-xdg-')));
}

/**
 * The sum of `read(file)` over every thread of `pid` but its main one, `file` being that thread's
 * /proc/PID/task/TID/`file` (e.g. status, schedstat): what V8's and libuv's helper threads did.
 */
export function sumOverHelperThreads(pid: number, file: string, read: (text: string) => number): number {
  let sum = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    if (tid !== String(pid)) sum += read(fs.readFileSync(`/proc/${pid}/task/${tid}/${file}`, 'utf8'));
  }
  return sum;
}

/** A running `postern` process started by a test; stopped by its PID in afterEach. */
export class Postern {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  stdout = '';
  stderr = '';
  private waiters: Array<() => void> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  /**
   * `opts.exe` runs that executable instead of `node bin/postern` (the single-file build);
   * `opts.cleanEnv` gives it `env` alone instead of `env` over this process's environment.
   */
  constructor(args: string[], env: NodeJS.ProcessEnv = {}, opts: { exe?: string; cleanEnv?: boolean } = {}) {
    // As bin/postern's first line runs it: node with LAUNCHER_NODE_FLAGS.
    const [cmd, argv] = opts.exe ? [opts.exe, args] : [process.execPath, [...LAUNCHER_NODE_FLAGS, BIN, ...args]];
    this.child = spawn(cmd, argv, {
      cwd: ROOT,
      // Learned state (the client's walls.json) goes to a test folder, never the user's home.
      env: opts.cleanEnv
        ? { XDG_CONFIG_HOME: testConfigHome(), XDG_STATE_HOME: testStateHome(), ...env }
        : { ...process.env, XDG_CONFIG_HOME: testConfigHome(), XDG_STATE_HOME: testStateHome(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let partial = '';
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
      partial += d;
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) {
        try {
          this.lines.push(JSON.parse(p) as LogLine);
        } catch {
          // not a JSON line
        }
      }
      this.notify();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      this.notify();
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => {
      this.notify();
      resolve({ code, signal });
    }));
    running.add(this);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits (bounded) until a log line matches. */
  async waitFor(pred: (l: LogLine) => boolean, timeoutMs = 15_000, what = 'log line'): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find(pred);
      if (hit) return hit;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`postern exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}; stderr: ${this.stderr}\nstdout: ${this.stdout.slice(-2000)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; stderr: ${this.stderr}\nstdout: ${this.stdout.slice(-2000)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async listening(role: 'bridge' | 'socks', timeoutMs = 15_000): Promise<number> {
    const l = await this.waitFor((x) => x.msg === 'listening' && x.role === role, timeoutMs, `${role} listening`);
    return l.port as number;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 8_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill(signal);
      const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      const r = await this.exited;
      clearTimeout(t);
      running.delete(this);
      return r;
    }
    running.delete(this);
    return this.exited;
  }
}

const running = new Set<Postern>();

// If the test worker itself dies (an uncaught error skips afterAll), still end what it started.
process.once('exit', () => {
  for (const p of running) p.child.kill('SIGKILL');
});

/** Ends every process the tests started (by PID); call from afterEach/afterAll. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop('SIGKILL', 2_000)));
}

/** Runs postern to completion (bounded) and returns its output. */
export async function runPostern(args: string[], timeoutMs = 20_000, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = new Postern(args, env);
  const t = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  const { code } = await p.exited;
  clearTimeout(t);
  running.delete(p);
  return { code, stdout: p.stdout, stderr: p.stderr };
}

let stateHome: string | undefined;
/** One XDG_STATE_HOME per test worker, so that no test writes under the real home folder. */
function testStateHome(): string {
  stateHome ??= tempDir('postern-state-');
  return stateHome;
}

export function tempDir(prefix = 'postern-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
