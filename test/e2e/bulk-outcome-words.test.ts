/**
 * A Bulk Data server's words never leave the bridge: an OperationOutcome's diagnostics, details.text or a coding's
 * display may name the patient ("Patient Jane Doe MRN 123 …"), and no scrubbing recognises a name. A failed export, a
 * refused kick-off and the export's error files are reported by HTTP status, severity, issue and coding codes, and
 * counts per code; never by that text: not in the error, the log, the run record, the operator's run brief or the
 * summary.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { formatSummary } from '../../src/cli/reporters/summary.js';
import { BridgeError } from '../../src/errors.js';
import { brief } from '../../src/server/status.js';
import type { RunRecord } from '../../src/sync/state/index.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

/** What a real server may write in an outcome's text: a name, and an MRN too short for the digit-run pattern. */
const WORDS = 'Patient Jane Doe MRN 123 not permitted';
const PHI = ['Jane', 'Doe', 'MRN 123', 'not permitted'];

let h: SandboxHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function harness(seed: number): Promise<SandboxHarness> {
  h = await startHarness({
    data: { seed, events: 40, patients: 8, practitioners: 3 },
    flags: { 'connectors.0.source': { type: 'bulk-export', pollMinSeconds: 1 } },
  });
  Object.assign(h.sandbox.fhir.bulk.settings, { processingPolls: 0, outcomeWords: WORDS });
  return h;
}

/** A failed run as the operator meets it: the error, logged as the service logs it, and the run's record and brief. */
async function failedRun(x: SandboxHarness): Promise<{ error: BridgeError; said: string[] }> {
  const error = await x.sync({ since: undefined, until: undefined }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(BridgeError);
  x.logger.error({ err: error }, 'the run failed');
  const run = x.withStore((store) => store.listRuns({ connector: 'sandbox' })[0]) as RunRecord;
  expect(run.state).toBe('failed');
  const said = [(error as BridgeError).message, JSON.stringify((error as BridgeError).details), JSON.stringify(run), JSON.stringify(brief(run)), ...x.logLines];
  return { error: error as BridgeError, said };
}

function expectNoWords(said: readonly string[]): void {
  for (const text of said) for (const phi of PHI) expect(text, `"${phi}" in ${text.slice(0, 200)}`).not.toContain(phi);
}

it("a failed export (the status URL's 5xx OperationOutcome) is told by its status and codes, and where its text is, never by that text", async () => {
  const x = await harness(81);
  x.sandbox.fhir.bulk.settings.failJobs = true;
  const { error, said } = await failedRun(x);
  expect(error.code).toBe('BRG_ERR_FHIR_EXPORT');
  expect(error.message).toMatch(
    /^The FHIR server reports the export failed: FHIR \$export status at http:\/\/127\.0\.0\.1:\d+ answered HTTP 500 with an OperationOutcome \(error processing \[urn:oid:1\.2\.840\.114350\.1\.13\.0\.1\.7\.2\.657369\|59100\]\)\./,
  );
  // Where to read the text: the export's status URL (no query), in the server's log.
  expect(error.message).toMatch(
    /not quoted, as it may name a patient; the FHIR server's log of the export http:\/\/127\.0\.0\.1:\d+\/\S+\/bulk\/status\/[0-9a-f-]+ has it\./,
  );
  expect(error.message).toContain('The next run starts a new export.');
  expect(error.details).toMatchObject({ status: 500, outcomeCode: '59100' });
  expectNoWords(said);
});

it('a refused kick-off (4xx OperationOutcome) still names the type it refused and what to do, never its text', async () => {
  const x = await harness(82);
  x.sandbox.fhir.bulk.settings.types = ['Patient', 'Practitioner'];
  const { error, said } = await failedRun(x);
  expect(error.code).toBe('BRG_ERR_FHIR_EXPORT');
  expect(error.message).toMatch(
    /was refused \(HTTP 400 with an OperationOutcome \(error not-supported \[urn:oid:[\d.]+\|59100\]\)\) for type AuditEvent\. Remove it from source\.types .* system\/AuditEvent\.read/,
  );
  expect(error.message).toContain("not quoted, as it may name a patient; the FHIR server's log has it.");
  expectNoWords(said);
});

it("an export's error files are reported by counts per issue code, in the log; the summary counts them, never their text", async () => {
  const x = await harness(83);
  x.sandbox.fhir.bulk.settings.errorLines = 2;
  const notes: string[] = [];
  const detach = x.events.on('source_progress', (e) => notes.push(e.message));
  const summary = await x.sync({ since: undefined, until: undefined });
  detach();
  expect(summary.unexported).toBe(2);
  const reported = x.logLines.find((line) => line.includes('the FHIR server reported errors for this export'));
  expect(JSON.parse(reported as string)).toMatchObject({ outcomes: 2, codes: { processing: 2, '59100': 2 } });
  const run = x.withStore((store) => store.getRun(summary.runId)) as RunRecord;
  const runLog = readFileSync(join(x.config.stateDir, 'runs', `${summary.runId}.ndjson`), 'utf8');
  expectNoWords([...formatSummary(summary), JSON.stringify(summary), JSON.stringify(run), JSON.stringify(brief(run)), runLog, ...notes, ...x.logLines]);
});
