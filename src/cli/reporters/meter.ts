/**
 * The progress of one sync or push as the terminal bar and the periodic lines show it: rows done of the total, rate,
 * percent and time left. Rows only, never their content. Time comes from the injected clock, so tests drive it.
 */
import type { Clock } from '../../clock.js';

export type Phase = 'pulling' | 'pushing';

export class ProgressModel {
  phase: Phase = 'pulling';
  events = 0;
  /** Pulling: rows mapped so far. Pushing: rows acknowledged by Purview, now or (per the ledger) before. */
  done = 0;
  /** Rows to push, once known (the spool is complete, or the flat file was read). */
  total: number | undefined;
  blocksAcked = 0;
  private blockRows: number | undefined;
  /** The last retry, shown until the next acknowledgement. */
  retry: string | undefined;
  /** The source's last progress line (e.g. a Bulk Data export's X-Progress), shown while pulling. */
  sourceNote: string | undefined;
  private phaseStartMs: number;
  /** Rows counted toward the rate: sent in this phase (rows found delivered earlier arrive at once and would inflate it). */
  private moved = 0;

  constructor(private readonly clock: Clock) {
    this.phaseStartMs = clock.now();
  }

  startPull(): void {
    this.phase = 'pulling';
    this.events = 0;
    this.done = 0;
    this.total = undefined;
    this.blocksAcked = 0;
    this.retry = undefined;
    this.sourceNote = undefined;
    this.restartRate();
  }

  page(events: number, rows: number): void {
    this.events += events;
    this.done += rows;
    this.moved += rows;
  }

  startPush(total: number | undefined, blockRows?: number): void {
    this.phase = 'pushing';
    this.total = total;
    this.done = 0;
    this.blockRows = blockRows;
    this.restartRate();
  }

  alreadyDelivered(rows: number): void {
    this.done += rows;
  }

  blockAcked(rows: number): void {
    this.blocksAcked += 1;
    this.done += rows;
    this.moved += rows;
    this.retry = undefined;
  }

  /** Rows per second of this phase, once a second has passed (before that it is noise). */
  rate(): number | undefined {
    const seconds = (this.clock.now() - this.phaseStartMs) / 1000;
    return seconds >= 1 ? this.moved / seconds : undefined;
  }

  /** 0…1, when the total is known. */
  fraction(): number | undefined {
    if (this.total === undefined) return undefined;
    return this.total === 0 ? 1 : Math.min(1, this.done / this.total);
  }

  /** Seconds left at the current rate. */
  etaSeconds(): number | undefined {
    const rate = this.rate();
    if (this.total === undefined || !rate) return undefined;
    return Math.max(0, (this.total - this.done) / rate);
  }

  /** "pulling: 12,345 events → 11,000 rows · 2,100 rows/s" or "pushing: 50,000 of 111,000 rows (45%) · block 1 of ~2 · … · ETA 0:05". */
  describe(): string {
    const rate = this.rate();
    const parts: string[] = [];
    if (this.phase === 'pulling') {
      parts.push(`pulling: ${count(this.events)} events → ${count(this.done)} rows`);
    } else {
      const fraction = this.fraction();
      parts.push(
        `pushing: ${count(this.done)}${this.total === undefined ? '' : ` of ${count(this.total)}`} rows${fraction === undefined ? '' : ` (${Math.floor(fraction * 100)}%)`}`,
      );
      const blocksTotal =
        this.blockRows && this.total !== undefined ? this.blocksAcked + Math.ceil(Math.max(0, this.total - this.done) / this.blockRows) : undefined;
      parts.push(`${count(this.blocksAcked)}${blocksTotal === undefined ? '' : ` of ~${count(blocksTotal)}`} block(s)`);
    }
    if (rate !== undefined) parts.push(`${count(Math.round(rate))} rows/s`);
    const eta = this.phase === 'pushing' ? this.etaSeconds() : undefined;
    if (eta !== undefined) parts.push(`ETA ${clockTime(eta)}`);
    if (this.retry) parts.push(this.retry);
    if (this.phase === 'pulling' && this.sourceNote) parts.push(this.sourceNote);
    return parts.join(' · ');
  }

  private restartRate(): void {
    this.phaseStartMs = this.clock.now();
    this.moved = 0;
  }
}

const numbers = new Intl.NumberFormat('en-US');

export function count(n: number): string {
  return numbers.format(n);
}

/** 65 → "1:05", 3723 → "1:02:03". */
export function clockTime(totalSeconds: number): string {
  const s = Math.round(totalSeconds);
  const two = (n: number): string => String(n).padStart(2, '0');
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  return hours > 0 ? `${hours}:${two(minutes)}:${two(s % 60)}` : `${minutes}:${two(s % 60)}`;
}

/** A 20-cell bar of the fraction done. */
export function barOf(fraction: number, width = 20): string {
  const full = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return '█'.repeat(full) + '░'.repeat(width - full);
}
