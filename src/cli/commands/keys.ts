/**
 * `bridge keys`: the SMART signing keys in the keys directory. Private keys are written 0600 and never printed;
 * `jwks` prints the public set that the EHR fetches from the JWK Set URL (`bridge serve` serves the same set at
 * GET /.well-known/jwks.json).
 */
import { Command, Option } from 'commander';
import { SIGNING_ALGS, describeKeys, generateKey, openKeyStore, retireKey, rotateKey, type SigningAlg } from '../../smart/index.js';

export interface KeysCommandOptions {
  /** The keys directory, resolved when a subcommand runs (default `keys`, or $BRIDGE_KEYS_DIR at the entry point). */
  readonly keysDir: () => string;
  readonly print: (line: string) => void;
}

function algOption(description: string): Option {
  return new Option('--alg <alg>', description).choices([...SIGNING_ALGS]);
}

export function keysCommand(options: KeysCommandOptions): Command {
  return new Command('keys')
    .description('Manage the SMART backend-services signing keys (private keys 0600, jwks.json, active kid).')
    .addCommand(generateSubcommand(options))
    .addCommand(rotateSubcommand(options))
    .addCommand(retireSubcommand(options))
    .addCommand(jwksSubcommand(options));
}

function generateSubcommand({ keysDir, print }: KeysCommandOptions): Command {
  return new Command('generate')
    .description('Create the first signing key; refuses to replace an existing set without --force.')
    .addOption(algOption('signing algorithm (ES384 recommended by Epic)').default('ES384'))
    .option('--force', 'replace the existing key set (the old keys stop being published)')
    .action(async (flags: { alg: SigningAlg; force?: boolean }) => {
      const dir = keysDir();
      const { kid } = await generateKey(dir, flags.alg, { force: flags.force === true });
      print(`generated ${flags.alg} key ${kid} in ${dir}`);
      print(`publish ${dir}/jwks.json at your JWK Set URL (bridge serve: GET /.well-known/jwks.json) before the first sync`);
    });
}

function rotateSubcommand({ keysDir, print }: KeysCommandOptions): Command {
  return new Command('rotate')
    .description('Add a new key, publish it next to the current one and sign with it from now on.')
    .addOption(algOption('algorithm of the new key; default: that of the current key'))
    .action(async (flags: { alg?: SigningAlg }) => {
      const dir = keysDir();
      const current = describeKeys(dir);
      const alg = flags.alg ?? current.keys.find((k) => k.kid === current.activeKid)?.alg ?? 'ES384';
      const { kid, previousKid } = await rotateKey(dir, alg);
      print(`rotated: ${alg} key ${kid} now signs; ${previousKid} stays published`);
      print(`after at least 5 minutes (the longest assertion lifetime), run: bridge keys retire -- ${previousKid}`);
    });
}

function retireSubcommand({ keysDir, print }: KeysCommandOptions): Command {
  return new Command('retire')
    .description('Stop publishing a non-active key and delete its private key file.')
    .argument('<kid>', 'kid of the key to retire')
    // A kid is base64url and may start with "-": with no options of its own, retire takes any "-…" word as the kid
    // rather than as an unknown option (`--` before the kid works too, and is what rotate prints).
    .allowUnknownOption()
    .action(async (kid: string) => {
      await retireKey(keysDir(), kid);
      print(`retired ${kid}`);
    });
}

function jwksSubcommand({ keysDir, print }: KeysCommandOptions): Command {
  return new Command('jwks')
    .description('Print the public JWK Set (no private members).')
    .action(() => {
      print(JSON.stringify(openKeyStore(keysDir()).publicJwks(), null, 2));
    });
}
