/** The end-of-run summary `bridge sync` prints: counts and reason codes only. */
import type { SyncSummary } from '../../sync/pipeline.js';

/** Where a run's rejects file is kept (it holds PHI), when it rejected rows and the file is there. */
export type RejectsOf = (summary: SyncSummary) => { path: string; keptDays: number } | undefined;

/** `rejectsOf`: where each run's rejects are, the resumed run's too. */
export function formatSummary(summary: SyncSummary, rejectsOf?: RejectsOf): string[] {
  const lines: string[] = [];
  if (summary.resumed) lines.push(...formatSummary(summary.resumed, rejectsOf).map((line) => `(resumed) ${line}`));
  const rejects = rejectsOf?.(summary);
  const c = summary.counts;
  lines.push(`run ${summary.runId} (${summary.connector}) ${summary.since} → ${summary.until}${summary.backfill ? ' (backfill)' : ''}`);
  if (summary.files) lines.push(...formatFiles(summary));
  else {
    lines.push(
      `  events pulled       ${c.events}${c.duplicates ? ` (${c.duplicates} already pushed by an earlier run)` : ''}`,
      `  events skipped      ${c.skipped}${formatReasons(summary.skipReasons)}`,
    );
  }
  lines.push(`  rows                ${c.rows}`, `  rows rejected       ${c.rejects}${formatReasons(summary.rejectReasons)}`);
  if (summary.unexported) {
    lines.push(
      `  not exported        ${summary.unexported} resource(s) the FHIR server reported it could not export (its error files; see the log): not in Purview. ` +
        `Later exports ask only for what changed after this one: once the server can export them, \`bridge sync --connector ${summary.connector} --since ${summary.since}\` asks again for what changed from this run's start, an earlier --since for what changed before (rows the delivery ledger records as delivered are not sent again)`,
    );
  }
  if (rejects) lines.push(`  rejects file        ${rejects.path} (holds PHI, mode 0600; kept ${rejects.keptDays} day(s); bridge rejects ${summary.runId})`);
  for (const warning of summary.fillWarnings) lines.push(`  warning: ${warning.message}`);
  if (summary.dryRunOut) {
    lines.push(`  dry run: connector file written to ${summary.dryRunOut}; nothing pushed`);
    if (summary.unfinishedRun) lines.push(`  note: run ${summary.unfinishedRun} has an unfinished push; the next sync without --dry-run finishes it`);
  } else {
    lines.push(
      `  blocks sent         ${c.blocks}`,
      `  rows accepted       ${c.rowsAcked}${c.rowsAlreadyDelivered ? ` (${c.rowsAlreadyDelivered} acknowledged by an earlier attempt, not sent again)` : ''}`,
    );
    const flagged = flaggedBlocks(summary);
    if (flagged) {
      lines.push(
        `  possibly duplicated: ${c.rowsPossiblyDuplicated} row(s) Purview may already hold (re-sent after an unknown outcome, or recorded on a day the delivery ledger forgot), in ${flagged}; ` +
          `\`bridge runs --possibly-duplicated ${summary.runId}\` lists them`,
      );
    }
  }
  return lines;
}

/**
 * Where the run's blocks flagged possibly duplicated are, or undefined when there are none. The run's counts hold every
 * push of the run (a resumed run's earlier, interrupted pushes too, from the delivery ledger); this process's push
 * knows only its own blocks. Block numbers count from 0 within this push; an earlier push numbered its own afresh, so
 * the ledger's list of the run (`bridge runs`) is what names the rows across pushes.
 */
function flaggedBlocks(summary: SyncSummary): string | undefined {
  const own = summary.possiblyDuplicatedBlocks;
  const earlier = summary.counts.possiblyDuplicated - own.length;
  const ownText = `this push's block(s) ${own.join(', ')} (counted from 0)`;
  const earlierText = `${earlier} block(s) sent by this run's earlier push(es)`;
  if (earlier <= 0) return own.length > 0 ? ownText : undefined;
  return own.length > 0 ? `${ownText} and ${earlierText}` : earlierText;
}

/** A flat-file run: each file's outcome (names and counts, never cells), the tally, and what enrichment filled. */
function formatFiles(summary: SyncSummary): string[] {
  const lines = (summary.files ?? []).map((f) => `  file ${f.file}: ${f.outcome}, ${f.rows} row(s)${f.reason ? ` (${f.reason})` : ''}`);
  const tally = Object.entries(summary.drop ?? {})
    .filter(([, n]) => n > 0)
    .map(([what, n]) => `${what} ${n}`)
    .join(', ');
  if (tally) lines.push(`  files               ${tally}`);
  const enrich = summary.enrich;
  if (enrich) {
    const touched = Object.entries(enrich.columns).filter(([, col]) => col.filled + col.notFound > 0);
    lines.push(
      `  enriched from FHIR  ${enrich.rowsEnriched} row(s)${touched.map(([name, col]) => `; ${name} filled ${col.filled}, not found ${col.notFound}`).join('')}`,
    );
  }
  return lines;
}

function formatReasons(reasons: Readonly<Record<string, number>>): string {
  const entries = Object.entries(reasons).sort(([, a], [, b]) => b - a);
  return entries.length ? `  (${entries.map(([reason, n]) => `${reason}: ${n}`).join(', ')})` : '';
}

/** What the command cost this process (peak RSS, CPU time), for capacity planning and the end-to-end benchmark. */
export function processStats(): { peakRssMb: number; cpuUserSeconds: number; cpuSystemSeconds: number } {
  const usage = process.resourceUsage();
  return { peakRssMb: Math.round(usage.maxRSS / 102.4) / 10, cpuUserSeconds: usage.userCPUTime / 1e6, cpuSystemSeconds: usage.systemCPUTime / 1e6 };
}
