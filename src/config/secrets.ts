/** Secrets come from env vars or files only; this resolves a reference at the moment it is needed. */
import { readFileSync } from 'node:fs';
import { BridgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { warnIfFileExposed } from './file-mode.js';
import type { SecretRef } from './schema.js';

/** What an environment variable reference may name. Anything else may be the secret itself, pasted by mistake. */
export const ENV_VAR_NAME = /^[A-Z_][A-Z0-9_]*$/;

/**
 * @param what - the setting, named in errors and warnings (`purview.secret`).
 * @param logger - the caller's: a `{ file }` readable by others is warned about there (file-mode.ts), never refused.
 */
export function readSecret(ref: SecretRef, env: NodeJS.ProcessEnv, what: string, logger?: Pick<Logger, 'warn'>): string {
  if ('env' in ref) {
    if (!ENV_VAR_NAME.test(ref.env)) {
      // Not echoed: a value that is no variable name is likely the secret (`--app-secret-env <the secret>`).
      throw new BridgeError(
        'BRG_ERR_CONFIG_INVALID',
        `${what}: the environment variable name given is not one (upper-case letters, digits and _ only, such as PURVIEW_APP_SECRET). Pass the variable's name, never the secret itself; if it was the secret, rotate it.`,
      );
    }
    // Trimmed as a file's is: a value set from a file that ends in a newline (a Kubernetes secretKeyRef, an env file
    // with CRLF) would otherwise carry it into the secret, and the token endpoint refuse it.
    const value = env[ref.env]?.trim();
    if (!value) {
      throw new BridgeError('BRG_ERR_CONFIG_SECRET_MISSING', `${what}: environment variable ${ref.env} is not set.`, {
        details: { env: ref.env },
      });
    }
    return value;
  }
  let value: string;
  try {
    value = readFileSync(ref.file, 'utf8').trim();
  } catch (cause) {
    // The reference is not echoed: pasted where its path belongs, it is the secret itself.
    throw new BridgeError(
      'BRG_ERR_CONFIG_SECRET_MISSING',
      `${what}: cannot read the secret file its \`file\` names (${errnoOf(cause)}). Check the path and that this user may read it.`,
      {
        cause,
      },
    );
  }
  if (value === '') throw new BridgeError('BRG_ERR_CONFIG_SECRET_MISSING', `${what}: the secret file its \`file\` names is empty.`);
  // Read, so the path is a file's, not a secret pasted where it belongs: it may be named.
  warnIfFileExposed(ref.file, what, logger);
  return value;
}

/** A file error's code (ENOENT, EACCES…), never its message: Node's message quotes the path. */
export function errnoOf(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'unreadable';
}
