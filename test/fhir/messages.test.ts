/**
 * Issue #15.4 on the FHIR side: a non-JSON error body (a proxy's HTML page) is quoted, cleaned and truncated, instead of
 * "the body was not JSON"; an OperationOutcome, the FHIR application's own answer, is told by its severity and codes,
 * never by its words, which may name a patient where no scrubbing recognises a name, and the message says where the text
 * is; identifiers either echoes from the request stay out; one line.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { createFhirClient } from '../../src/fhir/index.js';
import { describeAnswer } from '../../src/fhir/outcome.js';
import { tokenValue } from '../../src/fhir/search-escape.js';
import { quoteUpstreamText } from '../../src/http.js';
import { silentLogger } from '../../src/log.js';
import { classifyUploadFailure, toPushError, UploadStatusError } from '../../src/purview/outcomes.js';
import { InstantClock } from '../support/manual-clock.js';
import { RevocableTokens } from './support.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function answering(status: number, body: string): Promise<string> {
  server = createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'text/html' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('FHIR error messages', () => {
  it("quotes a non-JSON error body (a proxy's page, which knows no patient) short, without the identifiers it echoes", async () => {
    const origin = await answering(
      400,
      `<html><body><h1>Request rejected</h1>\n<p>GET /R4/Patient?identifier=urn:mrn|MRN4471 by jane.doe@example.org</p>${'<p>filler</p>'.repeat(100)}</body></html>`,
    );
    const fhir = createFhirClient({ baseUrl: `${origin}/R4`, tokenSource: new RevocableTokens(), clock: new InstantClock(), logger: silentLogger() });
    const error: unknown = await (async () => {
      for await (const page of fhir.searchPages('Patient', { identifier: 'urn:mrn|MRN4471' })) expect(page).toBeUndefined();
    })().catch((e: unknown) => e);

    expect(error).toBeInstanceOf(BridgeError);
    const failure = error as BridgeError;
    expect(failure.code).toBe('BRG_ERR_FHIR_HTTP');
    expect(failure.message).toMatch(
      new RegExp(
        `^FHIR Patient search at ${origin.replace(/\./g, '\\.')} answered HTTP 400 with a body that is not FHIR JSON: "Request rejected GET /R4/Patient\\?… by \\[email\\] filler filler`,
      ),
    );
    expect(failure.message).toMatch(/…"\.$/);
    expect(failure.message.length).toBeLessThan(300);
    for (const text of [failure.message, JSON.stringify(failure.details)]) {
      for (const phi of ['MRN4471', 'jane.doe']) expect(text).not.toContain(phi);
      expect(text).not.toContain('\n');
    }
  });

  it('never quotes a 2xx body that is not JSON: it is the data itself (a Bundle cut off inside a patient)', async () => {
    const cut = JSON.stringify({
      resourceType: 'Bundle',
      type: 'searchset',
      entry: [{ resource: { resourceType: 'Patient', id: 'e1', identifier: [{ value: 'E4521' }], name: [{ family: 'Smithers', given: ['Jo'] }] } }],
    }).slice(0, -40);
    for (const path of ['Patient?_id=e1', 'Patient/e1']) {
      const origin = await answering(200, path.includes('?') ? cut : cut.slice(cut.indexOf('{"resourceType":"Patient"')));
      const fhir = createFhirClient({ baseUrl: `${origin}/R4`, tokenSource: new RevocableTokens(), clock: new InstantClock(), logger: silentLogger() });
      const error: unknown = await (path.includes('?')
        ? (async () => {
            for await (const page of fhir.searchPages('Patient', { _id: 'e1' })) expect(page).toBeUndefined();
          })()
        : fhir.read('Patient', 'e1')
      ).catch((e: unknown) => e);
      expect(error, path).toBeInstanceOf(BridgeError);
      const failure = error as BridgeError;
      expect(failure.code).toBe('BRG_ERR_FHIR_HTTP');
      expect(failure.message).toMatch(/answered HTTP 200 with a body that is not valid JSON \(\d+ bytes\), so nothing of it was used\. Run again/);
      for (const text of [failure.message, JSON.stringify(failure.details)]) {
        for (const phi of ['E4521', 'Smithers', 'Jo"']) expect(text, path).not.toContain(phi);
      }
      server?.closeAllConnections();
      await new Promise<void>((resolve) => server?.close(() => resolve()));
      server = undefined;
    }
  });

  it("never quotes an OperationOutcome's text, and blanks the search's own values where it echoes them, even as a code", async () => {
    server = createServer((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/fhir+json' });
      res.end(
        JSON.stringify({
          resourceType: 'OperationOutcome',
          issue: [
            {
              severity: 'error',
              code: 'invalid',
              diagnostics: 'Unknown identifier E4471X for user JSMITH (Patient Jane Doe, MRN 123); _count must not exceed 200',
              details: { coding: [{ system: 'urn:oid:1.2.3', code: 'E4471X', display: 'Jane Doe' }, { code: '4100' }] },
            },
          ],
        }),
      );
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const fhir = createFhirClient({ baseUrl: `${origin}/R4`, tokenSource: new RevocableTokens(), clock: new InstantClock(), logger: silentLogger() });
    const error: unknown = await (async () => {
      for await (const page of fhir.searchPages('Patient', { identifier: 'urn:oid:1.2.3|E4471X,urn:oid:1.2.3|JSMITH', _sort: 'date', _count: '200' }))
        expect(page).toBeUndefined();
    })().catch((e: unknown) => e);

    expect(error).toBeInstanceOf(BridgeError);
    const failure = error as BridgeError;
    expect(failure.message).toBe(
      `FHIR Patient search at ${origin} answered HTTP 400 with an OperationOutcome (error invalid [4100]). Its text is not quoted, as it may name a patient; the FHIR server's log has it.`,
    );
    expect(failure.details).toMatchObject({ status: 400, outcome: 'an OperationOutcome (error invalid [4100])', outcomeCode: '4100' });
    for (const text of [failure.message, JSON.stringify(failure.details)]) {
      for (const phi of ['E4471X', 'JSMITH', 'Jane', 'MRN 123', 'Unknown identifier']) expect(text).not.toContain(phi);
    }
  });

  it('never quotes the text of a lookup refused over values the search had to escape (a backslash login, a comma in a value)', async () => {
    server = createServer((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/fhir+json' });
      res.end(
        JSON.stringify({
          resourceType: 'OperationOutcome',
          issue: [{ severity: 'error', code: 'invalid', diagnostics: 'No unique Practitioner for CORP\\jdoe nor for Smith, Ann nor E1234|X' }],
        }),
      );
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const fhir = createFhirClient({ baseUrl: `${origin}/R4`, tokenSource: new RevocableTokens(), clock: new InstantClock(), logger: silentLogger() });
    const identifier = ['CORP\\jdoe', 'Smith, Ann', 'E1234|X'].map((value) => tokenValue('urn:oid:1.2.3', value)).join(',');
    const error: unknown = await (async () => {
      for await (const page of fhir.searchPages('Practitioner', { identifier })) expect(page).toBeUndefined();
    })().catch((e: unknown) => e);

    expect(error).toBeInstanceOf(BridgeError);
    const failure = error as BridgeError;
    expect(failure.message).toContain('answered HTTP 400 with an OperationOutcome (error invalid).');
    for (const text of [failure.message, JSON.stringify(failure.details)]) {
      expect(text).not.toMatch(/jdoe|Smith|E1234|No unique/);
    }
  });

  it('cleans upstream text: tags, tokens, JWTs, person ids in paths', () => {
    expect(quoteUpstreamText('<b>Bearer abc.def-123</b> eyJa.eyJb.sig Patient/e8Xk2 Practitioner/12')).toBe('"Bearer [token] [jwt] Patient/… Practitioner/…"');
    expect(quoteUpstreamText('  \n ')).toBe('an empty body');
  });
});

describe('upstream words inside error messages', () => {
  it('an OperationOutcome echoing an identifier search is told by its codes only, and a Purview body echoing a row loses what identifies a person', () => {
    const said = describeAnswer({
      resourceType: 'OperationOutcome',
      issue: [
        { severity: 'error', code: 'processing', diagnostics: 'No match for identifier 203713 (MRN 4471234) jane.doe@example.org in Patient/e8Xk2' },
        {
          severity: 'warning',
          code: 'Jane Doe',
          details: { text: 'Jane Doe', coding: [{ system: 'https://ehr.example/cs?mrn=4471234', code: 'W1', display: 'Jane' }] },
        },
      ],
    });
    // A code that is not shaped like one is left out, as is a system with a query.
    expect(said).toBe('an OperationOutcome (error processing; warning [W1])');
    const rejected = toPushError(
      new UploadStatusError(
        {
          status: 400,
          statusText: 'Bad Request',
          retryAfter: undefined,
          body: 'Row 3 invalid: 2026-11-01 10:00 | 4471234 | jane.doe@example.org | Patient/e8Xk2',
        },
        0,
      ),
      { index: 2, jobId: 'job-1', attempts: 1 },
    ) as BridgeError;
    for (const secret of ['4471234', 'jane.doe', 'e8Xk2']) expect(rejected.message).not.toContain(secret);
    expect(rejected.message).toContain('Row 3 invalid');
    // A comma-delimited file (the healthcare schema allows it), and a server's own reason phrase on a 503.
    const csvRow = 'Invalid row: 11/01/2026 10:00:00,jdoe,Doe,John,E4521,Jane,Smithers,12 Elm Street,Springfield';
    const answers: Array<[number, string, string]> = [
      [400, 'Bad Request', csvRow],
      [400, csvRow, ''],
      [503, csvRow, ''],
    ];
    for (const [status, statusText, body] of answers) {
      const failed = toPushError(new UploadStatusError({ status, statusText, retryAfter: undefined, body }, 0), {
        index: 0,
        jobId: 'job-2',
        attempts: 1,
      }) as BridgeError;
      for (const secret of ['E4521', 'Smithers', 'Elm Street', 'Springfield', 'jdoe']) expect(failed.message, `${status} ${statusText}`).not.toContain(secret);
      expect(failed.message).toContain('Invalid row: 11/01/2026 10:00:00');
    }
    // The retry reason (logged, in the run log and the CLI's retry lines) takes the standard phrase, not the one sent.
    const verdict = classifyUploadFailure(new UploadStatusError({ status: 503, statusText: csvRow, retryAfter: undefined, body: '' }, 0), { unauthorized: 0 });
    expect(verdict).toMatchObject({ retry: true, reason: 'HTTP 503 Service Unavailable' });
  });
});
