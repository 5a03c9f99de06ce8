/** `bridge demo` with the FHIR search source (the default): a full sync of the generated day; rows read back from the spool. */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { runFiles } from '../../sync/run-files.js';
import type { DemoSourceContext, DemoSourceRun } from './demo-sources.js';

export async function plan(context: DemoSourceContext): Promise<DemoSourceRun> {
  const { start, end } = context.sandbox.dataset.options;
  return {
    configFlags: {},
    window: { since: start, until: end },
    async written(config, summary) {
      // The spool is kept (retainFiles) until this digest is taken; the demo removes it afterwards.
      const digest = context.createRowDigest();
      const lines = createInterface({ input: createReadStream(runFiles(config.stateDir, summary.runId).spoolPath, 'utf8'), crlfDelay: Infinity });
      let header = true;
      for await (const line of lines) {
        if (!header) digest.add(line);
        header = false;
      }
      return digest.value();
    },
  };
}
