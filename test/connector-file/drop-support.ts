/** Connector files as a Clarity export drops them, and a drop folder + archive in a temp dir, for the flat-file source tests. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type ConnectorSchema, SCHEMA_COLUMNS } from '../../src/connector-file/index.js';
import type { Sandbox } from '../../src/sandbox/index.js';

export const EPIC_COLUMNS = SCHEMA_COLUMNS.epic.map((c) => c.name);
export const EPIC_HEADER = EPIC_COLUMNS.join('\t');

/** Data rows with every Epic column filled, unique per `tag` and index, with some UTF-8 in them. */
export function epicRows(count: number, tag: string): string[] {
  return Array.from({ length: count }, (_, i) =>
    EPIC_COLUMNS.map((column, c) =>
      c === 0 ? `2026-11-01T10:${String(i % 60).padStart(2, '0')}:00Z` : c === 6 ? `Åse-${tag}${i}` : `${column.slice(0, 3)}${c}-${tag}${i}`,
    ).join('\t'),
  );
}

export function fileText(rows: readonly string[], header = EPIC_HEADER, eol = '\r\n'): string {
  return [header, ...rows].map((line) => `${line}${eol}`).join('');
}

export interface DropDirs {
  readonly root: string;
  readonly dir: string;
  readonly archiveDir: string;
}

/** A drop folder and an archive path (not created) in a new temp dir, under `parent` when given (the caller removes it). */
export function dropDirs(prefix = 'bridge-drop-', parent = tmpdir()): DropDirs {
  const root = mkdtempSync(join(parent, prefix));
  const dir = join(root, 'drop');
  const archiveDir = join(root, 'archive');
  mkdirSync(dir, { recursive: true });
  return { root, dir, archiveDir };
}

/** Writes a file into the drop folder with a given modification time (ms since the epoch). */
export function drop(dirs: DropDirs, name: string, content: string | Buffer, mtimeMs: number): string {
  const path = join(dirs.dir, name);
  writeFileSync(path, content);
  utimesSync(path, mtimeMs / 1000, mtimeMs / 1000);
  return path;
}

export function headerOf(schema: ConnectorSchema, delimiter = '\t'): string {
  return SCHEMA_COLUMNS[schema].map((c) => c.name).join(delimiter);
}

/**
 * The sandbox's config with its connector reading the drop folder (source overrides merged), written as JSON beside
 * the folders; returns the path.
 */
export function flatFileConfig(sandbox: Sandbox, dirs: DropDirs, source: Record<string, unknown> = {}, name = 'bridge.config.json'): string {
  const config = JSON.parse(JSON.stringify(sandbox.config)) as { connectors: Array<Record<string, unknown>> } & Record<string, unknown>;
  const connector = config.connectors[0] as Record<string, unknown>;
  connector['source'] = { type: 'flat-file', dir: dirs.dir, archiveDir: dirs.archiveDir, pattern: '*.txt', ...source };
  const path = join(dirs.root, name);
  writeFileSync(path, JSON.stringify(config, null, 2), { mode: 0o600 });
  return path;
}

const ROOT = resolve(import.meta.dirname, '..', '..');

export interface CliRun {
  readonly child: ChildProcess;
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  stdout(): string;
}

/** The CLI from the sources, as `npm run bridge` starts it (heap capped like the image). */
export function bridgeCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): CliRun {
  const child = spawn(process.execPath, ['--max-old-space-size=256', '--max-semi-space-size=4', '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolveDone) =>
    child.on('close', (code, signal) => resolveDone({ code, signal, stdout, stderr })),
  );
  return { child, done, stdout: () => stdout };
}
