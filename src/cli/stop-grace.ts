/**
 * The first SIGINT/SIGTERM asks a run to stop at its next block checkpoint, but a block in flight may take up to
 * `purview.timeoutMs` (400 s by default), longer than a supervisor waits before it kills (Kubernetes'
 * terminationGracePeriodSeconds, systemd's TimeoutStopSec). A killed run cannot release its lease, which then holds the
 * connector until it expires (`state.leaseTtlSeconds`) wherever the holder cannot be seen to be gone: the next pod of a
 * Kubernetes Job, on another host, exits 6. So `bridge sync` bounds the wait as `bridge serve` does, with
 * `server.shutdownGraceMs`: once that has passed since the first signal, the run is aborted where it stands, as a second
 * signal would abort it, and releases its lease on the way out. Blocks Purview acknowledged stay acknowledged; the one
 * aborted in flight is resent by the next run and counted as possibly duplicated.
 */
import type { CliContext } from './context.js';

export interface GraceSignal {
  /** Aborted on the second signal, or `graceMs` after the first: pass it as the run's `signal`. */
  readonly signal: AbortSignal;
  /** Cancels the grace timer once the run is over (it must not keep the process alive). */
  dispose(): void;
}

/**
 * @param ctx - the entry point's signals (`stopSignal`: first signal; `signal`: second) and clock.
 * @param graceMs - how long after the first signal the run in flight may take to reach its checkpoint, e.g. 30_000.
 * @param onExpiry - told when the grace period ran out and the run is being aborted (to log it).
 */
export function abortAfterGrace(ctx: Pick<CliContext, 'signal' | 'stopSignal' | 'clock'>, graceMs: number, onExpiry?: () => void): GraceSignal {
  const expired = new AbortController();
  const disposed = new AbortController();
  const startGrace = (): void => {
    ctx.clock.sleep(graceMs, disposed.signal).then(
      () => {
        if (ctx.signal.aborted) return;
        onExpiry?.();
        expired.abort();
      },
      () => undefined, // disposed: the run ended within its grace period
    );
  };
  if (ctx.stopSignal.aborted) startGrace();
  else ctx.stopSignal.addEventListener('abort', startGrace, { once: true, signal: disposed.signal });
  return { signal: AbortSignal.any([ctx.signal, expired.signal]), dispose: () => disposed.abort() };
}
