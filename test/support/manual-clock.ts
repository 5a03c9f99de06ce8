import { abortError, type Clock } from '../../src/clock.js';

/** A clock that moves only when the test says so; sleeps resolve as `advance` passes their deadline. */
export class ManualClock implements Clock {
  private current: number;
  private readonly sleepers: Array<{ until: number; resolve: () => void }> = [];

  constructor(start: number | string) {
    this.current = typeof start === 'string' ? Date.parse(start) : start;
  }

  now(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(abortError(signal));
      const onAbort = (): void => {
        this.sleepers.splice(this.sleepers.indexOf(sleeper), 1);
        reject(abortError(signal));
      };
      // A sleep that ends removes its listener, as systemClock's does: a loop of sleeps on one signal adds none up.
      const sleeper = {
        until: this.current + Math.max(0, ms),
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.sleepers.push(sleeper);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Number of pending sleeps (lets a test wait until the code under test is parked). */
  get pending(): number {
    return this.sleepers.length;
  }

  /** Time passing inside a blocking call (a synchronous wait): sleepers it made due wake at the next `advance`. */
  move(ms: number): void {
    this.current += ms;
  }

  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    for (;;) {
      this.sleepers.sort((a, b) => a.until - b.until);
      const next = this.sleepers[0];
      if (!next || next.until > target) break;
      this.sleepers.shift();
      this.current = Math.max(this.current, next.until);
      next.resolve();
      await flushMicrotasks();
    }
    this.current = target;
    await flushMicrotasks();
  }
}

export async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** A clock whose sleeps advance time instantly: retry loops run without waiting and the test reads how long they "slept". */
export class InstantClock implements Clock {
  slept: number[] = [];
  constructor(private current: number = Date.parse('2026-11-01T00:00:00Z')) {}
  now(): number {
    return this.current;
  }
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw abortError(signal);
    this.slept.push(ms);
    this.current += ms;
  }
}
