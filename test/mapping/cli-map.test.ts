/**
 * `bridge map` end to end on real files: NDJSON in, connector file (UTF-8 without BOM, CRLF, header first, mode
 * 0600) and rejects out, and the printed summary.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  createWriteStream,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent } from 'fhir/r4.js';
import { afterAll, describe, expect, it } from 'vitest';
import { mapCommand } from '../../src/cli/commands/map.js';
import { BridgeError } from '../../src/errors.js';
import { spawnBridge } from '../support/bridge-process.js';
import { auditEvent, fixtureFiles, readFixture } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'bridge-map-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ndjson(name: string, values: readonly unknown[]): string {
  const path = join(dir, name);
  writeFileSync(path, `${values.map((value) => JSON.stringify(value)).join('\n')}\n`);
  return path;
}

async function runMap(args: string[]): Promise<string[]> {
  const printed: string[] = [];
  await mapCommand({ print: (line) => printed.push(line) })
    .exitOverride()
    .parseAsync(args, { from: 'user' });
  return printed;
}

/** example-rest, by Practitioner/f001 (whose work e-mail is the login), reading Patient/ch-example. */
function loggedInRead(): AuditEvent {
  const event = structuredClone(auditEvent('hl7-r4', 'AuditEvent-example-rest.json'));
  event.id = 'derived-1';
  event.entity = [{ what: { reference: 'Patient/ch-example' } }];
  event.agent[0] = { ...event.agent[0], requestor: true, who: { reference: 'Practitioner/f001' } };
  return event;
}

const resources = fixtureFiles('hl7-r4').map((name) => readFixture('hl7-r4', name));
const events = [
  ...resources.filter((resource) => resource.resourceType === 'AuditEvent'),
  ...fixtureFiles('hl7norway').map((name) => readFixture('hl7norway', name)),
  loggedInRead(),
];
const input = ndjson('events.ndjson', events);
const patients = ndjson(
  'patients.ndjson',
  resources.filter((resource) => resource.resourceType === 'Patient'),
);
const practitioners = ndjson(
  'practitioners.ndjson',
  resources.filter((resource) => resource.resourceType === 'Practitioner'),
);

describe('bridge map', () => {
  it('writes the Epic file, the rejects and a summary', async () => {
    const out = join(dir, 'rows.txt');
    const rejects = join(dir, 'rejects.ndjson');
    writeFileSync(out, 'old content');
    chmodSync(out, 0o644);
    const printed = await runMap(['--input', input, '--patients', patients, '--practitioners', practitioners, '--out', out, '--rejects', rejects]);

    const bytes = readFileSync(out);
    expect([...bytes.subarray(0, 3)]).not.toEqual([0xef, 0xbb, 0xbf]);
    expect(bytes.toString('utf8')).toBe(
      'ACCESS_LOG.ACCESS_TIME\tACCESS_LOG_METRIC.METRIC_NAME\tACCESS_LOG.WORKSTATION_ID\tZC_METRIC_GROUP.NAME\tZC_ACCESS_ACTION.NAME\t' +
        'PATIENT.PAT_MRN_ID\tPATIENT.PAT_FIRST_NAME\tPATIENT.PAT_MIDDLE_NAME\tPATIENT.PAT_LAST_NAME\tPATIENT.ADD_LINE_1\tPATIENT.ADD_LINE_2\t' +
        'PATIENT.CITY\tPATIENT.ZIP\tZC_STATE.NAME\tZC_COUNTRY.NAME\tCLARITY_DEP.DEPARTMENT_NAME\tZC_BTG_REASON.NAME\t' +
        'PAT_BTG_AUDIT.BTG_EXPLANATION\tEMP.SYSTEM_LOGIN\tCLARITY_EMP.USER_ID\temployee_last_name\temployee_first_name\r\n' +
        '2013-06-20T23:42:24Z\tvread Patient\tWorkstation1.ehr.familyclinic.com\tRestful Operation\tRead/View/Print\t3112219680806371X\t' +
        '\t\t张无忌\t马当路190号\t\t上海市\t200000\t\t\t\t\t\tE.M.vandenbroek@bmc.nl\tf001\tvan den broek\tEric\r\n',
    );
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(statSync(rejects).mode & 0o777).toBe(0o600);
    expect(
      readFileSync(rejects, 'utf8')
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as unknown),
    ).toEqual([
      { eventId: 'example-disclosure', patientRef: 'Patient/example', reason: 'missing-employee-login', column: 'EMP.SYSTEM_LOGIN' },
      { eventId: 'example-media', patientRef: 'entity[0].what.identifier', reason: 'missing-patient-name', column: 'PATIENT.PAT_FIRST_NAME' },
      { eventId: 'example-pixQuery', patientRef: 'entity[0].what.identifier', reason: 'missing-patient-name', column: 'PATIENT.PAT_FIRST_NAME' },
      { eventId: 'example-rest', patientRef: 'Patient/example', reason: 'missing-employee-login', column: 'EMP.SYSTEM_LOGIN' },
      { eventId: 'NOBasisAuditeventInstance1', patientRef: '#PatientInstance1', reason: 'missing-patient-name', column: 'PATIENT.PAT_FIRST_NAME' },
      { eventId: 'NOBasisAuditeventInstance2', patientRef: '#PatientInstance2', reason: 'missing-patient-name', column: 'PATIENT.PAT_FIRST_NAME' },
      { eventId: 'NOBasisAuditeventInstance3', patientRef: '#PatientInstance3', reason: 'missing-patient-name', column: 'PATIENT.PAT_FIRST_NAME' },
    ]);
    expect(printed.slice(0, 3)).toEqual([
      'Mapped 12 events: 1 rows, 4 events skipped, 7 rows rejected.',
      'Skipped: failure-outcome 1, no-patient 3',
      'Rejected: missing-employee-login 2, missing-patient-name 5',
    ]);
    expect(printed[3]).toMatch(/^Warnings \(events\): empty-mandatory:PATIENT\.PAT_FIRST_NAME 1, identifier-value-in-id:PATIENT\.PAT_MRN_ID 3, /);
    expect(printed[4]).toBe(`Wrote ${out} (epic schema, tab); rejects in ${rejects}.`);
  });

  it('refuses an output that is another output or an input, before reading anything: nothing is replaced', async () => {
    const out = join(dir, 'same.txt');
    const inputCopy = ndjson('events-copy.ndjson', events);
    const before = readFileSync(inputCopy, 'utf8');
    for (const [args, named] of [
      [['--input', input, '--out', out, '--rejects', out], '--out and --rejects name the same file'],
      [['--input', inputCopy, '--out', inputCopy], '--out and --input name the same file'],
      [['--input', input, '--patients', patients, '--out', join(dir, 'x.txt'), '--rejects', patients], '--rejects and --patients name the same file'],
    ] as const) {
      const error = (await runMap([...args]).catch((e: unknown) => e)) as BridgeError;
      expect(error.code, args.join(' ')).toBe('BRG_ERR_INPUT_INVALID');
      expect(error.message).toContain(named);
    }
    expect(readFileSync(inputCopy, 'utf8')).toBe(before);
    expect(readFileSync(patients, 'utf8').length).toBeGreaterThan(0);
  });

  it('healthcare as CSV', async () => {
    const out = join(dir, 'rows.csv');
    await runMap(['--input', input, '--patients', patients, '--practitioners', practitioners, '--schema', 'healthcare', '--delimiter', 'csv', '--out', out]);
    const lines = readFileSync(out, 'utf8').split('\r\n');
    expect(lines[0]?.split(',')).toHaveLength(23);
    expect(lines.slice(1)).toEqual([
      '2013-06-20T23:42:24Z,vread Patient,Workstation1.ehr.familyclinic.com,Restful Operation,Read/View/Print,3112219680806371X,,,张无忌,' +
        '马当路190号,,上海市,200000,,,,,,E.M.vandenbroek@bmc.nl,601847123,f001,van den broek,Eric',
      '',
    ]);
  });

  it('reports a JSON syntax error by file, line and column, without echoing the line', async () => {
    const broken = join(dir, 'broken.ndjson');
    writeFileSync(broken, `${JSON.stringify(events[0])}\n\n{"resourceType":"AuditEvent","id":"Jane Doe" "x"}\n`);
    const error = await runMap(['--input', broken, '--out', join(dir, 'broken.txt')]).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');
    expect((error as BridgeError).message).toBe(`Input file ${broken}: invalid JSON at line 3, column 46: expected ',' or '}'.`);
  });

  it('resolves an identifier two loaded patients carry to nobody, whichever comes first in the file (as a sync does), not to the last', async () => {
    const epi = 'urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14';
    const rosa = { resourceType: 'Patient', id: 'eP1', identifier: [{ system: epi, value: '204518' }], name: [{ family: 'Delgado', given: ['Rosa'] }] };
    const anh = {
      resourceType: 'Patient',
      id: 'eP2',
      identifier: [
        { system: epi, value: '999999' },
        { system: 'https://open.epic.com/FHIR/StructureDefinition/PayerMemberId', value: '204518' },
      ],
      name: [{ family: 'Nguyen', given: ['Anh'] }],
    };
    const byMrn = structuredClone(loggedInRead());
    byMrn.id = 'by-identifier';
    byMrn.entity = [{ what: { identifier: { value: '204518' } }, role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' } }];
    const eventFile = ndjson('by-identifier.ndjson', [byMrn]);
    // A later version of one patient carrying the identifier again is that patient, not a second one.
    const rosaAgain = { ...rosa, meta: { versionId: '2' } };
    for (const [name, order] of [
      ['rosa-anh', [rosa, anh]],
      ['anh-rosa', [anh, rosa]],
      ['anh-rosa-rosa', [anh, rosa, rosaAgain]],
    ] as const) {
      const out = join(dir, `${name}.txt`);
      await runMap(['--input', eventFile, '--patients', ndjson(`${name}.ndjson`, order), '--practitioners', practitioners, '--out', out]);
      const text = readFileSync(out, 'utf8');
      expect(text, name).not.toContain('Nguyen');
      expect(text, name).not.toContain('Delgado');
    }
    const out = join(dir, 'rosa-only.txt');
    await runMap(['--input', eventFile, '--patients', ndjson('rosa-only.ndjson', [rosa, rosaAgain]), '--practitioners', practitioners, '--out', out]);
    expect(readFileSync(out, 'utf8')).toContain('Delgado');
  });

  it('reads a lookup file holding a searchset Bundle (as --input takes one) by its entries: the same rows as from NDJSON', async () => {
    const bundled = ndjson('patients-bundle.ndjson', [
      {
        resourceType: 'Bundle',
        type: 'searchset',
        entry: resources.filter((resource) => resource.resourceType === 'Patient').map((resource) => ({ resource })),
      },
    ]);
    const fromNdjson = join(dir, 'from-ndjson.txt');
    const fromBundle = join(dir, 'from-bundle.txt');
    await runMap(['--input', input, '--patients', patients, '--practitioners', practitioners, '--out', fromNdjson]);
    await runMap(['--input', input, '--patients', bundled, '--practitioners', practitioners, '--out', fromBundle]);
    expect(readFileSync(fromBundle, 'utf8')).toBe(readFileSync(fromNdjson, 'utf8'));
  });

  it('refuses a line that is not UTF-8 (a Latin-1 name) by file, line and column, instead of mapping U+FFFD into a name', async () => {
    const latin1 = join(dir, 'latin1.ndjson');
    const lines = [JSON.stringify(events[0]), JSON.stringify({ resourceType: 'Patient', id: 'p1', name: [{ family: 'MxLLER' }] })];
    writeFileSync(latin1, Buffer.concat([Buffer.from(`${lines.join('\n')}\n`, 'utf8')]));
    const bytes = readFileSync(latin1);
    bytes[bytes.indexOf('MxLLER') + 1] = 0xfc; // "ü" in Latin-1 and Windows-1252
    writeFileSync(latin1, bytes);
    const error = await runMap(['--input', input, '--patients', latin1, '--out', join(dir, 'latin1.txt')]).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');
    expect((error as BridgeError).message).toMatch(new RegExp(`^Input file ${latin1}: not UTF-8 at line 2, column 57 \\(`));
    expect(existsSync(join(dir, 'latin1.txt'))).toBe(false);
  });

  // Issue #14.11: a failure half-way left a partial connector file that could be pushed by mistake.
  it('leaves no output at all when it fails half-way, and an earlier file of that name untouched', async () => {
    const out = join(dir, 'half.txt');
    const rejectsFile = join(dir, 'half-rejects.ndjson');
    writeFileSync(out, 'an earlier, complete file\r\n');
    const broken = ndjson('half.ndjson', [...events, { resourceType: 'Patient', id: 'not-an-event' }]);
    await expect(runMap(['--input', broken, '--out', out, '--rejects', rejectsFile])).rejects.toThrow('line');
    expect(readFileSync(out, 'utf8')).toBe('an earlier, complete file\r\n');
    expect(existsSync(rejectsFile)).toBe(false);
    expect(readdirSync(dir).filter((name) => name.includes('.partial-'))).toEqual([]);
  });

  it('a missing input file', async () => {
    const missing = join(dir, 'missing.ndjson');
    await expect(runMap(['--input', missing, '--out', join(dir, 'missing.txt')])).rejects.toThrow(
      `Input file ${missing} cannot be read (ENOENT); check the path.`,
    );
  });

  it('refuses a line that is not an AuditEvent or Bundle', async () => {
    const wrong = ndjson('wrong.ndjson', [resources.find((resource) => resource.resourceType === 'Patient')]);
    await expect(runMap(['--input', wrong, '--out', join(dir, 'wrong.txt')])).rejects.toThrow(
      `Input file ${wrong}, line 1: expected an AuditEvent or a Bundle, got Patient.`,
    );
  });

  it('refuses an output that is a pipe or device instead of replacing it with a file of rows', async () => {
    const fifo = join(dir, 'out.fifo');
    execFileSync('mkfifo', [fifo]);
    const failure = await runMap(['--input', input, '--out', join(dir, 'fifo-rows.txt'), '--rejects', fifo]).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BridgeError);
    expect((failure as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');
    expect((failure as BridgeError).message).toBe(`--rejects ${fifo} is not a regular file (a directory, device or pipe); give the path of a file to write.`);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  // A device node of its own (root only): the machine's /dev/full must not be touched (opening it 0600 chmods it).
  it.skipIf(process.getuid?.() !== 0)('a full disk: a typed error naming the file and ENOSPC, not BRG_ERR_INTERNAL, and no output left', async () => {
    const out = join(dir, 'full.txt');
    const full = join(dir, 'full-device');
    execFileSync('mknod', [full, 'c', '1', '7']);
    // The in-process run writes `<out>.partial-<pid>`: pointed at a full device, every write fails with ENOSPC.
    symlinkSync(full, `${out}.partial-${process.pid}`);
    const failure = await runMap(['--input', input, '--out', out]).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BridgeError);
    expect((failure as BridgeError).code).toBe('BRG_ERR_INPUT_INVALID');
    expect((failure as BridgeError).message).toBe(`Cannot write ${out} (ENOSPC): free space on its disk and run again; no connector file was written.`);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.partial-${process.pid}`)).toBe(false);
  });

  it('--mapping and --schema cannot be combined', async () => {
    await expect(runMap(['--input', input, '--out', join(dir, 'x.txt'), '--mapping', 'a.json', '--schema', 'epic'])).rejects.toThrow(/cannot be used with/);
  });
});

describe('bridge map interrupted', () => {
  it('leaves no partial connector file (rows with PHI) when Ctrl-C ends it mid-input', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-map-sigint-'));
    const input = join(dir, 'events.fifo');
    execFileSync('mkfifo', [input]);
    const out = join(dir, 'rows.tsv');
    const child = spawnBridge(['map', '--input', input, '--out', out, '--rejects', join(dir, 'rejects.ndjson')]);
    // The writer end stays open: map has read the first events and waits for more. Its 'open' comes once map opened the
    // other end: a signal before then would find map in an open() of the FIFO, which Node's exit waits on for ever.
    const writer = createWriteStream(input);
    // Once map is gone, a write still pending meets a closed pipe (EPIPE): expected, not this test's failure.
    writer.on('error', () => undefined);
    await new Promise((resolve) => writer.once('open', resolve));
    writer.write(`${JSON.stringify(loggedInRead())}\n`.repeat(50));
    await until(() => readdirSync(dir).some((name) => name.startsWith('rows.tsv.partial-')));
    child.kill('SIGINT');
    const exit = await child.done;
    writer.destroy();
    expect(exit.code).toBe(130);
    expect(readdirSync(dir).sort()).toEqual(['events.fifo']);
  });
});

async function until(condition: () => boolean): Promise<void> {
  for (let waited = 0; !condition(); waited += 20) {
    if (waited > 20_000) throw new Error('timed out waiting for bridge map to start writing');
    await new Promise((r) => setTimeout(r, 20));
  }
}
