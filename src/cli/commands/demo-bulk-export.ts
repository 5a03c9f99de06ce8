/**
 * `bridge demo --source bulk-export`: the connector reads the sandbox's SMART Bulk Data `$export` (kick-off, polls,
 * manifest, NDJSON files, the export's Patients and Practitioners as the lookup) instead of paging AuditEvent search.
 * The first run has no watermark, so the export is complete (no `_since`) and the run has no window of its own: it
 * covers up to the export's transactionTime. Rows are read back from the run's spool, as for the search source.
 */
import { type DemoSourceContext, type DemoSourceRun, spoolDigest } from './demo-sources.js';

export async function plan(context: DemoSourceContext): Promise<DemoSourceRun> {
  return {
    // The sandbox's export is ready after one poll; the schema's least wait (1 s) keeps the demo quick.
    configFlags: { 'connectors.0.source': { type: 'bulk-export', pollMinSeconds: 1 } },
    written: (config, summary) => spoolDigest(context, config, summary),
  };
}
