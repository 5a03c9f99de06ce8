/**
 * The operator page in a real browser (issue #17.6): Debian's Chromium driven by playwright-core against `bridge serve`
 * over the sandbox. Sign in with the API token, see the connector and its last run, press Sync now, watch the run
 * (and the 409 of a second press) until it completes, open its detail; a wrong token gets a clear message; the page
 * loads nothing from elsewhere and breaks no CSP rule. Screenshots go to .vitest-artifacts/ (and docs/operator-page.png
 * with BRIDGE_UPDATE_SCREENSHOT=1).
 *
 * Without a Chromium the test is skipped, saying how to install one; with CI or BRIDGE_BROWSER_TEST=required set it
 * fails instead, so CI cannot pass without running it.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/index.js';
import { hashApiToken } from '../../src/server/auth.js';
import { type Service, startService } from '../../src/server/service.js';
import { type SandboxHarness, startHarness } from '../support/sandbox-run.js';
import { findChromium, LAUNCH_ARGS } from './chromium.js';

const root = resolve(import.meta.dirname, '../..');
const artifacts = resolve(root, '.vitest-artifacts');
const TOKEN = 'browser-test-token-0123456789abcdef';
const executable = findChromium();
const required = Boolean(process.env['CI']) || process.env['BRIDGE_BROWSER_TEST'] === 'required';

if (!executable) {
  const how = 'no Chromium found (looked at $CHROMIUM_PATH, /usr/bin/chromium, /usr/bin/chromium-browser): install it with `apt-get install -y chromium`';
  if (required) {
    describe('operator page in Chromium', () => {
      it('needs Chromium in CI', () => expect.fail(`${how} (.ci/run does).`));
    });
  } else {
    console.warn(`test/browser skipped: ${how}, or set CHROMIUM_PATH.`);
  }
}

describe.skipIf(!executable)('operator page in Chromium', () => {
  let h: SandboxHarness;
  let service: Service;
  let browser: Browser;

  beforeAll(async () => {
    h = await startHarness({ data: { seed: 17, events: 360, patients: 60, practitioners: 10 } });
    // Some patients without a name: their rows are rejected, so the page has reject reasons (and PHI it must not show).
    const nameless = [...h.sandbox.dataset.patients()].filter((_, i) => i % 12 === 0).map(({ name: _name, ...patient }) => patient);
    await h.sandbox.store?.load(nameless);
    // History: the first two thirds of the data set in three backfills; Sync now pulls the rest.
    const start = Date.parse(h.sandbox.dataset.options.start);
    const third = (Date.parse(h.sandbox.dataset.options.end) - start) / 3;
    const at = (i: number): string => new Date(start + i * third).toISOString();
    await h.sync({ since: at(0), until: at(1) });
    await h.sync({ since: at(1), until: at(1.5) });
    await h.sync({ since: at(1.5), until: at(2) });
    const config = loadConfig({
      base: h.sandbox.config,
      env: {},
      flags: {
        'server.port': 0,
        'server.apiTokenSha256': [hashApiToken(TOKEN)],
        'server.rateLimitMax': 200,
        'connectors.0.schedule.enabled': true,
        'connectors.0.schedule.cron': '0 2 * * *',
        'connectors.0.schedule.timezone': 'UTC',
        'connectors.0.purview.blockRows': 25,
      },
    });
    // The daily schedule is the connector's (its late threshold: two days), but this service runs no schedule: a tick at
    // 02:00 UTC during the test would start a run of its own, and the run count and the 409 below would be off.
    service = await startService({ config, env: {}, clock: systemClock, logger: h.logger, schedules: false });
    browser = await chromium.launch({ executablePath: executable as string, headless: true, args: [...LAUNCH_ARGS] });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await service?.close();
    await h?.close();
  });

  /** A fresh tab that records every request it makes and every console error and CSP violation. */
  async function openPage(): Promise<{ page: Page; requests: string[]; problems: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US', timezoneId: 'UTC' });
    const page = await context.newPage();
    const requests: string[] = [];
    const problems: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    page.on('console', (message) => {
      if (message.type() === 'error' && !/status of 40[19]/.test(message.text())) problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${service.url}/`);
    return { page, requests, problems };
  }

  it('signs in, shows the connector and its last run, syncs now, shows the run in flight and its detail', async () => {
    const { page, requests, problems } = await openPage();
    await page.fill('#token', TOKEN);
    await page.click('#token-form button');
    const card = page.locator('article[data-connector="sandbox"]');
    await card.waitFor();
    expect(await card.locator('h2').textContent()).toBe('sandbox');
    // Three backfills completed; the watermark is a month old against a daily schedule.
    expect(await card.locator('[data-role="health"]').textContent()).toBe('Late');
    expect(await card.textContent()).toMatch(/Last run[0-9a-f]{8} completed/);
    expect(await card.textContent()).toContain('Next runnot scheduled by this process (--no-schedules)');
    expect(await page.locator('#runs-body tr').count()).toBe(3);
    expect(await page.locator('#chart svg rect.bar').count()).toBe(3);

    // Slow Purview down so the run is seen in flight, then press Sync now twice: the second press is refused.
    h.sandbox.ingest.injectFaults(...Array.from({ length: 8 }, () => ({ kind: 'delay' as const, ms: 500 })));
    await card.locator('button.sync').click();
    await card.locator('[data-role="inflight"]').waitFor({ timeout: 30_000 });
    await expect.poll(() => card.locator('.sync-msg').textContent(), { timeout: 10_000 }).toMatch(/^Started run [0-9a-f]{8}\.$/);
    const started = (await card.locator('.sync-msg').textContent()) ?? '';
    // The card was rebuilt by the status messages since the press: keyboard focus is still on its Sync now, and the
    // outcome was announced in the page's live region (the rebuilt card's text is not announced).
    await card.locator('[data-role="inflight"]').getByText('events pulled').waitFor();
    // A string, evaluated in the page: this project's TypeScript has no DOM types.
    const focused =
      "document.activeElement.closest('article') ? document.activeElement.closest('article').getAttribute('data-connector') : document.activeElement.tagName";
    expect(await page.evaluate(focused)).toBe('sandbox');
    expect(await page.evaluate("document.activeElement.getAttribute('aria-label')")).toBe('Sync now: sandbox');
    expect(await page.locator('#announce').textContent()).toBe(`sandbox: ${started}`);
    await card.locator('button.sync').click();
    await expect
      .poll(() => card.locator('.sync-msg').textContent(), { timeout: 10_000 })
      .toMatch(/^HTTP 409: A sync of connector "sandbox" is already running/);
    await card.locator('[data-role="inflight"]').getByText('blocks acknowledged').waitFor();
    await card.locator('[data-role="inflight"] progress[max]').waitFor({ timeout: 30_000 });
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: resolve(artifacts, 'operator-page-running.png'), fullPage: true });

    // The run completes: the in-flight panel goes, health is OK, the history has it first.
    await card.locator('[data-role="inflight"]').waitFor({ state: 'detached', timeout: 60_000 });
    await expect.poll(() => card.locator('[data-role="health"]').textContent(), { timeout: 10_000 }).toBe('OK');
    const runId = started.slice('Started run '.length, -1);
    const first = page.locator('#runs-body tr').first();
    await expect.poll(() => first.getAttribute('data-run'), { timeout: 10_000 }).toMatch(new RegExp(`^${runId}`));
    expect(await first.locator('.badge').textContent()).toBe('completed');
    expect(await page.locator('#chart svg rect.bar').count()).toBe(4);

    // Its detail: counts, reasons, fill, and where its rejects are (not their content).
    await first.locator('a').click();
    const detail = page.locator('#detail');
    await detail.waitFor();
    await expect.poll(() => detail.locator('h2 code').textContent()).toMatch(new RegExp(`^${runId}`));
    const detailText = (await detail.textContent()) ?? '';
    const run = h.withStore((s) => s.listRuns({ connector: 'sandbox', limit: 1 }))[0];
    expect(run).toMatchObject({ state: 'completed', trigger: 'http' });
    expect(detailText).toContain('Events pulled');
    expect(detailText).toContain('Column fill');
    expect(detailText).toMatch(/PATIENT\.PAT_MRN_ID/);
    expect(detailText).toMatch(/missing-patient-name\d+/);
    expect(detailText).toContain(`bridge rejects ${run?.id}`);
    expect(detailText).not.toMatch(/\b(null|undefined|NaN)\b/);
    expect(detailText).toContain(`Rows acknowledged${(run?.counts.rowsAcked ?? 0).toLocaleString('en-US')}`);
    await page.screenshot({ path: resolve(artifacts, 'operator-page.png'), fullPage: true });
    if (process.env['BRIDGE_UPDATE_SCREENSHOT'] === '1') copyFileSync(resolve(artifacts, 'operator-page.png'), resolve(root, 'docs/operator-page.png'));

    // No PHI on the page: no patient's family name from the data set appears anywhere in it.
    const pageText = (await page.locator('body').textContent()) ?? '';
    const names = [...h.sandbox.dataset.patients()].flatMap((p) => p.name?.map((n) => n.family ?? '') ?? []).filter((n) => n.length > 3);
    for (const name of names) expect(pageText).not.toContain(name);

    // Everything came from the service; the token never rode in a URL; no CSP violation or script error.
    const origin = new URL(service.url).origin;
    for (const url of requests.filter((u) => !u.startsWith('data:'))) expect(new URL(url).origin, url).toBe(origin);
    for (const url of requests) expect(url).not.toContain(TOKEN);
    expect(problems).toEqual([]);
    expect(await page.evaluate("sessionStorage.getItem('bridge.apiToken')")).toBe(TOKEN);
    await page.context().close();
  }, 120_000);

  it('says so when Sync now first finishes an unfinished run, rather than taking that run for its own', async () => {
    const { page, problems } = await openPage();
    // The service's answer when an unfinished push of the connector is resumed first (README: POST …/syncs).
    await page.route('**/v1/connectors/sandbox/syncs', (route) =>
      route.fulfill({ status: 202, contentType: 'application/json', body: JSON.stringify({ runId: '0123456789abcdef', resumed: true }) }),
    );
    await page.fill('#token', TOKEN);
    await page.click('#token-form button');
    const card = page.locator('article[data-connector="sandbox"]');
    await card.waitFor();
    await card.locator('button.sync').click();
    await expect
      .poll(() => card.locator('.sync-msg').textContent(), { timeout: 10_000 })
      .toBe('Finishing unfinished run 01234567 first; this sync follows it.');
    expect(await page.locator('#announce').textContent()).toBe('sandbox: Finishing unfinished run 01234567 first; this sync follows it.');
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it('shows a rate limit while it lasts, and clears it once the service answers again', async () => {
    const { page, problems } = await openPage();
    let limited = 0;
    await page.route('**/v1/status/stream', (route) => {
      if (limited > 0) return route.continue();
      limited += 1;
      return route.fulfill({ status: 429, contentType: 'application/json', headers: { 'retry-after': '1' }, body: '{"code":"BRG_ERR_RATE_LIMITED"}' });
    });
    await page.fill('#token', TOKEN);
    await page.click('#token-form button');
    const banner = page.locator('#banner');
    await expect
      .poll(() => banner.textContent(), { timeout: 10_000 })
      .toBe('The service refused this page (HTTP 429: too many requests); it tries again in 1 s.');
    await expect.poll(() => banner.isVisible(), { timeout: 15_000 }).toBe(false);
    expect(limited).toBe(1);
    expect(problems.filter((problem) => !/status of 429/.test(problem))).toEqual([]);
    await page.context().close();
  });

  it('keeps a failure to read the run history on show until the history is read', async () => {
    const { page, problems } = await openPage();
    let failed = 0;
    await page.route('**/v1/runs?limit=50', (route) => {
      if (failed > 0) return route.continue();
      failed += 1;
      return route.fulfill({ status: 503, contentType: 'application/json', body: '{"code":"BRG_ERR_STATE","message":"The state database is locked."}' });
    });
    await page.fill('#token', TOKEN);
    await page.click('#token-form button');
    const banner = page.locator('#banner');
    await expect.poll(() => banner.textContent(), { timeout: 10_000 }).toBe('The state database is locked.');
    // A run starting changes the history: the page reads it again, and the failure is over.
    await page.locator('article[data-connector="sandbox"] button.sync').click();
    await expect.poll(() => banner.isVisible(), { timeout: 30_000 }).toBe(false);
    expect(failed).toBe(1);
    expect(problems.filter((problem) => !/status of 503/.test(problem))).toEqual([]);
    await page.context().close();
  }, 60_000);

  /** A signed-in tab, its board shown. */
  /** Waits until the service has no run in flight (a run a test started has ended). */
  async function untilNothingInFlight(): Promise<void> {
    await expect
      .poll(
        async () => {
          const status = (await (await fetch(`${service.url}/v1/status`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as {
            connectors: Array<{ inFlight?: unknown }>;
          };
          return status.connectors[0]?.inFlight;
        },
        { timeout: 60_000 },
      )
      .toBeUndefined();
  }

  async function signedIn(): Promise<{ page: Page; requests: string[]; problems: string[] }> {
    const opened = await openPage();
    await opened.page.fill('#token', TOKEN);
    await opened.page.click('#token-form button');
    await opened.page.locator('article[data-connector="sandbox"]').waitFor();
    return opened;
  }

  it('shows the run chosen last, whichever answer comes last; and says an address that names no run is none, without an error', async () => {
    const { page, problems } = await signedIn();
    const rows = page.locator('#runs-body tr');
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBeGreaterThan(1);
    const a = (await rows.nth(0).getAttribute('data-run')) as string;
    const b = (await rows.nth(1).getAttribute('data-run')) as string;
    await page.route(`**/v1/runs/${a}`, async (route) => {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await route.continue();
    });
    await rows.nth(0).locator('a').click();
    await rows.nth(1).locator('a').click();
    await expect.poll(() => page.locator('#detail h2 code').textContent(), { timeout: 10_000 }).toBe(b);
    await page.waitForTimeout(2000); // the late answer for the first choice has come by now
    expect(await page.locator('#detail h2 code').textContent()).toBe(b);
    await page.evaluate("location.hash = '#run/%E0'");
    await expect.poll(() => page.locator('#detail').textContent(), { timeout: 5_000 }).toBe('The address names no run (it is not a run id).');
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it('says the updates are interrupted while the status stream cannot be had, and stops saying so once it is back', async () => {
    const { page, problems } = await openPage();
    let refused = 0;
    await page.route('**/v1/status/stream', (route) => {
      if (refused >= 2) return route.continue();
      refused += 1;
      return route.abort('connectionreset');
    });
    await page.fill('#token', TOKEN);
    await page.click('#token-form button');
    const banner = page.locator('#banner');
    await expect
      .poll(() => banner.textContent(), { timeout: 10_000 })
      .toMatch(/^Live updates interrupted since .+; reconnecting\. What this page shows may be out of date\.$/);
    await expect.poll(() => banner.isVisible(), { timeout: 20_000 }).toBe(false);
    expect(refused).toBe(2);
    expect(problems.filter((problem) => !/ERR_CONNECTION_RESET|Failed to fetch/.test(problem))).toEqual([]);
    await page.context().close();
  }, 40_000);

  it('sends one request for a double-click on Sync now, and does not call the run it started refused', async () => {
    const { page } = await signedIn();
    const posts: number[] = [];
    page.on('response', (response) => {
      if (response.url().endsWith('/syncs')) posts.push(response.status());
    });
    h.sandbox.ingest.injectFaults(...Array.from({ length: 4 }, () => ({ kind: 'delay' as const, ms: 300 })));
    const card = page.locator('article[data-connector="sandbox"]');
    await card.locator('button.sync').dblclick();
    await expect.poll(() => posts.length, { timeout: 10_000 }).toBe(1);
    await page.waitForTimeout(500);
    expect(posts).toEqual([202]);
    expect(await card.locator('.sync-msg.refused').count()).toBe(0);
    await untilNothingInFlight();
    h.sandbox.ingest.injectFaults();
    await page.context().close();
  }, 90_000);

  it('keeps a press on Sync now across the status messages that arrive while the button is held down', async () => {
    const { page, problems } = await signedIn();
    const posts: number[] = [];
    page.on('response', (response) => {
      if (response.url().endsWith('/syncs')) posts.push(response.status());
    });
    const card = page.locator('article[data-connector="sandbox"]');
    const button = card.locator('button.sync');
    await page.evaluate('window.pressed = document.querySelector(\'article[data-connector="sandbox"] button.sync\')');
    const box = await button.boundingBox();
    if (!box) throw new Error('no Sync now button on the card');
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    // While the button is down, a run started elsewhere (a script, another operator) begins and ends: the page gets the
    // status messages that say so, shows the run in flight, then the new run. Slow FHIR answers keep it in flight a while.
    h.sandbox.fhir.faults.add({ action: { kind: 'delay', ms: 400 }, match: /\/AuditEvent\?/, times: 3 });
    const started = await fetch(`${service.url}/v1/connectors/sandbox/syncs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(started.status).toBe(202);
    const { runId } = (await started.json()) as { runId: string };
    await expect.poll(() => card.locator('[data-role="inflight"]').count(), { timeout: 30_000 }).toBe(1);
    await expect.poll(() => card.locator('[data-role="inflight"]').count(), { timeout: 30_000 }).toBe(0);
    await expect.poll(() => card.locator('a.run-link', { hasText: runId.slice(0, 8) }).count(), { timeout: 30_000 }).toBeGreaterThan(0);
    await page.mouse.up();
    await expect.poll(() => posts.length, { timeout: 10_000 }).toBe(1);
    expect(await page.evaluate('document.contains(window.pressed)')).toBe(true);
    await untilNothingInFlight();
    expect(problems).toEqual([]);
    await page.context().close();
  }, 90_000);

  it('says clearly when the token is wrong, and keeps nothing of it', async () => {
    const { page, problems } = await openPage();
    await page.fill('#token', 'not-the-token');
    await page.click('#token-form button');
    await expect
      .poll(() => page.locator('#signin-error').textContent(), { timeout: 10_000 })
      .toBe('The API token was not accepted (HTTP 401). Check it and enter it again.');
    expect(await page.locator('#signin').isVisible()).toBe(true);
    expect(await page.locator('#board').isVisible()).toBe(false);
    expect(await page.evaluate("sessionStorage.getItem('bridge.apiToken')")).toBeNull();
    expect(problems).toEqual([]);
    await page.context().close();
  });
});
