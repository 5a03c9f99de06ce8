/**
 * The state database's schema across versions, through real processes: the commands that only read it leave an older
 * schema as it is (a look with a new version must not change it under the old one still running); `bridge state
 * upgrade` applies it once, even when several start at once and one is killed -9 while it waits; and the upgraded
 * database serves a sync that delivers every row.
 */
import { existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATE_SCHEMA_VERSION } from '../../src/sync/state/index.js';
import { MIGRATIONS } from '../../src/sync/state/migrations.js';
import { spawnBridge, until } from '../support/bridge-process.js';
import { expectedRows } from '../support/expected-rows.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

let h: SandboxHarness;
beforeAll(async () => {
  h = await startHarness({ data: { seed: 33, events: 120, patients: 25, practitioners: 6 } });
});
afterAll(async () => h?.close());

/** A state directory whose database an older bridge left at schema `version`, and a config that names it. */
function olderState(version: number): { stateDir: string; configPath: string } {
  const dir = mkdtempSync(join(tmpdir(), `bridge-schema-v${version}-`));
  const stateDir = join(dir, 'state');
  const configPath = join(dir, 'bridge.config.json');
  writeFileSync(configPath, JSON.stringify({ ...h.sandbox.config, stateDir }), { mode: 0o600 });
  mkdirSync(stateDir, { mode: 0o700 });
  const db = new Database(join(stateDir, 'bridge.sqlite'));
  db.pragma('journal_mode = WAL');
  for (const sql of MIGRATIONS.slice(0, version)) db.exec(sql);
  db.pragma(`user_version = ${version}`);
  db.close();
  return { stateDir, configPath };
}

function schemaOf(stateDir: string): { version: number; integrity: string } {
  const db = new Database(join(stateDir, 'bridge.sqlite'), { readonly: true });
  try {
    return { version: db.pragma('user_version', { simple: true }) as number, integrity: db.pragma('integrity_check', { simple: true }) as string };
  } finally {
    db.close();
  }
}

function countSeen(stateDir: string): number {
  const db = new Database(join(stateDir, 'bridge.sqlite'), { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM seen_events').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

describe('the state schema across versions', () => {
  it('the commands that only read leave an older schema as it is and say how to upgrade; `state upgrade` does it once', async () => {
    const { stateDir, configPath } = olderState(6);
    for (const args of [['runs'], ['status'], ['rejects', '0123456789'], ['state', 'refused', 'sandbox']]) {
      const result = await spawnBridge([...args, '--config', configPath]).done;
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(6);
      expect(result.stderr).toContain('BRG_ERR_STATE_SCHEMA');
      expect(result.stderr).toContain(`schema v6 is older than this bridge (v${STATE_SCHEMA_VERSION})`);
      expect(result.stderr).toContain('bridge state upgrade');
    }
    expect(schemaOf(stateDir).version).toBe(6);

    const upgraded = await spawnBridge(['state', 'upgrade', '--config', configPath]).done;
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(upgraded.stdout).toContain(`upgraded from schema v6 to v${STATE_SCHEMA_VERSION}`);
    const again = await spawnBridge(['state', 'upgrade', '--config', configPath]).done;
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`is at schema v${STATE_SCHEMA_VERSION}, this bridge's: nothing to do`);
    const runs = await spawnBridge(['runs', '--config', configPath]).done;
    expect(runs.code, runs.stderr).toBe(0);
    expect(runs.stdout).toContain('no runs yet');
  }, 60_000);

  it('from 0.1.0, a sync it left pushing stops the upgrade (its acknowledged blocks cannot be carried over): state upgrade and sync refuse, naming it', async () => {
    const { stateDir, configPath } = olderState(1);
    const db = new Database(join(stateDir, 'bridge.sqlite'));
    db.prepare(
      "INSERT INTO runs (id, connector, state, trigger, since, until, started_at, counts, spool_path) VALUES ('old-push', 'sandbox', 'pushing', 'schedule', ?, ?, ?, '{}', ?)",
    ).run('2026-11-01T08:45:00.000Z', '2026-11-01T11:00:00.000Z', '2026-11-01T11:00:01.000Z', join(stateDir, 'spool', 'old-push.txt'));
    db.prepare("INSERT INTO blocks VALUES ('spool-sha', 0, 'acked', 2, 1, 0, '2026-11-01T11:00:02Z')").run();
    db.close();
    const sentBefore = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).length;
    for (const args of [
      ['state', 'upgrade'],
      ['sync', '--no-progress'],
    ]) {
      const result = await spawnBridge([...args, '--config', configPath]).done;
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(6);
      expect(result.stderr).toContain('BRG_ERR_STATE_SCHEMA');
      expect(result.stderr).toContain('run old-push of connector "sandbox" (window 2026-11-01T08:45:00.000Z to 2026-11-01T11:00:00.000Z');
      expect(result.stderr).toContain("run 0.1.0's `bridge sync --connector sandbox` once");
    }
    expect(schemaOf(stateDir).version).toBe(1);
    expect(h.sandbox.ingest.accepted(h.sandbox.ids.jobId)).toHaveLength(sentBefore);
  }, 60_000);

  it('an upgrade killed -9 in the middle of a step leaves the last step that committed; the next one finishes with every row kept', async () => {
    const { stateDir, configPath } = olderState(1);
    // Enough seen events that the v2 step (every one converted to an instant in a new table) takes a while.
    const rows = 600_000;
    const db = new Database(join(stateDir, 'bridge.sqlite'));
    const insert = db.prepare('INSERT INTO seen_events VALUES (?, ?, ?)');
    db.transaction(() => {
      for (let i = 0; i < rows; i += 1) insert.run('sandbox', `e${i}|1`, new Date(Date.UTC(2026, 10, 1) + i * 1000).toISOString());
    })();
    db.close();
    const wal = join(stateDir, 'bridge.sqlite-wal');
    const upgrade = spawnBridge(['state', 'upgrade', '--config', configPath]);
    // Killed once the step's writes reach the write-ahead log, before they commit (or, on a fast machine, after).
    await until('the upgrade writing', () => (existsSync(wal) && statSync(wal).size > 1 << 20) || undefined, 30_000, 5);
    upgrade.kill('SIGKILL');
    expect((await upgrade.done).signal).toBe('SIGKILL');
    const killed = schemaOf(stateDir);
    expect(killed.integrity).toBe('ok');
    // The kill landed before the last step committed (the v2 step alone takes about a second here).
    expect(killed.version).toBeLessThan(STATE_SCHEMA_VERSION);
    expect(countSeen(stateDir)).toBe(rows);

    const again = await spawnBridge(['state', 'upgrade', '--config', configPath]).done;
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`upgraded from schema v${killed.version} to v${STATE_SCHEMA_VERSION}`);
    expect(schemaOf(stateDir)).toEqual({ version: STATE_SCHEMA_VERSION, integrity: 'ok' });
    expect(countSeen(stateDir)).toBe(rows);
  }, 60_000);

  it('three upgrades at once, one killed -9 while it waits for the lock: each step is applied once, and a sync then delivers every row', async () => {
    const { stateDir, configPath } = olderState(1);
    // Another process holds the write lock, so all three read v1 and then wait for it (busy_timeout is 5 s).
    const holder = new Database(join(stateDir, 'bridge.sqlite'));
    holder.exec('BEGIN IMMEDIATE');
    const upgrades = [0, 1, 2].map(() => spawnBridge(['state', 'upgrade', '--config', configPath]));
    await new Promise((r) => setTimeout(r, 3_000));
    upgrades[2]?.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    holder.exec('ROLLBACK');
    holder.close();
    const results = await Promise.all(upgrades.map((upgrade) => upgrade.done));
    expect(results[2]?.signal).toBe('SIGKILL');
    for (const result of results.slice(0, 2)) {
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`upgraded from schema v\\d to v${STATE_SCHEMA_VERSION}|nothing to do`));
    }
    expect(results.slice(0, 2).some((result) => result.stdout.includes(`upgraded from schema v1 to v${STATE_SCHEMA_VERSION}`))).toBe(true);
    expect(schemaOf(stateDir)).toEqual({ version: STATE_SCHEMA_VERSION, integrity: 'ok' });

    const { start, end } = h.sandbox.dataset.options;
    const sync = await spawnBridge(['sync', '--no-progress', '--since', start, '--until', end, '--config', configPath]).done;
    expect(sync.code, sync.stderr).toBe(0);
    const want = expectedRows(h.config, h.sandbox.dataset, [...h.sandbox.dataset.events()]).lines;
    const got = h.sandbox.ingest.accepted(h.sandbox.ids.jobId).flatMap((block) => block.rows);
    expect(got.sort()).toEqual([...want].sort());
  }, 60_000);
});
