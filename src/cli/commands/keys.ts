/**
 * `bridge keys`: the SMART signing keys in the keys directory. Private keys are written 0600 and never printed;
 * `jwks` prints the public set that the EHR fetches from the JWK Set URL (`bridge serve` serves the same set at
 * GET /.well-known/jwks.json).
 */
import { Command, Option } from 'commander';
import { findConnector } from '../../composition/index.js';
import { CONFIG_PATH_ENV, loadConfig, smartSettings } from '../../config/index.js';
import { describeKeys, generateKey, openKeyStore, retireKey, rotateKey, SIGNING_ALGS, type SigningAlg } from '../../smart/index.js';

export interface KeysCommandOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly print: (line: string) => void;
  /** Milliseconds since the epoch (retire compares the active key's age with it). */
  readonly now: () => number;
}

interface WhereFlags {
  keysDir?: string;
  config?: string;
  connector?: string;
}

const ASSERTION_LIFETIME_MS = 300_000;
const DEFAULT_JWKS_MAX_AGE_SEC = 3600;

/**
 * Which keys directory, and how long the served JWK Set may be cached: --keys-dir, else the connector's smart.keysDir
 * (and server.jwksMaxAgeSec) from --config or $BRIDGE_CONFIG, else $BRIDGE_KEYS_DIR, else ./keys.
 */
function where(options: KeysCommandOptions, flags: WhereFlags): { dir: string; jwksMaxAgeSec: number } {
  const path = flags.config ?? options.env[CONFIG_PATH_ENV];
  if (path && !flags.keysDir) {
    const config = loadConfig({ path, env: options.env });
    return { dir: smartSettings(findConnector(config, flags.connector)).keysDir, jwksMaxAgeSec: config.server.jwksMaxAgeSec };
  }
  return { dir: flags.keysDir ?? options.env['BRIDGE_KEYS_DIR'] ?? 'keys', jwksMaxAgeSec: DEFAULT_JWKS_MAX_AGE_SEC };
}

/** Every subcommand says where its keys are the same way. */
function withWhere(command: Command): Command {
  return (
    command
      .option('--keys-dir <dir>', 'keys directory (default: smart.keysDir of the config, else $BRIDGE_KEYS_DIR, else ./keys)')
      // No short flags: a kid may start with "-" and any letter (retire takes such a word as the kid).
      .option('--config <file>', 'config file whose connector names the keys directory; default $BRIDGE_CONFIG')
      .option('--connector <name>', 'connector of the config (default the first)')
  );
}

function algOption(description: string): Option {
  return new Option('--alg <alg>', description).choices([...SIGNING_ALGS]);
}

export function keysCommand(options: KeysCommandOptions): Command {
  return new Command('keys')
    .description(
      'Manage the SMART backend-services signing keys (private keys 0600, jwks.json, active kid). The directory: --keys-dir, else smart.keysDir of the config (--config or $BRIDGE_CONFIG), else $BRIDGE_KEYS_DIR, else ./keys.',
    )
    .addCommand(generateSubcommand(options))
    .addCommand(rotateSubcommand(options))
    .addCommand(retireSubcommand(options))
    .addCommand(jwksSubcommand(options));
}

function generateSubcommand(options: KeysCommandOptions): Command {
  const { print } = options;
  return withWhere(new Command('generate'))
    .description('Create the first signing key; refuses to replace an existing set without --force.')
    .addOption(algOption('signing algorithm (ES384 recommended by Epic)').default('ES384'))
    .option('--force', 'replace the existing key set (the old keys stop being published)')
    .action(async (flags: WhereFlags & { alg: SigningAlg; force?: boolean }) => {
      const { dir } = where(options, flags);
      const { kid } = await generateKey(dir, flags.alg, { force: flags.force === true });
      print(`generated ${flags.alg} key ${kid} in ${dir}`);
      print(`publish ${dir}/jwks.json at your JWK Set URL (bridge serve: GET /.well-known/jwks.json) before the first sync`);
    });
}

function rotateSubcommand(options: KeysCommandOptions): Command {
  const { print } = options;
  return withWhere(new Command('rotate'))
    .description('Add a new key, publish it next to the current one and sign with it from now on.')
    .addOption(algOption('algorithm of the new key; default: that of the current key'))
    .action(async (flags: WhereFlags & { alg?: SigningAlg }) => {
      const { dir, jwksMaxAgeSec } = where(options, flags);
      const current = describeKeys(dir);
      const alg = flags.alg ?? current.keys.find((k) => k.kid === current.activeKid)?.alg ?? 'ES384';
      const { kid, previousKid } = await rotateKey(dir, alg);
      print(`rotated: ${alg} key ${kid} now signs; ${previousKid} stays published`);
      print(
        `after ${Math.round(Math.max(jwksMaxAgeSec * 1000, ASSERTION_LIFETIME_MS) / 60_000)} minutes (the JWK Set's cache max-age, at least the 5-minute assertion lifetime), run: bridge keys retire -- ${previousKid}`,
      );
    });
}

function retireSubcommand(options: KeysCommandOptions): Command {
  const { print } = options;
  return (
    withWhere(new Command('retire'))
      .description(
        "Stop publishing a non-active key and delete its private key file; refused until the active key is older than the JWK Set's cache max-age, unless --force.",
      )
      .argument('<kid>', 'kid of the key to retire (a kid may start with "-": put -- before it, as rotate prints)')
      .option('--force', 'retire even though caches of the JWK Set may not have seen the active key yet')
      // A kid is base64url and may start with "-": unknown "-…" words are the kid rather than errors.
      .allowUnknownOption()
      .action(async (kid: string, flags: WhereFlags & { force?: boolean }) => {
        const { dir, jwksMaxAgeSec } = where(options, flags);
        await retireKey(dir, kid, { minActiveAgeMs: Math.max(jwksMaxAgeSec * 1000, ASSERTION_LIFETIME_MS), nowMs: options.now(), force: flags.force === true });
        print(`retired ${kid}`);
      })
  );
}

function jwksSubcommand(options: KeysCommandOptions): Command {
  return withWhere(new Command('jwks'))
    .description('Print the public JWK Set (no private members).')
    .action((flags: WhereFlags) => {
      options.print(JSON.stringify(openKeyStore(where(options, flags).dir).publicJwks(), null, 2));
    });
}
