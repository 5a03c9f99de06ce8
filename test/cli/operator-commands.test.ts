/**
 * `bridge status`, `bridge runs` and `bridge rejects` over a real sandbox run (issue #17.2): the state directory alone
 * answers them, status exits 1 when a connector is late or failing, rejects prints the run's NDJSON while it is kept.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejectsCommand } from '../../src/cli/commands/rejects.js';
import { runsCommand } from '../../src/cli/commands/runs.js';
import { statusCommand } from '../../src/cli/commands/status.js';
import { BridgeError } from '../../src/errors.js';
import { parseEventClaimKey } from '../../src/purview/ledger.js';
import type { StatusReport } from '../../src/server/status.js';
import type { SyncSummary } from '../../src/sync/pipeline.js';
import { ZERO_COUNTS } from '../../src/sync/state/index.js';
import { expectedRows } from '../support/expected-rows.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';
import { recordingContext } from './support.js';

let h: SandboxHarness;
let summary: SyncSummary;

beforeAll(async () => {
  h = await startHarness({ data: { seed: 21, events: 150, patients: 30, practitioners: 6 } });
  // A sixth of the patients lose their name: their rows are rejected (missing-patient-name), with a rejects file.
  const nameless = [...h.sandbox.dataset.patients()].filter((_, i) => i % 6 === 0).map(({ name: _name, ...patient }) => patient);
  await h.sandbox.store?.load(nameless);
  summary = await h.sync();
});
afterAll(async () => h?.close());

async function run(command: ReturnType<typeof statusCommand>, args: string[]): Promise<void> {
  await command.exitOverride().parseAsync(args, { from: 'user' });
}

describe('reading a state directory no run has used', () => {
  it('status, runs and rejects say there is no state database there, and create none', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-no-state-'));
    const stateDir = join(dir, 'typo-state');
    const configPath = join(dir, 'bridge.config.json');
    writeFileSync(configPath, JSON.stringify({ ...h.sandbox.config, stateDir }));
    for (const command of [statusCommand(recordingContext()), runsCommand(recordingContext()), rejectsCommand(recordingContext())]) {
      const args = command.name() === 'rejects' ? ['0123456789', '--config', configPath] : ['--config', configPath];
      const error = (await run(command, args).catch((e: unknown) => e)) as BridgeError;
      expect(error.code, command.name()).toBe('BRG_ERR_CONFIG_INVALID');
      expect(error.message).toContain(`No state database at ${join(stateDir, 'bridge.sqlite')}`);
      expect(error.exitCode).toBe(2);
    }
    expect(existsSync(stateDir)).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('bridge status', () => {
  it('judges the connector from the state: late a month after the data, ok just after it, failing after a failed run', async () => {
    const config = ['--config', h.sandbox.configPath];
    let code = -1;
    const late = recordingContext();
    await run(statusCommand(late, { setExitCode: (c) => (code = c) }), config);
    expect(code, late.printed.join('\n')).toBe(1);
    expect(late.printed[0]).toMatch(/^sandbox {2}LATE {2}lag \d+ d( \d+ h)? is over 2 d$/);
    expect(late.printed.join('\n')).toContain(`last run      ${summary.runId} completed`);
    expect(late.printed.join('\n')).toContain(`${summary.counts.rows} rows, ${summary.counts.rejects} rejected`);

    const soon = { now: () => Date.parse(summary.until) + 600_000, sleep: async () => undefined };
    const ok = recordingContext({ clock: soon });
    await run(statusCommand(ok, { setExitCode: (c) => (code = c) }), [...config, '--json']);
    expect(code).toBe(0);
    const report = JSON.parse(ok.printed[0] ?? '') as StatusReport;
    expect(report).toMatchObject({ healthy: true, connectors: [{ name: 'sandbox', health: 'ok', lagSeconds: 600, lastSuccess: { runId: summary.runId } }] });

    // A later run (they are ordered by start) failed.
    const later = new Date(Date.now() + 1000).toISOString();
    h.withStore((s) => {
      s.createRun({
        id: 'failed-run',
        connector: 'sandbox',
        state: 'running',
        trigger: 'cli',
        since: summary.until,
        until: summary.until,
        startedAt: later,
        counts: { ...ZERO_COUNTS },
        dryRun: false,
      });
      s.updateRun('failed-run', { state: 'failed', finishedAt: later, error: { code: 'BRG_ERR_FHIR_UNAVAILABLE', message: 'The FHIR server kept failing.' } });
    });
    const failing = recordingContext({ clock: soon });
    await run(statusCommand(failing, { setExitCode: (c) => (code = c) }), config);
    expect(code).toBe(1);
    expect(failing.printed[0]).toBe('sandbox  FAILING  the last run failed: BRG_ERR_FHIR_UNAVAILABLE');
    expect(failing.printed).toContain('                BRG_ERR_FHIR_UNAVAILABLE: The FHIR server kept failing.');
  });
});

describe('bridge runs and bridge rejects', () => {
  it("lists runs newest first with reject reasons, and prints a run's rejects by id prefix", async () => {
    expect(summary.counts.rejects).toBeGreaterThan(0);
    const table = recordingContext();
    await run(runsCommand(table), ['--config', h.sandbox.configPath, '--connector', 'sandbox', '--limit', '5']);
    expect(table.printed[0]).toMatch(/^run {7}started {12}connector {2}state/);
    // Times in UTC, said so.
    expect(table.printed.find((l) => l.startsWith(summary.runId.slice(0, 8)))).toMatch(/ \d{4}-\d{2}-\d{2} \d{2}:\d{2}Z /);
    const line = table.printed.find((l) => l.startsWith(summary.runId.slice(0, 8)));
    expect(line).toMatch(new RegExp(`completed +cli\\+backfill +.* ${summary.counts.events} +${summary.counts.rows} +${summary.counts.rejects} `));
    expect(table.printed).toContain(`    rejects: missing-patient-name ${summary.rejectReasons['missing-patient-name']}`);

    const typo = (await run(runsCommand(recordingContext()), ['--config', h.sandbox.configPath, '--connector', 'sandbx']).catch(
      (e: unknown) => e,
    )) as BridgeError;
    expect(typo.message).toBe(`No connector named "sandbx" in the config, and no runs of one in the state directory; the config's connectors: sandbox.`);
    expect(typo.exitCode).toBe(2);

    const json = recordingContext();
    await run(runsCommand(json), ['--config', h.sandbox.configPath, '--json']);
    const runs = (JSON.parse(json.printed[0] ?? '') as { runs: Array<Record<string, unknown>> }).runs;
    expect(runs.find((r) => r['id'] === summary.runId)).toMatchObject({ rejectsAvailable: true, counts: { rejects: summary.counts.rejects } });
    // The completed run's spool was removed: its path is not shown as if it were there.
    expect(h.withStore((s) => s.getRun(summary.runId)?.spoolPath)).toBeDefined();
    expect(runs.find((r) => r['id'] === summary.runId)).not.toHaveProperty('spoolPath');

    const rejects = recordingContext();
    await run(rejectsCommand(rejects), [summary.runId.slice(0, 8), '--config', h.sandbox.configPath]);
    const lines = rejects
      .written()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { reason: string });
    expect(lines).toHaveLength(summary.counts.rejects);
    expect(new Set(lines.map((l) => l.reason))).toEqual(new Set(['missing-patient-name']));

    // While the run is in progress (a push left unfinished: rows given up are still added), nothing is printed.
    // (A completed run is final to the store: the test sets the state by hand.)
    const setState = (state: string): void => {
      const db = new Database(join(h.config.stateDir, 'bridge.sqlite'));
      db.prepare('UPDATE runs SET state = ? WHERE id = ?').run(state, summary.runId);
      db.close();
    };
    setState('pushing');
    const unfinished = recordingContext();
    const inProgress = await run(rejectsCommand(unfinished), [summary.runId, '--config', h.sandbox.configPath]).catch((e: unknown) => e);
    setState('completed');
    expect(inProgress).toMatchObject({ code: 'BRG_ERR_RUN_IN_PROGRESS', message: expect.stringContaining('Fetch its rejects once it completes') });
    expect(unfinished.written()).toBe('');

    // Gone after retention: the error says so (and the exit code is bad input's).
    const path = h.withStore((s) => s.getRun(summary.runId)?.rejectsPath) ?? '';
    rmSync(path);
    const gone = await run(rejectsCommand(recordingContext()), [summary.runId, '--config', h.sandbox.configPath]).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(BridgeError);
    expect((gone as BridgeError).message).toBe(
      `The rejects of run ${summary.runId} were removed: a completed run keeps them retention.rejectsDays (14) day(s).`,
    );
    expect((gone as BridgeError).exitCode).toBe(2);
    const unknown = await run(rejectsCommand(recordingContext()), ['no-such-run', '--config', h.sandbox.configPath]).catch((e: unknown) => e);
    expect((unknown as BridgeError).message).toBe('No run "no-such-run" in the state directory (bridge runs lists them).');
  });
});

describe('bridge runs --possibly-duplicated', () => {
  it("lists the AuditEvents of the run's blocks whose first answer was lost, exactly those Purview holds twice", async () => {
    const x = await startHarness({ data: { seed: 23, events: 60, patients: 12, practitioners: 4 }, flags: { 'connectors.0.purview.blockRows': 20 } });
    try {
      x.sandbox.ingest.injectFaults({ kind: 'accept-then-reset' });
      const done = await x.sync();
      expect(done.counts.possiblyDuplicated).toBeGreaterThan(0);
      const listed = recordingContext();
      await run(runsCommand(listed), ['--config', x.sandbox.configPath, '--possibly-duplicated', done.runId.slice(0, 8)]);
      // Worked out apart from the ledger: the events whose rows Purview accepted twice (the reset came after it recorded
      // the first block), by mapping the sandbox's events again.
      const blocks = x.sandbox.ingest.accepted(x.sandbox.ids.jobId);
      const twice = blocks.flatMap((b) => b.rows).filter((row, i, all) => all.indexOf(row) !== i);
      expect(twice.length).toBe(blocks[0]?.rows.length);
      const { owners } = expectedRows(x.config, x.sandbox.dataset, x.sandbox.dataset.events());
      const heldTwice = new Set(twice.flatMap((row) => [...(owners.get(row) ?? [])]));
      expect(heldTwice.size).toBeGreaterThan(0);
      expect(listed.printed.length).toBe(new Set(listed.printed).size);
      expect(new Set(listed.printed)).toEqual(
        new Set([...heldTwice].map(parseEventClaimKey).map(({ id, versionId }) => `AuditEvent/${id} version ${versionId}`)),
      );
      // --json: one JSON object, the same events.
      const json = recordingContext();
      await run(runsCommand(json), ['--config', x.sandbox.configPath, '--possibly-duplicated', done.runId.slice(0, 8), '--json']);
      const parsed = JSON.parse(json.printed.join('\n')) as { run: string; items: Array<{ kind: string; id: string; versionId: string }> };
      expect(parsed.run).toBe(done.runId);
      expect(new Set(parsed.items.map((item) => `AuditEvent/${item.id} version ${item.versionId}`))).toEqual(new Set(listed.printed));
      // Nothing flagged: still one object.
      const none = recordingContext();
      const clean = await x.sync();
      await run(runsCommand(none), ['--config', x.sandbox.configPath, '--possibly-duplicated', clean.runId.slice(0, 8), '--json']);
      expect(JSON.parse(none.printed.join('\n'))).toEqual({ run: clean.runId, items: [] });
    } finally {
      await x.close();
    }
  });
});
