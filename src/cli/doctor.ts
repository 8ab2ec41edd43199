/** Renders `postern doctor`: a live progress line per step on a terminal, plain lines otherwise, or JSON. */
import { createLogger } from '../log/logger.js';
import { parseHostPort } from '../core/address.js';
import { PosternError } from '../core/errors.js';
import { defaultLimits } from '../core/limits.js';
import { STEP_TITLES, redactUri, runDoctor, type StepName, type StepResult } from '../doctor/doctor.js';

const MARK: Record<StepResult['status'], string> = { ok: ' ok ', fail: 'FAIL', skip: 'skip', warn: 'warn' };
const SPINNER = ['|', '/', '-', '\\'];
const SPIN_MS = 100;

function line(r: StepResult): string {
  const title = STEP_TITLES[r.step].padEnd(27);
  const ms = r.status === 'skip' && r.ms === 0 ? '       ' : `${String(r.ms).padStart(5)} ms`;
  return `[${MARK[r.status]}] ${title} ${ms}  ${r.detail}`;
}

/** Runs the checks; returns the exit code (0 when no step failed). */
export async function doctorCommand(uri: string, o: { json?: boolean; target?: string; download?: string }): Promise<number> {
  let target: { host: string; port: number } | undefined;
  if (o.target !== undefined) {
    const hp = parseHostPort(o.target);
    if (!hp || hp.port === 0) throw new PosternError('E_CONFIG', `--target: expected HOST:PORT, got "${o.target}"`);
    target = hp;
  }
  const out = process.stdout;
  const live = o.json !== true && out.isTTY === true;
  let spin: NodeJS.Timeout | undefined;
  const results = await runDoctor({
    uri,
    limits: defaultLimits(),
    logger: createLogger({ level: 'silent' }),
    ...(target ? { target } : {}),
    ...(o.download !== undefined ? { download: o.download } : {}),
    onStart: (step: StepName) => {
      if (!live) return;
      let i = 0;
      const draw = () => out.write(`\r\x1b[K[ ${SPINNER[i++ % SPINNER.length]}  ] ${STEP_TITLES[step]} …`);
      draw();
      spin = setInterval(draw, SPIN_MS);
    },
    onResult: (r) => {
      clearInterval(spin);
      if (o.json === true) return;
      out.write(`${live ? '\r\x1b[K' : ''}${line(r)}\n`);
      if (r.status === 'fail' && r.hint) out.write(`       what to do: ${r.hint}\n`);
    },
  });
  const failed = results.find((r) => r.status === 'fail');
  if (o.json === true) {
    out.write(`${JSON.stringify({ uri: redactUri(uri), ok: failed === undefined, failedStep: failed?.step ?? null, steps: results }, null, 2)}\n`);
  } else if (failed) {
    process.stderr.write(`postern doctor: failed at "${STEP_TITLES[failed.step]}": ${failed.detail}\n`);
  } else {
    out.write('all checks passed\n');
  }
  return failed ? 1 : 0;
}
