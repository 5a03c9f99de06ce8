/**
 * The operator page's helpers (served as /page/view.js, before app.js): element builders that only ever create text
 * nodes from data (nothing from the API is parsed as HTML), number and time formats, and the runs chart as inline SVG
 * (no chart library, nothing fetched from elsewhere). Plain browser JavaScript in a string: no template literals in
 * it, as the string itself is one.
 */
export const VIEW_JS = String.raw`(() => {
  'use strict';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false || child === '') continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** h('td', { class: 'num' }, '12'): attributes as given, strings as text nodes, on* as listeners. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    return append(el, children);
  }

  /** Replaces an element's children; like h(), skips null and false and turns strings into text. */
  function replace(el, ...children) {
    el.replaceChildren();
    return append(el, children);
  }

  /**
   * Makes el's children what fresh's are, keeping every node whose place and tag are unchanged: the cards are redrawn
   * on every status message (several a second during a run), and a button replaced between a press and its release
   * gets no click, a link under the pointer no navigation, a focused control no keyboard. Listeners are not carried
   * over: the controls it keeps are reached by delegation (a listener on a container that reads data- attributes).
   */
  function morph(el, fresh) {
    const next = [...fresh.childNodes];
    const old = [...el.childNodes];
    for (let index = 0; index < next.length; index += 1) {
      const before = old[index];
      const after = next[index];
      if (!before) el.append(after);
      else if (before.nodeType !== after.nodeType || before.nodeName !== after.nodeName) el.replaceChild(after, before);
      else if (before.nodeType === Node.TEXT_NODE) {
        if (before.data !== after.data) before.data = after.data;
      } else {
        for (const { name } of [...before.attributes]) if (!after.hasAttribute(name)) before.removeAttribute(name);
        for (const { name, value } of [...after.attributes]) if (before.getAttribute(name) !== value) before.setAttribute(name, value);
        morph(before, after);
      }
    }
    for (let index = next.length; index < old.length; index += 1) old[index].remove();
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    return append(el, children);
  }

  const numbers = new Intl.NumberFormat('en-US');
  const int = (n) => (n === undefined || n === null ? '–' : numbers.format(n));

  function duration(totalSeconds) {
    if (totalSeconds === undefined || totalSeconds === null || Number.isNaN(totalSeconds)) return '–';
    if (totalSeconds < 10) return (Math.round(totalSeconds * 10) / 10) + ' s';
    const s = Math.round(totalSeconds);
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min' + (m < 10 && s % 60 ? ' ' + (s % 60) + ' s' : '');
    const hours = Math.floor(m / 60);
    if (hours < 48) return hours + ' h' + (m % 60 ? ' ' + (m % 60) + ' min' : '');
    const days = Math.floor(hours / 24);
    return days + ' d' + (hours % 24 ? ' ' + (hours % 24) + ' h' : '');
  }

  function ago(iso, nowMs) {
    const seconds = (nowMs - Date.parse(iso)) / 1000;
    return seconds >= 0 ? duration(seconds) + ' ago' : 'in ' + duration(-seconds);
  }

  function time(iso) {
    if (!iso) return '–';
    // The browser's zone, named (bridge runs prints UTC): the same run read in both must not seem two times.
    return new Date(iso).toLocaleString(undefined, { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short' });
  }

  /** { a: 3, b: 1 } → "a 3 · b 1", most frequent first. */
  function reasons(tally) {
    const entries = Object.entries(tally || {}).sort((x, y) => y[1] - x[1]);
    return entries.length ? entries.map(([reason, n]) => reason + ' ' + int(n)).join(' · ') : '';
  }

  const durationOf = (run) => (run.finishedAt ? (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000 : undefined);

  /** Rows per run as bars (left axis) and duration as a line (right axis), oldest run on the left. */
  function chart(runs) {
    const list = runs.filter((r) => r.finishedAt).slice().reverse();
    const W = 1100, H = 210, left = 58, right = 62, top = 14, bottom = 34;
    const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart', role: 'img', 'aria-label': 'Rows and duration per run' });
    if (list.length === 0) {
      root.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'chart-empty' }, 'No finished runs yet'));
      return root;
    }
    const innerW = W - left - right, innerH = H - top - bottom;
    const maxRows = Math.max(1, ...list.map((r) => r.counts.rows));
    const maxSeconds = Math.max(0.1, ...list.map(durationOf));
    for (const f of [0, 0.5, 1]) {
      const y = top + innerH * (1 - f);
      root.append(
        svg('line', { x1: left, x2: W - right, y1: y, y2: y, class: 'grid' }),
        svg('text', { x: left - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' }, int(Math.round(maxRows * f))),
        svg('text', { x: W - right + 6, y: y + 4, class: 'axis' }, duration(maxSeconds * f)),
      );
    }
    const step = innerW / list.length;
    const barWidth = Math.max(2, Math.min(28, step * 0.6));
    const points = [];
    list.forEach((run, i) => {
      const x = left + step * i + step / 2;
      const barHeight = (innerH * run.counts.rows) / maxRows;
      const label = time(run.startedAt) + ': ' + int(run.counts.rows) + ' rows, ' + duration(durationOf(run)) + ', ' + run.state;
      root.append(svg('rect', { x: x - barWidth / 2, y: top + innerH - barHeight, width: barWidth, height: Math.max(barHeight, 0.5), class: 'bar ' + run.state },
        svg('title', {}, label)));
      points.push([x, top + innerH * (1 - durationOf(run) / maxSeconds)]);
    });
    root.append(svg('polyline', { points: points.map((p) => p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' '), class: 'dur' }));
    for (const [x, y] of points) root.append(svg('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 2.5, class: 'dot' }));
    const legendY = H - 10;
    root.append(
      svg('rect', { x: left, y: legendY - 9, width: 12, height: 10, class: 'legend-rows' }),
      svg('text', { x: left + 16, y: legendY, class: 'axis' }, 'rows (left axis)'),
      svg('rect', { x: left + 130, y: legendY - 5, width: 14, height: 2, class: 'legend-dur' }),
      svg('text', { x: left + 148, y: legendY, class: 'axis' }, 'duration (right axis)'),
    );
    return root;
  }

  window.BridgeView = { h, svg, replace, morph, int, duration, ago, time, reasons, durationOf, chart };
})();
`;
