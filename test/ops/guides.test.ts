/**
 * The guides stay true to the code and to their sources (issue #21): README.md, docs/epic-sandbox.md and the
 * `epic-sandbox` preset agree on the base URL, token URL and signing algorithms; every http(s) link in the guides is
 * well-formed and its page is listed under the guide's "Sources"; the Purview guide shows the header the bridge writes
 * and the cloud hosts it uses. No network: links are checked for form only.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PROFILES } from '../../src/config/load.js';
import { builtinMappingPath, createSerializer, loadMapping } from '../../src/mapping/index.js';
import { CLOUDS } from '../../src/purview/clouds.js';
import { SIGNING_ALGS } from '../../src/smart/jwks.js';

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

const readme = read('README.md');
const epicGuide = read('docs/epic-sandbox.md');
const purviewGuide = read('docs/purview-setup.md');
const keysReadme = read('keys/README.md');
const GUIDES: ReadonlyArray<readonly [string, string]> = [
  ['docs/epic-sandbox.md', epicGuide],
  ['docs/purview-setup.md', purviewGuide],
  ['keys/README.md', keysReadme],
];

const preset = PROFILES['epic-sandbox'];
if (!preset) throw new Error('PROFILES has no epic-sandbox entry');
const BASE_URL = preset.fhir.baseUrl;
const TOKEN_URL = preset.smart.tokenUrl;

/** The text from a `## heading` line to the next `## ` heading (or the end). */
function section(text: string, heading: string): string {
  const start = text.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`no "${heading}" section`);
  const rest = text.slice(start + heading.length + 2);
  const end = rest.search(/^## /m);
  return end < 0 ? rest : rest.slice(0, end);
}

/** Markdown without code: fenced blocks and `inline code` hold values and examples, not citations. */
function prose(text: string): string {
  return text.replace(/^```[^\n]*\n[\s\S]*?^```[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** Every http(s) URL in the text, as written: link targets, autolinks and bare URLs. */
function urlsIn(text: string): string[] {
  return [...text.matchAll(/https?:\/\/[^\s<>()[\]`"']+/g)].map((match) => match[0]);
}

/** Everything a citation needs to name a page: origin, path, and the query parameter that selects an Epic page. */
function pageOf(url: string): { origin: string; path: string; page: string | null } {
  const parsed = new URL(url);
  const page = parsed.searchParams.get('docId') ?? parsed.searchParams.get('id');
  return { origin: parsed.origin.toLowerCase(), path: parsed.pathname.replace(/\/+$/, ''), page };
}

/** True when `source` names the page of `link`, or a folder (a repository, a site section) that holds it. */
function covers(source: string, link: string): boolean {
  const a = pageOf(source);
  const b = pageOf(link);
  if (a.origin !== b.origin) return false;
  if (a.page !== null || b.page !== null) return a.path === b.path && a.page === b.page;
  return b.path === a.path || b.path.startsWith(`${a.path}/`);
}

describe('README, docs/epic-sandbox.md and the epic-sandbox preset agree', () => {
  const readmeEpic = section(readme, '## Epic sandbox how-to');

  it('the preset is the documented Epic sandbox (R4 base under interconnect-fhir-oauth, token at oauth2/token)', () => {
    expect(BASE_URL).toBe('https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/R4');
    expect(TOKEN_URL).toBe('https://fhir.epic.com/interconnect-fhir-oauth/oauth2/token');
  });

  it.each([
    ['README.md (Epic sandbox how-to)', readmeEpic],
    ['docs/epic-sandbox.md', epicGuide],
  ])('%s names the preset base URL and token URL', (_name, text) => {
    expect(text).toContain(BASE_URL);
    expect(text).toContain(TOKEN_URL);
  });

  it.each([
    ['README.md', readme],
    ['docs/epic-sandbox.md', epicGuide],
    ['keys/README.md', keysReadme],
  ])('%s names no other Epic sandbox token URL or FHIR base', (_name, text) => {
    const sandbox = urlsIn(text).filter((url) => url.startsWith('https://fhir.epic.com/interconnect-fhir-oauth/'));
    for (const url of sandbox.filter((u) => u.includes('/oauth2/token'))) expect(url).toBe(TOKEN_URL);
    for (const url of sandbox.filter((u) => u.includes('/api/FHIR/R4'))) expect(url.startsWith(BASE_URL)).toBe(true);
  });

  it.each([
    ['README.md (Epic sandbox how-to)', readmeEpic],
    ['docs/epic-sandbox.md', epicGuide],
    ['keys/README.md', keysReadme],
  ])('%s names every algorithm the bridge signs with', (_name, text) => {
    expect(SIGNING_ALGS.length).toBeGreaterThan(0);
    for (const alg of SIGNING_ALGS) expect(text).toContain(alg);
  });

  it.each([
    ['README.md', readme],
    ['docs/epic-sandbox.md', epicGuide],
    ['keys/README.md', keysReadme],
  ])('%s only tells you to generate keys with algorithms the bridge supports', (_name, text) => {
    const generated = [...text.matchAll(/--alg\s+([A-Z]{2}\d{3})/g)].map((match) => match[1]);
    expect(generated.length).toBeGreaterThan(0);
    for (const alg of generated) expect(SIGNING_ALGS).toContain(alg);
  });

  it('the epic-sandbox profile section of the guide names both preset URLs', () => {
    const profile = section(epicGuide, '## The `epic-sandbox` profile');
    expect(profile).toContain(BASE_URL);
    expect(profile).toContain(TOKEN_URL);
  });
});

describe.each(GUIDES)('%s: links and sources', (_name, text) => {
  it('every http(s) link is well-formed', () => {
    const urls = urlsIn(text);
    expect(urls.length).toBeGreaterThan(0);
    for (const url of urls) {
      const parsed = new URL(url);
      expect(['https:', 'http:'], url).toContain(parsed.protocol);
      expect(parsed.hostname, url).toMatch(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/i);
      expect(url, 'a link must not end in punctuation').not.toMatch(/[.,;:!?]$/);
      expect(parsed.username + parsed.password, url).toBe('');
    }
    // Markdown link targets: nothing unbalanced, no spaces.
    for (const match of text.matchAll(/\]\(([^)]*)\)/g)) expect(match[1], match[0]).not.toMatch(/\s|\(/);
  });

  it('has a Sources section that lists public pages', () => {
    expect(text).toMatch(/^## Sources$/m);
    const sources = urlsIn(section(text, '## Sources'));
    expect(sources.length).toBeGreaterThan(0);
    for (const url of sources) expect(new URL(url).protocol).toBe('https:');
  });

  it('every page cited in the text is listed under Sources', () => {
    const body = prose(text.slice(0, text.indexOf('\n## Sources\n')));
    const sources = urlsIn(section(text, '## Sources'));
    const cited = urlsIn(body).filter((url) => pageOf(url).path !== '' || pageOf(url).page !== null);
    const missing = cited.filter((url) => !sources.some((source) => covers(source, url)));
    expect(missing).toEqual([]);
  });
});

describe('docs/epic-sandbox.md carries the corrections of issue #21', () => {
  it('says plainly that no AuditEvent FHIR API is listed, and points to the flat-file and Bulk sources', () => {
    expect(epicGuide).not.toMatch(/if it is offered/i);
    expect(epicGuide).toMatch(/no Epic document and no Epic CapabilityStatement we could find lists an `AuditEvent` FHIR API/i);
    expect(epicGuide).toContain('bridge push');
    expect(epicGuide).toContain('docId=fhir_bulk_data');
  });

  it('production needs ready-for-production, the customer download, activated keys and the background user', () => {
    const production = section(epicGuide, '## Going to production');
    expect(production).toMatch(/ready for production/);
    expect(production).toMatch(/non-production included/);
    expect(production).toContain('Review & Manage Downloads');
    expect(production).toMatch(/background user/);
  });

  it('propagation is dated and anecdotal where it is, and the troubleshooting table agrees with rotation', () => {
    expect(epicGuide).not.toMatch(/a day or more/);
    expect(epicGuide).toContain('2026-12-06');
    expect(epicGuide).toMatch(/anecdotal/);
    const table = section(epicGuide, '## 5. Troubleshooting');
    expect(table).toMatch(/needs no sync/);
    expect(section(epicGuide, '## Rotating keys')).toMatch(/no sync/);
  });

  it('makes no unverifiable absolutes', () => {
    for (const text of [epicGuide, keysReadme, purviewGuide]) {
      expect(text).not.toMatch(/allows no leeway/i);
      expect(text).not.toMatch(/v1 scopes, the default/i);
      expect(text).not.toMatch(/works both ways/i);
    }
  });
});

describe('docs/purview-setup.md matches what the bridge sends', () => {
  /** The fenced block that follows a heading, one entry per line. */
  function blockAfter(heading: string): string[] {
    const start = purviewGuide.indexOf(heading);
    expect(start, heading).toBeGreaterThanOrEqual(0);
    const fence = /```text\n([\s\S]*?)\n```/.exec(purviewGuide.slice(start));
    if (!fence?.[1]) throw new Error(`no text block after ${heading}`);
    return fence[1].split('\n');
  }

  it.each([
    ['epic', '### Epic connector: the header the bridge writes'],
    ['healthcare', '### Healthcare connector: map the columns at creation'],
  ] as const)('the %s header shown is the header the built-in mapping writes, in order', (schema, heading) => {
    const mapping = loadMapping(builtinMappingPath(schema));
    const separator = mapping.delimiter === 'tab' ? '\t' : mapping.delimiter === 'pipe' ? '|' : ',';
    const header = createSerializer(mapping).headerLine().split(separator);
    expect(blockAfter(heading)).toEqual(header);
  });

  it('lists every cloud preset with its Entra and ingestion hosts', () => {
    const clouds = section(purviewGuide, '## 5. Clouds');
    for (const [name, preset] of Object.entries(CLOUDS)) {
      const row = clouds.split('\n').find((line) => line.startsWith(`| \`${name}\` |`));
      expect(row, name).toBeDefined();
      expect(row).toContain(preset.authorityHost);
      expect(row).toContain(preset.ingestionBase);
    }
  });

  it('states both block sizes and how to choose', () => {
    const blocks = section(purviewGuide, '## 6. Block size (`purview.blockRows`)');
    expect(blocks).toContain('100,000');
    expect(blocks).toContain('5,000');
    expect(blocks).toContain('50,000');
    expect(blocks).toContain('blockRows: 5000');
  });

  it("names the Data Connector Admin role and says certificates are not in Microsoft's connector docs", () => {
    expect(purviewGuide).toContain('Data Connector Admin');
    expect(purviewGuide).toMatch(/connector documentation does not show it/);
  });
});
