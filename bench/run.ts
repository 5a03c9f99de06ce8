/**
 * `npm run bench [-- --quick]`: the whole pipeline's speed and memory, each figure next to a baseline measured in the
 * same run on the same machine. Writes bench/results.md (table) and bench/results.json (fixed keys).
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { runBulkBench, runBulkSyncBench } from './bulk.js';
import { buildDist, type E2eResult, runE2eBench } from './e2e.js';
import { runMapBench } from './map.js';
import { runPushBench } from './push.js';
import { runTransformBench } from './transform.js';

const quick = process.argv.includes('--quick');
// cacheSize: fhir.referenceCacheSize sized to the window's unique patients + practitioners, as the README tells operators
// (and at least 4 × fhir.prefetchEvents, which the config requires).
const sizes = quick
  ? {
      transformEvents: 50_000,
      pushRows: 500_000,
      e2e: { events: 100_000, patients: 5_000, practitioners: 500, cacheSize: 8_000 },
      scale: [20_000, 100_000] as const,
    }
  : {
      transformEvents: 300_000,
      pushRows: 1_000_000,
      e2e: { events: 1_000_000, patients: 50_000, practitioners: 5_000, cacheSize: 60_000 },
      scale: [500_000, 5_000_000] as const,
    };
// The export is split into ten AuditEvent files at either size (a server's file size is its own; ~100,000 per file at 1M).
// referenceCacheSize stays at its default: with the export's lookup on local disk a miss costs CPU, not a request.
const bulkSize = { ...sizes.e2e, cacheSize: 20_000, resourcesPerFile: sizes.e2e.events / 10 };
const mapSize = { events: sizes.transformEvents, patients: sizes.transformEvents / 20, practitioners: sizes.transformEvents / 200 };

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

log(`transform: ${sizes.transformEvents} events`);
const transform = await runTransformBench({ events: sizes.transformEvents });
log(`push: ${sizes.pushRows} rows`);
const push = await runPushBench({ rows: sizes.pushRows, blockRows: 100_000 });
log('building dist/ (the end-to-end runs use the compiled bridge, as shipped)');
buildDist();
log(`end to end: ${sizes.e2e.events} events`);
const e2e = await runE2eBench(sizes.e2e);
const scale: E2eResult[] = [];
for (const events of sizes.scale) {
  log(`scale: ${events} events`);
  // Same patients and practitioners at both sizes: the question is whether memory grows with the length of the stream.
  scale.push(events === sizes.e2e.events ? e2e : await runE2eBench({ ...sizes.e2e, events }));
}
const [small, large] = scale as [E2eResult, E2eResult];
log(`bulk export source: ${bulkSize.events} events`);
const bulk = await runBulkBench(bulkSize);
log(`bulk export sync: ${bulkSize.events} events`);
const bulkSync = await runBulkSyncBench(bulkSize);
log(`bridge map: ${mapSize.events} events`);
const map = await runMapBench(mapSize);

const results = {
  transform_rows_per_s: Math.round(transform.rowsPerSec),
  transform_vs_json_parse: round(transform.ratio),
  push_vs_curl: round(push.ratio),
  push_send_vs_curl: round(push.sendRatio),
  push_check_ms: push.checkMs,
  e2e_1m_seconds: round(e2e.seconds),
  e2e_1m_peak_rss_mb: Math.round(e2e.maxRssMb),
  rss_ratio_5m_vs_500k: round(large.maxRssMb / small.maxRssMb),
  fhir_requests: e2e.fhirRequests,
  fhir_request_bound: e2e.fhirRequestBound,
  bulk_source_vs_download_parse: bulk.ratio,
  bulk_source_peak_rss_mb: bulk.sourcePeakRssMb,
  bulk_sync_seconds: bulkSync.seconds,
  bulk_sync_peak_rss_mb: bulkSync.maxRssMb,
  map_vs_json_parse: map.ratio,
  engine_vs_reference: round(transform.rowsPerSec / transform.referenceRowsPerSec),
};
const rows: Array<[string, string, string, string]> = [
  [
    'transform',
    `${results.transform_rows_per_s.toLocaleString('en-US')} rows/s`,
    `${results.transform_vs_json_parse}× JSON.parse-only time; hand-written reference ${Math.round(transform.referenceRowsPerSec).toLocaleString('en-US')} rows/s`,
    '≥ 100,000 rows/s, ≤ 3×',
  ],
  [
    'push',
    `${Math.round(sizes.pushRows / (push.bridgeMs / 1000)).toLocaleString('en-US')} rows/s`,
    `${results.push_vs_curl}× curl throughput; of ${push.bridgeMs} ms, ${push.checkMs} ms check the whole file before the first block (curl checks nothing); sending alone ${results.push_send_vs_curl}×`,
    '≥ 0.8×',
  ],
  [
    'end to end',
    `${results.e2e_1m_seconds} s, peak RSS ${results.e2e_1m_peak_rss_mb} MB`,
    `${e2e.events.toLocaleString('en-US')} events, ${e2e.rows.toLocaleString('en-US')} rows`,
    '≤ 180 s, ≤ 300 MB (1M events)',
  ],
  [
    'scale',
    `peak RSS ${Math.round(small.maxRssMb)} MB → ${Math.round(large.maxRssMb)} MB`,
    `${results.rss_ratio_5m_vs_500k}× (${small.rows.toLocaleString('en-US')} → ${large.rows.toLocaleString('en-US')} rows)`,
    '≤ 1.2×',
  ],
  ['FHIR requests', `${results.fhir_requests}`, `bound ${results.fhir_request_bound} (S=${e2e.pageSize})`, '≤ bound'],
  [
    'bulk export source',
    `${round(bulk.sourceMs / 1000)} s, peak RSS ${bulk.sourcePeakRssMb} MB`,
    `${bulk.ratio}× downloading the ${bulk.files} files and JSON.parse of every line (${round(bulk.baselineMs / 1000)} s)`,
    '≤ 1.5×',
  ],
  [
    'bulk export sync',
    `${bulkSync.seconds} s, peak RSS ${bulkSync.maxRssMb} MB`,
    `${bulkSync.events.toLocaleString('en-US')} events, ${bulkSync.rows.toLocaleString('en-US')} rows`,
    '≤ 300 MB (1M events)',
  ],
  [
    'bridge map',
    `${round(map.mapMs / 1000)} s (${map.inputMb} MB of NDJSON)`,
    `${map.ratio}× a process reading the files line by line with JSON.parse (${round(map.baselineMs / 1000)} s)`,
    '≤ 2.5×',
  ],
  ['mapping engine', `${results.engine_vs_reference}× the hand-written reference`, 'same events and run as the transform row', '≥ 0.9×'],
];
const md = [
  `# Benchmark results${quick ? ' (--quick: reduced sizes)' : ''}`,
  '',
  `Machine: ${cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}. Ratios are against baselines measured in the same run.`,
  '',
  '| stage | figure | ratio / context | goal |',
  '|---|---|---|---|',
  ...rows.map((r) => `| ${r.join(' | ')} |`),
  '',
].join('\n');
writeFileSync(new URL('./results.md', import.meta.url), md);
writeFileSync(new URL('./results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(md);

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
