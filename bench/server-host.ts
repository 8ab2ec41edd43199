/** Starts bench/servers.ts on a worker thread (with tsx's loader) and talks to it. */
import { Worker } from 'node:worker_threads';
import { withTimeout } from './stats.js';
import type { FromWorker, ServerConfig, ServerPorts, ServerStats, ToWorker } from './wire.js';

export interface ServerHost {
  ports: ServerPorts;
  stats(): Promise<ServerStats>;
  close(): Promise<void>;
}

export async function startServers(config: ServerConfig): Promise<ServerHost> {
  // Workers do not inherit tsx's loader: register it inside the worker, then import the entry.
  const api = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./servers.ts', import.meta.url).href;
  const boot =
    `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })` +
    `.catch((e) => { console.error(e); process.exit(1); });`;
  const worker = new Worker(boot, { eval: true, workerData: config });
  let nextId = 1;
  const waiting = new Map<number, (s: ServerStats) => void>();
  let onClosed: (() => void) | null = null;
  const ready = new Promise<ServerPorts>((resolve, reject) => {
    worker.on('error', reject);
    worker.on('exit', (code) => reject(new Error(`server worker exited with code ${code}`)));
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'ready') resolve(m);
      else if (m.type === 'error') reject(new Error(`server worker: ${m.message}`));
      else if (m.type === 'stats') waiting.get(m.id)?.(m);
      else if (m.type === 'closed') onClosed?.();
    });
  });
  const ports = await withTimeout(ready, 15_000, 'starting the server worker');
  const send = (m: ToWorker): void => worker.postMessage(m);
  return {
    ports,
    stats() {
      const id = nextId++;
      const p = new Promise<ServerStats>((resolve) => waiting.set(id, resolve));
      send({ type: 'stats', id });
      return withTimeout(p, 5_000, 'server stats').finally(() => waiting.delete(id));
    },
    async close() {
      const closed = new Promise<void>((resolve) => (onClosed = resolve));
      send({ type: 'close' });
      await withTimeout(closed, 5_000, 'closing the server worker').catch(() => undefined);
      await worker.terminate();
    },
  };
}
