/**
 * What a Bulk Data export leaves in the state store between runs (StateStore.getSourceState, one JSON text per
 * connector): the request it answers, the status URL, the manifest once it came, and the files already on local disk.
 * The files are kept apart, in parts of FILES_PER_PART (named by part number, each holding the export's id): recording
 * one file rewrites one small text, where rewriting the whole checkpoint per file grew with the square of the file count
 * (5,000 files cost 34 s of blocking CPU).
 * A run that dies (crash, kill -9, a lost machine) is continued by the next one: polling the same status URL, or
 * downloading only the files not yet complete. Beside it (`covered`), the scope of the last exports that finished, by
 * transactionTime: the watermark is one of those instants, and `_since` from it is only sound for the same scope.
 * No PHI: URLs, counts and times only.
 */
import { z } from 'zod';

/** What an export selects from: the FHIR server and the level (with its Group). */
export interface ExportScope {
  /** fhir.baseUrl without trailing slashes: an export or a watermark of another server says nothing of this one. */
  readonly base: string;
  readonly level: 'system' | 'patient' | 'group';
  readonly groupId?: string | undefined;
}

/** The request an export answers: a run reuses a checkpoint only for the same one (its types as a set: sameRequest). */
export interface ExportRequest extends ExportScope {
  readonly types: readonly string[];
  /** `_since`: the previous export's transactionTime; absent on the first run (a full export). */
  readonly since?: string | undefined;
}

/** A finished export's transactionTime and scope: a watermark at that instant covers that scope only. */
export interface CoveredScope {
  readonly until: string;
  readonly scope: ExportScope;
  /**
   * The bridge's clock (epoch ms) when the export was kicked off, the moment its `transactionTime` stands for on the
   * server: with `until`, how far the server's clock was from ours, so a server whose clock went back can be asked again
   * from where its corrected clock puts that moment. Absent in entries of earlier versions.
   */
  readonly at?: number | undefined;
  /** The `_since` the export was asked for (absent: none, or an entry of an earlier version). */
  readonly from?: string | undefined;
}

export interface ManifestFile {
  readonly type: string;
  readonly url: string;
  readonly count?: number | undefined;
}

export interface ExportManifest {
  readonly transactionTime: string;
  readonly requiresAccessToken: boolean;
  readonly output: readonly ManifestFile[];
  readonly error: readonly ManifestFile[];
  /** Entries of `deleted` (Bundles of deletions), reported only: Purview has no way to take a row back. */
  readonly deleted: number;
}

/** A file fully on local disk: its size (checked on resume) and whether it is stored gzip-compressed. */
export interface LocalFile {
  readonly bytes: number;
  readonly gzip: boolean;
}

export interface ExportCheckpoint {
  readonly version: 1;
  /** Local id: names the export's folder under stateDir/bulk/<connector>/. */
  readonly id: string;
  readonly request: ExportRequest;
  readonly statusUrl: string;
  /** When the kick-off was accepted (ISO): source.pollMaxMinutes counts from here, across runs. */
  readonly kickedOffAt: string;
  readonly manifest?: ExportManifest | undefined;
  /** Completed downloads, by index in `manifest.output` (stored in parts: recordFile). */
  readonly files: Readonly<Record<string, LocalFile>>;
  /** The error files were read and reported (not again on resume). */
  readonly errorsReported?: boolean | undefined;
  /** How many OperationOutcomes they held: a resumed run records them too (its earlier run did not complete). */
  readonly errorOutcomes?: number | undefined;
}

/** Finished exports remembered: dry runs and failed pushes finish exports whose transactionTime never becomes the watermark. */
const MAX_COVERED = 20;

const fileSchema = z.object({ type: z.string(), url: z.string(), count: z.number().optional() });
const scopeFields = {
  // A checkpoint written before the base was recorded matches no server: it is abandoned, not polled on a guess.
  base: z.string().default(''),
  level: z.enum(['system', 'patient', 'group']),
  groupId: z.string().optional(),
};
const filesSchema = z.record(z.string(), z.object({ bytes: z.number(), gzip: z.boolean() }));
const coveredSchema = z.array(z.object({ until: z.string(), scope: z.object(scopeFields), at: z.number().optional(), from: z.string().optional() }));
const checkpointSchema = z.object({
  version: z.literal(1),
  id: z.string().regex(/^[A-Za-z0-9-]{1,64}$/),
  request: z.object({
    ...scopeFields,
    types: z.array(z.string()),
    since: z.string().optional(),
  }),
  statusUrl: z.string(),
  kickedOffAt: z.string(),
  manifest: z
    .object({
      transactionTime: z.string(),
      requiresAccessToken: z.boolean(),
      output: z.array(fileSchema),
      error: z.array(fileSchema),
      deleted: z.number(),
    })
    .optional(),
  files: filesSchema,
  errorsReported: z.boolean().optional(),
  errorOutcomes: z.number().optional(),
});

/** Where the checkpoint lives: the state store's source state of one connector. */
export interface CheckpointStore {
  get(): string | undefined;
  set(value: string | undefined): void;
  /** Named texts beside it (the completed-file parts), under the same connector. */
  getPart(name: string): string | undefined;
  setPart(name: string, value: string | undefined): void;
}

/** Completed files per stored part: recording a file rewrites at most this many entries. */
export const FILES_PER_PART = 256;

const partSchema = z.object({ id: z.string(), files: filesSchema });

function partName(part: number): string {
  return `files:${part}`;
}

/**
 * The stored checkpoint with its completed files, or undefined when there is none or it is unreadable (an older
 * format: start afresh). Files recorded inline by an older version count too.
 */
export function loadCheckpoint(store: CheckpointStore): ExportCheckpoint | undefined {
  const checkpoint = readState(store).checkpoint;
  if (!checkpoint?.manifest) return checkpoint;
  const files: Record<string, LocalFile> = { ...checkpoint.files };
  for (let part = 0; part * FILES_PER_PART < checkpoint.manifest.output.length; part += 1) Object.assign(files, readPart(store, checkpoint.id, part));
  return { ...checkpoint, files };
}

/**
 * Saves (or, with undefined, forgets) the export; the finished exports' scopes stay. Its files go to their parts; a
 * forgotten export's parts are removed after it (a part left by a crash in between names its export: read as empty).
 */
export function saveCheckpoint(store: CheckpointStore, checkpoint: ExportCheckpoint | undefined): void {
  const { checkpoint: previous, covered } = readState(store);
  // The parts before the checkpoint that drops its inline list: a crash in between loses no file an older version
  // listed inline (parts naming an export the checkpoint does not are read as empty).
  const written = new Set<number>();
  if (checkpoint) {
    const parts = new Map<number, Record<string, LocalFile>>();
    for (const [index, local] of Object.entries(checkpoint.files)) {
      const part = Math.floor(Number(index) / FILES_PER_PART);
      parts.set(part, { ...parts.get(part), [index]: local });
    }
    for (const [part, files] of parts) {
      store.setPart(partName(part), JSON.stringify({ id: checkpoint.id, files: { ...readPart(store, checkpoint.id, part), ...files } }));
      written.add(part);
    }
  }
  writeState(store, checkpoint && { ...checkpoint, files: {} }, covered);
  const stale = previous && previous.id !== checkpoint?.id ? previous : undefined;
  for (let part = 0; part * FILES_PER_PART < (stale?.manifest?.output.length ?? 0); part += 1) {
    if (!written.has(part)) store.setPart(partName(part), undefined);
  }
}

/** Records one completed download of export `id`: its part alone is rewritten. */
export function recordFile(store: CheckpointStore, id: string, index: number, local: LocalFile): void {
  const part = Math.floor(index / FILES_PER_PART);
  store.setPart(partName(part), JSON.stringify({ id, files: { ...readPart(store, id, part), [String(index)]: local } }));
}

/** Part `part`'s files when it belongs to export `id`; empty otherwise (another export's, unreadable, absent). */
function readPart(store: CheckpointStore, id: string, part: number): Record<string, LocalFile> {
  const text = store.getPart(partName(part));
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    return {};
  }
  const parsed = partSchema.safeParse(value);
  return parsed.success && parsed.data.id === id ? parsed.data.files : {};
}

/** The scopes of the last exports that finished, oldest first. */
export function loadCovered(store: CheckpointStore): readonly CoveredScope[] {
  return readState(store).covered;
}

/**
 * Remembers that an export of `scope` finished at `until` (its transactionTime), which may become the watermark.
 * @param watermark - the connector's watermark now: the entry of the export it came from is kept whatever the count,
 * since the next run's `_since` depends on its scope (twenty dry runs of another scope must not make it unknown).
 */
export function recordCovered(store: CheckpointStore, entry: CoveredScope, watermark?: string): void {
  const { checkpoint, covered } = readState(store);
  const same = (a: string, b: string | undefined): boolean => b !== undefined && Date.parse(a) === Date.parse(b);
  const others = covered.filter((earlier) => !same(earlier.until, entry.until) || !sameScope(earlier.scope, entry.scope));
  const all = [...others, entry];
  const kept = all.findLast((earlier) => same(earlier.until, watermark));
  const recent = all.filter((earlier) => earlier !== kept).slice(-(kept ? MAX_COVERED - 1 : MAX_COVERED));
  writeState(store, checkpoint, kept ? [kept, ...recent] : recent);
}

/** The scope of the export that finished at `instant` (the watermark), when it is remembered. */
export function scopeAt(covered: readonly CoveredScope[], instant: string): ExportScope | undefined {
  return covered.findLast((entry) => Date.parse(entry.until) === Date.parse(instant))?.scope;
}

export function sameScope(a: ExportScope, b: ExportScope): boolean {
  return a.base === b.base && a.level === b.level && (a.groupId ?? '') === (b.groupId ?? '');
}

export function sameRequest(a: ExportRequest, b: ExportRequest): boolean {
  return sameScope(a, b) && (a.since ?? '') === (b.since ?? '') && sameTypes(a.types, b.types);
}

/**
 * `_type` is a set: the same types in another order, or one listed twice, ask for the same export (an export in flight
 * is resumed, not abandoned for a reordered source.types). Compared as written: resource types are case-sensitive, and
 * the config takes them so (no case folding).
 */
function sameTypes(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((type) => right.has(type));
}

/** The one stored text, read and parsed once: the export in flight (if any) and the finished scopes beside it. */
function readState(store: CheckpointStore): { checkpoint: ExportCheckpoint | undefined; covered: readonly CoveredScope[] } {
  const text = store.get();
  let value: unknown;
  try {
    value = text === undefined ? undefined : (JSON.parse(text) as unknown);
  } catch {
    value = undefined;
  }
  const checkpoint = checkpointSchema.safeParse(value);
  const covered = coveredSchema.safeParse((value as { covered?: unknown } | undefined)?.covered);
  return { checkpoint: checkpoint.success ? (checkpoint.data as ExportCheckpoint) : undefined, covered: covered.success ? covered.data : [] };
}

/** The export's fields at the top level, the finished scopes beside them; nothing at all when both are empty. */
function writeState(store: CheckpointStore, checkpoint: ExportCheckpoint | undefined, covered: readonly CoveredScope[]): void {
  const empty = checkpoint === undefined && covered.length === 0;
  store.set(empty ? undefined : JSON.stringify({ ...checkpoint, ...(covered.length > 0 ? { covered } : {}) }));
}
