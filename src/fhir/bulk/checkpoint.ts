/**
 * What a Bulk Data export leaves in the state store between runs (StateStore.getSourceState, one JSON text per
 * connector): the request it answers, the status URL, the manifest once it came, and the files already on local disk.
 * A run that dies (crash, kill -9, a lost machine) is continued by the next one: polling the same status URL, or
 * downloading only the files not yet complete. No PHI: URLs, counts and times only.
 */
import { z } from 'zod';

/** The request an export answers: a run reuses a checkpoint only for exactly the same one. */
export interface ExportRequest {
  readonly level: 'system' | 'patient' | 'group';
  readonly groupId?: string | undefined;
  readonly types: readonly string[];
  /** `_since`: the previous export's transactionTime; absent on the first run (a full export). */
  readonly since?: string | undefined;
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
  /** Completed downloads, by index in `manifest.output`. */
  readonly files: Readonly<Record<string, LocalFile>>;
  /** The error files were read and reported (not again on resume). */
  readonly errorsReported?: boolean | undefined;
}

const fileSchema = z.object({ type: z.string(), url: z.string(), count: z.number().optional() });
const checkpointSchema = z.object({
  version: z.literal(1),
  id: z.string().regex(/^[A-Za-z0-9-]{1,64}$/),
  request: z.object({
    level: z.enum(['system', 'patient', 'group']),
    groupId: z.string().optional(),
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
  files: z.record(z.string(), z.object({ bytes: z.number(), gzip: z.boolean() })),
  errorsReported: z.boolean().optional(),
});

/** Where the checkpoint lives: the state store's source state of one connector. */
export interface CheckpointStore {
  get(): string | undefined;
  set(value: string | undefined): void;
}

/** The stored checkpoint, or undefined when there is none or it is unreadable (an older format: start afresh). */
export function loadCheckpoint(store: CheckpointStore): ExportCheckpoint | undefined {
  const text = store.get();
  if (text === undefined) return undefined;
  try {
    const parsed = checkpointSchema.safeParse(JSON.parse(text));
    return parsed.success ? (parsed.data as ExportCheckpoint) : undefined;
  } catch {
    return undefined;
  }
}

export function saveCheckpoint(store: CheckpointStore, checkpoint: ExportCheckpoint | undefined): void {
  store.set(checkpoint === undefined ? undefined : JSON.stringify(checkpoint));
}

export function sameRequest(a: ExportRequest, b: ExportRequest): boolean {
  return (
    a.level === b.level &&
    (a.groupId ?? '') === (b.groupId ?? '') &&
    (a.since ?? '') === (b.since ?? '') &&
    a.types.length === b.types.length &&
    a.types.every((type, i) => b.types[i] === type)
  );
}
