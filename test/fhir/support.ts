/**
 * Shared fixtures for the FHIR pull tests: a small deterministic data set (AuditEvents a minute apart, each naming one
 * Practitioner agent and one Patient entity), a revocable TokenSource the sandbox server checks tokens against, and a
 * sandbox FHIR server over medplum's MemoryRepository on 127.0.0.1:0.
 */
import type { AuditEvent, FhirResource, Patient, Practitioner, PractitionerRole } from 'fhir/r4.js';
import { createFhirClient, type FhirClient, type FhirClientOptions } from '../../src/fhir/index.js';
import { silentLogger } from '../../src/log.js';
import { createMemoryBackend, type MemoryBackend } from '../../src/sandbox/fhir-backend.js';
import { type FhirServerOptions, type SandboxFhirServer, startFhirServer } from '../../src/sandbox/fhir-server.js';
import type { TokenSource } from '../../src/token-cache.js';
import { InstantClock } from '../support/manual-clock.js';

export const START = Date.parse('2026-11-01T00:00:00.000Z');
export const STEP_MS = 60_000;
export const EMP_SYSTEM = 'urn:oid:1.2.840.114350.1.13.999.3.7.2.697780';

export function isoAt(minute: number): string {
  return new Date(START + minute * STEP_MS).toISOString();
}

export interface FixtureData {
  readonly events: AuditEvent[];
  readonly patients: Patient[];
  readonly practitioners: Practitioner[];
  readonly roles: PractitionerRole[];
}

/** `events` AuditEvents at minute 0, 1, 2, …; event i names Practitioner pr-(i mod P) and Patient pt-(i mod U). */
export function buildFixtures(counts: { events: number; patients: number; practitioners: number }): FixtureData {
  const patients = Array.from(
    { length: counts.patients },
    (_, i): Patient => ({
      resourceType: 'Patient',
      id: `pt-${i}`,
      meta: { versionId: '1' },
      identifier: [{ system: 'urn:example:mrn', value: `MRN${i}` }],
    }),
  );
  const practitioners = Array.from(
    { length: counts.practitioners },
    (_, i): Practitioner => ({
      resourceType: 'Practitioner',
      id: `pr-${i}`,
      meta: { versionId: '1' },
      identifier: [{ system: EMP_SYSTEM, value: `EMP${i}` }],
    }),
  );
  const roles = practitioners.slice(0, 2).map(
    (practitioner, i): PractitionerRole => ({
      resourceType: 'PractitionerRole',
      id: `role-${i}`,
      practitioner: { reference: `Practitioner/${practitioner.id ?? ''}` },
    }),
  );
  const events = Array.from(
    { length: counts.events },
    (_, i): AuditEvent => ({
      resourceType: 'AuditEvent',
      id: `ae-${String(i).padStart(3, '0')}`,
      meta: { versionId: '1', lastUpdated: isoAt(i) },
      type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110110', display: 'Patient Record' },
      action: 'R',
      recorded: isoAt(i),
      agent: [{ who: { reference: `Practitioner/pr-${i % counts.practitioners}` }, requestor: true }],
      source: { observer: { display: 'Epic' } },
      entity: [{ what: { reference: `Patient/pt-${i % counts.patients}` } }],
    }),
  );
  return { events, patients, practitioners, roles };
}

/** Hands out tok-1, tok-2, …; the server accepts only tokens still in `valid`, so a test can revoke one mid-run. */
export class RevocableTokens implements TokenSource {
  readonly valid = new Set<string>();
  readonly invalidated: Array<string | undefined> = [];
  issued = 0;
  /** When set, the scope every valid token grants: the server then enforces it per resource type (403 insufficient_scope). */
  scope: string | undefined;
  private current: string | undefined;

  async getToken(): Promise<string> {
    if (!this.current) {
      this.issued += 1;
      this.current = `tok-${this.issued}`;
      this.valid.add(this.current);
    }
    return this.current;
  }

  invalidate(staleToken?: string): void {
    this.invalidated.push(staleToken);
    if (staleToken === undefined || staleToken === this.current) this.current = undefined;
  }

  revokeAll(): void {
    this.valid.clear();
  }

  readonly verify = (token: string): boolean | { scope: string } => {
    if (!this.valid.has(token)) return false;
    return this.scope === undefined ? true : { scope: this.scope };
  };
}

export interface FixtureServer {
  readonly server: SandboxFhirServer;
  readonly backend: MemoryBackend;
  readonly tokens: RevocableTokens;
  readonly clock: InstantClock;
  client(overrides?: Partial<FhirClientOptions>): FhirClient;
  /** Requests the server saw for one resource type's searches and reads (path ends with the type or type/id). */
  requestsFor(resourceType: string): Array<{ path: string; query: string; status: number }>;
}

export async function startFixtureServer(
  resources: readonly FhirResource[],
  overrides: Partial<Omit<FhirServerOptions, 'backend' | 'verifyAccessToken'>> = {},
): Promise<FixtureServer> {
  const backend = await createMemoryBackend();
  await backend.load([...resources]);
  const tokens = new RevocableTokens();
  const server = await startFhirServer({ tokenUrl: 'http://127.0.0.1:9/oauth2/token', ...overrides, backend, verifyAccessToken: tokens.verify });
  const clock = new InstantClock(START);
  return {
    server,
    backend,
    tokens,
    clock,
    client: (options = {}) => createFhirClient({ baseUrl: server.baseUrl, tokenSource: tokens, clock, logger: silentLogger(), random: () => 0.5, ...options }),
    requestsFor: (resourceType) => server.requests.filter((request) => new RegExp(`/${resourceType}(/[^/]+)?$`).test(request.path)),
  };
}

export async function collect<T>(pages: AsyncIterable<T[]>): Promise<T[][]> {
  const out: T[][] = [];
  for await (const page of pages) out.push(page);
  return out;
}

export function allResources(data: FixtureData): FhirResource[] {
  return [...data.practitioners, ...data.roles, ...data.patients, ...data.events];
}
