/** `bridge demo --source flat-file`: being built (issue #19); refuses with a clear message until then. */
import { BridgeError } from '../../errors.js';
import type { DemoSourceContext, DemoSourceRun } from './demo-sources.js';

export async function plan(_context: DemoSourceContext): Promise<DemoSourceRun> {
  throw new BridgeError('BRG_ERR_INPUT_INVALID', 'bridge demo --source flat-file is not available in this version; use --source fhir-search.');
}
