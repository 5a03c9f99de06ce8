/**
 * `bridge keys`: the SMART signing keys in the keys directory. Private keys are written 0600 and never printed;
 * `jwks` prints the public set that the EHR fetches from the JWK Set URL (`bridge serve` serves the same set at
 * GET /.well-known/jwks.json). Rotation has two phases: `rotate` publishes the new key, which signs once the JWK Set's
 * caches have had server.jwksMaxAgeSec to refresh (by itself at a token request, or with `activate`).
 */
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { findConnector } from '../../composition/index.js';
import { CONFIG_PATH_ENV, loadConfig, smartSettings } from '../../config/index.js';
import { BridgeError } from '../../errors.js';
import { createDispatcher, fetchVia, type NetworkSettings, resolveNetwork } from '../../net/index.js';
import {
  ASSERTION_LIFETIME_MS,
  activateKey,
  describeKeys,
  generateKey,
  JWKS_READ_PERIOD_MS,
  jwksUrlProblem,
  openKeyStore,
  type PublishedJwk,
  retireKey,
  rotateKey,
  SIGNING_ALGS,
  type SigningAlg,
} from '../../smart/index.js';
import { keysDirWithoutConfig } from '../context.js';
import { optionWithValue } from '../program.js';

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

const DEFAULT_JWKS_MAX_AGE_SEC = 3600;

interface Where {
  readonly dir: string;
  readonly jwksMaxAgeSec: number;
  /** smart.jku of the connector, when the config names one. */
  readonly jku?: string;
  /** smart.jku of every connector of the config whose smart.keysDir is the connector's (it included): one switch for all. */
  readonly jkus: readonly string[];
  /** The config's network section (proxy, CA), for reading the JWK Set URL. */
  readonly network: NetworkSettings;
}

/**
 * Which keys directory, and how long the served JWK Set may be cached: --keys-dir, else the connector's smart.keysDir
 * from --config or $BRIDGE_CONFIG (--connector, else the first connector with a smart section: a flat-file connector has
 * none), else $BRIDGE_KEYS_DIR, else ./keys. A config, when there is one, always gives
 * server.jwksMaxAgeSec, smart.jku and the network section: --keys-dir only changes the directory (keys managed in a
 * copy of the one the services read must still wait for the same caches and URL).
 */
function where(options: KeysCommandOptions, flags: WhereFlags): Where {
  const path = flags.config ?? options.env[CONFIG_PATH_ENV];
  if (path) {
    const config = loadConfig({ path, env: options.env });
    // Only connectors with a smart section sign (a flat-file connector has none): the default is the first of them.
    const signing = config.connectors.flatMap((c) => (c.smart ? [c.smart] : []));
    const smart = flags.connector ? smartSettings(findConnector(config, flags.connector)) : signing[0];
    if (smart) {
      const sharing = signing.filter((other) => resolve(other.keysDir) === resolve(smart.keysDir));
      return {
        dir: flags.keysDir ?? smart.keysDir,
        jkus: [...new Set(sharing.flatMap((other) => (other.jku ? [other.jku] : [])))],
        jwksMaxAgeSec: config.server.jwksMaxAgeSec,
        ...(smart.jku ? { jku: smart.jku } : {}),
        network: resolveNetwork(config.network, options.env),
      };
    }
    // No connector signs: the config still gives the cache max-age and the network; the directory as without a config.
    return {
      dir: keysDirWithoutConfig(flags.keysDir, options.env),
      jkus: [],
      jwksMaxAgeSec: config.server.jwksMaxAgeSec,
      network: resolveNetwork(config.network, options.env),
    };
  }
  return {
    dir: keysDirWithoutConfig(flags.keysDir, options.env),
    jkus: [],
    jwksMaxAgeSec: DEFAULT_JWKS_MAX_AGE_SEC,
    network: resolveNetwork(undefined, options.env),
  };
}

/** The flags that said where the keys are, for a printed follow-up command: it must act on the same directory. */
function whereArgs(flags: WhereFlags): string {
  const quoted = (value: string) => (/^[\w./:@-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`);
  return [
    ...(flags.keysDir ? [` --keys-dir ${quoted(flags.keysDir)}`] : []),
    ...(flags.config ? [` --config ${quoted(flags.config)}`] : []),
    ...(flags.connector ? [` --connector ${quoted(flags.connector)}`] : []),
  ].join('');
}

/** Every subcommand says where its keys are the same way. */
function withWhere(command: Command): Command {
  return (
    command
      .option('--keys-dir <dir>', 'keys directory (default: smart.keysDir of the config, else $BRIDGE_KEYS_DIR, else ./keys)')
      // No short flags: a kid may start with "-" and any letter (retire takes such a word as the kid).
      .option('--config <file>', 'config file whose connector names the keys directory; default $BRIDGE_CONFIG')
      .option('--connector <name>', 'connector of the config (default the first with a smart section)')
  );
}

/**
 * activate and retire take an unknown "-…" word as the kid (a kid may start with "-"), but a kid has no "=", ":" or
 * space: such a word is an option written with its value (`--app-secret=…`), refused naming it without the value, as
 * every command does (src/cli/program.ts), rather than printed back whole as an invalid kid.
 */
function refuseOptionWithValue(command: Command, kid: string): void {
  const written = optionWithValue(kid);
  if (written) command.error(`error: unknown option '${written.name}' (the value given is not shown)`, { code: 'commander.unknownOption' });
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
    .addCommand(activateSubcommand(options))
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
    .description(
      "Add a new key and publish it next to the current one, which keeps signing until the JWK Set's caches have had server.jwksMaxAgeSec to refresh; the new key then signs from the next token request (or `activate` it).",
    )
    .addOption(algOption('algorithm of the new key; default: that of the current key'))
    .action(async (flags: WhereFlags & { alg?: SigningAlg }) => {
      const { dir, jwksMaxAgeSec, jku, jkus } = where(options, flags);
      const current = describeKeys(dir);
      const alg = flags.alg ?? current.keys.find((k) => k.kid === current.activeKid)?.alg ?? 'ES384';
      const { kid, previousKid, activeFromMs } = await rotateKey(dir, alg, {
        now: options.now,
        waitMs: jwksMaxAgeSec * 1000,
        jkus,
        where: whereArgs(flags),
      });
      print(`rotated: published ${alg} key ${kid} in ${dir}/jwks.json; ${previousKid} keeps signing for now`);
      const others = jkus.filter((url) => url !== jku);
      const served = jku || others.length > 0 ? `, and once ${[...(jku ? [jku] : []), ...others].join(' and ')} serves it` : '';
      print(
        `${kid} signs from the first token request after ${new Date(activeFromMs).toISOString()} (${JWKS_READ_PERIOD_MS / 1000} s for bridge serve to re-read jwks.json, then server.jwksMaxAgeSec ${jwksMaxAgeSec} s: caches of the JWK Set serve it by then${served})`,
      );
      print(`if your JWK Set URL serves a copy, upload ${dir}/jwks.json there now; to switch earlier: bridge keys activate${whereArgs(flags)} --now -- ${kid}`);
      print(`5 minutes after ${kid} signs, run: bridge keys retire${whereArgs(flags)} -- ${previousKid}`);
    });
}

function activateSubcommand(options: KeysCommandOptions): Command {
  const { print } = options;
  return withWhere(new Command('activate'))
    .description(
      "Sign with the key `rotate` published; refused before server.jwksMaxAgeSec has passed since (unless --now) and unless every JWK Set URL serves the key: the config's smart.jku and those `rotate` recorded in next-key.json.",
    )
    .argument('<kid>', 'kid of the published key (put -- before it, as rotate prints)')
    .option('--now', 'do not wait for the JWK Set cache max-age (the JWK Set URL is still checked)')
    .allowUnknownOption()
    .action(async (kid: string, flags: WhereFlags & { now?: boolean }, command: Command) => {
      refuseOptionWithValue(command, kid);
      const { dir, jku, jkus, network, jwksMaxAgeSec } = where(options, flags);
      // Every URL of the connectors sharing the directory: the switch is theirs too. activateKey adds those rotate
      // recorded in next-key.json, which are all there is without a config (--keys-dir alone).
      const fromConfig = [...new Set([...(jku ? [jku] : []), ...jkus])];
      const verify = async (publicJwk: PublishedJwk, urls: readonly string[]): Promise<void> => {
        for (const url of urls)
          await refuseUnlessServed(url, fromConfig.includes(url) ? 'smart.jku' : 'recorded by rotate in next-key.json', publicJwk, network);
      };
      const nowMs = options.now();
      const activated = await activateKey(dir, kid, { nowMs, force: flags.now === true, jkus: fromConfig, verify });
      const { previousKid, publishedAtMs, jkus: checked } = activated;
      print(`activated: ${kid} signs from the next token request${checked.length > 0 ? ` (served at ${checked.join(' and ')})` : ''}`);
      if (!previousKid) return;
      // retire's own rule: the active key published a cache max-age ago (at least 5 minutes), and signing for 5 minutes.
      const retireFromMs = Math.max(publishedAtMs + Math.max(jwksMaxAgeSec * 1000, ASSERTION_LIFETIME_MS), nowMs + ASSERTION_LIFETIME_MS);
      const when =
        retireFromMs <= nowMs + ASSERTION_LIFETIME_MS
          ? '5 minutes from now'
          : `from ${new Date(retireFromMs).toISOString()} (server.jwksMaxAgeSec ${jwksMaxAgeSec} s after ${kid} was published)`;
      print(`${when}, run: bridge keys retire${whereArgs(flags)} -- ${previousKid}`);
    });
}

/**
 * Reads the JWK Set URL through the config's proxy and CA (a short timeout) and refuses unless it serves the key.
 * `source` says where the URL came from, so an operator without a config knows why it was read.
 */
async function refuseUnlessServed(jku: string, source: string, publicJwk: PublishedJwk, network: Where['network']): Promise<void> {
  const dispatcher = createDispatcher(network);
  try {
    const problem = await jwksUrlProblem(jku, publicJwk, { fetch: fetchVia(dispatcher) });
    if (problem === undefined) return;
    throw new BridgeError(
      'BRG_ERR_KEY_NOT_PUBLISHED',
      `The JWK Set URL ${jku} (${source}) does not serve key ${publicJwk.kid} yet (${problem}); the EHR would refuse its signatures. Publish jwks.json there (or let its cache expire), then activate again.`,
      { details: { kid: publicJwk.kid } },
    );
  } finally {
    await dispatcher.close();
  }
}

function retireSubcommand(options: KeysCommandOptions): Command {
  const { print } = options;
  return (
    withWhere(new Command('retire'))
      .description(
        "Stop publishing a non-active key and delete its private key file; refused until the active key is older than the JWK Set's cache max-age and has signed for 5 minutes, unless --force (retiring the key waiting to sign cancels the rotation).",
      )
      .argument('<kid>', 'kid of the key to retire (a kid may start with "-": put -- before it, as rotate prints)')
      .option('--force', 'retire even though caches of the JWK Set may not have seen the active key yet')
      // A kid is base64url and may start with "-": unknown "-…" words are the kid rather than errors.
      .allowUnknownOption()
      .action(async (kid: string, flags: WhereFlags & { force?: boolean }, command: Command) => {
        refuseOptionWithValue(command, kid);
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
