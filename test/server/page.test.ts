/** The operator page's delivery (issue #17.1): no token needed to load it, a strict CSP, every asset from the package. */
import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { APP_JS } from '../../src/server/page/app-js.js';
import { DETAIL_JS } from '../../src/server/page/detail-js.js';
import { VIEW_JS } from '../../src/server/page/view-js.js';
import { PAGE_CSP } from '../../src/server/routes/page.js';
import { testApp } from './support.js';

describe('operator page', () => {
  it('serves / and its assets with a strict Content-Security-Policy and no token', async () => {
    const app = await testApp();
    const page = await app.inject({ method: 'GET', url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    const assets = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? '');
    expect(assets).toEqual(expect.arrayContaining(['/page/app.css', '/page/view.js', '/page/detail.js', '/page/app.js']));
    for (const asset of assets.filter((a) => a.startsWith('/page/'))) {
      const response = await app.inject({ method: 'GET', url: asset });
      expect(response.statusCode, asset).toBe(200);
      expect(response.headers['content-security-policy']).toBe(PAGE_CSP);
      expect(response.headers['content-type']).toMatch(asset.endsWith('.js') ? /^text\/javascript/ : /^text\/css/);
    }
    await app.close();
  });

  it('loads nothing from elsewhere and runs no inline script or style', async () => {
    const app = await testApp();
    const html = (await app.inject({ method: 'GET', url: '/' })).body;
    // Every src/href is this origin's (or the empty data: icon); the only absolute URL in the scripts is the SVG namespace.
    for (const [, url] of html.matchAll(/(?:src|href)="([^"]+)"/g)) expect(url, url).toMatch(/^(\/|data:,$|#)/);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/\sstyle=|<style/);
    expect(html).not.toMatch(/\son[a-z]+=/);
    for (const script of [VIEW_JS, DETAIL_JS, APP_JS]) {
      expect([...script.matchAll(/https?:\/\/[^'"\s]+/g)].map((m) => m[0])).toEqual(script === VIEW_JS ? ['http://www.w3.org/2000/svg'] : []);
      // Data goes into text nodes, never parsed as HTML.
      expect(script).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
    }
    await app.close();
  });

  it('keeps the API token out of URLs: sessionStorage and the Authorization header only', () => {
    expect(APP_JS).toContain('sessionStorage.setItem(TOKEN_KEY, token)');
    expect(APP_JS).toContain("headers.set('authorization', 'Bearer ' + state.token)");
    expect(APP_JS).not.toMatch(/localStorage|[?&]token=|document\.cookie/);
  });

  it('ships scripts that parse', () => {
    for (const script of [VIEW_JS, DETAIL_JS, APP_JS]) expect(() => new Script(script)).not.toThrow();
  });
});
