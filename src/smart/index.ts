/** SMART backend-services client: signing keys, the client assertion, token URL discovery and cached access tokens. */
export type { AssertionClaims, AssertionInput } from './assertion.js';
export {
  assertionClaims,
  buildAssertion,
  DEFAULT_ASSERTION_LIFETIME_SEC,
  DEFAULT_ASSERTION_SKEW_SEC,
  EXP_MARGIN_SEC,
  MAX_ASSERTION_SPAN_SEC,
  MAX_JTI_LENGTH,
} from './assertion.js';
export type { DiscoveryOptions } from './discovery.js';
export { discoverTokenUrl } from './discovery.js';
export type { PublishedJwk, SigningAlg } from './jwks.js';
export { isSigningAlg, SIGNING_ALGS, toPublicJwk } from './jwks.js';
export type { JwksUrlAnswer, JwksUrlOptions } from './jwks-url.js';
export { JWKS_URL_TIMEOUT_MS, jwksUrlProblem, readJwksUrl, servedProblem } from './jwks-url.js';
export type { GenerateKeyOptions, KeyStore, KeyStoreOptions, KeysDescription, NextSigningKey, SigningKey } from './keys.js';
export { describeKeys, generateKey, openKeyStore } from './keys.js';
export type { ActivateOptions, RetireOptions, RotateOptions } from './rotation.js';
export { ASSERTION_LIFETIME_MS, activateKey, DEFAULT_ACTIVATION_WAIT_MS, JWKS_READ_PERIOD_MS, retireKey, rotateKey } from './rotation.js';
export { scopesNotGranted, splitScopes } from './scopes.js';
export { SmartAuthError } from './token-errors.js';
export { JWT_BEARER_ASSERTION_TYPE } from './token-request.js';
export type { SmartTokenOptions } from './token-source.js';
export { createSmartTokenSource } from './token-source.js';
