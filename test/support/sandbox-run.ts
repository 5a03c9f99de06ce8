/** Starts the sandbox in a temp dir and runs real syncs against it, capturing every log line for leak checks. */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Clock, systemClock } from '../../src/clock.js';
import { buildSyncDeps, findConnector } from '../../src/composition/index.js';
import { type Config, loadConfig } from '../../src/config/index.js';
import { uuidSource } from '../../src/ids.js';
import type { Logger } from '../../src/log.js';
import { type Sandbox, type SandboxOptions, startSandbox } from '../../src/sandbox/index.js';
import { SyncEvents } from '../../src/sync/events.js';
import { runSync, type SyncRequest, type SyncSummary } from '../../src/sync/pipeline.js';
import { attachRunLog } from '../../src/sync/run-log.js';
import { openStateStore, type StateStore } from '../../src/sync/state/index.js';
import { linesLogger } from './log-lines.js';

export interface SandboxHarness {
  readonly sandbox: Sandbox;
  readonly config: Config;
  readonly logLines: string[];
  readonly logger: Logger;
  readonly events: SyncEvents;
  /** One run with the harness's config, `flags` changing settings for this run only (as an operator would between runs). */
  sync(request?: Partial<SyncRequest> & { flags?: Record<string, unknown>; connector?: string }): Promise<SyncSummary>;
  withStore<T>(fn: (store: StateStore) => T): T;
  close(): Promise<void>;
}

export async function startHarness(options: Partial<SandboxOptions> & { flags?: Record<string, unknown>; clock?: Clock } = {}): Promise<SandboxHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-e2e-'));
  const sandbox = await startSandbox({ dir, ...options });
  const config = loadConfig({ base: sandbox.config, env: {}, flags: { logLevel: 'debug', ...options.flags } });
  const logLines: string[] = [];
  const logger = linesLogger(logLines);
  const events = new SyncEvents();
  const clock = options.clock ?? systemClock;
  const detachLog = attachRunLog(events, join(config.stateDir, 'runs'), clock);
  const withStore = <T>(fn: (store: StateStore) => T): T => {
    const store = openStateStore(config.stateDir, clock);
    try {
      return fn(store);
    } finally {
      store.close();
    }
  };
  return {
    sandbox,
    config,
    logLines,
    logger,
    events,
    withStore,
    async sync(request = {}) {
      const { flags, connector = 'sandbox', ...syncRequest } = request;
      const runConfig = flags ? loadConfig({ base: sandbox.config, env: {}, flags: { logLevel: 'debug', ...options.flags, ...flags } }) : config;
      const store = openStateStore(config.stateDir, clock);
      try {
        const deps = buildSyncDeps({ config: runConfig, env: {}, clock, logger, events, store, newId: uuidSource }, findConnector(runConfig, connector));
        const { start, end } = sandbox.dataset.options;
        return await runSync(deps, { trigger: 'cli', since: start, until: end, ...syncRequest });
      } finally {
        store.close();
      }
    },
    async close() {
      detachLog();
      await sandbox.close();
    },
  };
}

/**
 * Blocks Purview acknowledged so far in the harness's state, as the runs' event logs record them (every process writes
 * its own; the CLI's output has no line per block): what a test waits for before it kills a process mid-push.
 */
export function blocksAcked(h: Pick<SandboxHarness, 'config'>): number {
  const dir = join(h.config.stateDir, 'runs');
  if (!existsSync(dir)) return 0;
  return readdirSync(dir).reduce((n, f) => n + (readFileSync(join(dir, f), 'utf8').match(/"eventId":"block_acked"/g)?.length ?? 0), 0);
}

/**
 * A Purview fault that holds a block in flight until `release` is called: a test keeps a process holding the
 * connector until another process was refused, however loaded the machine (a delay of fixed length was a race).
 */
export function holdUntilReleased(): { readonly fault: { kind: 'hold'; until: Promise<void> }; readonly release: () => void } {
  let release: () => void = () => undefined;
  const until = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { fault: { kind: 'hold', until }, release: () => release() };
}

/** A push stopped after its first acknowledged block: the run waits in 'pushing' for the next run to finish it. */
export async function interruptedPush(h: SandboxHarness, blockRows = 20): Promise<string> {
  const stop = new AbortController();
  const detach = h.events.on('block_acked', () => stop.abort());
  await h.sync({ stopSignal: stop.signal, flags: { 'connectors.0.purview.blockRows': blockRows } }).catch(() => undefined);
  detach();
  const unfinished = h.withStore((s) => s.findUnfinishedRun('sandbox'));
  if (unfinished?.state !== 'pushing') throw new Error(`expected a run left pushing, got ${unfinished?.state ?? 'none'}`);
  return unfinished.id;
}
