/**
 * The operator page's run detail (served as /page/detail.js, after view.js): counts, skip and reject reasons, column
 * fill rates and the error, and where the run's rejects are. Never their content: they hold PHI, the page does not.
 */
export const DETAIL_JS = String.raw`(() => {
  'use strict';
  const { h, int, duration, time, durationOf } = window.BridgeView;

  const COUNTS = [
    ['events', 'Events pulled'], ['duplicates', 'Events already pushed (overlap)'], ['skipped', 'Events skipped'], ['rows', 'Rows mapped'],
    ['rejects', 'Rows rejected'], ['blocksAcked', 'Blocks acknowledged'], ['rowsAcked', 'Rows acknowledged'],
    ['rowsAlreadyDelivered', 'Rows acknowledged earlier (not re-sent)'], ['possiblyDuplicated', 'Blocks possibly duplicated'],
    ['rowsPossiblyDuplicated', 'Rows possibly duplicated'],
  ];

  function table(head, rows, empty) {
    if (rows.length === 0) return h('p', { class: 'muted' }, empty);
    return h('table', {}, h('thead', {}, h('tr', {}, head.map((label, i) => h('th', { class: i ? 'num' : '' }, label)))), h('tbody', {}, rows));
  }

  const reasonTable = (tally, empty) => table(['reason', 'count'],
    Object.entries(tally || {}).sort((a, b) => b[1] - a[1]).map(([reason, n]) => h('tr', {}, h('td', {}, h('code', {}, reason)), h('td', { class: 'num' }, int(n)))), empty);

  /** Column names and counts only; a watched column under 95% filled is marked (the same 5% as the run's warnings). */
  function fillTable(fill) {
    if (!fill) return h('p', { class: 'muted' }, 'Not recorded for this run.');
    return table(['column', 'empty', 'filled'], fill.columns.map((c) => {
      const filled = fill.rows ? 1 - c.empty / fill.rows : 1;
      return h('tr', { class: c.watched && filled < 0.95 ? 'warn' : '' }, h('td', {}, h('code', {}, c.column), c.mandatory ? ' *' : ''),
        h('td', { class: 'num' }, int(c.empty)),
        h('td', { class: 'num' }, h('meter', { min: 0, max: 1, value: filled.toFixed(3) }), ' ', Math.round(filled * 1000) / 10 + '%'));
    }), 'No rows.');
  }

  function rejectsNote(run) {
    if (run.state === 'running' || run.state === 'pushing') {
      return run.counts.rejects ? 'Its rejects file is served once the run completes (rows are still being added to it).' : '';
    }
    if (run.rejectsAvailable) {
      return 'Its rejects file holds PHI and is not shown here' + (run.rejectsExpireAt ? ' (kept until ' + time(run.rejectsExpireAt) + ')' : '') +
        ': bridge rejects ' + run.id + ', or GET /v1/runs/' + run.id + '/rejects with the API token.';
    }
    return run.counts.rejects ? 'Its rejects file was removed (retention.rejectsDays; a failed run keeps none).' : 'No rows were rejected.';
  }

  function runDetail(run) {
    const d = run.details || {};
    const took = run.finishedAt ? duration(durationOf(run)) : 'still running';
    const badge = h('span', { class: 'badge ' + run.state }, run.state);
    return [
      h('header', { class: 'detail-head' }, h('h2', { id: 'detail-title' }, 'Run ', h('code', {}, run.id)), h('a', { href: '#' }, 'Close')),
      h('p', {}, run.connector, ' · ', badge, ' · ', run.trigger, run.backfill ? ' (backfill)' : '', ' · window ', time(run.since), ' → ', time(run.until),
        ' · started ', time(run.startedAt), ' · ', took),
      run.error ? h('div', { class: 'error-box', role: 'alert' }, h('strong', {}, run.error.code), ' ', run.error.message) : null,
      h('div', { class: 'grid' },
        h('div', {}, h('h3', {}, 'Counts'), table(['', ''], COUNTS.map(([key, label]) => h('tr', {}, h('td', {}, label), h('td', { class: 'num' }, int(run.counts[key])))), '')),
        h('div', {}, h('h3', {}, 'Skipped events by reason'), reasonTable(d.skipReasons, 'None.'),
          h('h3', {}, 'Rejected rows by reason'), reasonTable(d.rejectReasons, 'None.'),
          d.possiblyDuplicatedBlocks && d.possiblyDuplicatedBlocks.length ? [h('h3', {}, 'Possibly duplicated blocks'), h('p', {}, d.possiblyDuplicatedBlocks.join(', '))] : null,
          d.unexported ? [h('h3', {}, 'Not exported by the server'), h('p', {}, int(d.unexported), ' resource(s) the FHIR server reported it could not export (its error files; the log counts them per issue code). They are not in Purview.')] : null),
        h('div', {}, h('h3', {}, 'Column fill'), fillTable(d.fill))),
      h('p', { class: 'muted small' }, rejectsNote(run)),
    ];
  }

  window.BridgeDetail = { runDetail };
})();
`;
