/** Renders `postern doctor`: a live progress line per step on a terminal, plain lines otherwise, or JSON. */
import fs from 'node:fs';
import { createLogger } from '../log/logger.js';
import { parseHostPort } from '../core/address.js';
import { PosternError } from '../core/errors.js';
import { defaultLimits } from '../core/limits.js';
import { loadClientConfig } from '../config/client.js';
import { defaultClientConfigFile } from '../config/paths.js';
import { english, localeFromEnv, translator, type Translate } from '../i18n/messages.js';
import { bridgeDialer } from '../transport/registry.js';
import { redactUri, runDoctor, stepTitle, type StepName, type StepResult } from '../doctor/doctor.js';

const MARK: Record<StepResult['status'], string> = { ok: ' ok ', fail: 'FAIL', skip: 'skip', warn: 'warn' };
const SPINNER = ['|', '/', '-', '\\'];
const SPIN_MS = 100;

function line(r: StepResult, t: Translate): string {
  const title = stepTitle(r.step, t).padEnd(27);
  const ms = r.status === 'skip' && r.ms === 0 ? '       ' : `${String(r.ms).padStart(5)} ms`;
  return `[${MARK[r.status]}] ${title} ${ms}  ${r.detail}`;
}

/** The first link of a --bridge-file (blank and # lines skipped), as the client reads it. */
function firstLinkOfFile(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new PosternError('E_CONFIG_UNREADABLE', `--bridge-file ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const link = text.split(/\r?\n/).map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#'));
  if (link === undefined) throw new PosternError('E_CONFIG', `--bridge-file ${file}: the file is empty`);
  return link;
}

/**
 * The link to check: the argument, else the first of --bridge-file FILE, else the first bridge of
 * --config FILE, else $POSTERN_BRIDGE, else the first bridge of $POSTERN_CONFIG or of the default
 * client config file (when it exists).
 */
export function doctorLink(arg: string | undefined, config: string | undefined, env: NodeJS.ProcessEnv, t: Translate, bridgeFile?: string): string {
  if (arg !== undefined && arg !== '') return arg;
  if (bridgeFile !== undefined) return firstLinkOfFile(bridgeFile);
  const firstOf = (file: string): string | undefined => loadClientConfig(file).bridges?.[0];
  if (config !== undefined) {
    const link = firstOf(config);
    if (link === undefined) throw new PosternError('E_CONFIG', `${config}: bridges: no share link in this file`);
    return link;
  }
  if (env.POSTERN_BRIDGE) return env.POSTERN_BRIDGE;
  const file = env.POSTERN_CONFIG || defaultClientConfigFile(env);
  const link = file !== undefined && fs.existsSync(file) ? firstOf(file) : undefined;
  if (link === undefined) throw new PosternError('E_USAGE', t('doctor.noLink', { file: file ?? '~/.config/postern/client.json' }));
  return link;
}

/** Runs the checks; returns the exit code (0 when no step failed). */
export async function doctorCommand(
  arg: string | undefined,
  o: { json?: boolean; target?: string; download?: string; config?: string; bridgeFile?: string },
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  // Machine-readable output stays English whatever the locale; people get their language.
  const t = o.json === true ? english : translator(localeFromEnv(env));
  const uri = doctorLink(arg, o.config, env, t, o.bridgeFile);
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
    t,
    dialer: bridgeDialer,
    ...(target ? { target } : {}),
    ...(o.download !== undefined ? { download: o.download } : {}),
    onStart: (step: StepName) => {
      if (!live) return;
      let i = 0;
      const draw = () => out.write(`\r\x1b[K[ ${SPINNER[i++ % SPINNER.length]}  ] ${stepTitle(step, t)} …`);
      draw();
      spin = setInterval(draw, SPIN_MS);
    },
    onResult: (r) => {
      clearInterval(spin);
      if (o.json === true) return;
      out.write(`${live ? '\r\x1b[K' : ''}${line(r, t)}\n`);
      if (r.status === 'fail' && r.hint) out.write(`       ${t('doctor.whatToDo', { hint: r.hint })}\n`);
    },
  });
  const failed = results.find((r) => r.status === 'fail');
  if (o.json === true) {
    out.write(`${JSON.stringify({ uri: redactUri(uri), ok: failed === undefined, failedStep: failed?.step ?? null, steps: results }, null, 2)}\n`);
  } else if (failed) {
    process.stderr.write(`${t('doctor.failedAt', { step: stepTitle(failed.step, t), detail: failed.detail })}\n`);
  } else {
    out.write(`${t('doctor.allPassed')}\n`);
  }
  return failed ? 1 : 0;
}
