/**
 * Issue #15.2: a 429 (or 503) with Retry-After pauses every request to the origin, not only the one it answered.
 * Real time on purpose: the server stamps when each request arrives and when it sent the 429.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { createFhirClient } from '../../src/fhir/index.js';
import type { RetryOptions } from '../../src/http.js';
import { silentLogger } from '../../src/log.js';
import { RevocableTokens } from './support.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** Answers the first request 429 Retry-After: 1 after 200 ms, every other one 200 after 300 ms; stamps arrivals. */
async function startThrottlingServer(): Promise<{ baseUrl: string; arrivals: number[]; throttledAt: () => number }> {
  const arrivals: number[] = [];
  let throttledAt = Number.NaN;
  server = createServer((_req, res) => {
    arrivals.push(Date.now());
    const first = arrivals.length === 1;
    setTimeout(
      () => {
        if (first) throttledAt = Date.now();
        res.writeHead(first ? 429 : 200, { 'content-type': 'application/fhir+json', ...(first ? { 'retry-after': '1' } : {}) });
        res.end(
          JSON.stringify(
            first
              ? { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'throttled', diagnostics: 'Too many requests' }] }
              : { resourceType: 'Bundle', type: 'searchset', entry: [] },
          ),
        );
      },
      first ? 200 : 300,
    );
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return { baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/R4`, arrivals, throttledAt: () => throttledAt };
}

/** Three requests at a time, no rate limit of its own, jitter fixed at half. */
function client(baseUrl: string, retry?: RetryOptions) {
  return createFhirClient({
    baseUrl,
    tokenSource: new RevocableTokens(),
    clock: systemClock,
    logger: silentLogger(),
    concurrency: 3,
    requestsPerSecond: 1_000,
    random: () => 0.5,
    ...(retry ? { retry } : {}),
  });
}

describe('origin-wide hold after Retry-After', () => {
  it("starts no request to the origin until the 429's Retry-After has passed; requests already in flight finish", async () => {
    const { baseUrl, arrivals, throttledAt } = await startThrottlingServer();
    const fhir = client(baseUrl);

    const searches = Array.from({ length: 8 }, async (_, i) => {
      for await (const page of fhir.searchPages('Patient', { _id: `p-${i}` })) expect(page.resourceType).toBe('Bundle');
    });
    await Promise.all(searches);

    expect(arrivals).toHaveLength(9); // 8 searches + the retry of the throttled one
    // Two requests were already in flight when the 429 left the server; everything after it waits out the second.
    const before = arrivals.filter((t) => t < throttledAt());
    const after = arrivals.filter((t) => t >= throttledAt());
    expect(before).toHaveLength(3);
    expect(after).toHaveLength(6);
    for (const started of after) expect(started - throttledAt()).toBeGreaterThanOrEqual(995);
    expect(fhir.stats.retries).toBe(1);
  });

  it('holds the origin as long as the retry waits: a Retry-After above maxDelayMs that fits the budget is obeyed in full by both', async () => {
    const { baseUrl, arrivals, throttledAt } = await startThrottlingServer();
    const fhir = client(baseUrl, { maxAttempts: 3, maxTotalMs: 10_000, baseDelayMs: 10, maxDelayMs: 300 });
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        for await (const page of fhir.searchPages('Patient', { _id: `p-${i}` })) expect(page.resourceType).toBe('Bundle');
      }),
    );
    const after = arrivals.filter((t) => t >= throttledAt());
    expect(after.length).toBeGreaterThan(1);
    for (const started of after) expect(started - throttledAt()).toBeGreaterThanOrEqual(995);
  });
});
