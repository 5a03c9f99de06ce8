/** Kick-off: exact headers (the sandbox refuses anything else), `_type`/`_since`, levels, and refusals naming the type. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BridgeError } from '../../../src/errors.js';
import { kickOffUrl } from '../../../src/fhir/bulk/job.js';
import type { TokenSource } from '../../../src/token-cache.js';
import { errorOf } from '../../support/error-of.js';
import { type BulkFixture, startBulkFixture } from './support.js';

let f: BulkFixture;
beforeAll(async () => {
  f = await startBulkFixture();
});
afterAll(async () => f?.close());

async function kick(init: {
  accept?: string;
  prefer?: string;
  token?: boolean;
  method?: string;
  body?: string;
  path?: string;
  query?: string;
}): Promise<{ status: number; text: string; location: string | null }> {
  const token = init.token === false ? undefined : await f.fx.tokens.getToken();
  const headers: Record<string, string> = {};
  if (init.accept !== undefined) headers['accept'] = init.accept;
  if (init.prefer !== undefined) headers['prefer'] = init.prefer;
  if (token) headers['authorization'] = `Bearer ${token}`;
  if (init.body) headers['content-type'] = 'application/fhir+json';
  const response = await fetch(`${f.fx.server.baseUrl}${init.path ?? '/$export'}${init.query ?? '?_type=AuditEvent'}`, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body ? { body: init.body } : {}),
  });
  return { status: response.status, text: await response.text(), location: response.headers.get('content-location') };
}

describe('the sandbox kick-off is strict', () => {
  it('refuses a kick-off without exactly Accept: application/fhir+json and Prefer: respond-async, or without a bearer', async () => {
    expect(await kick({ accept: 'application/json', prefer: 'respond-async' })).toMatchObject({
      status: 400,
      text: expect.stringContaining('Accept must be exactly application/fhir+json'),
    });
    expect(await kick({ accept: 'application/fhir+json' })).toMatchObject({
      status: 400,
      text: expect.stringContaining('Prefer must be exactly respond-async'),
    });
    expect(await kick({ accept: 'application/fhir+json', prefer: 'respond-async, handling=lenient' })).toMatchObject({ status: 400 });
    expect(await kick({ accept: 'application/fhir+json', prefer: 'respond-async', token: false })).toMatchObject({ status: 401 });
    expect(await kick({ accept: 'application/fhir+json', prefer: 'respond-async', query: '?_type=AuditEvent&_elements=id' })).toMatchObject({ status: 400 });
    expect(await kick({ accept: 'application/fhir+json', prefer: 'respond-async', query: '?_since=yesterday' })).toMatchObject({
      status: 400,
      text: expect.stringContaining('_since'),
    });
    const ok = await kick({ accept: 'application/fhir+json', prefer: 'respond-async' });
    expect(ok.status).toBe(202);
    expect(ok.location).toMatch(/\/bulk\/status\/[0-9a-f-]+$/);
  });

  it('takes a POST with a Parameters body, and the Patient and Group levels (an unknown Group is 404)', async () => {
    const body = JSON.stringify({
      resourceType: 'Parameters',
      parameter: [
        { name: '_type', valueString: 'Patient' },
        { name: '_since', valueInstant: '2026-11-01T00:00:00Z' },
      ],
    });
    expect((await kick({ accept: 'application/fhir+json', prefer: 'respond-async', method: 'POST', body, query: '' })).status).toBe(202);
    expect(f.fx.server.bulk.log.kickoffs.at(-1)).toMatchObject({ method: 'POST', types: ['Patient'], since: '2026-11-01T00:00:00Z' });
    expect((await kick({ accept: 'application/fhir+json', prefer: 'respond-async', path: '/Patient/$export' })).status).toBe(202);
    expect(f.fx.server.bulk.log.kickoffs.at(-1)?.level).toBe('patient');
    expect((await kick({ accept: 'application/fhir+json', prefer: 'respond-async', path: '/Group/sandbox-all/$export' })).status).toBe(202);
    expect(f.fx.server.bulk.log.kickoffs.at(-1)?.level).toBe('group');
    expect((await kick({ accept: 'application/fhir+json', prefer: 'respond-async', path: '/Group/nobody/$export' })).status).toBe(404);
  });
});

describe('the client kick-off', () => {
  it('builds the URL of each level with _type and _since, and never a file name', () => {
    const base = 'https://ehr.example.org/fhir/R4/';
    expect(kickOffUrl(base, { level: 'system', types: ['AuditEvent', 'Patient'] })).toBe('https://ehr.example.org/fhir/R4/$export?_type=AuditEvent%2CPatient');
    expect(kickOffUrl(base, { level: 'patient', types: ['AuditEvent'], since: '2026-11-01T00:00:00.000Z' })).toBe(
      'https://ehr.example.org/fhir/R4/Patient/$export?_type=AuditEvent&_since=2026-11-01T00%3A00%3A00.000Z',
    );
    expect(kickOffUrl(base, { level: 'group', groupId: 'g-1', types: ['AuditEvent'] })).toBe(
      'https://ehr.example.org/fhir/R4/Group/g-1/$export?_type=AuditEvent',
    );
  });

  it('is accepted by the strict sandbox (exact headers, bearer, _type) and at the group level', async () => {
    const before = f.fx.server.bulk.log.kickoffs.length;
    const events = await f.source({ settings: { level: 'group', groupId: 'sandbox-all' } }).read();
    expect(events).toHaveLength(f.data.events.length);
    expect(f.fx.server.bulk.log.kickoffs.slice(before)).toEqual([
      expect.objectContaining({ level: 'group', types: ['AuditEvent', 'Patient', 'Practitioner'], since: undefined }),
    ]);
  });

  it('refuses types without AuditEvent before any export: it would read no event yet move the watermark', () => {
    const kickoffs = f.fx.server.bulk.log.kickoffs.length;
    const error = errorOf(() => f.source({ settings: { types: ['Patient', 'Practitioner'] } }));
    expect(error.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(error.message).toMatch(/^source\.types must include AuditEvent, got Patient, Practitioner: .* Add AuditEvent to source\.types\.$/);
    expect(f.fx.server.bulk.log.kickoffs).toHaveLength(kickoffs);
  });

  it('stops with BRG_ERR_FHIR_EXPORT naming the type the server does not export, and keeps no checkpoint', async () => {
    f.bulk.types = ['Patient', 'Practitioner'];
    try {
      const harness = f.source();
      const error = await harness.read().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BridgeError);
      expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_EXPORT');
      expect((error as BridgeError).message).toMatch(
        /refused \(HTTP 400 with an OperationOutcome \(error not-supported\)\) for type AuditEvent\. Remove it from source\.types .* system\/AuditEvent\.read/,
      );
      expect(harness.store.value).toBeUndefined();
    } finally {
      f.bulk.types = ['AuditEvent', 'Patient', 'Practitioner', 'PractitionerRole', 'Encounter', 'Location', 'Organization'];
    }
  });

  it("refuses a type, or a Group's export, the token's scope does not grant (403 insufficient_scope), naming the scope to grant", async () => {
    f.fx.tokens.scope = 'system/AuditEvent.read system/Patient.rs';
    try {
      const kickoffs = f.fx.server.bulk.log.kickoffs.length;
      const error = (await f
        .source({ settings: { types: ['AuditEvent', 'Patient', 'Practitioner'] } })
        .read()
        .catch((e: unknown) => e)) as BridgeError;
      expect(error.code).toBe('BRG_ERR_FHIR_EXPORT');
      expect(error.message).toMatch(
        /refused \(HTTP 403 with an OperationOutcome \(error forbidden\)\) for type Practitioner\. .*have the scopes system\/Practitioner\.read granted/,
      );
      expect(f.fx.server.bulk.log.kickoffs).toHaveLength(kickoffs);
      // The types it grants export; a Group's export needs the Group too.
      expect(await f.source({ settings: { types: ['AuditEvent', 'Patient'] } }).read()).toHaveLength(f.data.events.length);
      const group = (await f
        .source({ settings: { types: ['AuditEvent', 'Patient'], level: 'group', groupId: f.bulk.groupIds[0] as string } })
        .read()
        .catch((e: unknown) => e)) as BridgeError;
      // The server's words named the Group; without them, the advice does.
      expect(group.message).toMatch(
        /HTTP 403 with an OperationOutcome \(error forbidden\)\)\. The client may not export: .*\(and system\/Group\.read, for a Group export\)/,
      );
      f.fx.tokens.scope = 'system/AuditEvent.read system/Patient.rs system/Group.read';
      expect(await f.source({ settings: { types: ['AuditEvent', 'Patient'], level: 'group', groupId: f.bulk.groupIds[0] as string } }).read()).not.toHaveLength(
        0,
      );
    } finally {
      f.fx.tokens.scope = undefined;
    }
  });

  it('a kick-off refused for an unknown Group says to check source.groupId, not to remove every type', async () => {
    const error = await f
      .source({ settings: { level: 'group', groupId: 'typo-group' } })
      .read()
      .catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_EXPORT');
    expect((error as BridgeError).message).toMatch(
      /was refused \(HTTP 404 with an OperationOutcome \(error not-found\)\)\. Check source\.groupId \(typo-group\)/,
    );
    expect((error as BridgeError).message).not.toContain('source.types');
  });

  it('refuses a status URL on another origin (a proxy rewrote it) without polling it, keeps no checkpoint, and exports afresh next run', async () => {
    f.bulk.foreignStatus = true;
    try {
      const harness = f.source();
      const kickoffs = f.fx.server.bulk.log.kickoffs.length;
      const error = await harness.read().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BridgeError);
      expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_EXPORT');
      expect((error as BridgeError).message).toMatch(
        /named its status URL on http:\/\/127\.0\.0\.1:\d+, not on http:\/\/127\.0\.0\.1:\d+; the bridge sends its token only to the FHIR server.*Check that fhir\.baseUrl/,
      );
      expect(harness.store.value).toBeUndefined();
      expect(f.fx.server.bulk.log.polls.filter((poll) => poll.jobId === f.fx.server.bulk.log.kickoffs[kickoffs]?.jobId)).toEqual([]);
      f.bulk.foreignStatus = false;
      expect((await f.source({ store: harness.store, dir: harness.dir }).read()).length).toBeGreaterThan(0);
      expect(f.fx.server.bulk.log.kickoffs.length).toBe(kickoffs + 2);
    } finally {
      f.bulk.foreignStatus = false;
    }
  });

  it('asks again after a 503 or 429 (no export was started), never after a 504 or 500 (one may have been): each accepted kick-off is a whole export', async () => {
    for (const status of [503, 429]) {
      const kickoffs = f.fx.server.bulk.log.kickoffs.length;
      f.fx.server.faults.add({ action: { kind: 'status', status, retryAfter: '0' }, match: /\/\$export/, times: 1 });
      expect(await f.source().read()).toHaveLength(f.data.events.length);
      expect(f.fx.server.bulk.log.kickoffs).toHaveLength(kickoffs + 1);
    }
    for (const action of [
      { kind: 'gateway', status: 504 },
      { kind: 'status', status: 500 },
    ] as const) {
      const kickoffs = f.fx.server.bulk.log.kickoffs.length;
      f.fx.server.faults.add({ action, match: /\/\$export/, times: 1 });
      const harness = f.source();
      const error = (await harness.read().catch((e: unknown) => e)) as BridgeError;
      expect(error.code).toBe('BRG_ERR_FHIR_UNAVAILABLE');
      expect(error.message).toMatch(
        new RegExp(
          `kick-off .* got no clear answer \\(HTTP ${action.status}\\): the server may have started the export all the same, so it is not asked again in this run`,
        ),
      );
      expect(f.fx.server.bulk.log.kickoffs).toHaveLength(kickoffs);
      expect(harness.store.value).toBeUndefined();
      // The next run kicks off again.
      expect(await f.source({ store: harness.store, dir: harness.dir }).read()).toHaveLength(f.data.events.length);
    }
  });

  it('replays once with a new token after a 401, and says to check the client when the server keeps refusing it', async () => {
    f.fx.tokens.revokeAll();
    expect(await f.source().read()).toHaveLength(f.data.events.length);
    const refused: TokenSource = { getToken: async () => 'never-valid', invalidate: () => undefined };
    const error = await f
      .source({ tokens: refused })
      .read()
      .catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe('BRG_ERR_FHIR_EXPORT');
    expect((error as BridgeError).message).toMatch(
      /HTTP 401 with an OperationOutcome \(error login\)\)\. The FHIR server did not accept the access token its token endpoint issued: check that smart\.tokenUrl/,
    );
    expect((error as BridgeError).message).not.toContain('source.types');
    expect((error as BridgeError).message).not.toContain('never-valid');
  });
});
