/** `bridge demo` with the FHIR search source (the default): a full sync of the generated day; rows read back from the spool. */
import { type DemoSourceContext, type DemoSourceRun, spoolDigest } from './demo-sources.js';

export async function plan(context: DemoSourceContext): Promise<DemoSourceRun> {
  const { start, end } = context.sandbox.dataset.options;
  return {
    configFlags: {},
    window: { since: start, until: end },
    written: (config, summary) => spoolDigest(context, config, summary),
  };
}
