/**
 * Runs of `bridge serve` that leave no run record behind. A run that fails before its record exists (the Purview secret
 * gone after a redeploy, a window refused before the ledger's horizon, a build error) would otherwise show nowhere but
 * the log: status would keep showing the last good run, and no run event would count it. The service keeps the last
 * one per connector for status (health "failing" with its reason) and counts it; a tick that found the connector held by
 * another process is counted as a skip.
 */
import type { Clock } from '../clock.js';
import type { BridgeError } from '../errors.js';
import type { Metrics } from './metrics.js';
import type { RunnerHooks } from './runner.js';
import type { StartFailure } from './status.js';

export interface StartFailures {
  /** For createSyncRunner. */
  readonly hooks: RunnerHooks;
  /** For statusReport: status shows it until a run starts after it. */
  last(connector: string): StartFailure | undefined;
}

export function trackStartFailures(metrics: Pick<Metrics, 'runStartFailed' | 'scheduleSkipped'>, clock: Pick<Clock, 'now'>): StartFailures {
  const failures = new Map<string, StartFailure>();
  return {
    hooks: {
      onStartFailure(connector, error) {
        // An internal error's message may name anything (the runner logged it); status and the page get the code only.
        const message = error.code === 'BRG_ERR_INTERNAL' ? 'an unexpected error; the service log has the details.' : error.message;
        failures.set(connector, { code: error.code, message, at: new Date(clock.now()).toISOString(), ...askedWindowOf(error) });
        metrics.runStartFailed(connector, error.code);
      },
      onScheduleSkip: (connector) => metrics.scheduleSkipped(connector, 'lease_held'),
    },
    last: (connector) => failures.get(connector),
  };
}

/** The window a trigger asked for and never got a run of (runner.ts windowNotRun), if that is what failed. */
function askedWindowOf(error: BridgeError): { window?: { since?: string; until?: string } } {
  if (error.details['windowNotRun'] !== true) return {};
  const { askedSince: since, askedUntil: until } = error.details;
  return { window: { ...(typeof since === 'string' ? { since } : {}), ...(typeof until === 'string' ? { until } : {}) } };
}
