/** The sandbox's `$export` is as strict with files and the status URL as the client has to be careful. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type BulkFixture, startBulkFixture } from './support.js';

let f: BulkFixture;
beforeAll(async () => {
  f = await startBulkFixture({ events: 12, patients: 3, practitioners: 2 }, { processingPolls: 0 });
});
afterAll(async () => f?.close());

async function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Response> {
  return fetch(url, { method, headers });
}

it('needs the bearer on the status URL, manifest pages and files; expires files (410); forgets a DELETEd export', async () => {
  const bearer = { authorization: `Bearer ${await f.fx.tokens.getToken()}` };
  const kick = await get(`${f.fx.server.baseUrl}/$export?_type=AuditEvent,Patient`, { ...bearer, accept: 'application/fhir+json', prefer: 'respond-async' });
  const status = kick.headers.get('content-location') as string;
  expect((await get(status)).status).toBe(401);
  const done = await get(status, bearer);
  expect(done.status).toBe(200);
  const manifest = (await done.json()) as {
    transactionTime: string;
    requiresAccessToken: boolean;
    output: Array<{ type: string; url: string; count: number }>;
  };
  expect(manifest).toMatchObject({
    requiresAccessToken: true,
    output: [
      { type: 'AuditEvent', count: 12 },
      { type: 'Patient', count: 3 },
    ],
  });
  const file = manifest.output[0]?.url as string;
  expect((await get(file)).status).toBe(401);
  const ndjson = await (await get(file, bearer)).text();
  expect(
    ndjson
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { resourceType: string }).resourceType),
  ).toEqual(Array(12).fill('AuditEvent'));
  f.bulk.fileTtlMs = 0;
  await new Promise((r) => setTimeout(r, 5));
  expect((await get(file, bearer)).status).toBe(410);
  f.bulk.fileTtlMs = 3_600_000;
  expect((await get(status, bearer, 'DELETE')).status).toBe(202);
  expect((await get(status, bearer)).status).toBe(404);
  expect((await get(file, bearer)).status).toBe(404);
});
