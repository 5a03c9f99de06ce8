/**
 * `bridge serve` finishes at start-up a push its last shutdown interrupted, but not one of a connector another unit
 * syncs: the systemd deployment gives each connector's syncs to a timer (schedule.enabled false) and its Purview secret to
 * that timer's unit alone. The service has no secret for it, so a resume could only fail and show the connector failing
 * until the timer's next run: it leaves the push to the timer, and says so.
 */
import { afterAll, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/index.js';
import { hashApiToken } from '../../src/server/auth.js';
import { type Service, startService } from '../../src/server/service.js';
import { until } from '../support/bridge-process.js';
import { interruptedPush, type SandboxHarness, startHarness } from '../support/sandbox-run.js';

const TOKEN = 'serve-startup-resume-token-0123456789';
const harnesses: SandboxHarness[] = [];
const services: Service[] = [];
afterAll(async () => {
  for (const service of services) await service.close();
  for (const h of harnesses) await h.close();
});

// The timer's unit holds the secret or the certificate's key (/run/credentials/bridge-sync@sandbox.service/… exists only
// while it runs).
const CREDENTIALS = '/run/credentials/bridge-sync@sandbox.service';
const purviewAuth = {
  secret: { secret: { file: `${CREDENTIALS}/purview-app-secret` } },
  certificate: { certificate: { keyFile: `${CREDENTIALS}/purview-app-key.pem`, thumbprintSha256: 'ab'.repeat(32) } },
};

it.each(['secret', 'certificate'] as const)(
  'leaves an interrupted push of a connector it neither schedules nor has the Purview %s of to the unit that syncs it',
  async (auth) => {
    const h = await startHarness({ data: { seed: 95, events: 120, patients: 30, practitioners: 6 } });
    harnesses.push(h);
    const runId = await interruptedPush(h);
    const base = structuredClone(h.sandbox.config) as { connectors: Array<{ purview: Record<string, unknown> }> };
    const connector = base.connectors[0] as { purview: Record<string, unknown> };
    const { secret: _secret, ...purview } = connector.purview;
    connector.purview = { ...purview, ...purviewAuth[auth] };
    const config = loadConfig({
      base: base as typeof h.sandbox.config,
      env: {},
      flags: { 'server.port': 0, 'server.apiTokenSha256': [hashApiToken(TOKEN)], 'connectors.0.schedule.enabled': false },
    });
    const service = await startService({ config, env: {}, clock: systemClock, logger: h.logger, schedules: true });
    services.push(service);
    const decision = await until('the start-up decision', () =>
      h.logLines.find(
        (line) => line.includes('not finishing the interrupted push at start-up') || line.includes('finishing the push the last shutdown interrupted'),
      ),
    );
    const statusOf = async () =>
      (
        (await (await fetch(new URL('/v1/status', service.url), { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as {
          connectors: Array<Record<string, unknown>>;
        }
      ).connectors[0];
    // A resume, had one been tried, ends at once (the secret is read before anything is pulled): wait for nothing in flight.
    let status = await statusOf();
    for (let tries = 0; tries < 200 && status !== undefined && 'inFlight' in status; tries += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      status = await statusOf();
    }
    // No resume was tried: no start failure, nothing in flight; the run waits for the timer.
    expect(status).not.toHaveProperty('lastStartFailure');
    expect(status).not.toHaveProperty('inFlight');
    // Tried, it failed on the missing secret, recorded on the run: the connector showed failing until the timer ran. The
    // run still says what stopped it.
    expect(h.withStore((s) => s.getRun(runId)?.error?.code)).toBe('BRG_ERR_ABORTED');
    expect(String(status?.['reason'])).not.toContain('BRG_ERR_CONFIG_SECRET_MISSING');
    expect(decision).toContain('not finishing the interrupted push at start-up');
    expect(h.withStore((s) => s.getRun(runId)?.state)).toBe('pushing');
  },
);
