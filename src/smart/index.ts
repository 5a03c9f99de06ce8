/** SMART backend-services client: signing keys, the client assertion, token URL discovery and cached access tokens. */
export type { AssertionClaims, AssertionInput } from './assertion.js';
export {
  assertionClaims,
  buildAssertion,
  DEFAULT_ASSERTION_LIFETIME_SEC,
  DEFAULT_ASSERTION_SKEW_SEC,
  MAX_ASSERTION_SPAN_SEC,
  MAX_JTI_LENGTH,
} from './assertion.js';
export type { DiscoveryOptions } from './discovery.js';
export { discoverTokenUrl } from './discovery.js';
export type { SigningAlg } from './jwks.js';
export { isSigningAlg, SIGNING_ALGS, toPublicJwk } from './jwks.js';
export type { GenerateKeyOptions, KeyStore, KeyStoreOptions, SigningKey } from './keys.js';
export { describeKeys, generateKey, openKeyStore, retireKey, rotateKey } from './keys.js';
export { scopesNotGranted, splitScopes } from './scopes.js';
export { SmartAuthError } from './token-errors.js';
export { JWT_BEARER_ASSERTION_TYPE } from './token-request.js';
export type { SmartTokenOptions } from './token-source.js';
export { createSmartTokenSource } from './token-source.js';
