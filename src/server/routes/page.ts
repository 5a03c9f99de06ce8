/**
 * The operator page: `/` and its three assets, all from the package (no CDN, no external font: the service may have no
 * internet). No token is needed to load them; they hold no data. A strict Content-Security-Policy allows only this
 * origin's scripts, styles and API (no inline script or style, no frames, no form posts), so a value that slipped
 * into the page as markup still could not run.
 */
import type { FastifyInstance } from 'fastify';
import { APP_JS } from '../page/app-js.js';
import { DETAIL_JS } from '../page/detail-js.js';
import { PAGE_HTML } from '../page/html.js';
import { PAGE_CSS } from '../page/style.js';
import { VIEW_JS } from '../page/view-js.js';

export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ASSETS: ReadonlyArray<{ path: string; type: string; body: string; summary: string }> = [
  { path: '/', type: 'text/html; charset=utf-8', body: PAGE_HTML, summary: 'Operator page: connectors, live progress, run history (asks for the API token)' },
  { path: '/page/app.css', type: 'text/css; charset=utf-8', body: PAGE_CSS, summary: "Operator page's stylesheet" },
  { path: '/page/view.js', type: 'text/javascript; charset=utf-8', body: VIEW_JS, summary: "Operator page's helpers and chart" },
  { path: '/page/detail.js', type: 'text/javascript; charset=utf-8', body: DETAIL_JS, summary: "Operator page's run detail" },
  { path: '/page/app.js', type: 'text/javascript; charset=utf-8', body: APP_JS, summary: "Operator page's script" },
];

export function pageRoutes(app: FastifyInstance): void {
  for (const asset of ASSETS) {
    const mediaType = asset.type.split(';')[0] as string;
    app.get(
      asset.path,
      {
        schema: {
          summary: asset.summary,
          tags: ['page'],
          response: { 200: { description: asset.summary, content: { [mediaType]: { schema: { type: 'string' } } } } },
        },
      },
      async (_request, reply) =>
        reply
          .type(asset.type)
          .header('content-security-policy', PAGE_CSP)
          .header('x-content-type-options', 'nosniff')
          .header('referrer-policy', 'no-referrer')
          .header('x-frame-options', 'DENY')
          // Served from memory and small: always revalidated, so an upgraded bridge never runs an old script.
          .header('cache-control', 'no-cache')
          .send(asset.body),
    );
  }
}
