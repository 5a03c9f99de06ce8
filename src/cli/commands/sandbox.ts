import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import type { ConfigInput } from '../../config/index.js';
import { BridgeError } from '../../errors.js';
import type { CliContext } from '../context.js';

/**
 * The offline sandbox is a development tool: its packages (@medplum/*, selfsigned) are dev dependencies and
 * tsconfig.build.json compiles dist/ without src/sandbox/. So nothing here refers to src/sandbox/ in a way TypeScript
 * follows (an `import type`, or `import()` of a string literal, would compile the sandbox into dist/ again): the module
 * is loaded from a specifier held in a variable and typed by the interfaces below, which
 * test/ops/sandbox-boundary.test.ts checks the real module satisfies.
 */
const SANDBOX_MODULE = '../../sandbox/index.js';

/** What `bridge sandbox` and `bridge demo` pass to startSandbox (src/sandbox/index.ts SandboxOptions). */
export interface SandboxStartOptions {
  readonly dir: string;
  readonly data?: {
    readonly seed?: number;
    readonly events?: number;
    readonly patients?: number;
    readonly practitioners?: number;
    readonly start?: string;
    readonly end?: string;
  };
  readonly backend?: 'memory' | 'generated';
  readonly listAuditEvent?: boolean;
  readonly ingestRecord?: 'rows' | 'count' | 'digest';
  readonly schema?: 'epic' | 'healthcare';
}

/** A digest of a multiset of rows (src/sandbox/row-digest.ts). */
export interface SandboxRowDigestValue {
  readonly rows: number;
  readonly sum: string;
  readonly xor: string;
}

/** The parts of a running sandbox (src/sandbox/index.ts Sandbox) the two commands read. */
export interface RunningSandbox {
  readonly auth: { readonly tokenUrl: string };
  readonly fhir: { readonly baseUrl: string };
  readonly entra: { readonly authorityHost: string };
  readonly ingest: {
    readonly baseUrl: string;
    accepted(jobId: string): ReadonlyArray<{ readonly header: string }>;
    rowDigest(jobId: string): SandboxRowDigestValue;
  };
  readonly dataset: {
    readonly options: {
      readonly seed: number;
      readonly events: number;
      readonly patients: number;
      readonly practitioners: number;
      readonly start: string;
      readonly end: string;
    };
    /** The users that have a Practitioner (the others are staff without a provider record). */
    practitioners(): Iterable<unknown>;
  };
  readonly ids: { readonly jobId: string };
  readonly config: ConfigInput;
  readonly configPath: string;
  readonly apiTokenPath: string;
  close(): Promise<void>;
}

/** The sandbox module as the CLI uses it. Function-typed properties, so parameter types are checked both ways. */
export interface SandboxModule {
  readonly startSandbox: (options: SandboxStartOptions) => Promise<RunningSandbox>;
  readonly createRowDigest: () => { add(row: string): void; value(): SandboxRowDigestValue };
}

/**
 * Loads the sandbox when a command runs it (never at start-up: the emulators stay out of `bridge sync`'s memory). In a
 * production install (`npm ci --omit=dev`, the Docker image, a dist/ compiled without it) it cannot be loaded, and
 * `BRG_ERR_SANDBOX_UNAVAILABLE` (exit 2) says how to get it.
 */
export async function loadSandbox(command: 'sandbox' | 'demo'): Promise<SandboxModule> {
  try {
    return (await import(SANDBOX_MODULE)) as SandboxModule;
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    const missing = /Cannot find (?:package|module) '([^']+)'/.exec(error instanceof Error ? error.message : '')?.[1] ?? 'a module';
    const why = /(^|[\\/])sandbox[\\/]index\.js$/.test(missing)
      ? 'this build of the bridge is compiled without it (dist/ has no sandbox/)'
      : `${missing} is not installed (the sandbox's packages are dev dependencies)`;
    throw new BridgeError(
      'BRG_ERR_SANDBOX_UNAVAILABLE',
      `\`bridge ${command}\` needs the offline sandbox, a development tool that this installation does not include: ${why}.`,
      {
        cause: error,
        details: { missing },
      },
    );
  }
}

interface SandboxFlags {
  dir: string;
  seed: string;
  events: string;
  patients: string;
  practitioners: string;
  auditEvent?: boolean;
  backend?: 'memory' | 'generated';
  schema?: 'epic' | 'healthcare';
}

/** Parses a positive integer flag with a message naming the flag. */
export function intFlag(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number ≥ 0, got "${value}"`);
  return n;
}

export function sandboxOptionsFrom(flags: SandboxFlags): SandboxStartOptions {
  return {
    dir: resolve(flags.dir),
    data: {
      seed: intFlag('seed', flags.seed),
      events: intFlag('events', flags.events),
      patients: intFlag('patients', flags.patients),
      practitioners: intFlag('practitioners', flags.practitioners),
    },
    ...(flags.auditEvent === false ? { listAuditEvent: false } : {}),
    ...(flags.backend ? { backend: flags.backend } : {}),
    ...(flags.schema ? { schema: flags.schema } : {}),
  };
}

/**
 * Above this many events the sandbox serves its data lazily: the memory backend (real search over loaded resources)
 * indexes every resource it loads, about 200 events a second, and 50,000 events outgrew the CLI's 256 MB heap.
 */
export const MEMORY_BACKEND_MAX_EVENTS = 10_000;

/** The backend asked for, else memory for small data sets and generated above MEMORY_BACKEND_MAX_EVENTS. */
export function backendFor(asked: 'memory' | 'generated' | undefined, options: SandboxStartOptions): 'memory' | 'generated' {
  return asked ?? ((options.data?.events ?? 0) > MEMORY_BACKEND_MAX_EVENTS ? 'generated' : 'memory');
}

export function addSandboxDataOptions(command: Command, defaultDir: string): Command {
  return command
    .option('--dir <dir>', 'where the sandbox writes its key, CA, secret and config', defaultDir)
    .option('--seed <n>', 'data generator seed (same seed, same data)', '42')
    .option('--events <n>', 'audit events to generate', '1000')
    .option('--patients <n>', 'patients to generate', '200')
    .option('--practitioners <n>', 'EHR users to generate (about one in ten is staff without a provider record, so without a Practitioner)', '25');
}

const DEFAULT_SANDBOX_DIR = 'state/sandbox';

export function sandboxCommand(ctx: CliContext): Command {
  return addSandboxDataOptions(new Command('sandbox'), DEFAULT_SANDBOX_DIR)
    .description('Start the offline sandbox (Epic-like SMART + FHIR, Entra ID, Purview ingestion) and print its URLs and a config to sync against it.')
    .option('--no-audit-event', "imitate Epic's public server: /metadata lists no AuditEvent")
    .addOption(
      new Option('--schema <schema>', "the Purview job's connector schema, and the config's mapping.schema (default epic)").choices(['epic', 'healthcare']),
    )
    .addOption(
      new Option(
        '--backend <kind>',
        `memory: real search over loaded resources; generated: serve the dataset lazily (millions of events). Default: memory up to ${MEMORY_BACKEND_MAX_EVENTS.toLocaleString('en-US')} events`,
      ).choices(['memory', 'generated']),
    )
    .action(async (flags: SandboxFlags) => {
      const { startSandbox } = await loadSandbox('sandbox');
      const options = sandboxOptionsFrom(flags);
      const fresh = freshSandboxState(options.dir);
      const sandbox = await startSandbox({ ...options, backend: backendFor(flags.backend, options), data: { ...options.data, ...dayBefore(ctx.clock.now()) } });
      const window = sandbox.dataset.options;
      ctx.print(`Epic-like SMART token endpoint  ${sandbox.auth.tokenUrl}`);
      ctx.print(`FHIR R4 base                    ${sandbox.fhir.baseUrl}`);
      ctx.print(`Entra ID authority host         ${sandbox.entra.authorityHost}`);
      ctx.print(`Purview ingestion base          ${sandbox.ingest.baseUrl}`);
      const providers = [...sandbox.dataset.practitioners()].length;
      ctx.print(
        `Data: ${window.events} events, ${window.patients} patients, ${window.practitioners} users (${providers} with a Practitioner, ${window.practitioners - providers} staff named by identifier only), ${window.start} → ${window.end}`,
      );
      if (fresh) ctx.print(`State: ${fresh} removed (a sandbox starts afresh: its ports, ids and keys are new on every start).`);
      ctx.print(`Config written to ${sandbox.configPath} (secrets in 0600 files beside it). In another terminal:`);
      ctx.print(`  npm run bridge -- sync --config ${sandbox.configPath} --since ${window.start} --until ${window.end}`);
      ctx.print(
        `The service (operator page, /v1): npm run bridge -- serve --config ${sandbox.configPath}; its API token is in ${sandbox.apiTokenPath} (Authorization: Bearer <token>; the page asks for it).`,
      );
      ctx.print('Ctrl-C stops the sandbox.');
      await new Promise<void>((done) => ctx.stopSignal.addEventListener('abort', () => done(), { once: true }));
      await sandbox.close();
    });
}

const DAY_MS = 86_400_000;

/**
 * The sandbox's events fill the UTC day before today: a plain `bridge sync` (which starts fhir.initialLookbackHours
 * back) reads them, and the printed backfill stays within the delivery ledger's memory after later runs moved the
 * watermark to now (a fixed date would fall out of it a month later). `bridge demo` keeps its fixed day (same data,
 * same digest).
 */
export function dayBefore(nowMs: number): { start: string; end: string } {
  const end = Math.floor(nowMs / DAY_MS) * DAY_MS;
  return { start: new Date(end - DAY_MS).toISOString(), end: new Date(end).toISOString() };
}

/** Written into the sandbox's state directory: only a directory holding it is ever removed. */
const SANDBOX_STATE_MARKER = '.sandbox-state';

/**
 * A sandbox's ports, ids and keys are new on every start, so the bridge state of an earlier start (its watermark read
 * another FHIR base, its ledger another job) only stands in the way: it is removed, as the Compose service does. Only a
 * state directory a sandbox marked as its own: `--dir .` in a deployment's folder names its real `state/`, which is
 * refused, never emptied. Returns what was removed, if anything; the directory is left marked.
 */
export function freshSandboxState(dir: string): string | undefined {
  const state = join(dir, 'state');
  // Sandboxes before the marker left their CA beside the state, in the default directory.
  const legacy = resolve(dir) === resolve(DEFAULT_SANDBOX_DIR) && existsSync(join(dir, 'sandbox-ca.pem'));
  const marked = existsSync(join(state, SANDBOX_STATE_MARKER)) || legacy;
  // An unmarked directory is not the sandbox's to mark, empty or not: a deployment's state/ before its first run.
  if (!marked && existsSync(state)) {
    throw new BridgeError(
      'BRG_ERR_INPUT_INVALID',
      `${state} is not a sandbox's state directory (a bridge's own?): the sandbox would use it and empty it on its next start. Give the sandbox a --dir of its own (default ${DEFAULT_SANDBOX_DIR}), or remove ${state} if an older sandbox left it.`,
    );
  }
  if (marked) rmSync(state, { recursive: true, force: true });
  mkdirSync(state, { recursive: true, mode: 0o700 });
  writeFileSync(join(state, SANDBOX_STATE_MARKER), 'The state of `bridge sandbox`: removed when it starts again.\n', { mode: 0o600 });
  return marked ? state : undefined;
}
