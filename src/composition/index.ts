/** The composition root: config → the wired pieces the CLI, the service, the doctor and `bridge push` run. */
export {
  buildFhirClient,
  buildSyncDeps,
  bulkDownloadsDir,
  destinationOf,
  dropFolderOf,
  findConnector,
  loadConnectorMapping,
  type RuntimeContext,
} from './connector.js';
export { buildPurviewCredential, buildPushTarget, buildSmartTokenSource, type CredentialContext } from './credentials.js';
export { holderIsGone, leasePolicy } from './process.js';
export { openWritableStateStore } from './state.js';
