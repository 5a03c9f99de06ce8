import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configReferenceMarkdown } from '../../src/config/reference.js';
import { ERROR_CODES } from '../../src/errors.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('documentation stays true to the code', () => {
  it('README opens with the two commands that work on a fresh clone', () => {
    const opening = readme.split('\n').slice(0, 10).join('\n');
    expect(opening).toContain('npm ci && npm run demo');
    expect(opening).toContain('npm test');
  });

  it('every error code is in the README troubleshooting table, and the table has no unknown code', () => {
    const table = readme.slice(readme.indexOf('## Errors'), readme.indexOf('## Operations'));
    const documented = new Set([...table.matchAll(/`(BRG_ERR_[A-Z_]+)`/g)].map((m) => m[1]));
    expect([...documented].sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it('docs/configuration.md is generated from the current schema (npm run docs:config)', () => {
    const checkedIn = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    expect(checkedIn).toBe(configReferenceMarkdown());
  });
});
