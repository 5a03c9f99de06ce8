/**
 * The operator page's HTML. Served by `bridge serve` at `/`; it holds no data (the script reads /v1 with the API token
 * the operator enters), so it needs no token itself. Assets are TypeScript strings, not files, so `npm run build`
 * carries them into dist/ and the Docker image with no copy step and no frontend build.
 */
export const PAGE_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Bridge · Epic → Purview</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/page/app.css">
<script src="/page/view.js" defer></script>
<script src="/page/detail.js" defer></script>
<script src="/page/app.js" defer></script>
</head>
<body>
<header class="top">
  <h1>Epic → Purview bridge</h1>
  <span id="updated" class="muted"></span>
  <button id="forget" type="button" class="link" hidden>Forget token</button>
</header>
<main>
  <section id="signin" class="signin" hidden aria-labelledby="signin-title">
    <h2 id="signin-title">Sign in with the API token</h2>
    <form id="token-form" autocomplete="off">
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required>
      <button type="submit">Open</button>
    </form>
    <p id="signin-error" class="error" role="alert"></p>
    <p class="muted">One of the tokens in <code>server.apiTokenSha256</code> / <code>server.apiTokens</code>. It stays in this browser tab
      (sessionStorage, gone when the tab closes) and is sent only in the Authorization header of the page's requests to <code>/v1</code>.</p>
  </section>
  <p id="banner" class="banner" role="status" hidden></p>
  <p id="announce" class="sr-only" role="status" aria-live="polite"></p>
  <div id="board" hidden>
    <section id="connectors" class="connectors" aria-label="Connectors"></section>
    <section id="detail" class="detail" hidden aria-labelledby="detail-title"></section>
    <section id="history" aria-labelledby="history-title">
      <h2 id="history-title">Runs</h2>
      <figure id="chart" class="chart-box"></figure>
      <div class="table-wrap">
        <table id="runs">
          <thead>
            <tr><th>Started</th><th>Connector</th><th>State</th><th>Trigger</th><th>Window</th><th class="num">Events</th><th class="num">Rows</th>
              <th class="num">Rejects</th><th class="num">Blocks</th><th class="num" title="Blocks possibly duplicated">Dup. blocks</th><th class="num">Duration</th></tr>
          </thead>
          <tbody id="runs-body"></tbody>
        </table>
      </div>
    </section>
  </div>
  <noscript><p>This page needs JavaScript. The same data is at <code>GET /v1/status</code> and <code>GET /v1/runs</code> (API token).</p></noscript>
</main>
<footer class="muted">Counts and reason codes only: no patient or employee data is shown here. <a href="/docs/json">OpenAPI</a> · <a href="/metrics">metrics</a></footer>
</body>
</html>
`;
