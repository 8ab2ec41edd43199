import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { Postern } from './proc.js';

const exec = promisify(execFile);

/** Runs postern to completion (bounded) with extra environment variables. */
export async function run(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = new Postern(args, env);
  const t = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  const { code } = await p.exited;
  clearTimeout(t);
  await p.stop();
  return { code, stdout: p.stdout, stderr: p.stderr };
}

/** Runs curl (bounded by --max-time) and returns its exit code and output instead of throwing. */
export async function curl(args: string[], maxTimeS = 15): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec('curl', ['--silent', '--show-error', '--max-time', String(maxTimeS), ...args], { maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A loopback port that was free a moment ago (for servers that cannot listen on port 0, e.g. nginx). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r, j) => {
    s.once('error', j);
    s.listen(0, '127.0.0.1', () => r());
  });
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface DoctorReport {
  uri: string;
  ok: boolean;
  failedStep: string | null;
  steps: Array<{ step: string; status: string; ms: number; detail: string; hint?: string; data?: Record<string, unknown> }>;
}

export async function doctor(uri: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; report: DoctorReport; stdout: string; stderr: string }> {
  const r = await run(['doctor', uri, '--json', ...extra], env);
  let report: DoctorReport;
  try {
    report = JSON.parse(r.stdout) as DoctorReport;
  } catch {
    throw new Error(`doctor printed no JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, report, stdout: r.stdout, stderr: r.stderr };
}
