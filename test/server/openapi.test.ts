/**
 * /docs/json tells the truth (issue #17.5): it is a valid OpenAPI document, names every route the app registers, puts
 * the bearer scheme on every /v1 route and documents the error answers those routes give.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { registeredRoutes } from '../../src/server/app.js';
import { testApp } from './support.js';

interface Operation {
  security?: Array<Record<string, unknown>>;
  responses?: Record<string, unknown>;
}
type OpenApi = { openapi: string; paths: Record<string, Record<string, Operation>>; components: { securitySchemes: Record<string, { scheme?: string }> } };

const toOpenApiPath = (url: string): string => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

describe('OpenAPI document', async () => {
  const app = await testApp();
  await app.ready();
  const response = await app.inject({ method: 'GET', url: '/docs/json' });
  const doc = response.json<OpenApi>();
  await app.close();

  it('is a valid OpenAPI 3 document', async () => {
    expect(response.statusCode).toBe(200);
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc));
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toMatch(/^3\./);
  });

  it('lists every route the app registers', () => {
    const routes = registeredRoutes(app);
    expect(routes.length).toBeGreaterThan(10);
    for (const route of routes) {
      const path = doc.paths[toOpenApiPath(route.url)];
      expect(path, `${route.method} ${route.url} is not in /docs/json`).toBeDefined();
      expect(path?.[route.method.toLowerCase()], `${route.method} ${route.url} is not in /docs/json`).toBeDefined();
    }
    // And nothing the app does not serve.
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(documented.sort()).toEqual(routes.map((r) => `${r.method} ${toOpenApiPath(r.url)}`).sort());
  });

  it('applies the bearer scheme to every /v1 route and documents 400, 401, 429 (404, 409 where they happen)', () => {
    expect(doc.components.securitySchemes['apiToken']?.scheme).toBe('bearer');
    const v1 = Object.entries(doc.paths).filter(([path]) => path.startsWith('/v1/'));
    expect(v1.length).toBeGreaterThanOrEqual(6);
    for (const [path, ops] of v1) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method.toUpperCase()} ${path}`;
        expect(op.security, where).toEqual([{ apiToken: [] }]);
        for (const status of ['400', '401', '429']) expect(Object.keys(op.responses ?? {}), where).toContain(status);
        if (path.includes('{')) expect(Object.keys(op.responses ?? {}), where).toContain('404');
      }
    }
    expect(Object.keys(doc.paths['/v1/connectors/{name}/syncs']?.['post']?.responses ?? {})).toEqual(expect.arrayContaining(['202', '409']));
    // The rejects of a run still running or pushing are not served (a partial file): a 409 of its own words.
    const rejects = doc.paths['/v1/runs/{id}/rejects']?.['get']?.responses ?? {};
    expect(Object.keys(rejects)).toEqual(expect.arrayContaining(['200', '404', '409']));
    expect(JSON.stringify(rejects['409'])).toContain('still in progress');
    // Routes outside /v1 need no token.
    for (const [path, ops] of Object.entries(doc.paths).filter(([p]) => !p.startsWith('/v1/'))) {
      for (const op of Object.values(ops)) expect(op.security, path).toBeUndefined();
    }
  });

  it('says the rejects route returns PHI', () => {
    expect(JSON.stringify(doc.paths['/v1/runs/{id}/rejects'])).toContain('PHI');
  });
});
