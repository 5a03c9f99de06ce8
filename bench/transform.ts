/**
 * Transform benchmark: JSON.parse of every NDJSON line alone, versus JSON.parse + mapEvent + serializer.line (+ the
 * column fill count a sync keeps, unless `--no-fill`), same run, same lines, best of three alternating rounds each.
 * Goal: ≥ 100,000 rows/s on one core and ≤ 3× the parse-only time.
 * Run directly: `npx tsx bench/transform.ts --events 200000 [--seed 7] [--no-fill]`.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { FhirResource } from 'fhir/r4.js';
import { builtinMappingPath, createFillCounter, createSerializer, loadMapping, mapEvent } from '../src/mapping/index.js';
import { type ResourceLookup, referenceKey } from '../src/reference-keys.js';
import { Rng } from '../src/sandbox/generator-random.js';
import { createReferenceTransform } from './transform-reference.js';

export interface TransformBenchResult {
  rowsPerSec: number;
  /** The hand-written reference (transform-reference.ts) on the same lines: how fast any transform goes here. */
  referenceRowsPerSec: number;
  jsonParseMs: number;
  transformMs: number;
  /** transformMs / jsonParseMs. */
  ratio: number;
}

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const ROUNDS = 3;
const EPIC_METRICS = ['Chart Review Accessed', 'Results Review Accessed', 'Medication List Viewed', 'Report Printed', 'Flowsheet Viewed'];
const GIVEN = ['Ana', 'Bjørn', 'Chloé', 'David', 'Emma', 'Fatima', 'George', 'Hiroshi', 'Ines', 'José'];
const FAMILY = ['Andersen', 'Brown', 'Chen', 'Dubois', 'García', 'Hansen', 'Ito', 'Jensen', 'Kowalski', 'Müller'];

/** Seeded uniform [0,1): the generator's mulberry32, so benches and tests share one PRNG. */
function prng(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

function patient(i: number, random: () => number): FhirResource {
  return {
    resourceType: 'Patient',
    id: `e${i}`,
    identifier: [
      {
        use: 'usual',
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
        system: 'urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14',
        value: `${100000 + i}`,
      },
    ],
    name: [
      { use: 'official', family: pick(random, FAMILY), given: [pick(random, GIVEN), pick(random, GIVEN)] },
      { use: 'maiden', family: pick(random, FAMILY), given: [pick(random, GIVEN)], period: { end: '2001' } },
    ],
    address: [
      {
        use: 'home',
        line: [`${1 + (i % 900)} Main St`, `Apt ${i % 40}`],
        city: 'Madison',
        state: 'WI',
        postalCode: `537${String(i % 100).padStart(2, '0')}`,
        country: 'USA',
        period: { start: '2010-01-01' },
      },
    ],
  };
}

function practitioner(i: number, random: () => number): FhirResource {
  return {
    resourceType: 'Practitioner',
    id: `p${i}`,
    identifier: [{ system: 'urn:oid:1.2.840.114350.1.13.0.1.7.2.697780', value: `EMP${i}` }],
    name: [{ use: 'official', family: pick(random, FAMILY), given: [pick(random, GIVEN)] }],
    telecom: [{ system: 'email', use: 'work', value: `user${i}@hospital.example.org` }],
  };
}

function auditEvent(i: number, random: () => number, patients: number, practitioners: number): string {
  const user = Math.floor(random() * practitioners);
  const btg = random() < 0.01;
  const second = 1_700_000_000 + i * 3;
  const recorded = `${new Date(second * 1000).toISOString().slice(0, 19)}.${String(i % 1000).padStart(3, '0')}Z`;
  return JSON.stringify({
    resourceType: 'AuditEvent',
    id: `ae${i}`,
    type: { system: DCM, code: '110110', display: 'Patient Record' },
    subtype: [{ system: 'urn:oid:1.2.840.114350.1.13.0.1.7.2.768282', code: `M${i % 5}`, display: pick(random, EPIC_METRICS) }],
    action: 'R',
    recorded,
    outcome: '0',
    ...(btg
      ? { purposeOfEvent: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'BTG' }], text: 'Patient in ED, unconscious' }] }
      : {}),
    agent: [
      {
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/extra-security-role-type', code: 'humanuser' }] },
        who: { reference: `Practitioner/p${user}` },
        altId: `user${user}@hospital.example.org`,
        requestor: true,
        network: { address: `WS-${1000 + (user % 300)}`, type: '1' },
      },
      { type: { coding: [{ system: DCM, code: '110150', display: 'Application' }] }, who: { display: 'Epic Hyperspace' }, requestor: false },
    ],
    source: { site: 'Production', observer: { display: 'Epic' } },
    entity: [
      {
        what: { reference: `Patient/e${Math.floor(random() * patients)}` },
        type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '1' },
        role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' },
      },
    ],
  });
}

/** The in-memory NDJSON lines and the lookup they reference (exported for profiling and tests). */
export function buildTransformInput(options: { events: number; seed?: number }): { lines: string[]; lookup: ResourceLookup } {
  const random = prng(options.seed ?? 1);
  const patientCount = Math.max(1000, Math.round(options.events / 20));
  const practitionerCount = Math.max(100, Math.round(options.events / 200));
  const resources = new Map<string, FhirResource>();
  for (let i = 0; i < patientCount; i += 1) resources.set(referenceKey('Patient', `e${i}`), patient(i, random));
  for (let i = 0; i < practitionerCount; i += 1) resources.set(referenceKey('Practitioner', `p${i}`), practitioner(i, random));
  const lines = Array.from({ length: options.events }, (_, i) => auditEvent(i, random, patientCount, practitionerCount));
  return { lines, lookup: { get: (key) => resources.get(key) } };
}

/** `fill` (default true): count empty cells per watched column as the sync pipeline does (src/mapping/fill.ts). */
export async function runTransformBench(options: { events: number; seed?: number; fill?: boolean }): Promise<TransformBenchResult> {
  const { lines, lookup } = buildTransformInput(options);
  const mapping = loadMapping(builtinMappingPath('epic'));
  const serializer = createSerializer(mapping);
  const fill = options.fill ?? true;

  const parseOnly = (): number => {
    let keys = 0;
    for (const line of lines) keys += (JSON.parse(line) as { id?: string }).id?.length ?? 0;
    return keys;
  };
  const transform = (): number => {
    let rows = 0;
    let bytes = 0;
    const counter = fill ? createFillCounter(mapping) : undefined;
    for (const line of lines) {
      const result = mapEvent(JSON.parse(line), mapping, lookup);
      for (const out of serializer.lines(result)) bytes += out.length;
      counter?.addResult(result);
      rows += result.rows.length;
    }
    return bytes > 0 && (counter === undefined || counter.rows === rows) ? rows : 0;
  };
  const reference = createReferenceTransform(lookup);
  const referenceTransform = (): number => {
    let rows = 0;
    let bytes = 0;
    for (const line of lines) {
      const out = reference.line(JSON.parse(line));
      if (out === undefined) continue;
      bytes += out.length;
      rows += 1;
    }
    return bytes > 0 ? rows : 0;
  };
  // One untimed pass of each lets the JIT settle; then alternate rounds and keep each side's best, so a burst of
  // load from another process (or a GC of the previous round's garbage) does not decide the ratio.
  parseOnly();
  transform();
  referenceTransform();
  let jsonParseMs = Number.POSITIVE_INFINITY;
  let transformMs = Number.POSITIVE_INFINITY;
  let referenceMs = Number.POSITIVE_INFINITY;
  let rows = 0;
  let referenceRows = 0;
  const timed = (run: () => number): { ms: number; rows: number } => {
    const start = performance.now();
    const count = run();
    return { ms: performance.now() - start, rows: count };
  };
  for (let round = 0; round < ROUNDS; round += 1) {
    jsonParseMs = Math.min(jsonParseMs, timed(parseOnly).ms);
    const engine = timed(transform);
    transformMs = Math.min(transformMs, engine.ms);
    rows = engine.rows;
    const handWritten = timed(referenceTransform);
    referenceMs = Math.min(referenceMs, handWritten.ms);
    referenceRows = handWritten.rows;
  }
  return {
    rowsPerSec: rows / (transformMs / 1000),
    referenceRowsPerSec: referenceRows / (referenceMs / 1000),
    jsonParseMs,
    transformMs,
    ratio: transformMs / jsonParseMs,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argument = (name: string): number | undefined => {
    const index = process.argv.indexOf(name);
    return index === -1 ? undefined : Number(process.argv[index + 1]);
  };
  const events = argument('--events') ?? 200_000;
  const seed = argument('--seed');
  const fill = !process.argv.includes('--no-fill');
  const result = await runTransformBench({ events, fill, ...(seed === undefined ? {} : { seed }) });
  process.stdout.write(
    `transform${fill ? '' : ' (no fill count)'}: ${events} events, ${Math.round(result.rowsPerSec).toLocaleString('en-US')} rows/s, JSON.parse ${result.jsonParseMs.toFixed(0)} ms, ` +
      `parse+map+serialize ${result.transformMs.toFixed(0)} ms, ratio ${result.ratio.toFixed(2)}×; ` +
      `hand-written reference ${Math.round(result.referenceRowsPerSec).toLocaleString('en-US')} rows/s\n`,
  );
}
