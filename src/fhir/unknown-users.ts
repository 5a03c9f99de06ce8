/**
 * The requestor identifiers no Practitioner (or PractitionerRole) carries: at Epic, staff without a provider record,
 * whose every look-up costs a search of its own and always finds nothing. Each is believed nobody's for `ttlMs` after
 * a search last found nobody, held apart from the resolver's LRU cache (a large site's lookups would push them out of
 * it), and, with a store, kept across runs (the state database, per connector and FHIR server).
 */
import type { Clock } from '../clock.js';
import { BridgeError } from '../errors.js';
import type { Logger } from '../log.js';

/** Requestor identifier keys no Practitioner carries, each with the instant (epoch ms) a search found nobody. */
export interface UnknownUserStore {
  load(): ReadonlyMap<string, number>;
  save(found: ReadonlyMap<string, number>): void;
}

/** Kept unknown users are written at most this often within a run. */
const SAVE_EVERY_MS = 60_000;

/** At most this many kept across runs: the latest found. */
const MAX_KEPT = 100_000;

export class UnknownUsers {
  private readonly found = new Map<string, number>();
  private loaded = false;
  private dirty = false;
  private savedMs: number | undefined;

  constructor(
    private readonly ttlMs: number,
    private readonly clock: Clock,
    private readonly store: UnknownUserStore | undefined,
    private readonly logger: Logger | undefined,
  ) {}

  /** Whether `key` is still believed nobody's (this run's ttlMs: a lowered setting holds at once). */
  isFresh(key: string): boolean {
    const at = this.found.get(key);
    return at !== undefined && at + this.ttlMs > this.clock.now();
  }

  /** A search found nobody carrying it. */
  add(key: string): void {
    this.found.set(key, this.clock.now());
    this.dirty = true;
  }

  /** Someone carries it now (or two do). */
  forget(key: string): void {
    if (this.found.delete(key)) this.dirty = true;
  }

  /** Loads what earlier runs kept, once; expired ones go from the state at the next write. */
  load(): void {
    if (this.loaded || !this.store) return;
    this.loaded = true;
    const now = this.clock.now();
    for (const [key, at] of this.store.load()) {
      if (at + this.ttlMs > now && at <= now) this.found.set(key, at);
      else this.dirty = true;
    }
  }

  /**
   * Writes them back when they changed: at the first change, then at most once a minute (a large site's list is
   * megabytes), and whenever `final` (the pull's last prefetch, or one asked for alone). A failed write costs only
   * searches: it is logged, never the run's failure.
   */
  save(final: boolean): void {
    if (!this.dirty || !this.store) return;
    const now = this.clock.now();
    if (!final && this.savedMs !== undefined && now - this.savedMs < SAVE_EVERY_MS) return;
    const oldest = now - this.ttlMs;
    const live = [...this.found].filter(([, at]) => at > oldest);
    const chosen = live.length > MAX_KEPT ? live.sort((a, b) => b[1] - a[1]).slice(0, MAX_KEPT) : live;
    this.savedMs = now;
    try {
      this.store.save(new Map(chosen));
      this.dirty = false;
    } catch (error) {
      this.logger?.warn(
        { code: error instanceof BridgeError ? error.code : 'BRG_ERR_STATE', users: chosen.length },
        'the users no Practitioner carries could not be kept in the state database; the next run searches for them again',
      );
    }
  }
}
