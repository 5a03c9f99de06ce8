/**
 * Fixtures for the Bulk Data client tests: the sandbox FHIR server (memory backend, revocable tokens) with its strict
 * `$export`, and a bulk source over it with an in-memory checkpoint store, a temporary download folder, an
 * InstantClock (polls and retries wait no real time) and every export event recorded.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent } from 'fhir/r4.js';
import { expect } from 'vitest';
import type { Clock } from '../../../src/clock.js';
import { type CheckpointStore, loadCheckpoint } from '../../../src/fhir/bulk/checkpoint.js';
import type { BulkExportEvent } from '../../../src/fhir/bulk/export.js';
import { BulkHttp, type BulkHttpOptions } from '../../../src/fhir/bulk/http.js';
import { type BulkExportSource, type BulkSourceSettings, createBulkExportSource } from '../../../src/fhir/bulk-source.js';
import { createReferenceResolver } from '../../../src/fhir/index.js';
import { type Logger, silentLogger } from '../../../src/log.js';
import { createDispatcher, DIRECT_NETWORK } from '../../../src/net/index.js';
import type { ReferenceFollow } from '../../../src/reference-keys.js';
import type { BulkExportSettings } from '../../../src/sandbox/bulk-export.js';
import type { SyncWindow } from '../../../src/sync/window.js';
import type { TokenSource } from '../../../src/token-cache.js';
import { allResources, buildFixtures, type FixtureData, type FixtureServer, startFixtureServer } from '../support.js';

export class MemoryCheckpoints implements CheckpointStore {
  value: string | undefined;
  readonly parts = new Map<string, string>();
  get(): string | undefined {
    return this.value;
  }
  set(value: string | undefined): void {
    this.value = value;
  }
  getPart(name: string): string | undefined {
    return this.parts.get(name);
  }
  setPart(name: string, value: string | undefined): void {
    if (value === undefined) this.parts.delete(name);
    else this.parts.set(name, value);
  }
  parsed(): StoredState | undefined {
    return this.value === undefined ? undefined : JSON.parse(this.value);
  }
  /** The indexes of the files recorded complete (kept in parts beside the checkpoint). */
  completeFiles(): string[] {
    return Object.keys(loadCheckpoint(this)?.files ?? {});
  }
}

/** The source state as stored: the export's checkpoint fields (while one is under way) and the finished exports' scopes. */
export interface StoredState {
  statusUrl?: string;
  request?: { base: string; level: string; groupId?: string };
  manifest?: { transactionTime: string };
  files?: Record<string, unknown>;
  covered?: Array<{ until: string; scope: { base: string; level: string; groupId?: string } }>;
}

export interface BulkFixture {
  readonly fx: FixtureServer;
  readonly data: FixtureData;
  /** The sandbox export's live settings. */
  readonly bulk: BulkExportSettings;
  source(options?: SourceOptions): BulkHarness;
  close(): Promise<void>;
}

export interface SourceOptions {
  readonly clock?: Clock;
  readonly tokens?: TokenSource;
  readonly store?: MemoryCheckpoints;
  readonly dir?: string;
  readonly settings?: Partial<BulkSourceSettings>;
  readonly logger?: Logger;
  readonly pageSize?: number;
  /** The FHIR base the connector's watermark was recorded reading (a search source's), normalised. */
  readonly watermarkSource?: string;
  /** What the department reads inside exported encounters and roles (mapping/prefetch.ts departmentFollows). */
  readonly follow?: ReadonlySet<ReferenceFollow>;
}

export interface BulkHarness {
  readonly source: BulkExportSource;
  readonly store: MemoryCheckpoints;
  readonly dir: string;
  readonly events: BulkExportEvent[];
  /** Every page of the window (default: a first run, no watermark), flattened. */
  read(window?: SyncWindow, signal?: AbortSignal): Promise<AuditEvent[]>;
}

export const FIRST_RUN: SyncWindow = { since: '2026-11-01T00:00:00.000Z', until: '2026-11-02T00:00:00.000Z' };

export async function startBulkFixture(
  counts = { events: 30, patients: 6, practitioners: 3 },
  settings: Partial<BulkExportSettings> & { readonly clock?: Clock } = {},
  server: { readonly departmentTypes?: boolean; readonly gzip?: boolean } = {},
): Promise<BulkFixture> {
  const data = buildFixtures(counts);
  const fx = await startFixtureServer(allResources(data), { bulkExport: { processingPolls: 1, ...settings }, ...server });
  return {
    fx,
    data,
    bulk: fx.server.bulk.settings,
    source(options = {}) {
      const clock = options.clock ?? fx.clock;
      const tokens = options.tokens ?? fx.tokens;
      const store = options.store ?? new MemoryCheckpoints();
      const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'bridge-bulk-'));
      const events: BulkExportEvent[] = [];
      const http = new BulkHttp({
        baseUrl: fx.server.baseUrl,
        tokenSource: tokens,
        dispatcher: createDispatcher(DIRECT_NETWORK),
        clock,
        logger: options.logger ?? silentLogger(),
        timeoutMs: 10_000,
        retry: { maxAttempts: 4, maxTotalMs: 600_000, baseDelayMs: 10, maxDelayMs: 1000 },
        maxJsonBytes: 1 << 20,
        random: () => 0.5,
      });
      const fallback = createReferenceResolver(fx.client({ tokenSource: tokens, clock }), { clock });
      const source = createBulkExportSource({
        http,
        fallback,
        store,
        dir,
        newId: () => `export-${Math.random().toString(16).slice(2, 10)}`,
        overlapMs: 15 * 60_000,
        cacheSize: 100,
        settings: { level: 'system', types: ['AuditEvent', 'Patient', 'Practitioner'], pollMinSeconds: 1, pollMaxMinutes: 60, ...options.settings },
        onEvent: (event) => events.push(event),
        ...(options.pageSize ? { pageSize: options.pageSize } : {}),
        ...(options.watermarkSource ? { watermarkSource: () => options.watermarkSource } : {}),
        ...(options.follow ? { follow: options.follow } : {}),
      });
      return {
        source,
        store,
        dir,
        events,
        async read(window = FIRST_RUN, signal) {
          const out: AuditEvent[] = [];
          for await (const page of source.pages(window, signal)) out.push(...page);
          return out;
        },
      };
    },
    close: () => fx.server.close(),
  };
}

/** Types of the export events, in order (for compact assertions). */
export function eventTypes(events: readonly BulkExportEvent[]): string[] {
  return events.map((event) => event.type);
}

/** Waits for socket and file I/O to bring `condition` about (a bound, not a speed check: 20 s on a loaded machine). */
export async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(condition()).toBe(true);
}

/** A BulkHttp toward the fixture's server, with its tokens and clock, one attempt and short timeouts. */
export function fixtureBulkHttp(fx: FixtureServer, overrides: Partial<BulkHttpOptions> = {}): BulkHttp {
  return new BulkHttp({
    baseUrl: fx.server.baseUrl,
    tokenSource: fx.tokens,
    dispatcher: createDispatcher(DIRECT_NETWORK),
    clock: fx.clock,
    logger: silentLogger(),
    timeoutMs: 5000,
    retry: { maxAttempts: 1, maxTotalMs: 1000, baseDelayMs: 1, maxDelayMs: 1 },
    maxJsonBytes: 1 << 20,
    ...overrides,
  });
}
