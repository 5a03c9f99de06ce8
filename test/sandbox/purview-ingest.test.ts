import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RESOURCE } from '../../src/purview/index.js';
import { type EntraEmulator, startEntraEmulator } from '../../src/sandbox/entra.js';
import { INGEST_SCHEMAS, JOB_APP_MISMATCH, type PurviewIngestEmulator, startPurviewIngestEmulator } from '../../src/sandbox/purview-ingest.js';
import { createRowDigest } from '../../src/sandbox/row-digest.js';
import { createSandboxCertificate } from '../../src/sandbox/tls.js';

const tenantId = randomUUID();
const app = { tenantId, appId: randomUUID(), secret: 's3cret-value' };
const jobId = randomUUID();
let entra: EntraEmulator;
let ingest: PurviewIngestEmulator;
let counting: PurviewIngestEmulator;
let digesting: PurviewIngestEmulator;
let dispatcher: Agent;
let token: string;

async function issue(scope: string, tenant = tenantId): Promise<string> {
  const response = await request(`${entra.authorityHost}/${tenant}/oauth2/v2.0/token`, {
    method: 'POST',
    dispatcher,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: app.appId, client_secret: app.secret, grant_type: 'client_credentials', scope }).toString(),
  });
  return ((await response.body.json()) as { access_token: string }).access_token;
}

beforeAll(async () => {
  const tls = await createSandboxCertificate();
  dispatcher = new Agent({ connect: { ca: tls.certPem } });
  entra = await startEntraEmulator({ tls });
  entra.registerApp(app);
  const verifyAccessToken = (t: string) => entra.verifyAccessToken(t);
  ingest = await startPurviewIngestEmulator({ verifyAccessToken, tls });
  counting = await startPurviewIngestEmulator({ verifyAccessToken, tls, record: 'count' });
  digesting = await startPurviewIngestEmulator({ verifyAccessToken, tls, record: 'digest' });
  for (const emulator of [ingest, counting, digesting]) emulator.registerJob(jobId, app, 'epic');
  token = await issue(`${DEFAULT_RESOURCE}/.default`);
});
afterAll(async () => {
  await Promise.all([ingest.close(), counting.close(), digesting.close(), entra.close()]);
  await dispatcher.close();
});

/** An Epic header, pipe-separated: the emulator takes no block whose line 1 is not a connector schema's header. */
const HEADER = INGEST_SCHEMAS.epic.mandatory.join('|');
/** A data row under HEADER: the access time and the login vary, the other cells are fixed. */
const row = (time: string, login: string, delimiter = '|'): string =>
  [time, 'Patient Lookup', 'Jo', 'Doe', '1 Main St', 'City', '6002', '', login].join(delimiter);
const ROWS = [row('2026-11-01T00:00:00Z', 'u1'), row('2026-11-01T00:00:01Z', 'ü2')];
const FILE = `${HEADER}\r\n${ROWS.join('\r\n')}\r\n`;
/** A Healthcare header: a connector schema's too, so it differs from the job's earlier blocks without lacking columns. */
const HEALTHCARE = INGEST_SCHEMAS.healthcare.mandatory.join('|');

interface Upload {
  file?: Buffer | string;
  boundary?: string;
  contentType?: string;
  disposition?: string;
  extraPart?: boolean;
  path?: string;
  auth?: string | null;
  target?: PurviewIngestEmulator;
}

async function upload(options: Upload = {}) {
  const boundary = options.boundary ?? 'b0b';
  const file = typeof options.file === 'string' || options.file === undefined ? Buffer.from(options.file ?? FILE, 'utf8') : options.file;
  const disposition = options.disposition ?? 'form-data; name=file; filename=tmp_x0001.txt';
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n\r\n`),
    file,
    Buffer.from(options.extraPart ? `\r\n--${boundary}\r\nContent-Disposition: form-data; name=other\r\n\r\nx` : ''),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const target = options.target ?? ingest;
  const headers: Record<string, string> = { 'content-type': options.contentType ?? `multipart/form-data; boundary="${boundary}"` };
  if (options.auth !== null) headers.authorization = options.auth ?? `Bearer ${token}`;
  const response = await request(`${target.baseUrl}${options.path ?? `/api/signals?jobid=${jobId}`}`, { method: 'POST', dispatcher, headers, body });
  return { status: response.statusCode, statusText: response.statusText, retryAfter: response.headers['retry-after'], body: await response.body.text() };
}

describe('Purview ingestion emulator', () => {
  it("accepts the script's format and records header, rows, filename and delimiter, in order", async () => {
    const before = ingest.accepted(jobId).length;
    expect(await upload()).toMatchObject({ status: 200 });
    // Power Automate style part header, unquoted boundary and an upper-case JOBID (docs/purview-protocol.md §2.2).
    expect(
      await upload({
        boundary: 'pa',
        contentType: 'multipart/form-data; boundary=pa',
        disposition: 'form-data;name = "file";filename=b.csv',
        path: `/api/signals?JOBID=${jobId.toUpperCase()}`,
      }),
    ).toMatchObject({ status: 200 });
    expect(ingest.accepted(jobId).slice(before)).toEqual([
      {
        filename: 'tmp_x0001.txt',
        header: HEADER,
        rows: ROWS,
        rowCount: 2,
        bytes: Buffer.byteLength(FILE),
        delimiter: 'pipe',
      },
      {
        filename: 'b.csv',
        header: HEADER,
        rows: ROWS,
        rowCount: 2,
        bytes: Buffer.byteLength(FILE),
        delimiter: 'pipe',
      },
    ]);
  });

  it('keeps only counts in record:"count" mode', async () => {
    expect(await upload({ target: counting })).toMatchObject({ status: 200 });
    expect(await upload({ target: counting })).toMatchObject({ status: 200 });
    expect(counting.accepted(jobId)).toEqual([
      { filename: 'tmp_x0001.txt', header: HEADER, rows: [], rowCount: 2, bytes: Buffer.byteLength(FILE), delimiter: 'pipe' },
      { filename: 'tmp_x0001.txt', header: HEADER, rows: [], rowCount: 2, bytes: Buffer.byteLength(FILE), delimiter: 'pipe' },
    ]);
    expect(counting.acceptedRowCount(jobId)).toBe(4);
    expect(counting.acceptedRowCount(randomUUID())).toBe(0);
  });

  // Issue #15.5: a million-row demo kept every row and died of memory; the digest keeps a constant size.
  it('keeps counts and a digest of the rows in record:"digest" mode, equal to the digest of the same rows once each', async () => {
    expect(await upload({ target: digesting })).toMatchObject({ status: 200 });
    expect(digesting.accepted(jobId).map((b) => b.rows)).toEqual([[]]);
    const once = createRowDigest();
    for (const line of ROWS) once.add(line);
    expect(digesting.rowDigest(jobId)).toEqual(once.value());
    expect(await upload({ target: digesting })).toMatchObject({ status: 200 });
    expect(digesting.rowDigest(jobId)).not.toEqual(once.value()); // the same rows twice are not "exactly once"
    expect(digesting.rowDigest(jobId).rows).toBe(4);
  });

  it('keeps a refused block out of the job and its digest, refuses every block holding a matching row, and counts rows whose answer a fault lost', async () => {
    const own = await startPurviewIngestEmulator({
      verifyAccessToken: (t) => entra.verifyAccessToken(t),
      record: 'digest',
      tls: await createSandboxCertificate(),
    });
    const local = new Agent({ connect: { ca: own.caPem } });
    try {
      own.registerJob(jobId, app, 'epic');
      const send = async () => {
        const body = Buffer.from(`--b\r\nContent-Disposition: form-data; name=file; filename=t.txt\r\n\r\n${FILE}\r\n--b--\r\n`);
        const response = await request(`${own.baseUrl}/api/signals?jobid=${jobId}`, {
          method: 'POST',
          dispatcher: local,
          headers: { 'content-type': 'multipart/form-data; boundary=b', authorization: `Bearer ${token}` },
          body,
        });
        return { status: response.statusCode, body: await response.body.text() };
      };
      own.injectFaults({ kind: 'status', status: 500 });
      expect(await send()).toMatchObject({ status: 500 });
      own.refuseRowsMatching(/\|ü2$/);
      expect(await send()).toMatchObject({ status: 400, body: expect.stringContaining('line 3') });
      expect(await send()).toMatchObject({ status: 400 });
      expect(own.accepted(jobId)).toEqual([]);
      expect(own.rowDigest(jobId)).toEqual(createRowDigest().value());
      own.refuseRowsMatching(undefined);
      own.injectFaults({ kind: 'accept-then-reset' });
      await expect(send()).rejects.toThrow();
      expect(own.lostAnswerRows(jobId)).toBe(2);
      expect(await send()).toMatchObject({ status: 200 });
      const twice = createRowDigest();
      for (const line of [...ROWS, ...ROWS]) twice.add(line);
      expect(own.rowDigest(jobId)).toEqual(twice.value());
      expect(own.lostAnswerRows(jobId)).toBe(2);
    } finally {
      await own.close();
      await local.close();
    }
  });

  it('answers 401 without a valid token or with a token for another resource', async () => {
    expect((await upload({ auth: null })).status).toBe(401);
    expect((await upload({ auth: 'Bearer not-a-token' })).status).toBe(401);
    const other = await issue('https://graph.microsoft.com/.default');
    expect((await upload({ auth: `Bearer ${other}` })).status).toBe(401);
  });

  it("answers 403 with Purview's reason phrase when the job belongs to another app or is unknown", async () => {
    const foreignJob = randomUUID();
    ingest.registerJob(foreignJob, { tenantId: app.tenantId, appId: randomUUID() });
    for (const id of [foreignJob, randomUUID()]) {
      expect(await upload({ path: `/api/signals?jobid=${id}` })).toMatchObject({ status: 403, statusText: JOB_APP_MISMATCH });
    }
    expect(JOB_APP_MISMATCH).toBe('jobId and corresponding appId do not match.');
  });

  it("answers 403 to the job's own app id with a token from another tenant (a multi-tenant app), recording nothing", async () => {
    const otherTenant = randomUUID();
    entra.registerApp({ ...app, tenantId: otherTenant });
    const foreign = await issue(`${DEFAULT_RESOURCE}/.default`, otherTenant);
    const before = ingest.accepted(jobId).length;
    expect(await upload({ auth: `Bearer ${foreign}` })).toMatchObject({ status: 403, statusText: JOB_APP_MISMATCH });
    expect(ingest.accepted(jobId).length).toBe(before);
    expect((await upload()).status).toBe(200);
  });

  const malformed: Array<[string, Upload, string]> = [
    ['a BOM', { file: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(FILE)]) }, 'byte order mark'],
    ['LF line ends', { file: FILE.replace(/\r\n/g, '\n') }, 'CRLF'],
    ['a bare CR', { file: `${HEADER}\r\na\rb|c\r\n` }, 'CR'],
    ['invalid UTF-8', { file: Buffer.concat([Buffer.from(`${HEADER}\r\n`), Buffer.from([0xff, 0xfe]), Buffer.from('\r\n')]) }, 'UTF-8'],
    ['a header without rows', { file: `${HEADER}\r\n` }, 'no rows'],
    ['a part not named file', { disposition: 'form-data; name=upload; filename=a.txt' }, 'file'],
    ['a disposition other than form-data', { disposition: 'attachment; name=file; filename=a.txt' }, 'not form-data'],
    ['a part named twice', { disposition: 'form-data; name=other; name=file; filename=a.txt' }, 'names "name" twice'],
    ['two parts', { extraPart: true }, 'exactly one part'],
    ['no multipart content type', { contentType: 'text/plain' }, 'multipart/form-data'],
    ['a header differing from the first block', { file: `${HEALTHCARE}\r\n${ROWS[0]}\r\n` }, "the header line differs from the job's earlier blocks"],
    ['a row with too few fields', { file: `${HEADER}\r\n2026-11-01T00:00:00Z\r\n` }, 'line 2 has 1 field(s); the header has 9'],
    ['a row with too many fields', { file: `${HEADER}\r\n${ROWS[0]}|extra\r\n` }, 'line 2 has 10 field(s)'],
    ['tab-separated rows under a pipe header', { file: `${HEADER}\r\n${row('2026-11-01T00:00:00Z', 'u1', '\t')}\r\n` }, 'line 2 has 1 field(s)'],
    ['more rows than a block holds', { file: `${HEADER}\r\n${`${ROWS[0]}\r\n`.repeat(100_001)}` }, 'at most 100000'],
  ];
  for (const [name, options, reason] of malformed) {
    it(`answers 400 with a reason for ${name}, recording nothing`, async () => {
      const before = ingest.accepted(jobId).length;
      if (before === 0) expect((await upload()).status).toBe(200);
      const count = ingest.accepted(jobId).length;
      const answer = await upload(options);
      expect(answer.status).toBe(400);
      expect(answer.body).toContain(reason);
      expect(ingest.accepted(jobId).length).toBe(count);
    });
  }

  it('checks a job of a known schema against its mandatory columns and delimiters', async () => {
    const epicJob = randomUUID();
    ingest.registerJob(epicJob, app, 'epic');
    const to = (file: string) => upload({ file, path: `/api/signals?jobid=${epicJob}` });
    const mandatory = INGEST_SCHEMAS.epic.mandatory;
    const row = mandatory.map((_, i) => `v${i}`);
    const missing = await to(`${mandatory.slice(1).join('\t')}\r\n${row.slice(1).join('\t')}\r\n`);
    expect(missing).toMatchObject({ status: 400, body: expect.stringContaining('lacks the mandatory epic column(s) ACCESS_LOG.ACCESS_TIME') });
    const comma = await to(`${mandatory.join(',')}\r\n${row.join(',')}\r\n`);
    expect(comma).toMatchObject({ status: 400, body: expect.stringContaining('does not read comma-separated files') });
    // A BOM before a column is part of its name (the bridge refuses such a header before sending: bom-in-header).
    const marked = await to(`${mandatory[0]}\t\ufeff${mandatory.slice(1).join('\t')}\r\n${row.join('\t')}\r\n`);
    expect(marked).toMatchObject({ status: 400, body: expect.stringContaining(`lacks the mandatory epic column(s) ${mandatory[1]}`) });
    // So are spaces and quotes around one in a tab file (nothing there unquotes or trims a name); its case is not.
    for (const name of [` ${mandatory[1]} `, `"${mandatory[1]}"`]) {
      const spelled = await to(`${mandatory[0]}\t${name}\t${mandatory.slice(2).join('\t')}\r\n${row.join('\t')}\r\n`);
      expect(spelled, name).toMatchObject({ status: 400, body: expect.stringContaining(`lacks the mandatory epic column(s) ${mandatory[1]}`) });
    }
    expect((await to(`${mandatory.join('\t')}\r\n${row.join('\t')}\r\n`)).status).toBe(200);
    expect(ingest.accepted(epicJob)).toHaveLength(1);
  });

  // A job registered without a schema took any line 1 as its header: a block missing its header line was stored under
  // its first row, and every correct block after it was refused as differing from that "header".
  it('refuses a block without its header line for a job registered without a schema, and takes the correct blocks after it', async () => {
    const anyJob = randomUUID();
    ingest.registerJob(anyJob, app);
    const to = (file: string) => upload({ file, path: `/api/signals?jobid=${anyJob}` });
    // Rows alone (the first row taken for the header), a header of no connector, an Epic header short of one column.
    const lacking = INGEST_SCHEMAS.epic.mandatory.slice(1);
    const files = [`${ROWS.join('\r\n')}\r\n`, 'A|B\r\n1|2\r\n', `${lacking.join('|')}\r\n${lacking.map(() => 'x').join('|')}\r\n`];
    const answers: Array<Awaited<ReturnType<typeof upload>>> = [];
    for (const file of files) answers.push(await to(file));
    for (const answer of answers) {
      expect(answer).toMatchObject({ status: 400, body: expect.stringContaining('the header line is missing or lacks mandatory columns') });
      expect(answer.body).toContain('the mandatory healthcare column(s) Creation Time');
    }
    expect(answers[2]?.body).toContain('lacks the mandatory epic column(s) ACCESS_LOG.ACCESS_TIME;');
    expect(ingest.accepted(anyJob)).toEqual([]);
    expect((await to(FILE)).status).toBe(200);
    expect((await to(FILE)).status).toBe(200);
    expect(ingest.accepted(anyJob).map((block) => [block.header, block.rows])).toEqual([
      [HEADER, ROWS],
      [HEADER, ROWS],
    ]);
  });

  it("takes either schema's header for a job registered without one, in a delimiter that schema's connector reads", async () => {
    const [healthcareJob, epicJob] = [randomUUID(), randomUUID()];
    for (const id of [healthcareJob, epicJob]) ingest.registerJob(id, app);
    const comma = (schema: 'epic' | 'healthcare') => {
      const columns = INGEST_SCHEMAS[schema].mandatory;
      return `${columns.join(',')}\r\n${columns.map((_, i) => (i === 2 ? '"Doe, Jo"' : `v${i}`)).join(',')}\r\n`;
    };
    expect((await upload({ file: comma('healthcare'), path: `/api/signals?jobid=${healthcareJob}` })).status).toBe(200);
    expect(ingest.accepted(healthcareJob).map((block) => block.delimiter)).toEqual(['comma']);
    const epic = await upload({ file: comma('epic'), path: `/api/signals?jobid=${epicJob}` });
    expect(epic).toMatchObject({ status: 400, body: 'the epic connector does not read comma-separated files' });
    expect(ingest.accepted(epicJob)).toEqual([]);
  });

  it('answers 411 to a chunked body: the length goes up front (docs/purview-protocol.md §2.2)', async () => {
    const count = ingest.accepted(jobId).length;
    const body = Buffer.from(`--b0b\r\nContent-Disposition: form-data; name=file; filename=tmp_x0001.txt\r\n\r\n${FILE}\r\n--b0b--\r\n`);
    const response = await request(`${ingest.baseUrl}/api/signals?jobid=${jobId}`, {
      method: 'POST',
      dispatcher,
      headers: { 'content-type': 'multipart/form-data; boundary="b0b"', authorization: `Bearer ${token}` },
      // A stream of unknown length: undici sends it chunked.
      body: Readable.from([body]),
    });
    expect(response.statusCode).toBe(411);
    expect(await response.body.text()).toContain('Content-Length');
    expect(ingest.accepted(jobId).length).toBe(count);
  });

  it('plays faults in order, one per request', async () => {
    const count = ingest.accepted(jobId).length;
    const requests = ingest.requests;
    ingest.injectFaults({ kind: 'status', status: 429, retryAfter: '7', body: 'slow down' }, { kind: 'status', status: 500 });
    // A second call appends (FIFO); a call with no faults clears the queue.
    ingest.injectFaults({ kind: 'reset-before-accept' }, { kind: 'accept-then-reset' });
    expect(await upload()).toMatchObject({ status: 429, retryAfter: '7', body: 'slow down' });
    expect(await upload()).toMatchObject({ status: 500, body: '' });
    await expect(upload()).rejects.toThrow();
    expect(ingest.accepted(jobId).length).toBe(count);
    await expect(upload()).rejects.toThrow();
    expect(ingest.accepted(jobId).length).toBe(count + 1);
    expect(await upload()).toMatchObject({ status: 200 });
    expect(ingest.requests - requests).toBe(5);
    ingest.injectFaults({ kind: 'status', status: 503 });
    ingest.injectFaults();
    expect(await upload()).toMatchObject({ status: 200 });
  });

  it('checks a request before answering with an injected status: a broken one is refused as Purview would, not hidden', async () => {
    const count = ingest.accepted(jobId).length;
    ingest.injectFaults(...Array.from({ length: 4 }, () => ({ kind: 'status' as const, status: 503 })));
    expect(await upload({ auth: null })).toMatchObject({ status: 401 });
    expect(await upload({ extraPart: true })).toMatchObject({ status: 400, body: expect.stringContaining('exactly one part named "file"') });
    expect(await upload({ file: 'not\ta\theader\r\n' })).toMatchObject({ status: 400 });
    // A valid request gets the injected status, and is not stored.
    expect(await upload()).toMatchObject({ status: 503 });
    expect(ingest.accepted(jobId).length).toBe(count);
  });
});
