/**
 * The flat-file source end to end against the sandbox (issue #19): connector files made from the sandbox's own data
 * (its events mapped with the connector's mapping, as a Clarity export would hold them) are dropped in a folder and
 * synced; what the ingestion emulator accepted is compared with the files' rows. With `enrich: { fhir: true }`, rows
 * whose patient or employee cells were blanked get them back from the sandbox's FHIR server, and cells the file has
 * are never overwritten. A real `bridge sync` killed with SIGKILL in the middle of a push, then run again, delivers
 * every row once — or more than once only for rows the rerun flagged possibly duplicated.
 */
import { appendFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { buildSyncDeps, findConnector } from '../../src/composition/index.js';
import { loadConfig } from '../../src/config/index.js';
import { SCHEMA_COLUMNS } from '../../src/connector-file/index.js';
import type { BridgeError } from '../../src/errors.js';
import { uuidSource } from '../../src/ids.js';
import { type Sandbox, startSandbox } from '../../src/sandbox/index.js';
import type { FileDropSummary } from '../../src/sync/file-drop.js';
import { openStateStore, runSync, SyncEvents } from '../../src/sync/index.js';
import { bridgeCli, type DropDirs, drop, dropDirs, fileText, flatFileConfig } from '../connector-file/drop-support.js';
import { expectedRows } from '../support/expected-rows.js';
import { linesLogger } from '../support/log-lines.js';
import { blocksAcked } from '../support/sandbox-run.js';

const COLUMNS = SCHEMA_COLUMNS.epic.map((c) => c.name);
const col = (name: string): number => COLUMNS.indexOf(name);
const HEADER = COLUMNS.join('\t');
const PATIENT = [
  'PATIENT.PAT_FIRST_NAME',
  'PATIENT.PAT_MIDDLE_NAME',
  'PATIENT.PAT_LAST_NAME',
  'PATIENT.ADD_LINE_1',
  'PATIENT.ADD_LINE_2',
  'PATIENT.CITY',
  'PATIENT.ZIP',
  'ZC_STATE.NAME',
  'ZC_COUNTRY.NAME',
];

let sandbox: Sandbox;
let rows: string[];
const logLines: string[] = [];
const root = dropDirs('bridge-flat-e2e-').root;

beforeAll(async () => {
  sandbox = await startSandbox({ dir: join(root, 'sandbox'), data: { seed: 19, events: 300, patients: 40, practitioners: 8 } });
  const config = loadConfig({ base: sandbox.config, env: {} });
  rows = expectedRows(config, sandbox.dataset, sandbox.dataset.events()).lines;
});
afterAll(async () => {
  await sandbox?.close();
  rmSync(root, { recursive: true, force: true });
});

/** A fresh drop folder (and archive) per test; the state and the job are the sandbox's. */
function folder(name: string): DropDirs {
  const dir = join(root, name, 'drop');
  mkdirSync(dir, { recursive: true });
  return { root: join(root, name), dir, archiveDir: join(root, name, 'archive') };
}

async function syncIn(dirs: DropDirs, source: Record<string, unknown> = {}): Promise<FileDropSummary> {
  const config = loadConfig({
    base: sandbox.config,
    env: {},
    flags: { logLevel: 'debug', 'connectors.0.source': { type: 'flat-file', dir: dirs.dir, archiveDir: dirs.archiveDir, settleSeconds: 0, ...source } },
  });
  const logger = linesLogger(logLines);
  const store = openStateStore(config.stateDir, systemClock);
  try {
    const deps = buildSyncDeps(
      { config, env: {}, clock: systemClock, logger, events: new SyncEvents(), store, newId: uuidSource },
      findConnector(config, 'sandbox'),
    );
    return (await runSync(deps, { trigger: 'cli' })) as FileDropSummary;
  } finally {
    store.close();
  }
}

const acceptedRows = (): string[] => sandbox.ingest.accepted(sandbox.ids.jobId).flatMap((block) => block.rows);

/** ISO-8859-2 (Latin-2) bytes of a text it can spell, each character's byte found by decoding all 256 bytes. */
const LATIN2 = new Map([...new TextDecoder('iso-8859-2').decode(Uint8Array.from({ length: 256 }, (_, i) => i))].map((c, i) => [c, i]));
function latin2(text: string): Buffer {
  return Buffer.from(
    [...text].map((c) => {
      const byte = LATIN2.get(c);
      if (byte === undefined) throw new Error(`ISO-8859-2 has no ${c}`);
      return byte;
    }),
  );
}

/** Sandbox rows as a Central European export holds them: spelt in ISO-8859-2, every last name with a "Ł" (£ in windows-1252). */
function latin2Rows(lines: readonly string[]): string[] {
  return lines
    .filter((line) => [...line].every((c) => LATIN2.has(c) || c === 'ñ' || c === 'ø'))
    .map((line) => {
      const cells = line.replaceAll('ñ', 'ń').replaceAll('ø', 'ő').split('\t');
      cells[col('PATIENT.PAT_LAST_NAME')] = `Ł${cells[col('PATIENT.PAT_LAST_NAME')]}`;
      return cells.join('\t');
    });
}

/**
 * Every wanted row accepted at least as often as wanted and nothing else accepted; returns how many copies came on top
 * (the caller bounds them by the rows flagged possibly duplicated).
 */
function extraCopies(acceptedLines: readonly string[], wantedLines: readonly string[]): number {
  const accepted = counts(acceptedLines);
  const wanted = counts(wantedLines);
  let duplicates = 0;
  for (const [line, want] of wanted) {
    const got = accepted.get(line) ?? 0;
    expect(got).toBeGreaterThanOrEqual(want);
    duplicates += got - want;
  }
  expect([...accepted.keys()].filter((line) => !wanted.has(line))).toEqual([]);
  return duplicates;
}

function counts(lines: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of lines) out.set(line, (out.get(line) ?? 0) + 1);
  return out;
}

describe('flat-file source against the sandbox', () => {
  it('delivers every row of the dropped files once, archives them, and bridge status reads the watermark', async () => {
    const dirs = folder('plain');
    const before = acceptedRows().length;
    const now = Date.now();
    drop(dirs, 'clarity_1.txt', fileText(rows.slice(0, 120)), now - 120_000);
    const newest = drop(dirs, 'clarity_2.txt', fileText(rows.slice(120), HEADER, '\n'), now - 60_000);
    const newestMtime = new Date(statSync(newest).mtimeMs).toISOString();
    const summary = await syncIn(dirs);
    expect(summary.files.map((f) => [f.file, f.outcome])).toEqual([
      ['clarity_1.txt', 'delivered'],
      ['clarity_2.txt', 'delivered'],
    ]);
    expect(summary.counts).toMatchObject({ rows: rows.length, rowsAcked: rows.length, rejects: 0 });
    expect(acceptedRows().slice(before)).toEqual(rows);
    expect(readdirSync(join(dirs.archiveDir, 'done')).sort()).toEqual(['clarity_1.txt', 'clarity_2.txt']);

    const config = flatFileConfig(sandbox, dirs, { settleSeconds: 0 });
    const status = await bridgeCli(['status', '--config', config, '--json']).done;
    const report = JSON.parse(status.stdout) as { connectors: Array<{ health: string; watermark: string; lastRun: { counts: { rows: number } } }> };
    expect(report.connectors[0]).toMatchObject({ health: 'ok', watermark: newestMtime, lastRun: { counts: { rows: rows.length } } });
    // Counts, ids, file names: never a cell of a row in the logs.
    const someNames = rows
      .slice(0, 20)
      .map((line) => line.split('\t')[col('PATIENT.PAT_LAST_NAME')] as string)
      .filter((name) => name.length > 3);
    for (const name of someNames) expect(logLines.filter((line) => line.includes(name))).toEqual([]);
  }, 60_000);

  it('fills only the empty patient and employee cells from FHIR, by MRN and user id, and reports them per column', async () => {
    const dirs = folder('enrich');
    const before = acceptedRows().length;
    const requestsBefore = sandbox.fhir.requests.length;
    const sample = rows.slice(0, 60);
    const blank = (line: string, names: readonly string[], value = ''): string => {
      const cells = line.split('\t');
      for (const name of names) cells[col(name)] = value;
      return cells.join('\t');
    };
    // Rows 0–39: every patient column blank; 40–49: employee names blank; 50: a first name the file has (kept) with
    // the rest blank; 51: an MRN nobody has.
    const dropped = sample.map((line, i) => (i < 40 ? blank(line, PATIENT) : i < 50 ? blank(line, ['employee_last_name', 'employee_first_name']) : line));
    dropped[50] = blank(blank(sample[50] as string, PATIENT), ['PATIENT.PAT_FIRST_NAME'], 'FromTheFile');
    dropped[51] = blank(blank(sample[51] as string, PATIENT), ['PATIENT.PAT_MRN_ID'], '999999999');
    drop(dirs, 'clarity_enrich.txt', fileText(dropped), Date.now() - 60_000);
    const summary = await syncIn(dirs, { enrich: { fhir: true } });

    const cell = (line: string | undefined, name: string): string => line?.split('\t')[col(name)] ?? '';
    // A user without a provider record has no Practitioner to fill their names from: the sandbox's rows give them their
    // EMP login as user id, where everyone else has their SER provider id.
    const staff = (line: string | undefined): boolean => !/^E\d+$/.test(cell(line, 'CLARITY_EMP.USER_ID'));
    const expected = sample.map((line, i) => (i >= 40 && i < 50 && staff(line) ? (dropped[i] as string) : line));
    expected[50] = blank(sample[50] as string, ['PATIENT.PAT_FIRST_NAME'], 'FromTheFile');
    expected[51] = dropped[51] as string;
    expect(acceptedRows().slice(before)).toEqual(expected);
    const staffIds = new Set(
      sample
        .slice(40, 50)
        .filter(staff)
        .map((line) => cell(line, 'CLARITY_EMP.USER_ID')),
    );
    expect(staffIds.size, 'no row of a user without a Practitioner among rows 40–49').toBeGreaterThan(0);
    // Per column: the cells the file left empty, filled from FHIR or still empty there; row 51 found nothing.
    const enrich = summary.enrich;
    for (const name of [...PATIENT, 'EMP.SYSTEM_LOGIN', 'employee_last_name', 'employee_first_name']) {
      const empty = dropped.map((line, i) => ({ i, line })).filter(({ line }) => cell(line, name) === '');
      const employee = !PATIENT.includes(name);
      const looked = empty.filter(({ i }) => i !== 51 && !(employee && staff(sample[i])));
      const filled = looked.filter(({ i }) => cell(expected[i], name) !== '').length;
      const want = { filled, notFound: empty.length - looked.length, noKey: 0, emptyInFhir: looked.length - filled };
      if (empty.length > 0) expect(enrich?.columns[name], name).toEqual(want);
      else expect(enrich?.columns[name], name).toBeUndefined();
    }
    expect(enrich?.columns['PATIENT.PAT_FIRST_NAME']?.filled).toBe(40);
    expect(enrich?.columns['employee_last_name']?.filled).toBe(10 - sample.slice(40, 50).filter(staff).length);
    expect(enrich?.lookups.patient.notFound).toBe(1);
    expect(enrich?.lookups.employee.notFound).toBe(staffIds.size);
    // The distinct MRNs and user ids of the rows with an empty cell, searched together (identifier=a|1,a|2,…), each
    // once (cached), not one search per row; the MRN no patient carries is asked once more on its own.
    const searches = sandbox.fhir.requests.slice(requestsBefore).filter((r) => r.query.includes('identifier='));
    const keysOf = (names: readonly string[], key: string): Set<string> =>
      new Set(dropped.filter((line) => names.some((name) => cell(line, name) === '')).map((line) => cell(line, key)));
    const asked = (type: string) => {
      const requests = searches.filter((r) => r.path.endsWith(`/${type}`));
      const values = requests.flatMap((r) => (new URLSearchParams(r.query).get('identifier') ?? '').split(',').map((token) => token.split('|').pop()));
      return { requests: requests.length, values };
    };
    const mrns = keysOf(PATIENT, 'PATIENT.PAT_MRN_ID');
    const users = keysOf(['EMP.SYSTEM_LOGIN', 'employee_last_name', 'employee_first_name'], 'CLARITY_EMP.USER_ID');
    const patients = asked('Patient');
    const practitioners = asked('Practitioner');
    expect(new Set(patients.values)).toEqual(mrns);
    expect(patients.values).toHaveLength(mrns.size + 1);
    expect(patients.requests).toBeLessThan(mrns.size / 2);
    expect(new Set(practitioners.values)).toEqual(users);
    // A user id no Practitioner carries is asked once more on its own, as the unknown MRN is.
    expect(practitioners.values).toHaveLength(users.size + staffIds.size);
    expect(practitioners.requests).toBeLessThan(users.size);
    expect(enrich?.lookups.patient.found).toBe(keysOf(PATIENT, 'PATIENT.PAT_MRN_ID').size - 1);
    // The identifiers looked up and the values filled stay out of the logs (debug level included).
    const logs = logLines.join('\n');
    for (const mrn of keysOf(PATIENT, 'PATIENT.PAT_MRN_ID')) expect(logs).not.toContain(mrn);
    for (const line of sample.slice(0, 10)) if (cell(line, 'PATIENT.ADD_LINE_1').length > 4) expect(logs).not.toContain(cell(line, 'PATIENT.ADD_LINE_1'));
  }, 60_000);

  it('a file the EHR cannot enrich waits in the folder; the files before and after it still go out', async () => {
    const dirs = folder('enrich-fails');
    const before = acceptedRows().length;
    const blank = (line: string): string => {
      const cells = line.split('\t');
      for (const name of PATIENT) cells[col(name)] = '';
      return cells.join('\t');
    };
    const first = rows.slice(100, 105);
    const needs = rows.slice(105, 110).map(blank);
    const last = rows.slice(110, 115);
    drop(dirs, 'a_first.txt', fileText(first), Date.now() - 180_000);
    drop(dirs, 'b_needs.txt', fileText(needs), Date.now() - 120_000);
    drop(dirs, 'c_last.txt', fileText(last), Date.now() - 60_000);
    // The EHR refuses the Patient lookup of b's MRNs once (a 403: the grant, not the file).
    const mrn = (needs[0] as string).split('\t')[col('PATIENT.PAT_MRN_ID')] as string;
    sandbox.fhir.faults.add({ action: { kind: 'status', status: 403 }, match: new RegExp(`/Patient\\?.*${mrn}`) });
    const error = await syncIn(dirs, { enrich: { fhir: true } }).catch((e: unknown) => e);
    expect((error as BridgeError).message).toMatch(/b_needs\.txt could not be enriched from the EHR \(BRG_ERR_FHIR_HTTP/);
    expect(acceptedRows().slice(before)).toEqual([...first, ...last]);
    expect(readdirSync(dirs.dir)).toEqual(['b_needs.txt']);
    // Once the EHR answers, the next run fills and sends it.
    const summary = await syncIn(dirs, { enrich: { fhir: true } });
    expect(summary.files.map((f) => [f.file, f.outcome])).toEqual([['b_needs.txt', 'delivered']]);
    expect(acceptedRows().slice(before)).toEqual([...first, ...last, ...rows.slice(105, 110)]);
  });

  it('a bridge sync killed with SIGKILL mid-push, then run again, delivers every row once or flagged', async () => {
    const dirs = folder('crash');
    const files = [rows.slice(0, 40), rows.slice(40, 70)];
    for (const [i, fileRows] of files.entries()) drop(dirs, `crash_${i}.txt`, fileText(fileRows), Date.now() - 60_000 + i);
    const config = flatFileConfig(sandbox, dirs, { settleSeconds: 0 });
    const env = { BRIDGE__connectors__0__purview__blockRows: '5', BRIDGE__logLevel: 'warn' };
    const jobBefore = acceptedRows().length;
    const requestsBefore = sandbox.ingest.requests;
    // Blocks 0–2 pass; block 3 is accepted but its answer lost; its retry is held, and the process killed there.
    const pass = { kind: 'delay', ms: 0 } as const;
    sandbox.ingest.injectFaults(pass, pass, pass, { kind: 'accept-then-reset' }, { kind: 'delay', ms: 30_000 });
    const first = bridgeCli(['sync', '--config', config, '--no-progress'], env);
    for (let i = 0; i < 3000 && sandbox.ingest.requests < requestsBefore + 5; i++) await new Promise((r) => setTimeout(r, 10));
    first.child.kill('SIGKILL');
    expect((await first.done).signal).toBe('SIGKILL');
    expect(readdirSync(dirs.dir).sort()).toEqual(['crash_0.txt', 'crash_1.txt']);

    const second = await bridgeCli(['sync', '--config', config, '--json'], env).done;
    expect(second.code, second.stderr).toBe(0);
    const summary = JSON.parse(second.stdout.trim().split('\n').at(-1) ?? '{}') as FileDropSummary;
    expect(summary.files.map((f) => [f.file, f.outcome])).toEqual([
      ['crash_0.txt', 'delivered'],
      ['crash_1.txt', 'delivered'],
    ]);
    expect(summary.counts).toMatchObject({ rowsAcked: 70, rowsAlreadyDelivered: 15, rowsPossiblyDuplicated: 5 });

    const duplicates = extraCopies(acceptedRows().slice(jobBefore), files.flat());
    expect(duplicates).toBeLessThanOrEqual(summary.counts.rowsPossiblyDuplicated);
    expect(readdirSync(join(dirs.archiveDir, 'done')).sort()).toEqual(['crash_0.txt', 'crash_1.txt']);
    const store = openStateStore(join(root, 'sandbox', 'state'), systemClock);
    try {
      const killed = store.listRuns({ connector: 'sandbox' }).find((r) => r.id !== summary.runId && r.error?.code === 'BRG_ERR_ABORTED');
      expect(killed?.error?.message).toContain('still in the drop folder');
    } finally {
      store.close();
    }
  }, 120_000);

  it('a file killed (SIGKILL) part-way through its push, rerun with another encoding and a Purview fault, sends no row twice unflagged', async () => {
    const dirs = folder('crash-encoding');
    const a = latin2Rows(rows.slice(150, 200)).slice(0, 30);
    const b = latin2Rows(rows.slice(200, 250)).slice(0, 20);
    expect([a.length, b.length]).toEqual([30, 20]);
    const asCp1252 = (lines: readonly string[]): string[] => lines.map((line) => new TextDecoder('windows-1252').decode(latin2(line)));
    expect(asCp1252(a)).not.toEqual(a);
    drop(dirs, 'a_latin2.txt', latin2(fileText(a)), Date.now() - 60_000);
    drop(dirs, 'b_latin2.txt', latin2(fileText(b)), Date.now() - 59_000);
    // Read first as windows-1252, the site's usual code page: every byte is a character there, so nothing is refused.
    const config = flatFileConfig(sandbox, dirs, { settleSeconds: 0, encoding: 'windows-1252' });
    const env = { BRIDGE__connectors__0__purview__blockRows: '5', BRIDGE__logLevel: 'warn' };
    const state = { config: loadConfig({ base: sandbox.config, env: {} }) };
    const jobBefore = acceptedRows().length;
    const ackedBefore = blocksAcked(state);
    // Block 0 passes; the blocks after it are held, and the process killed once the run log has block 0 acknowledged.
    sandbox.ingest.injectFaults({ kind: 'delay', ms: 0 }, { kind: 'delay', ms: 30_000 }, { kind: 'delay', ms: 30_000 });
    const first = bridgeCli(['sync', '--config', config, '--no-progress'], env);
    for (let i = 0; i < 3000 && blocksAcked(state) === ackedBefore; i++) await new Promise((r) => setTimeout(r, 10));
    first.child.kill('SIGKILL');
    expect((await first.done).signal).toBe('SIGKILL');
    sandbox.ingest.injectFaults();
    expect(acceptedRows().slice(jobBefore)).toEqual(asCp1252(a.slice(0, 5)));
    expect(readdirSync(dirs.dir).sort()).toEqual(['a_latin2.txt', 'b_latin2.txt']);

    // The operator sees "£" in Purview and sets the right encoding; the next process's first block is taken by Purview,
    // but answered 503 (sent again, flagged).
    sandbox.ingest.injectFaults({ kind: 'accept-then-status', status: 503 });
    const second = await bridgeCli(['sync', '--config', config, '--json'], { ...env, BRIDGE__connectors__0__source__encoding: 'iso-8859-2' }).done;
    expect(second.code, second.stderr).toBe(0);
    const summary = JSON.parse(second.stdout.trim().split('\n').at(-1) ?? '{}') as FileDropSummary;
    expect(summary.files.map((f) => [f.file, f.outcome, f.reason ?? ''])).toEqual([
      ['a_latin2.txt', 'rejected', 'settings-changed-after-send'],
      ['b_latin2.txt', 'delivered', ''],
    ]);
    const why = readFileSync(join(dirs.archiveDir, 'rejected', 'a_latin2.txt.why.txt'), 'utf8');
    expect(why).toContain('connectors[].source.encoding changed since (windows-1252 then, iso-8859-2 now)');
    expect(why).toContain('Purview acknowledged 5 of its row(s) as read then');
    expect(why).toContain('set connectors[].source.encoding back to windows-1252');

    // Following that advice: the setting put back (the config's), the file moved back. It is finished as it was read.
    renameSync(join(dirs.archiveDir, 'rejected', 'a_latin2.txt'), join(dirs.dir, 'a_latin2.txt'));
    const third = await bridgeCli(['sync', '--config', config, '--json'], env).done;
    expect(third.code, third.stderr).toBe(0);
    const last = JSON.parse(third.stdout.trim().split('\n').at(-1) ?? '{}') as FileDropSummary;
    expect(last.files.map((f) => [f.file, f.outcome, f.rowsAlreadyDelivered])).toEqual([['a_latin2.txt', 'delivered', 5]]);

    // Every row once, as read when it was sent (a as windows-1252, b as ISO-8859-2), or more only where flagged.
    const duplicates = extraCopies(acceptedRows().slice(jobBefore), [...asCp1252(a), ...b]);
    expect(duplicates).toBeLessThanOrEqual(summary.counts.rowsPossiblyDuplicated + last.counts.rowsPossiblyDuplicated);
    expect(summary.counts.rowsPossiblyDuplicated).toBe(5);
    expect(readdirSync(join(dirs.archiveDir, 'done')).sort()).toEqual(['a_latin2.txt', 'b_latin2.txt']);
  }, 120_000);

  it('a file killed (SIGKILL) part-way through its push that then grows is refused, not sent again whole; its new rows go once', async () => {
    const dirs = folder('crash-grow');
    const fileRows = rows.slice(110, 150);
    const path = drop(dirs, 'grow.txt', fileText(fileRows), Date.now() - 60_000);
    const config = flatFileConfig(sandbox, dirs, { settleSeconds: 0 });
    const jobBefore = acceptedRows().length;
    const requestsBefore = sandbox.ingest.requests;
    // Blocks 0–2 pass; block 3 is held, and the process killed there (the held block is never taken).
    const pass = { kind: 'delay', ms: 0 } as const;
    sandbox.ingest.injectFaults(pass, pass, pass, { kind: 'delay', ms: 30_000 });
    const first = bridgeCli(['sync', '--config', config, '--no-progress'], { BRIDGE__connectors__0__purview__blockRows: '5', BRIDGE__logLevel: 'warn' });
    for (let i = 0; i < 3000 && sandbox.ingest.requests < requestsBefore + 4; i++) await new Promise((r) => setTimeout(r, 10));
    first.child.kill('SIGKILL');
    expect((await first.done).signal).toBe('SIGKILL');
    expect(acceptedRows().slice(jobBefore)).toEqual(fileRows.slice(0, 15));
    sandbox.ingest.injectFaults();

    // The export appends to the file; two reruns at once, with another block size: one takes the connector.
    const added = rows.slice(150, 153);
    appendFileSync(path, fileText(added).split('\r\n').slice(1).join('\r\n'));
    const env = { BRIDGE__connectors__0__purview__blockRows: '7', BRIDGE__logLevel: 'warn' };
    const reruns = await Promise.all([
      bridgeCli(['sync', '--config', config, '--json'], env).done,
      bridgeCli(['sync', '--config', config, '--json'], env).done,
    ]);
    expect(reruns.map((r) => r.code).sort()).toContain(0);
    for (const rerun of reruns) expect([0, 6], rerun.stderr).toContain(rerun.code);
    expect(acceptedRows().slice(jobBefore)).toEqual(fileRows.slice(0, 15));
    const why = readFileSync(join(dirs.archiveDir, 'rejected', 'grow.txt.why.txt'), 'utf8');
    expect(why).toContain('Purview acknowledged 15 of its row(s) then');
    expect(why).toContain('Do not drop this file again as it is');

    // Following the advice: the rows after the first 15, as a new file, arrive once.
    drop(dirs, 'grow-rest.txt', fileText([...fileRows.slice(15), ...added]), Date.now() - 1_000);
    const last = await bridgeCli(['sync', '--config', config, '--json'], env).done;
    expect(last.code, last.stderr).toBe(0);
    expect(acceptedRows().slice(jobBefore)).toEqual([...fileRows, ...added]);
  }, 120_000);
});
