/**
 * The emulators state the protocols' values themselves (issue #16.3): an emulator that took its values from the code
 * under test would accept a wrong constant. So the emulators import from the bridge only generic helpers (errors,
 * clock), and each protocol value both sides hold is compared here with the published one: a wrong product constant
 * fails this test instead of passing against an emulator that shares it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MANDATORY_COLUMNS, SCHEMA_DELIMITERS } from '../../src/connector-file/index.js';
import { DEFAULT_RESOURCE } from '../../src/purview/clouds.js';
import { INGEST_SCHEMAS, INGESTION_RESOURCE, JOB_APP_MISMATCH, MAX_BLOCK_ROWS } from '../../src/sandbox/purview-ingest.js';

const root = resolve(import.meta.dirname, '../..');
const sandboxDir = join(root, 'src/sandbox');

/** What an emulator may import from the bridge: helpers that carry no protocol value. */
const GENERIC_HELPERS = ['../errors.js', '../clock.js'];
/**
 * index.ts is the harness, not an emulator: it creates the bridge's client key with the bridge's own key tool and
 * writes a bridge config (a type), as an operator would.
 */
const HARNESS_ALSO = ['../config/index.js', '../smart/index.js'];

describe('the emulators state the protocol values themselves', () => {
  it('import from the bridge only generic helpers (errors, clock)', () => {
    const offenders: string[] = [];
    for (const name of readdirSync(sandboxDir).filter((file) => file.endsWith('.ts'))) {
      const text = readFileSync(join(sandboxDir, name), 'utf8');
      const allowed = name === 'index.ts' ? [...GENERIC_HELPERS, ...HARNESS_ALSO] : GENERIC_HELPERS;
      for (const m of text.matchAll(/(?:from\s*|import\(\s*|import\s+)['"](\.\.\/[^'"]+)['"]/g)) {
        if (!allowed.includes(m[1] ?? '')) offenders.push(`src/sandbox/${name}: ${m[1]}`);
      }
    }
    expect(offenders, "state the protocol value in the emulator (with its public source) instead of importing the bridge's").toEqual([]);
  });

  it("Purview's App ID URI: the bridge's DEFAULT_RESOURCE, the emulator's and docs/purview-protocol.md §1.3 agree", () => {
    const doc = readFileSync(join(root, 'docs/purview-protocol.md'), 'utf8');
    const section = doc.slice(doc.indexOf('### 1.3 Resource (App ID URI)'), doc.indexOf('### 1.4'));
    const published = /^\| since March 2025[^|]*\| `([^`]+)` \|$/m.exec(section)?.[1];
    expect(published).toBe('https://microsoft.onmicrosoft.com/86dfdabb-5089-4a0c-880a-cfa5a790c5b1');
    expect(INGESTION_RESOURCE).toBe(published);
    expect(DEFAULT_RESOURCE).toBe(INGESTION_RESOURCE);
  });

  it("the connector schemas' mandatory columns and delimiters, and the block size: the bridge's and the emulator's agree", () => {
    for (const schema of ['epic', 'healthcare'] as const) {
      expect(INGEST_SCHEMAS[schema].mandatory).toEqual(MANDATORY_COLUMNS[schema]);
      expect(INGEST_SCHEMAS[schema].delimiters).toEqual(SCHEMA_DELIMITERS[schema]);
    }
    expect(MAX_BLOCK_ROWS).toBe(100_000);
  });

  it('the 403 reason phrase the emulator answers is the one docs/purview-protocol.md §2.4 quotes', () => {
    const doc = readFileSync(join(root, 'docs/purview-protocol.md'), 'utf8');
    expect(doc).toContain(`| 403, reason phrase \`${JOB_APP_MISMATCH}\` |`);
  });
});
