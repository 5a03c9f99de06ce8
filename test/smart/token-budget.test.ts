/**
 * Issue #15.2: the token request has its own retry budget and time bound. A token endpoint answering 503 with
 * Retry-After: 8 once made 24 token POSTs in 191 s and ended as BRG_ERR_FHIR_UNAVAILABLE ("metadata metadata"),
 * because each FHIR attempt's timeout cut the token's retry wait short and the FHIR policy then started a new
 * token series. Fake time for the token waits; the FHIR per-attempt timeout is short real time, as it was then.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { createFhirClient } from '../../src/fhir/index.js';
import { TOKEN_RETRY } from '../../src/http.js';
import { createSmartTokenSource } from '../../src/smart/index.js';
import { ManualClock } from '../support/manual-clock.js';
import { captureLogger, makeKey, type StubServer, sendJson, startStubServer } from './support.js';

const SCOPE = 'system/AuditEvent.read system/Patient.read system/Practitioner.read';
const stubs: StubServer[] = [];
afterEach(async () => {
  for (const stub of stubs.splice(0)) await stub.close();
});

async function settle(promise: Promise<unknown>, clock: ManualClock): Promise<unknown> {
  let outcome: { value: unknown } | undefined;
  void promise.then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { value: error }),
  );
  // One fake second per 10 real ms: a 20 ms FHIR timeout would cut every 8 s token wait short if it covered it.
  for (let i = 0; i < 2_000 && outcome === undefined; i++) {
    await clock.advance(1_000);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return outcome?.value;
}

describe('token retry budget', () => {
  it('a token endpoint answering 503 Retry-After: 8 ends as a SMART error (exit 3) within the token budget; no FHIR request is retried', async () => {
    const tokenEndpoint = await startStubServer((_request, response) => sendJson(response, 503, { error: 'temporarily_unavailable' }, { 'retry-after': '8' }));
    const fhirServer = await startStubServer((_request, response) => sendJson(response, 200, { resourceType: 'CapabilityStatement' }));
    stubs.push(tokenEndpoint, fhirServer);
    const clock = new ManualClock('2026-11-01T08:00:00Z');
    const { logger, raw } = captureLogger();
    const key = await makeKey('ES384');
    const tokens = createSmartTokenSource({
      fhirBaseUrl: `${fhirServer.origin}/R4`,
      tokenUrl: `${tokenEndpoint.origin}/oauth2/token`,
      clientId: 'bridge-np',
      scope: SCOPE,
      key: key.signingKey,
      clock,
      logger,
    });
    const fhir = createFhirClient({ baseUrl: `${fhirServer.origin}/R4`, tokenSource: tokens, clock, logger, timeoutMs: 20, random: () => 0.5 });

    const started = clock.now();
    const error = await settle(fhir.probe(), clock);

    expect(error).toBeInstanceOf(BridgeError);
    const failure = error as BridgeError;
    expect(failure.code).toBe('BRG_ERR_SMART_TOKEN');
    expect(failure.exitCode).toBe(3);
    expect(tokenEndpoint.requests).toHaveLength(TOKEN_RETRY.maxAttempts);
    expect(clock.now() - started).toBeLessThanOrEqual(TOKEN_RETRY.maxTotalMs);
    expect(fhirServer.requests).toHaveLength(0); // no token, no FHIR request
    // 3 waits of 8 s, plus the fake seconds that pass while the test steps the clock during each real POST.
    expect(failure.message).toMatch(
      new RegExp(
        `^${tokenEndpoint.origin}/oauth2/token answered HTTP 503 \\(temporarily_unavailable\\) with Retry-After 8 s to 4 token requests over (2[4-9]|3\\d) s; ` +
          "the token request's retries are spent\\. Check the authorization server status, then run again\\.$",
      ),
    );
    expect(failure.message).not.toContain('metadata metadata');
    for (const line of raw) expect(line).not.toMatch(/eyJ/);

    // Requests arriving right after share that answer: no new series of token POSTs.
    const again = await settle(fhir.probe(), clock);
    expect((again as BridgeError).code).toBe('BRG_ERR_SMART_TOKEN');
    expect(tokenEndpoint.requests).toHaveLength(TOKEN_RETRY.maxAttempts);
  });

  it('a token endpoint that cannot be reached ends naming why and what to check, not "the server status"', async () => {
    // A port nobody listens on: every token request is refused at the connection.
    const closed = await startStubServer((_request, response) => sendJson(response, 200, {}));
    const tokenUrl = `${closed.origin}/oauth2/token`;
    await closed.close();
    const clock = new ManualClock('2026-11-01T08:00:00Z');
    const key = await makeKey('ES384');
    const tokens = createSmartTokenSource({
      fhirBaseUrl: 'https://ehr.example.org/R4',
      tokenUrl,
      clientId: 'bridge-np',
      scope: SCOPE,
      key: key.signingKey,
      clock,
      logger: captureLogger().logger,
    });
    const error = (await settle(tokens.getToken(), clock)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_SMART_TOKEN');
    expect(error.message).toMatch(
      new RegExp(
        `^${tokenUrl} got no answer to ${TOKEN_RETRY.maxAttempts} token requests over \\d+ s; the token request's retries are spent\\. The last: Cannot reach ${tokenUrl} \\(.*ECONNREFUSED.*\\)\\. Check the URL, DNS, the proxy`,
      ),
    );
  });

  it('the /metadata request is named once in FHIR errors ("FHIR /metadata at …", not "metadata metadata")', async () => {
    const fhirServer = await startStubServer((_request, response) =>
      sendJson(response, 500, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: 'Down for maintenance' }] }),
    );
    stubs.push(fhirServer);
    const clock = new ManualClock('2026-11-01T08:00:00Z');
    const tokens = { getToken: async () => 'tok', invalidate: () => undefined };
    const fhir = createFhirClient({
      baseUrl: `${fhirServer.origin}/R4`,
      tokenSource: tokens,
      clock,
      logger: captureLogger().logger,
      random: () => 0.5,
      retry: { maxAttempts: 2, maxTotalMs: 10_000, baseDelayMs: 100, maxDelayMs: 1_000 },
    });
    const error = (await settle(fhir.probe(), clock)) as BridgeError;
    expect(error.code).toBe('BRG_ERR_FHIR_UNAVAILABLE');
    expect(error.message).toBe(
      `FHIR /metadata at ${fhirServer.origin} kept failing after 2 attempts; the last was HTTP 500 with an OperationOutcome (error exception). Its text is not quoted, as it may name a patient; the FHIR server's log has it.`,
    );
  });
});
