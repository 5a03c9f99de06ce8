/** Secrets come from env vars or files only; this resolves a reference at the moment it is needed. */
import { readFileSync } from 'node:fs';
import { BridgeError } from '../errors.js';
import type { SecretRef } from './schema.js';

export function readSecret(ref: SecretRef, env: NodeJS.ProcessEnv, what: string): string {
  if ('env' in ref) {
    const value = env[ref.env];
    if (!value) {
      throw new BridgeError('BRG_ERR_CONFIG_SECRET_MISSING', `${what}: environment variable ${ref.env} is not set.`, {
        details: { env: ref.env },
      });
    }
    return value;
  }
  try {
    return readFileSync(ref.file, 'utf8').trim();
  } catch (cause) {
    throw new BridgeError('BRG_ERR_CONFIG_SECRET_MISSING', `${what}: cannot read secret file ${ref.file}.`, {
      cause,
      details: { file: ref.file },
    });
  }
}
