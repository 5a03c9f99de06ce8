/**
 * Property tests (seeded, hand-rolled PRNG): whatever the values hold (tabs, pipes, commas, quotes, CR/LF, NEL,
 * U+2028/2029, controls, emoji, decomposed accents, lone surrogates), every line has the same column count for
 * every delimiter, no value breaks a line, and CSV round-trips through a strict RFC 4180 parser.
 */
import type { AuditEvent, Patient } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { type CompiledMapping, createSerializer, type Delimiter, mapEvent, sanitizeCell } from '../../src/mapping/index.js';
import { Rng } from '../../src/sandbox/generator-random.js';
import { builtinMapping, lookupOf } from './support.js';

/** Seeded uniform [0,1): the generator's mulberry32, so benches and tests share one PRNG. */
function prng(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

const PIECES = [
  'a',
  'Z',
  '0',
  ' ',
  '  ',
  '\t',
  '|',
  ',',
  '"',
  "'",
  '\r',
  '\n',
  '\r\n',
  '\u2028',
  '\u2029',
  '\u0085',
  '\u0000',
  '\u001b',
  '\u007f',
  '\u009f',
  '\u000b',
  '😀',
  '👩‍⚕️',
  'é',
  'e\u0301',
  'ø',
  '张',
  '\ud800',
  '\udc00',
  '\u00a0',
  '=',
  'Ø',
  '\ufeff',
];

function randomValue(random: () => number): string {
  const length = Math.floor(random() * 12);
  let value = '';
  for (let index = 0; index < length; index += 1) value += PIECES[Math.floor(random() * PIECES.length)];
  return value;
}

/** Strict RFC 4180 for one record: quoted fields with "" escapes, unquoted fields without quotes; anything else throws. */
function parseCsvRecord(line: string): string[] {
  const fields: string[] = [];
  let index = 0;
  for (;;) {
    if (line[index] === '"') {
      let value = '';
      index += 1;
      for (;;) {
        if (index >= line.length) throw new Error('unterminated quoted field');
        if (line[index] === '"') {
          if (line[index + 1] === '"') {
            value += '"';
            index += 2;
            continue;
          }
          index += 1;
          break;
        }
        value += line[index];
        index += 1;
      }
      fields.push(value);
    } else {
      const end = line.indexOf(',', index);
      const value = end === -1 ? line.slice(index) : line.slice(index, end);
      if (value.includes('"')) throw new Error(`bare quote in unquoted field ${JSON.stringify(value)}`);
      fields.push(value);
      index = end === -1 ? line.length : end;
    }
    if (index === line.length) return fields;
    if (line[index] !== ',') throw new Error(`expected a comma at ${index}`);
    index += 1;
  }
}

const LINE_BREAKS = /[\r\n\u0085\u2028\u2029]/;

function checkLine(line: string, mapping: CompiledMapping): string[] {
  expect(line).not.toMatch(LINE_BREAKS);
  const width = mapping.columns.length;
  const fields = mapping.delimiter === 'comma' ? parseCsvRecord(line) : line.split(mapping.delimiter === 'tab' ? '\t' : '|');
  expect(fields).toHaveLength(width);
  return fields;
}

const MAPPINGS: Array<[string, CompiledMapping]> = [
  ['epic/tab', builtinMapping('epic')],
  ['epic/pipe', builtinMapping('epic', { delimiter: 'pipe' })],
  ['healthcare/tab', builtinMapping('healthcare')],
  ['healthcare/pipe', builtinMapping('healthcare', { delimiter: 'pipe' })],
  ['healthcare/csv', builtinMapping('healthcare', { delimiter: 'csv' })],
];

describe('sanitising and serialising random values', () => {
  for (const [label, mapping] of MAPPINGS) {
    it(`${label}: same column count, no line breaks, values as sanitised (CSV round-trips)`, () => {
      const random = prng(label.length * 7919);
      const serializer = createSerializer(mapping);
      checkLine(serializer.headerLine(), mapping);
      for (let run = 0; run < 500; run += 1) {
        const row = mapping.columns.map(() => randomValue(random));
        const fields = checkLine(serializer.line(row), mapping);
        expect(fields).toEqual(row.map((value) => sanitizeCell(value, mapping.delimiter)));
      }
    });
  }

  it('a sanitised value is clean: trimmed, single spaces, NFC, no controls or delimiters, and stable', () => {
    const random = prng(42);
    for (const delimiter of ['tab', 'pipe', 'comma'] as Delimiter[]) {
      for (let run = 0; run < 1000; run += 1) {
        const clean = sanitizeCell(randomValue(random), delimiter);
        expect(clean).toBe(clean.trim());
        // biome-ignore lint/suspicious/noControlCharactersInRegex: the test asserts that no control character survives sanitising, so it must match them.
        expect(clean).not.toMatch(/ {2}|[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
        expect(clean).not.toContain({ tab: '\t', pipe: '|', comma: ',' }[delimiter]);
        expect(clean).toBe(clean.normalize('NFC'));
        expect(sanitizeCell(clean, delimiter)).toBe(clean);
      }
    }
  });

  it('examples: breaks and the delimiter become one space; NFC composes; quotes are doubled only in CSV', () => {
    expect(sanitizeCell('Line 1\r\nLine 2\u2028end', 'tab')).toBe('Line 1 Line 2 end');
    expect(sanitizeCell('  a\t|b  ', 'pipe')).toBe('a b');
    expect(sanitizeCell('Ame\u0301lie\u0000', 'tab')).toBe('Amélie');
    // Invisible characters would make another name of the same one; joiners some scripts need stay.
    expect(sanitizeCell('M\u00fcller\u200b', 'tab')).toBe('Müller');
    expect(sanitizeCell('\ufeffAnna\u00adLena\u2060', 'tab')).toBe('AnnaLena');
    expect(sanitizeCell('\u0915\u094d\u200d\u0937', 'tab')).toBe('\u0915\u094d\u200d\u0937');
    // Bidirectional marks, embeddings, overrides and isolates are as invisible; other spaces are spaces.
    for (const marked of ['Cohen\u200e', '\u200fCohen', 'Co\u202ehen', 'Co\u061chen', 'Co\u2066h\u2069en', '\u202aCohen\u202c']) {
      expect(sanitizeCell(marked, 'tab')).toBe('Cohen');
    }
    expect(sanitizeCell('Jo\u00a0Ann', 'tab')).toBe('Jo Ann');
    expect(sanitizeCell('Jo \u2009\u3000Ann\u202f', 'pipe')).toBe('Jo Ann');
    const csv = createSerializer(builtinMapping('healthcare', { delimiter: 'csv' }));
    expect(csv.line(['say "hi", then go', ...new Array<string>(22).fill('')])).toBe(`"say ""hi"" then go"${','.repeat(22)}`);
    const tsv = createSerializer(builtinMapping('healthcare'));
    expect(tsv.line(['say "hi"', ...new Array<string>(22).fill('')])).toBe(`say "hi"${'\t'.repeat(22)}`);
  });
});

describe('rows from mapEvent with hostile resource values', () => {
  const random = prng(20261122);

  function hostileEvent(index: number): { event: AuditEvent; patient: Patient } {
    const patient: Patient = {
      resourceType: 'Patient',
      id: `p${index}`,
      name: [{ family: `F${randomValue(random)}`, given: [`G${randomValue(random)}`, randomValue(random)], text: randomValue(random) }],
      address: [
        {
          use: 'home',
          line: [`L${randomValue(random)}`, randomValue(random)],
          city: `C${randomValue(random)}`,
          postalCode: `Z${randomValue(random)}`,
          state: randomValue(random),
        },
      ],
    };
    const event: AuditEvent = {
      resourceType: 'AuditEvent',
      id: `e${index}`,
      recorded: '2024-01-02T03:04:05.678901+02:00',
      type: { code: randomValue(random), display: randomValue(random) },
      subtype: [{ display: randomValue(random) }],
      action: 'R',
      source: { observer: { display: 'x' } },
      purposeOfEvent: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'BTG' }], text: `T${randomValue(random)}` }],
      agent: [{ requestor: true, altId: `u${randomValue(random)}@x.org`, name: randomValue(random), network: { address: randomValue(random), type: '1' } }],
      entity: [
        {
          what: { reference: `Patient/p${index}`, display: `D${randomValue(random)}` },
          role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' },
        },
      ],
    };
    return { event, patient };
  }

  it('every delimiter: one well-formed line per row, the same whether made with the row or from its cells', () => {
    const cases = Array.from({ length: 200 }, (_, index) => hostileEvent(index));
    // Every fifth patient is unknown, so its row has no patient view (no pre-joined segments) and names it by display.
    const lookup = lookupOf(cases.filter((_, index) => index % 5 !== 0).map((entry) => entry.patient));
    for (const [label, base] of MAPPINGS) {
      const mapping = builtinMapping(base.schema, { delimiter: base.delimiter, options: { loginRegex: '.' } });
      const serializer = createSerializer(mapping);
      let rows = 0;
      for (const { event } of cases) {
        const result = mapEvent(event, mapping, lookup);
        expect(serializer.lines(result), label).toEqual(result.rows.map((row) => serializer.line(row)));
        for (const row of result.rows) {
          rows += 1;
          const fields = checkLine(serializer.line(row), mapping);
          expect(fields, label).toEqual([...row]);
        }
      }
      expect(rows, label).toBe(200);
    }
  });
});
