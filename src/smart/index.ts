/** SMART backend-services client: signing keys, the client assertion, token URL discovery and cached access tokens. */
export type { SigningAlg } from './jwks.js';
export { SIGNING_ALGS, isSigningAlg, toPublicJwk } from './jwks.js';
export type { SigningKey, KeyStore, KeyStoreOptions, GenerateKeyOptions } from './keys.js';
export { openKeyStore, generateKey, rotateKey, retireKey, describeKeys } from './keys.js';
export type { AssertionInput, AssertionClaims } from './assertion.js';
export {
  buildAssertion,
  assertionClaims,
  DEFAULT_ASSERTION_LIFETIME_SEC,
  DEFAULT_ASSERTION_SKEW_SEC,
  MAX_ASSERTION_SPAN_SEC,
  MAX_JTI_LENGTH,
} from './assertion.js';
export type { DiscoveryOptions } from './discovery.js';
export { discoverTokenUrl } from './discovery.js';
export type { SmartTokenOptions } from './token-source.js';
export { createSmartTokenSource } from './token-source.js';
export { SmartAuthError } from './token-errors.js';
export { JWT_BEARER_ASSERTION_TYPE } from './token-request.js';
export { scopesNotGranted, splitScopes } from './scopes.js';
