/**
 * The operator page's script (served as /page/app.js). It asks for the API token, keeps it in sessionStorage (this tab
 * only) and sends it only as `Authorization: Bearer`, never in a URL. It reads /v1/status once and then follows
 * /v1/status/stream (Server-Sent Events read through fetch, as EventSource cannot send the header), and /v1/runs when
 * a run starts or ends. Everything from the API goes into text nodes (view.js): counts, states and reason codes.
 */
export const APP_JS = String.raw`(() => {
  'use strict';
  const { h, replace, morph, int, duration, ago, time, reasons, durationOf, chart } = window.BridgeView;
  const { runDetail } = window.BridgeDetail;
  const TOKEN_KEY = 'bridge.apiToken';
  const $ = (id) => document.getElementById(id);
  const state = { token: sessionStorage.getItem(TOKEN_KEY), status: undefined, runs: [], stream: undefined, runsKey: '', messages: {}, selected: undefined, bannerKind: undefined, pending: {} };
  /** The service sends a status every 15 s: a stream silent for longer than this is a dead connection (a laptop that slept). */
  const STREAM_SILENCE_MS = 40000;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  class HttpError extends Error {
    constructor(status, body, retryAfter) {
      super((body && body.message) || 'HTTP ' + status);
      this.status = status;
      this.body = body || {};
      this.retryAfter = retryAfter;
    }
  }

  async function api(path, init) {
    const headers = new Headers((init && init.headers) || {});
    headers.set('authorization', 'Bearer ' + state.token);
    let response;
    try {
      response = await fetch(path, Object.assign({}, init, { headers, cache: 'no-store' }));
    } catch (error) {
      if (init && init.signal && init.signal.aborted) throw error;
      throw new HttpError(0, { message: 'The service did not answer (' + error.message + ').' });
    }
    // A service that answers again is no longer rate limiting this page: that banner goes (the stream's own goes only
    // when a stream opens).
    if (response.ok) {
      if (state.bannerKind === 'rate') banner('');
      return response;
    }
    let body = {};
    try { body = await response.json(); } catch (ignored) { body = {}; }
    const retryAfter = response.headers.get('retry-after');
    if (response.status === 401) signOut('The API token was not accepted (HTTP 401). Check it and enter it again.');
    if (response.status === 429) banner('The service refused this page (HTTP 429: ' + ((body && body.message) || 'too many requests') + '); it tries again in ' + (retryAfter || 'a few') + ' s.', 'rate');
    throw new HttpError(response.status, body, retryAfter);
  }
  const getJson = async (path) => (await api(path)).json();

  /** kind: what the banner is about ('rate', 'start'), so that what ends it can clear it and nothing else. */
  function banner(text, kind) {
    state.bannerKind = text ? kind : undefined;
    $('banner').textContent = text || '';
    $('banner').hidden = !text;
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    stopStream();
    $('board').hidden = true;
    $('forget').hidden = true;
    $('updated').textContent = '';
    $('signin').hidden = false;
    $('signin-error').textContent = message || '';
    $('token').focus();
  }

  async function start() {
    $('signin').hidden = true;
    $('board').hidden = false;
    $('forget').hidden = false;
    banner('');
    try {
      await Promise.all([refreshStatus(), refreshRuns()]);
    } catch (error) {
      if (error.status === 401) return;
      // A 429 already says so, and when it tries again.
      if (error.status !== 429) banner(error.message, 'start');
    }
    openStream();
    route();
  }

  async function refreshStatus() {
    onStatus(await getJson('/v1/status'));
  }

  async function refreshRuns() {
    state.runs = (await getJson('/v1/runs?limit=50')).runs;
    // The status and the runs were not read at sign-in; now both are (the stream brings the status).
    if (state.bannerKind === 'start' && state.status) banner('');
    renderRuns();
  }

  function stopStream() {
    if (state.stream) state.stream.abort();
    state.stream = undefined;
  }

  async function openStream() {
    stopStream();
    const controller = new AbortController();
    state.stream = controller;
    let delay = 2000;
    let downSince;
    while (state.stream === controller) {
      // One connection: aborted with the page's controller, or when it falls silent (a half-open socket never ends).
      const connection = new AbortController();
      const onAbort = () => connection.abort();
      controller.signal.addEventListener('abort', onAbort, { once: true });
      let watchdog;
      const watch = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => connection.abort(), STREAM_SILENCE_MS);
      };
      try {
        watch();
        const response = await api('/v1/status/stream', { signal: connection.signal });
        delay = 2000;
        downSince = undefined;
        if (state.bannerKind === 'stream' || state.bannerKind === 'rate') banner('');
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          watch();
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const message = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = message.split('\n').filter((line) => line.startsWith('data:')).map((line) => line.slice(5).trim()).join('\n');
            if (data) onStatus(JSON.parse(data));
          }
        }
      } catch (error) {
        if (controller.signal.aborted || error.status === 401) return;
        if (error.status === 429) delay = Math.max(delay, 1000 * (Number(error.retryAfter) || 30));
      } finally {
        clearTimeout(watchdog);
        controller.signal.removeEventListener('abort', onAbort);
      }
      if (state.stream !== controller) return;
      // Not live: what the page shows may be old, and it says since when.
      downSince = downSince || new Date().toISOString();
      if (state.bannerKind !== 'rate') banner('Live updates interrupted since ' + time(downSince) + '; reconnecting. What this page shows may be out of date.', 'stream');
      await sleep(delay);
      delay = Math.min(delay * 2, 30000);
    }
  }

  function onStatus(status) {
    // A message about Sync now (started, or 409) is about the run in flight: it goes when that run ends.
    for (const c of status.connectors) {
      const before = state.status && state.status.connectors.find((x) => x.name === c.name);
      if (before && before.inFlight && !c.inFlight) delete state.messages[c.name];
    }
    state.status = status;
    $('updated').textContent = 'updated ' + time(status.now);
    renderConnectors();
    // A run started or ended: the history and an open detail of that run change too.
    const key = status.connectors.map((c) => [c.lastRun && c.lastRun.id, c.lastRun && c.lastRun.state, c.inFlight && c.inFlight.runId].join('/')).join(' ');
    if (key !== state.runsKey) {
      const first = state.runsKey === '';
      state.runsKey = key;
      if (!first) refreshRuns().then(() => (state.selected ? showRun(state.selected) : undefined)).catch(() => undefined);
    }
  }

  const HEALTH = { ok: 'OK', late: 'Late', failing: 'Failing' };
  const runLink = (id) => h('a', { href: '#run/' + encodeURIComponent(id), class: 'run-link' }, id.slice(0, 8));
  const stateBadge = (runState) => h('span', { class: 'badge ' + runState }, runState);
  const fact = (label, ...value) => [h('dt', {}, label), h('dd', {}, ...value)];

  function renderConnectors() {
    const now = Date.parse(state.status.now);
    // morph keeps each card's controls from one status message to the next. When the list of connectors changes, a
    // focused control can be replaced or become another connector's: focus goes back to the same control of the same
    // connector.
    const focused = document.activeElement;
    const card = focused && focused.closest ? focused.closest('article[data-connector]') : null;
    const again = card ? { name: card.getAttribute('data-connector'), sync: focused.matches('button.sync'), href: focused.getAttribute('href') } : null;
    morph($('connectors'), h('div', {}, state.status.connectors.map((c) => connectorCard(c, now))));
    if (!again) return;
    const next = [...$('connectors').querySelectorAll('article[data-connector]')].find((el) => el.getAttribute('data-connector') === again.name);
    const target = next && (again.sync ? next.querySelector('button.sync') : [...next.querySelectorAll('a[href]')].find((a) => a.getAttribute('href') === again.href));
    if (target) target.focus();
  }

  function connectorCard(c, now) {
    const last = c.lastRun;
    const next = c.nextRunAt ? [time(c.nextRunAt), ' (', ago(c.nextRunAt, now), ')']
      : c.schedule.enabled ? 'not scheduled by this process (--no-schedules)' : 'no schedule (schedule.enabled is false)';
    const message = state.messages[c.name];
    return h('article', { class: 'card health-' + c.health, 'data-connector': c.name },
      h('header', {}, h('h2', {}, c.name), h('span', { class: 'badge ' + c.health, 'data-role': 'health' }, HEALTH[c.health] || c.health)),
      h('p', { class: 'reason' }, c.reason),
      h('dl', { class: 'facts' },
        fact('Lag', c.lagSeconds === undefined ? 'no watermark yet' : duration(c.lagSeconds) + ' (late after ' + duration(c.lateAfterSeconds) + ')'),
        fact('Watermark', time(c.watermark)),
        fact('Last success', c.lastSuccess ? [ago(c.lastSuccess.finishedAt, now), ' · ', runLink(c.lastSuccess.runId)] : 'never'),
        fact('Last run', last ? [runLink(last.id), ' ', stateBadge(last.state), ' ', ago(last.finishedAt || last.startedAt, now),
          ' · ', int(last.counts.rows), ' rows, ', int(last.counts.rejects), ' rejected',
          last.error ? h('div', { class: 'error small' }, last.error.code + ': ' + last.error.message) : null] : 'none yet'),
        fact('Next run', next)),
      // Always a block in this place, empty when idle: morph matches children by place, and the actions after it must
      // stay the same elements when a run starts or ends.
      c.inFlight ? inFlightView(c.inFlight, now) : h('div', { 'data-role': 'idle', hidden: true }),
      h('div', { class: 'actions' },
        // No listener of its own: morph keeps this button from one status to the next (see the listener on #connectors).
        h('button', { type: 'button', class: 'sync', 'aria-label': 'Sync now: ' + c.name }, 'Sync now'),
        // Not a live region: the card is rebuilt with its text already in it, which screen readers do not announce. #announce is.
        h('span', { class: 'sync-msg' + (message && message.refused ? ' refused' : '') }, message ? message.text : '')));
  }

  function inFlightView(flight, now) {
    const p = flight.progress;
    return h('div', { class: 'inflight', 'data-role': 'inflight' },
      h('p', {}, h('strong', {}, 'Run in flight '), flight.runId ? runLink(flight.runId) : '', ' · ', flight.holder, ' · started ', ago(flight.since, now)),
      p ? [
        h('p', { class: 'phase' }, p.phase === 'pulling' ? 'Pulling from Epic and mapping' : 'Pushing blocks to Purview'),
        h('ul', {},
          h('li', {}, 'events pulled ', h('strong', {}, int(p.events))),
          h('li', {}, 'rows spooled ', h('strong', {}, int(p.rows)), p.rejects ? ' (' + int(p.rejects) + ' rejected)' : ''),
          h('li', {}, 'blocks acknowledged ', h('strong', {}, int(p.blocksAcked) + (p.blocksTotal !== undefined ? ' of ~' + int(p.blocksTotal) : '')))),
        p.phase === 'pushing' && p.rows > 0
          ? h('progress', { max: p.rows, value: Math.min(p.rowsAcked, p.rows), 'aria-label': 'rows acknowledged' })
          : h('progress', { 'aria-label': 'pulling' }),
      ] : h('p', { class: 'muted small' }, 'Runs in another process show their counts in the history when they reach a checkpoint.'));
  }

  async function syncNow(name) {
    // One press, one request: a second press while the first is on its way would only be refused (409) about the run the
    // first one started.
    if (state.pending[name]) return;
    state.pending[name] = true;
    try {
      await startSync(name);
    } finally {
      delete state.pending[name];
    }
  }

  async function startSync(name) {
    state.messages[name] = { text: 'Starting…' };
    renderConnectors();
    const announce = () => ($('announce').textContent = name + ': ' + state.messages[name].text);
    try {
      const response = await api('/v1/connectors/' + encodeURIComponent(name) + '/syncs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      const { runId, resumed } = await response.json();
      // An unfinished run is finished first: the id is that run's, and this sync's own run follows it.
      state.messages[name] = resumed
        ? { text: 'Finishing unfinished run ' + runId.slice(0, 8) + ' first; this sync follows it.', runId }
        : { text: 'Started run ' + runId.slice(0, 8) + '.', runId };
    } catch (error) {
      if (error.status === 401) return;
      state.messages[name] = { refused: true, text: error.status === 409 ? 'HTTP 409: ' + error.message : (error.status ? 'HTTP ' + error.status + ': ' : '') + error.message };
    }
    renderConnectors();
    announce();
  }

  function renderRuns() {
    $('chart').replaceChildren(chart(state.runs), h('figcaption', {}, 'Rows (bars) and duration (line) of the last ' + state.runs.length + ' runs, oldest on the left.'));
    const num = (n) => h('td', { class: 'num' }, int(n));
    $('runs-body').replaceChildren(...state.runs.map((r) => h('tr', { 'data-run': r.id, class: r.id === state.selected ? 'selected' : '' },
      h('td', {}, h('a', { href: '#run/' + encodeURIComponent(r.id) }, time(r.startedAt))),
      h('td', {}, r.connector),
      h('td', {}, stateBadge(r.state)),
      h('td', {}, r.trigger, r.backfill ? ' · backfill' : '', r.dryRun ? ' · dry run' : ''),
      h('td', { class: 'small' }, h('div', {}, time(r.since), ' →'), h('div', {}, time(r.until))),
      num(r.counts.events), num(r.counts.rows),
      h('td', { class: 'num' }, int(r.counts.rejects), r.counts.rejects ? h('div', { class: 'muted small reasons' }, reasons(r.details && r.details.rejectReasons)) : null),
      num(r.counts.blocksAcked), num(r.counts.possiblyDuplicated),
      h('td', { class: 'num' }, r.finishedAt ? duration(durationOf(r)) : '…'))));
  }

  async function showRun(id) {
    state.selected = id;
    const box = $('detail');
    let run;
    try {
      run = await getJson('/v1/runs/' + encodeURIComponent(id));
    } catch (error) {
      if (error.status === 401 || state.selected !== id) return;
      replace(box, h('p', { class: 'error' }, error.message));
      box.hidden = false;
      return;
    }
    // Another run was chosen while this one's answer was on its way: that one's detail is shown, not this.
    if (state.selected !== id) return;
    replace(box, ...runDetail(run));
    box.hidden = false;
    renderRuns();
  }

  function route() {
    const match = /^#run\/(.+)$/.exec(location.hash);
    if (match) {
      let id;
      try {
        id = decodeURIComponent(match[1]);
      } catch (error) {
        // A link cut or typed by hand (%E0): no run, said so, and no detail of another run left on screen.
        state.selected = undefined;
        replace($('detail'), h('p', { class: 'error' }, 'The address names no run (it is not a run id).'));
        $('detail').hidden = false;
        renderRuns();
        return;
      }
      showRun(id);
      return;
    }
    state.selected = undefined;
    $('detail').hidden = true;
    renderRuns();
  }

  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token').value.trim();
    if (!token) return;
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    $('signin-error').textContent = '';
    start();
  });
  $('forget').addEventListener('click', () => signOut(''));
  $('connectors').addEventListener('click', (event) => {
    const button = event.target.closest('button.sync');
    const card = button && button.closest('article[data-connector]');
    if (card) syncNow(card.getAttribute('data-connector'));
  });
  window.addEventListener('hashchange', () => (state.token ? route() : undefined));
  if (state.token) start();
  else signOut('');
})();
`;
