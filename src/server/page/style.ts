/** The operator page's stylesheet (served as /page/app.css: the CSP allows no inline style). */
export const PAGE_CSS = String.raw`:root {
  --bg: #f6f7f9; --card: #fff; --ink: #1c2330; --muted: #5b6575; --line: #dde1e7;
  --ok: #1b7f3b; --ok-bg: #e3f4e8; --late: #8a5a00; --late-bg: #fff1d6; --fail: #b42318; --fail-bg: #fde7e5; --accent: #1f5fbf;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: var(--bg);
}
body { margin: 0; }
main { max-width: 1200px; margin: 0 auto; padding: 16px 20px 32px; }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 16px; margin: 24px 0 10px; }
h3 { font-size: 13px; margin: 12px 0 6px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
code { font: 12px/1.3 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
a { color: var(--accent); }
button { font: inherit; white-space: nowrap; padding: 6px 14px; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button:disabled { opacity: .5; cursor: default; }
button.link { background: none; border: none; color: var(--accent); padding: 0; text-decoration: underline; }
.top { display: flex; align-items: baseline; gap: 16px; padding: 12px 20px; background: #14213d; color: #fff; }
.top .muted { color: #c9d2e3; margin-left: auto; }
.top button.link { color: #fff; }
.muted { color: var(--muted); }
.small { font-size: 12px; }
.error { color: var(--fail); font-weight: 600; min-height: 1.4em; }
.banner { background: var(--late-bg); color: var(--late); padding: 8px 12px; border-radius: 6px; }
.signin { max-width: 560px; margin: 48px auto; background: var(--card); padding: 20px 24px; border-radius: 10px; border: 1px solid var(--line); }
.signin form { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.signin input { flex: 1; min-width: 240px; font: inherit; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; }
.connectors { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 14px; margin-top: 8px; }
.card { background: var(--card); border: 1px solid var(--line); border-left: 6px solid var(--line); border-radius: 10px; padding: 12px 16px; }
.card.health-ok { border-left-color: var(--ok); }
.card.health-late { border-left-color: #e0a100; }
.card.health-failing { border-left-color: var(--fail); }
.card > header { display: flex; align-items: center; gap: 10px; }
.card h2 { margin: 0; }
.reason { margin: 4px 0 8px; color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 700; text-transform: uppercase; letter-spacing: .03em; }
.badge.ok, .badge.completed { background: var(--ok-bg); color: var(--ok); }
.badge.late, .badge.running, .badge.pushing { background: var(--late-bg); color: var(--late); }
.badge.failing, .badge.failed { background: var(--fail-bg); color: var(--fail); }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 12px; margin: 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
.inflight { margin-top: 10px; padding: 8px 10px; background: #eef4ff; border-radius: 8px; }
.inflight p { margin: 0 0 4px; }
.inflight ul { list-style: none; padding: 0; margin: 4px 0; display: flex; gap: 16px; flex-wrap: wrap; }
progress { width: 100%; height: 10px; }
.actions { display: flex; gap: 12px; align-items: center; margin-top: 12px; }
.sync-msg { color: var(--muted); }
.sync-msg.refused { color: var(--fail); font-weight: 600; }
.chart-box { margin: 0 0 12px; background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 8px 12px; }
.chart-box figcaption { color: var(--muted); font-size: 12px; }
.chart { width: 100%; height: auto; display: block; }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.chart .axis { fill: var(--muted); font-size: 11px; }
.chart .bar { fill: #8fb3ea; }
.chart .bar.failed { fill: #f0a49c; }
.chart .dur { fill: none; stroke: #14213d; stroke-width: 2; }
.chart .dot { fill: #14213d; }
.chart .legend-rows { fill: #8fb3ea; }
.chart .legend-dur { fill: #14213d; }
.chart .chart-empty { fill: var(--muted); font-size: 13px; }
.table-wrap { overflow-x: auto; background: var(--card); border: 1px solid var(--line); border-radius: 10px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; white-space: nowrap; }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td .reasons { white-space: normal; max-width: 180px; margin-left: auto; }
tr.selected td { background: #eef4ff; }
tbody tr:hover td { background: #f4f7fb; }
.detail { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 4px 16px 12px; margin-top: 16px; }
.detail-head { display: flex; align-items: baseline; gap: 12px; }
.detail-head a { margin-left: auto; }
.detail .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 8px 24px; }
.detail table td, .detail table th { padding: 3px 8px; }
.detail td:first-child { white-space: normal; word-break: break-word; }
.detail meter { width: 56px; }
tr.warn td { color: var(--late); font-weight: 600; }
.error-box { background: var(--fail-bg); color: var(--fail); padding: 8px 12px; border-radius: 6px; margin: 8px 0; white-space: normal; }
.sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
footer { max-width: 1200px; margin: 0 auto; padding: 0 20px 24px; font-size: 12px; }
`;
