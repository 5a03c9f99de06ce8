/** An app over a temporary state store, with a runner and status the test controls. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { systemClock } from '../../src/clock.js';
import { type Logger, silentLogger } from '../../src/log.js';
import { type AppDeps, buildApp } from '../../src/server/app.js';
import { hashApiToken } from '../../src/server/auth.js';
import { createMetrics } from '../../src/server/metrics.js';
import type { SyncRunner } from '../../src/server/runner.js';
import { openStateStore, type StateStore } from '../../src/sync/state/index.js';

export const TOKEN = 'right-token-0123456789abcdef';
export const AUTH = { authorization: `Bearer ${TOKEN}` };

export function tempStore(): { store: StateStore; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-server-'));
  return { store: openStateStore(dir, systemClock), dir };
}

export function appDeps(overrides: Partial<AppDeps> = {}): AppDeps {
  const store = overrides.store ?? tempStore().store;
  const runner: SyncRunner = {
    start: async () => ({ runId: 'run-1', resumed: false }),
    isRunning: () => false,
    endOfRunShortOfNow: () => undefined,
    drain: async () => undefined,
  };
  return {
    connectors: ['main'],
    runner,
    store,
    metrics: createMetrics(),
    jwks: () => ({ keys: [] }),
    jwksMaxAgeSec: 60,
    apiTokenHashes: [hashApiToken(TOKEN)],
    rateLimitMax: 100,
    logger: silentLogger(),
    isReady: () => true,
    status: () => ({ now: new Date().toISOString(), healthy: true, connectors: [] }),
    watchStatus: () => () => undefined,
    rejects: { retentionDays: 14, retainFiles: false },
    ...overrides,
  };
}

export const testApp = (overrides: Partial<AppDeps> = {}) => buildApp(appDeps(overrides));

/** A real pino logger whose lines land in `lines` (parsed), for asserting on levels and fields. */
export function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}
