/**
 * `bridge map`: AuditEvents (NDJSON) → a Purview connector file, fully offline. Streams the events; the patients and
 * practitioners files are bounded lookups and are held in a Map. Output files are created with mode 0600: the
 * connector file is PHI.
 */
import { once } from 'node:events';
import { createWriteStream, renameSync, rmSync, statSync, type WriteStream } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import type { AuditEvent, FhirResource } from 'fhir/r4.js';
import { ConnectorFileWriter, DELIMITER_INPUTS, openPrivateFile } from '../../connector-file/index.js';
import { BridgeError, faultCode } from '../../errors.js';
import { builtinMappingPath, type CompiledMapping, type ConnectorSchema, type DelimiterInput, loadMapping, readNdjson } from '../../mapping/index.js';
import { isBlank, parseNdjsonLine, readNdjsonLines } from '../../mapping/load.js';
import { identifierKeysOf, type ResourceLookup, referenceKey } from '../../reference-keys.js';
import { createMapStep } from '../../sync/map-step.js';

interface MapFlags {
  input: string;
  patients?: string;
  practitioners?: string;
  mapping?: string;
  schema?: ConnectorSchema;
  delimiter?: DelimiterInput;
  out: string;
  rejects?: string;
}

export interface MapSummary {
  events: number;
  rows: number;
  skipped: Record<string, number>;
  rejects: Record<string, number>;
  warnings: Record<string, number>;
}

export function mapCommand(options: { print: (line: string) => void }): Command {
  return new Command('map')
    .description('Map AuditEvents (NDJSON) to a Purview connector file offline: no network, no state.')
    .requiredOption('--input <file>', 'AuditEvents (or Bundles of them), one JSON resource per line')
    .option('--patients <file>', 'Patient resources (NDJSON) the events reference; also Encounter, Location, Organization')
    .option('--practitioners <file>', 'Practitioner and PractitionerRole resources (NDJSON)')
    .addOption(new Option('--mapping <file>', 'own mapping file').conflicts('schema'))
    .addOption(new Option('--schema <schema>', 'built-in mapping to use (default epic)').choices(['epic', 'healthcare']))
    .addOption(new Option('--delimiter <delimiter>', "override the mapping's delimiter (csv is comma's older name)").choices([...DELIMITER_INPUTS]))
    .requiredOption('--out <file>', 'connector file to write (UTF-8, CRLF, header first; mode 0600)')
    .option('--rejects <file>', 'rejected rows as NDJSON (mode 0600)')
    .action(async (flags: MapFlags) => {
      refuseSameFiles(flags);
      refuseSpecialOutputs(flags);
      const mapping = loadMapping(flags.mapping ?? builtinMappingPath(flags.schema ?? 'epic'), flags.delimiter ? { delimiter: flags.delimiter } : {});
      const lookup = await loadLookup([flags.patients, flags.practitioners]);
      const summary = await mapFile(flags, mapping, lookup);
      for (const line of summaryLines(summary, flags, mapping)) options.print(line);
    });
}

/**
 * The pipeline's own map step (src/sync/map-step.ts) over the events of a file. Both files are written under temporary
 * names and renamed into place only when every event was mapped, so a failure (a bad line, a full disk) never leaves a
 * partial connector file that could be pushed by mistake.
 */
async function mapFile(flags: MapFlags, mapping: CompiledMapping, lookup: ResourceLookup): Promise<MapSummary> {
  const step = createMapStep(mapping);
  const targets = [flags.out, ...(flags.rejects ? [flags.rejects] : [])];
  const partial = (path: string): string => `${path}.partial-${process.pid}`;
  const out = new ConnectorFileWriter(partial(flags.out), step.headerLine());
  const rejects = flags.rejects ? openPrivateWriter(partial(flags.rejects)) : undefined;
  let complete = false;
  // `map` ends at the first Ctrl-C or SIGTERM with process.exit (cli/main.ts), which runs no finally: the partial files
  // (rows with names, addresses, MRNs) go on the way out.
  const removePartials = (): void => {
    for (const path of targets) rmSync(partial(path), { force: true });
  };
  process.once('exit', removePartials);
  try {
    // A chunk of lines at a time, each parsed and mapped at once: the events die young (the CLI runs with small
    // semi-spaces, and a chunk of parsed events held together was promoted and collected as old objects).
    for await (const lines of readNdjsonLines(flags.input)) {
      for (let i = 0; i < lines.length; i++) {
        const text = lines.text(i);
        if (isBlank(text)) continue;
        const line = lines.first + i;
        const events = auditEventsOf(parseNdjsonLine(text, flags.input, line), flags.input, line);
        const mapped = step.map(
          events.length === 1 ? [{ event: events[0] as AuditEvent, recordedMs: undefined }] : events.map((event) => ({ event, recordedMs: undefined })),
          lookup,
        );
        for (const event of mapped.events) out.append(event.lines);
        if (mapped.rejectText) rejects?.add(mapped.rejectText);
      }
      await rejects?.flushIfFull();
    }
    out.finish();
    complete = true;
  } catch (cause) {
    throw outputError(cause, flags);
  } finally {
    out.close();
    await rejects?.close();
    for (const path of targets) {
      if (complete) renameSync(partial(path), path);
      else rmSync(partial(path), { force: true });
    }
    process.removeListener('exit', removePartials);
  }
  const t = step.tallies;
  return { events: t.events, rows: t.rows, skipped: t.skipReasons, rejects: t.rejectReasons, warnings: t.warnings };
}

/** Each output a file of its own, and none an input (renamed into place at the end, it would replace what was read). */
function refuseSameFiles(flags: MapFlags): void {
  const written: Array<[string, string | undefined]> = [
    ['--out', flags.out],
    ['--rejects', flags.rejects],
  ];
  const read: Array<[string, string | undefined]> = [
    ['--input', flags.input],
    ['--patients', flags.patients],
    ['--practitioners', flags.practitioners],
    ['--mapping', flags.mapping],
  ];
  const seen = new Map<string, string>();
  for (const [flag, path] of [...written, ...read]) {
    if (path === undefined) continue;
    const earlier = seen.get(resolve(path));
    if (earlier !== undefined && written.some(([name]) => name === earlier || name === flag)) {
      throw new BridgeError(
        'BRG_ERR_INPUT_INVALID',
        `${earlier} and ${flag} name the same file (${path}); give each output a file of its own, apart from the inputs.`,
        {
          details: { file: path },
        },
      );
    }
    seen.set(resolve(path), flag);
  }
}

/**
 * An output that exists and is not a regular file (/dev/stdout, /dev/full, a FIFO): the finished file is renamed onto
 * its path, which would replace the device or pipe with a file of PHI rows (as root, a device node of the machine).
 */
function refuseSpecialOutputs(flags: MapFlags): void {
  for (const [flag, path] of [
    ['--out', flags.out],
    ['--rejects', flags.rejects],
  ] as const) {
    if (path === undefined) continue;
    const stats = statSync(path, { throwIfNoEntry: false });
    if (stats === undefined || stats.isFile()) continue;
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `${flag} ${path} is not a regular file (a directory, device or pipe); give the path of a file to write.`, {
      details: { file: path },
    });
  }
}

/**
 * A write the machine refused mid-way (a full disk, a quota): typed, naming the outputs and the errno, not a bug
 * report (BRG_ERR_INTERNAL). Reading errors are typed where the input is read; a BridgeError stays as it is.
 */
function outputError(cause: unknown, flags: MapFlags): unknown {
  const code = faultCode(cause);
  if (cause instanceof BridgeError || code === undefined) return cause;
  const files = flags.rejects ? `${flags.out} or ${flags.rejects}` : flags.out;
  const fix = code === 'ENOSPC' || code === 'EDQUOT' ? 'free space on its disk' : 'check its directory and disk';
  return new BridgeError('BRG_ERR_INPUT_INVALID', `Cannot write ${files} (${code}): ${fix} and run again; no connector file was written.`, {
    cause,
    details: { file: flags.out, errno: code },
  });
}

function auditEventsOf(value: unknown, file: string, line: number): Array<Extract<FhirResource, { resourceType: 'AuditEvent' }>> {
  const resource = asResource(value, file, line);
  if (resource.resourceType === 'AuditEvent') return [resource];
  if (resource.resourceType === 'Bundle') {
    // @types/fhir types Bundle.entry.resource as the abstract Resource.
    const entries = (resource.entry ?? []).map((entry) => entry.resource as FhirResource | undefined);
    return entries.flatMap((entry) => (entry?.resourceType === 'AuditEvent' ? [entry] : []));
  }
  throw new BridgeError('BRG_ERR_INPUT_INVALID', `Input file ${file}, line ${line}: expected an AuditEvent or a Bundle, got ${resource.resourceType}.`, {
    details: { file, line },
  });
}

function asResource(value: unknown, file: string, line: number): FhirResource {
  if (value !== null && typeof value === 'object' && typeof (value as { resourceType?: unknown }).resourceType === 'string') return value as FhirResource;
  throw new BridgeError('BRG_ERR_INPUT_INVALID', `Input file ${file}, line ${line}: expected a FHIR resource (an object with resourceType).`, {
    details: { file, line },
  });
}

/**
 * Every resource by `Type/id`, and by `Type?identifier=system|value` (also without the system, for unsystemed references).
 * An identifier two resources carry (an MRN equal to another patient's payer id, an EMP id equal to a provider number)
 * names neither: it resolves to nobody, as a sync's lookup does (two matches are ambiguous), not to whichever came last.
 * A later version of the same resource (its `Type/id`) takes the key over.
 */
async function loadLookup(files: ReadonlyArray<string | undefined>): Promise<ResourceLookup> {
  const resources = new Map<string, FhirResource>();
  const ambiguous = new Set<string>();
  const identity = (resource: FhirResource): unknown => (resource.id ? referenceKey(resource.resourceType, resource.id) : resource);
  const add = (resource: FhirResource): void => {
    if (resource.id) resources.set(referenceKey(resource.resourceType, resource.id), resource);
    for (const key of identifierKeysOf(resource)) {
      const held = resources.get(key);
      if (held !== undefined && identity(held) !== identity(resource)) ambiguous.add(key);
      resources.set(key, resource);
    }
  };
  for (const file of files) {
    if (!file) continue;
    for await (const { value, line } of readNdjson(file)) {
      const resource = asResource(value, file, line);
      // A searchset saved as it came (as --input takes one): its entries are the resources; the Bundle names nobody.
      if (resource.resourceType === 'Bundle') {
        for (const entry of resource.entry ?? []) if (entry?.resource) add(asResource(entry.resource, file, line));
      } else add(resource);
    }
  }
  return { get: (key) => (ambiguous.has(key) ? undefined : resources.get(key)) };
}

interface PrivateWriter {
  /** Buffers text; written by flushIfFull() or close(). */
  add(text: string): void;
  flushIfFull(): Promise<void>;
  close(): Promise<void>;
}

/** Creates (or truncates) the file with mode 0600, also when it already existed with a wider mode. */
function openPrivateWriter(path: string): PrivateWriter {
  const fd = openPrivateFile(path);
  const stream: WriteStream = createWriteStream('', { fd, encoding: 'utf8' });
  // Lines are joined into ~64 KiB writes: one stream write per row made the CLI's writing a visible share of its time.
  let pending = '';
  const flush = async (): Promise<void> => {
    const text = pending;
    pending = '';
    if (text.length > 0 && !stream.write(text)) await once(stream, 'drain');
  };
  return {
    add(text) {
      pending += text;
    },
    flushIfFull: () => (pending.length >= 1 << 16 ? flush() : Promise.resolve()),
    close: async () => {
      await flush();
      await new Promise<void>((resolve, reject) => {
        stream.once('error', reject);
        stream.end(() => resolve());
      });
    },
  };
}

export function summaryLines(summary: MapSummary, flags: Pick<MapFlags, 'out' | 'rejects'>, mapping: CompiledMapping): string[] {
  const total = (counts: Record<string, number>): number => Object.values(counts).reduce((sum, n) => sum + n, 0);
  const detail = (counts: Record<string, number>): string =>
    Object.entries(counts)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([code, n]) => `${code} ${n}`)
      .join(', ');
  const lines = [`Mapped ${summary.events} events: ${summary.rows} rows, ${total(summary.skipped)} events skipped, ${total(summary.rejects)} rows rejected.`];
  if (total(summary.skipped) > 0) lines.push(`Skipped: ${detail(summary.skipped)}`);
  if (total(summary.rejects) > 0) lines.push(`Rejected: ${detail(summary.rejects)}`);
  if (total(summary.warnings) > 0) lines.push(`Warnings (events): ${detail(summary.warnings)}`);
  lines.push(`Wrote ${flags.out} (${mapping.schema} schema, ${mapping.delimiter})${flags.rejects ? `; rejects in ${flags.rejects}` : ''}.`);
  return lines;
}
