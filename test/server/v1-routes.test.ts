/** /v1 status, runs and rejects (issue #17.2): what the page and scripts read, with the rejects file's whereabouts. */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { MAX_STREAMS_PER_TOKEN } from '../../src/server/routes/stream.js';
import type { SyncRunner } from '../../src/server/runner.js';
import type { StatusReport } from '../../src/server/status.js';
import { type RunRecord, type StateStore, ZERO_COUNTS } from '../../src/sync/state/index.js';
import { AUTH, captureLogger, tempStore, testApp } from './support.js';

function completedRun(store: StateStore, dir: string, id: string, rejects: string | undefined): RunRecord {
  const rejectsPath = join(dir, 'rejects', `${id}.ndjson`);
  mkdirSync(join(dir, 'rejects'), { recursive: true });
  if (rejects !== undefined) writeFileSync(rejectsPath, rejects, { mode: 0o600 });
  store.createRun({
    id,
    connector: 'main',
    state: 'running',
    trigger: 'http',
    since: '2026-11-01T00:00:00.000Z',
    until: '2026-11-02T00:00:00.000Z',
    startedAt: '2026-11-02T00:01:00.000Z',
    counts: { ...ZERO_COUNTS },
    dryRun: false,
  });
  store.updateRun(id, { state: 'pushing', rejectsPath, details: { rejectReasons: { 'missing-patient-name': 2 }, skipReasons: { 'no-patient': 1 } } });
  store.completeRun(id, { counts: { ...ZERO_COUNTS, events: 5, rows: 3, rejects: 2, rowsAcked: 3 } });
  return store.getRun(id) as RunRecord;
}

describe('/v1 runs and rejects', () => {
  it('says where the rejects are while they exist, until when, and streams them; a removed file is a 404 that says why', async () => {
    const { store, dir } = tempStore();
    const kept = completedRun(store, dir, 'run-kept', '{"eventId":"e1","reason":"missing-patient-name"}\n{"eventId":"e2","reason":"missing-patient-name"}\n');
    completedRun(store, dir, 'run-gone', undefined);
    const app = await testApp({ store, rejects: { retentionDays: 14, retainFiles: false } });

    const one = (await app.inject({ method: 'GET', url: '/v1/runs/run-kept', headers: AUTH })).json<Record<string, unknown>>();
    expect(one).toMatchObject({
      id: 'run-kept',
      state: 'completed',
      rejectsAvailable: true,
      rejectsPath: kept.rejectsPath,
      details: { rejectReasons: { 'missing-patient-name': 2 } },
    });
    expect(one['rejectsExpireAt']).toBe(new Date(Date.parse(kept.finishedAt ?? '') + 14 * 86_400_000).toISOString());

    const list = (await app.inject({ method: 'GET', url: '/v1/runs?connector=main', headers: AUTH })).json<{ runs: Array<Record<string, unknown>> }>();
    const gone = list.runs.find((r) => r['id'] === 'run-gone');
    expect(gone).toMatchObject({ rejectsAvailable: false });
    expect(gone).not.toHaveProperty('rejectsPath');

    const stream = await app.inject({ method: 'GET', url: '/v1/runs/run-kept/rejects', headers: AUTH });
    expect(stream.statusCode).toBe(200);
    expect(stream.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
    expect(stream.headers['cache-control']).toBe('no-store');
    expect(
      stream.body
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { eventId: string }).eventId),
    ).toEqual(['e1', 'e2']);

    const removed = await app.inject({ method: 'GET', url: '/v1/runs/run-gone/rejects', headers: AUTH });
    expect(removed.statusCode).toBe(404);
    expect(removed.json()).toEqual({
      code: 'BRG_ERR_NOT_FOUND',
      message: 'The rejects of run run-gone were removed: a completed run keeps them retention.rejectsDays (14) day(s).',
    });
    expect((await app.inject({ method: 'GET', url: '/v1/runs/nope/rejects', headers: AUTH })).statusCode).toBe(404);
    rmSync(kept.rejectsPath ?? '', { force: true });
    expect((await app.inject({ method: 'GET', url: '/v1/runs/run-kept', headers: AUTH })).json()).toMatchObject({ rejectsAvailable: false });
    await app.close();
  });
});

describe('/v1 rejects of a run not over yet', () => {
  it('answers 409 with a stable code and when to fetch them, not the partial file, while the run is running or pushing', async () => {
    const { store, dir } = tempStore();
    const rejectsPath = join(dir, 'rejects', 'run-live.ndjson');
    mkdirSync(join(dir, 'rejects'), { recursive: true });
    // A push in progress appends the rows Purview refused (as sent: PHI) to the file as it gives them up.
    writeFileSync(rejectsPath, '{"eventId":"e1","reason":"purview-refused","row":"PHI"}\n', { mode: 0o600 });
    store.createRun({
      id: 'run-live',
      connector: 'main',
      state: 'running',
      trigger: 'http',
      since: '2026-11-01T00:00:00.000Z',
      until: '2026-11-02T00:00:00.000Z',
      startedAt: '2026-11-02T00:01:00.000Z',
      counts: { ...ZERO_COUNTS },
      dryRun: false,
    });
    const app = await testApp({ store });
    const message = (state: string, after: string): string =>
      `Run run-live is still in progress (${state}): its rejects file is written until the run completes. Fetch its rejects once it completes (${after}).`;
    const after = {
      running: 'a run killed while it pulled is closed as failed by the next run, and its window pulled again',
      pushing: 'a push left unfinished completes when the next run resumes it',
    };
    for (const state of ['running', 'pushing'] as const) {
      store.updateRun('run-live', { state, rejectsPath });
      const answer = await app.inject({ method: 'GET', url: '/v1/runs/run-live/rejects', headers: AUTH });
      expect([answer.statusCode, answer.json()]).toEqual([409, { code: 'BRG_ERR_RUN_IN_PROGRESS', message: message(state, after[state]) }]);
      expect(answer.body).not.toContain('PHI');
    }
    store.completeRun('run-live', { counts: { ...ZERO_COUNTS, rows: 1, rejects: 1 } });
    const whole = await app.inject({ method: 'GET', url: '/v1/runs/run-live/rejects', headers: AUTH });
    expect([whole.statusCode, whole.body]).toEqual([200, '{"eventId":"e1","reason":"purview-refused","row":"PHI"}\n']);
    await app.close();
  });
});

describe('/v1/status and its stream', () => {
  const report = (events: number): StatusReport => ({
    now: new Date().toISOString(),
    healthy: false,
    connectors: [
      {
        name: 'main',
        health: 'late',
        reason: 'no run has completed yet',
        lateAfterSeconds: 600,
        schedule: { cron: '0 * * * *', enabled: true },
        inFlight: {
          runId: 'r1',
          holder: 'this service',
          since: '2026-11-23T12:00:00.000Z',
          progress: { runId: 'r1', phase: 'pulling', startedAt: '2026-11-23T12:00:00.000Z', events, rows: events, rejects: 0, rowsAcked: 0, blocksAcked: 0 },
        },
      },
    ],
  });

  it('answers the status, and streams it at once and on every change, as Server-Sent Events', async () => {
    let events = 0;
    let notify: () => void = () => undefined;
    const app = await testApp({
      status: () => report(events),
      watchStatus: (listener) => {
        notify = listener;
        return () => {
          notify = () => undefined;
        };
      },
      streamTickMs: 60_000,
    });
    expect((await app.inject({ method: 'GET', url: '/v1/status', headers: AUTH })).json()).toMatchObject({
      healthy: false,
      connectors: [{ name: 'main', inFlight: { progress: { events: 0 } } }],
    });

    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const controller = new AbortController();
    const response = await fetch(`${url}/v1/status/stream`, { headers: AUTH, signal: controller.signal });
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const reader = (response.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
    const next = async (): Promise<StatusReport> => {
      let buffer = '';
      while (!buffer.includes('\n\n')) buffer += (await reader.read()).value ?? '';
      const [message] = buffer.split('\n\n');
      expect(message?.startsWith('event: status\ndata: ')).toBe(true);
      return JSON.parse(message?.slice('event: status\ndata: '.length) ?? '') as StatusReport;
    };
    expect((await next()).connectors[0]?.inFlight?.progress?.events).toBe(0);
    events = 40;
    notify();
    notify(); // a burst becomes one message
    expect((await next()).connectors[0]?.inFlight?.progress?.events).toBe(40);
    // Closing the server ends the open stream instead of waiting for the client.
    await app.close();
    expect((await reader.read()).done).toBe(true);
    controller.abort();
  });
});

describe('/v1 status stream cost', () => {
  it('computes the status once per change for all open streams, not once per stream', async () => {
    let computed = 0;
    const listeners = new Set<() => void>();
    const notify = (): void => {
      for (const listener of listeners) listener();
    };
    const app = await testApp({
      status: () => {
        computed += 1;
        return { now: new Date().toISOString(), healthy: true, connectors: [] };
      },
      watchStatus: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      streamTickMs: 60_000,
    });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const controllers = [new AbortController(), new AbortController(), new AbortController()];
    const readers = await Promise.all(
      controllers.map(async (controller) => {
        const response = await fetch(`${url}/v1/status/stream`, { headers: AUTH, signal: controller.signal });
        return (response.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
      }),
    );
    const message = async (reader: ReadableStreamDefaultReader<string>): Promise<void> => {
      let buffer = '';
      while (!buffer.includes('\n\n')) buffer += (await reader.read()).value ?? '';
    };
    await Promise.all(readers.map(message));
    expect(computed).toBe(3);
    for (let i = 0; i < 10; i++) notify();
    await Promise.all(readers.map(message));
    // One more computation served all three streams.
    expect(computed).toBe(4);
    for (const controller of controllers) controller.abort();
    await app.close();
  });
});

describe('/v1 status stream limits', () => {
  it(`opens at most ${MAX_STREAMS_PER_TOKEN} streams per API token; a closed one frees its place`, async () => {
    const app = await testApp({ streamTickMs: 60_000 });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const controllers: AbortController[] = [];
    const open = async (): Promise<Response> => {
      const controller = new AbortController();
      controllers.push(controller);
      return fetch(`${url}/v1/status/stream`, { headers: AUTH, signal: controller.signal });
    };
    for (let i = 0; i < MAX_STREAMS_PER_TOKEN; i++) expect((await open()).status).toBe(200);
    const refused = await open();
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { code: string }).code).toBe('BRG_ERR_RATE_LIMITED');
    controllers[0]?.abort();
    let again = 429;
    for (let i = 0; i < 50 && again === 429; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const response = await open();
      again = response.status;
      if (again === 429) await response.body?.cancel();
    }
    expect(again).toBe(200);
    for (const controller of controllers) controller.abort();
    await app.close();
  });

  it('answers a HEAD of the stream at once, without taking a stream of the token (a monitor probing it)', async () => {
    const app = await testApp({ streamTickMs: 60_000 });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    for (let i = 0; i < MAX_STREAMS_PER_TOKEN + 2; i++) {
      const head = await fetch(`${url}/v1/status/stream`, { method: 'HEAD', headers: AUTH, signal: AbortSignal.timeout(5_000) });
      expect(head.status).toBe(404);
    }
    const controller = new AbortController();
    expect((await fetch(`${url}/v1/status/stream`, { headers: AUTH, signal: controller.signal })).status).toBe(200);
    controller.abort();
    await app.close();
  });
});

describe('unknown routes', () => {
  it('answer 404 with a stable code, inside /v1 and out, naming the path without its query', async () => {
    const app = await testApp();
    for (const url of ['/v1/nope?token=secret', '/nope']) {
      const answer = await app.inject({ method: 'GET', url, headers: AUTH });
      expect([answer.statusCode, answer.json()]).toEqual([
        404,
        { code: 'BRG_ERR_NOT_FOUND', message: `No route GET ${url.split('?')[0]}; GET /docs/json lists the API.` },
      ]);
    }
    const method = await app.inject({ method: 'DELETE', url: '/v1/status', headers: AUTH });
    expect([method.statusCode, method.json().code]).toEqual([404, 'BRG_ERR_NOT_FOUND']);
  });

  it("refuse a path that does not decode, or a name too long, with a stable code and a shortened path, not fastify's own shape", async () => {
    const { started, runner } = recordingRunner();
    const app = await testApp({ runner });
    for (const [url, status, why] of [
      ['/v1/connectors/%E0%A4%A/syncs', 400, /is not a valid URL/],
      ['/v1/runs/%zz?token=secret', 400, /is not a valid URL/],
      [`/v1/connectors/${'x'.repeat(5000)}/syncs`, 414, /has a segment longer than the API takes/],
    ] as const) {
      const answer = await app.inject({ method: url.includes('syncs') ? 'POST' : 'GET', url, headers: AUTH });
      expect([answer.statusCode, Object.keys(answer.json()).sort(), answer.json().code]).toEqual([status, ['code', 'message'], 'BRG_ERR_INPUT_INVALID']);
      expect(answer.json().message).toMatch(why);
      expect(answer.json().message).not.toContain('secret');
      expect(answer.json().message.length).toBeLessThan(500);
    }
    expect(started).toEqual([]);
  });
});

/** A runner that records what each start asked for and answers with run-9. */
function recordingRunner(): { started: Array<Record<string, unknown>>; runner: SyncRunner } {
  const started: Array<Record<string, unknown>> = [];
  const runner: SyncRunner = {
    start: async (_name, request) => {
      started.push({ ...request });
      return { runId: 'run-9', resumed: false };
    },
    isRunning: () => false,
    endOfRunShortOfNow: () => undefined,
    drain: async () => undefined,
  };
  return { started, runner };
}

/** POST /v1/connectors/main/syncs with a JSON content type and this body text. */
function postJson(app: Awaited<ReturnType<typeof testApp>>, payload: string) {
  return app.inject({ method: 'POST', url: '/v1/connectors/main/syncs', headers: { ...AUTH, 'content-type': 'application/json' }, payload });
}

describe('/v1 answers to a bad request', () => {
  it('a body too large (413) or of another type (415) is an input error, not an internal one', async () => {
    const { store } = tempStore();
    const app = await testApp({ store });
    const large = await app.inject({
      method: 'POST',
      url: '/v1/connectors/main/syncs',
      headers: { ...AUTH, 'content-type': 'application/json' },
      payload: JSON.stringify({ since: 'x'.repeat(2 * 1024 * 1024) }),
    });
    expect(large.statusCode).toBe(413);
    expect(large.json()).toMatchObject({ code: 'BRG_ERR_INPUT_INVALID' });
    const text = await app.inject({ method: 'POST', url: '/v1/connectors/main/syncs', headers: { ...AUTH, 'content-type': 'text/csv' }, payload: 'a,b' });
    expect(text.statusCode).toBe(415);
    expect(text.json()).toMatchObject({ code: 'BRG_ERR_INPUT_INVALID' });
  });

  it('names a field the request does not take (a misspelt since), without starting anything', async () => {
    const { started, runner } = recordingRunner();
    const app = await testApp({ runner });
    const answer = await postJson(app, JSON.stringify({ snice: '2026-11-01T00:00:00Z' }));
    expect([answer.statusCode, answer.json()]).toEqual([
      400,
      { code: 'BRG_ERR_INPUT_INVALID', message: 'body has a field "snice" this request does not take; GET /docs/json lists the fields.' },
    ]);
    expect(started).toEqual([]);
  });

  it('starts a sync on a POST without a body ("sync now"), as with an empty window', async () => {
    const { started, runner } = recordingRunner();
    const app = await testApp({ runner });
    const answer = await app.inject({ method: 'POST', url: '/v1/connectors/main/syncs', headers: AUTH });
    expect([answer.statusCode, answer.json()]).toEqual([202, { runId: 'run-9' }]);
    expect(started).toHaveLength(1);
    expect(started[0]).not.toHaveProperty('since');
  });

  it('starts a sync on a JSON POST with an empty body, as without one', async () => {
    const { started, runner } = recordingRunner();
    const app = await testApp({ runner });
    const answer = await postJson(app, '');
    expect([answer.statusCode, answer.json()]).toEqual([202, { runId: 'run-9' }]);
    expect(started).toEqual([{ trigger: 'http' }]);
    // A body that is there must still be JSON.
    const broken = await app.inject({
      method: 'POST',
      url: '/v1/connectors/main/syncs',
      headers: { ...AUTH, 'content-type': 'application/json' },
      payload: '{',
    });
    expect([broken.statusCode, broken.json().code]).toEqual([400, 'BRG_ERR_INPUT_INVALID']);
    expect(started).toHaveLength(1);
  });

  it("starts a sync on an empty POST of any type (curl -d '' sends a form); a body of another type is a 415 saying to send JSON", async () => {
    const { started, runner } = recordingRunner();
    const app = await testApp({ runner });
    const post = (contentType: string | undefined, payload: string) =>
      app.inject({ method: 'POST', url: '/v1/connectors/main/syncs', headers: { ...AUTH, ...(contentType ? { 'content-type': contentType } : {}) }, payload });
    for (const type of ['application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x']) {
      const answer = await post(type, '');
      expect([type, answer.statusCode, answer.json()]).toEqual([type, 202, { runId: 'run-9' }]);
    }
    expect(started).toEqual([{ trigger: 'http' }, { trigger: 'http' }, { trigger: 'http' }]);
    for (const [type, payload] of [
      ['application/x-www-form-urlencoded', 'since=2026-11-01'],
      ['text/plain', '{"since":"2026-11-01"}'],
      [undefined, 'since=2026-11-01'],
    ] as const) {
      const answer = await post(type, payload);
      expect([type, answer.statusCode, answer.json().code]).toEqual([type, 415, 'BRG_ERR_INPUT_INVALID']);
      expect(answer.json().message).toMatch(/send JSON with Content-Type: application\/json .*or no body at all to sync now\.$/);
    }
    expect(started).toHaveLength(3);
  });

  it('refuses a day that does not exist with a 400 naming the field, before any run starts', async () => {
    const { started, runner } = recordingRunner();
    const app = await testApp({ runner });
    for (const [field, value] of [
      ['since', '2026-02-30'],
      ['until', '2026-02-31T10:00Z'],
    ] as const) {
      const answer = await app.inject({ method: 'POST', url: '/v1/connectors/main/syncs', headers: AUTH, payload: { [field]: value } });
      expect(answer.statusCode).toBe(400);
      expect(answer.json()).toMatchObject({
        code: 'BRG_ERR_INPUT_INVALID',
        message: expect.stringMatching(new RegExp(`^${field} "${value}" names a day that does not exist`)),
      });
    }
    expect(started).toEqual([]);
  });

  it("says to add a zone to a time without one, and what an instant looks like, not the schema's regular expression", async () => {
    const { started, runner } = recordingRunner();
    const app = await testApp({ runner });
    for (const [field, value, says] of [
      ['since', '2026-11-01T10:00', /has a time but no zone; add Z for UTC or the offset you mean/],
      ['until', '2026-11-02T10:00:00', /has a time but no zone; add Z for UTC or the offset you mean/],
      ['since', '2026/11/01', /is not an ISO 8601 date or instant \(e\.g\. 2026-11-01T00:00:00Z\)/],
    ] as const) {
      const answer = await app.inject({ method: 'POST', url: '/v1/connectors/main/syncs', headers: AUTH, payload: { [field]: value } });
      expect([answer.statusCode, answer.json().code]).toEqual([400, 'BRG_ERR_INPUT_INVALID']);
      expect(answer.json().message).toMatch(new RegExp(`^${field} "${value}" `));
      expect(answer.json().message).toMatch(says);
    }
    const long = await app.inject({
      method: 'POST',
      url: '/v1/connectors/main/syncs',
      headers: AUTH,
      payload: { since: `2026-11-01T10:00${'0'.repeat(10_000)}` },
    });
    expect([long.statusCode, long.json().code]).toEqual([400, 'BRG_ERR_INPUT_INVALID']);
    expect(long.body.length).toBeLessThan(500);
    expect(started).toEqual([]);
  });

  it('types every other failure: a locked state database is BRG_ERR_STATE, an unknown one says only the request id', async () => {
    const busy = Object.assign(new Error('database is locked'), { name: 'SqliteError', code: 'SQLITE_BUSY' });
    const locked = await testApp({
      runner: { start: () => Promise.reject(busy), isRunning: () => false, endOfRunShortOfNow: () => undefined, drain: async () => undefined },
    });
    const answer = await locked.inject({ method: 'POST', url: '/v1/connectors/main/syncs', headers: AUTH, payload: {} });
    expect([answer.statusCode, answer.json().code]).toEqual([500, 'BRG_ERR_STATE']);
    expect(answer.json().message).toContain('locked by another process');

    const unknown = await testApp({
      runner: {
        start: () => Promise.reject(new Error('ENOENT /var/lib/bridge/secret/path')),
        isRunning: () => false,
        endOfRunShortOfNow: () => undefined,
        drain: async () => undefined,
      },
    });
    const hidden = await unknown.inject({ method: 'POST', url: '/v1/connectors/main/syncs', headers: AUTH, payload: {} });
    expect([hidden.statusCode, hidden.json().code]).toEqual([500, 'BRG_ERR_INTERNAL']);
    expect(hidden.body).not.toContain('/var/lib');
    expect(hidden.json().message).toMatch(/^Internal error \(request [\w-]+\); the service log has the details\.$/);

    // Outside /v1 too: the public JWK Set answers a typed error, as 503 (the service's keys are missing, not the request
    // wrong), without its detail and never cacheable (a cache in front would keep serving the failure to the EHR).
    const keyless = await testApp({
      jwks: () => {
        throw new BridgeError('BRG_ERR_INPUT_INVALID', 'No public keys to publish: run `bridge keys generate`.');
      },
    });
    const jwks = await keyless.inject({ method: 'GET', url: '/.well-known/jwks.json' });
    expect([jwks.statusCode, jwks.json()]).toEqual([
      503,
      { code: 'BRG_ERR_INPUT_INVALID', message: 'The JWK Set is not available; the service log says why.' },
    ]);
    expect(jwks.headers['cache-control']).toBe('no-store');
    expect(jwks.headers['retry-after']).toBe('60');
    const served = await (await testApp()).inject({ method: 'GET', url: '/.well-known/jwks.json' });
    expect([served.statusCode, served.headers['cache-control']]).toEqual([200, 'public, max-age=60']);
    const leaky = await testApp({
      jwks: () => {
        throw new BridgeError('BRG_ERR_KEY_INVALID', '/var/lib/bridge/keys/jwks.json does not exist; run `bridge keys generate`.');
      },
    });
    expect((await leaky.inject({ method: 'GET', url: '/.well-known/jwks.json' })).body).not.toContain('/var/lib');
    // The route is public and unthrottled: one failure read (the service reads keys at most every few seconds) is one log
    // line, however many requests come meanwhile.
    const failure = new BridgeError('BRG_ERR_INPUT_INVALID', 'No public keys to publish: run `bridge keys generate`.');
    const captured = captureLogger();
    const flooded = await testApp({
      logger: captured.logger,
      jwks: () => {
        throw failure;
      },
    });
    for (let i = 0; i < 5; i += 1) expect((await flooded.inject({ method: 'GET', url: '/.well-known/jwks.json' })).statusCode).toBe(503);
    expect(captured.lines.filter((line) => line['msg'] === 'the JWK Set could not be served')).toHaveLength(1);
  });
});
