/**
 * The bridge side of the end-to-end benchmark, in its own process so its peak RSS is the bridge's alone. Runs the
 * compiled build (dist/, what the Dockerfile ships), not the sources through tsx: tsx's loader thread alone adds
 * ~60 MB of RSS that a deployed bridge does not have. bench/e2e.ts builds dist/ first.
 * argv: <config path> <since> <until>. Prints one JSON line: counts, FHIR request count, seconds, peak RSS.
 */
import { systemClock } from '../dist/clock.js';
import { loadConfig } from '../dist/config/index.js';
import { uuidSource } from '../dist/ids.js';
import { silentLogger } from '../dist/log.js';
import { SyncEvents } from '../dist/sync/events.js';
import { runSync } from '../dist/sync/pipeline.js';
import { buildSyncDeps, findConnector } from '../dist/sync/runtime.js';
import { openStateStore } from '../dist/sync/state/index.js';

const [configPath, since, until] = process.argv.slice(2);
if (!configPath || !since || !until) throw new Error('usage: sync-child <config> <since> <until>');
const config = loadConfig({ path: configPath, env: {} });
const store = openStateStore(config.stateDir, systemClock);
let fhirRequests = 0;
const started = performance.now();
const deps = buildSyncDeps(
  {
    config, env: {}, clock: systemClock, logger: silentLogger(), events: new SyncEvents(), store, newId: uuidSource,
    onFhirRequest: () => {
      fhirRequests += 1;
    },
  },
  findConnector(config, undefined),
);
const summary = await runSync(deps, { trigger: 'cli', since, until });
store.close();
process.stdout.write(
  JSON.stringify({
    seconds: (performance.now() - started) / 1000,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    fhirRequests,
    counts: summary.counts,
  }) + '\n',
);
