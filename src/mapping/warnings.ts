/** The warning sinks of the row engine (the codes are stable and carry no PHI). */
import type { WarningSink } from './builtins.js';

/** Most events raise no warning: they share one empty, frozen list. */
const NO_CODES: readonly string[] = Object.freeze([]);

/**
 * Warning codes of one event, as `<code>:<column>`; most events raise none, so the list is made on demand (a few
 * codes at most: an array beats a Set here). `column` is the column being computed, for `warn`.
 */
export class EventWarnings implements WarningSink {
  private codes: string[] | undefined;
  column = '';

  warn(code: string): void {
    this.add(`${code}:${this.column}`);
  }

  add(code: string): void {
    if (this.codes === undefined) this.codes = [code];
    else if (!this.codes.includes(code)) this.codes.push(code);
  }

  /** Replays codes that already name their column (a memoised cell's). */
  addAll(codes: readonly string[]): void {
    for (const code of codes) this.add(code);
  }

  list(): readonly string[] {
    return this.codes ?? NO_CODES;
  }
}

/** Records the warnings raised while a memoised value is computed, so every later hit can replay them. */
export class Recorder implements WarningSink {
  readonly codes: string[] = [];

  warn(code: string): void {
    this.codes.push(code);
  }
}
