/**
 * The Healthcare connector end to end: a sandbox whose Purview job takes the healthcare schema (`bridge sandbox
 * --schema healthcare`), a sync in comma-separated form, and `bridge map` over the same data with the same options
 * writing the very lines the job received.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SCHEMA_COLUMNS } from '../../src/mapping/index.js';
import { spawnBridge } from '../support/bridge-process.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';

let h: SandboxHarness;
beforeAll(async () => {
  h = await startHarness({
    schema: 'healthcare',
    data: { seed: 5, events: 200, patients: 30, practitioners: 6 },
    flags: { 'connectors.0.mapping.delimiter': 'comma' },
  });
});
afterAll(async () => h?.close());

it('a healthcare sync delivers comma-separated rows under the schema header, the same lines bridge map writes', async () => {
  expect(h.config.connectors[0]?.mapping.schema).toBe('healthcare');
  const summary = await h.sync();
  expect(summary.counts.rowsAcked).toBeGreaterThan(0);
  const blocks = h.sandbox.ingest.accepted(h.sandbox.ids.jobId);
  expect(new Set(blocks.map((block) => block.header))).toEqual(new Set([SCHEMA_COLUMNS.healthcare.map((column) => column.name).join(',')]));
  expect(new Set(blocks.map((block) => block.delimiter))).toEqual(new Set(['comma']));
  const synced = blocks.flatMap((block) => block.rows);
  expect(synced).toHaveLength(summary.counts.rowsAcked);

  const dir = mkdtempSync(join(tmpdir(), 'bridge-healthcare-'));
  const ndjson = (name: string, resources: Iterable<unknown>): string => {
    const path = join(dir, name);
    writeFileSync(path, `${[...resources].map((resource) => JSON.stringify(resource)).join('\n')}\n`);
    return path;
  };
  const dataset = h.sandbox.dataset;
  const mapping = join(dir, 'site.json');
  writeFileSync(mapping, JSON.stringify({ extends: 'healthcare', delimiter: 'comma', options: h.config.connectors[0]?.mapping.options ?? {}, columns: [] }));
  const out = join(dir, 'out.csv');
  const mapped = await spawnBridge([
    'map',
    '--input',
    ndjson('events.ndjson', dataset.events()),
    '--patients',
    ndjson('patients.ndjson', dataset.patients()),
    '--practitioners',
    ndjson('practitioners.ndjson', dataset.practitioners()),
    '--mapping',
    mapping,
    '--out',
    out,
  ]).done;
  expect(mapped.code, mapped.stderr).toBe(0);
  const [header, ...rows] = readFileSync(out, 'utf8')
    .split('\r\n')
    .filter((line) => line !== '');
  expect(header).toBe(blocks[0]?.header);
  expect([...rows].sort()).toEqual([...synced].sort());
});
