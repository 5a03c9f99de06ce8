/**
 * Purview's own words about a failed block, for error messages: they reach the run record, the CLI, the HTTP API and a
 * drop folder's `.why.txt`, so they must never carry a patient's or an employee's data. Purview's error bodies are not
 * published (docs/purview-protocol.md §2.4) and may echo what it refused ("Invalid value 'Åse Øvrebø' for column
 * PATIENT.PAT_FIRST_NAME"), and scrubbing cannot tell a name or an address from other words. So the words are quoted only
 * when they cannot hold a cell of the block: they stop at the first cell break (TAB, pipe or comma: a row echoed whole),
 * hold no quoted value, and hold no cell value of the block read back from the spool. Otherwise the message keeps the
 * status and its standard reason phrase only.
 */
import { createReadStream } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { createInterface } from 'node:readline';
import { SCHEMA_COLUMNS } from '../connector-file/index.js';
import { scrubUpstreamText } from '../http.js';
import type { ByteRange } from './upload.js';

/** The parts of a non-2xx answer that may hold Purview's explanation. */
export interface PurviewAnswer {
  readonly status: number;
  /** The reason phrase as sent: Purview explains a 403 there (docs/purview-protocol.md §2.4). */
  readonly statusText: string;
  /** The start of the body. */
  readonly body: string;
}

/** Longest quotation of Purview's words. */
const MAX_SAID = 200;

/**
 * A value in quotes: '…' (an apostrophe inside a word, as in "job's", opens or closes nothing), "…", ‘…’, “…”, «…», `…`.
 * Whatever a service puts in quotes in an error is usually the value it refused.
 */
const QUOTED_VALUE = /(?<![\p{L}\p{N}])'.+?'(?![\p{L}\p{N}])|".+?"|‘.+?’|“.+?”|«.+?»|`.+?`/u;

/** A cell of one character (a flag, a digit) identifies no one, and would match half of any sentence. */
const MIN_CELL_CHARS = 2;
/** A word of a cell that long (a name, a street, a number) makes Purview's words unquotable wherever it appears in them. */
const MIN_WORD_CHARS = 4;
const CELL_WORD = /[\p{L}\p{N}\p{M}]+/gu;
/** Words of the schemas' column names ("patient", "name", "city"): Purview names columns, and a cell such as "Patient Record" shares them. */
const COLUMN_WORDS: ReadonlySet<string> = new Set(
  Object.values(SCHEMA_COLUMNS).flatMap((columns) => columns.flatMap((column) => fold(column.name).match(CELL_WORD) ?? [])),
);

/**
 * Purview's words as far as they can be judged without the block: the custom reason phrase, else the body's message;
 * up to the first cell break, scrubbed, and empty when they quote a value. Exported for callers without the block
 * (tests of messages); a push uses purviewSaidOfBlock.
 */
export function purviewSaid(answer: PurviewAnswer): string {
  return quotable(candidateWords(answer));
}

/** The words cut to length, or empty when they quote a value. */
function quotable(words: string): string {
  if (QUOTED_VALUE.test(words)) return '';
  return words.length > MAX_SAID ? `${words.slice(0, MAX_SAID - 1)}…` : words;
}

/**
 * purviewSaid, and empty as well when the words hold a value of one of the block's cells (whole, case and spacing
 * aside), or when the block cannot be read back to tell.
 * @param spoolPath - The spool the block was sent from.
 * @param segments - The block's rows in it (the header line excluded: column names are not data).
 */
export async function purviewSaidOfBlock(answer: PurviewAnswer, spoolPath: string, segments: readonly ByteRange[]): Promise<string> {
  const words = candidateWords(answer);
  const said = quotable(words);
  if (said === '') return '';
  // The whole text is checked, not only the quoted part: a cell cut by the length limit would still show its start. And
  // the text as Purview sent it, before scrubbing: a cell holding a phone number or an e-mail address is no longer
  // whole once those are scrubbed, while the rest of it would still be quoted.
  const text = fold(rawWords(answer));
  try {
    return (await blockCellIn(text, spoolPath, segments)) ? '' : said;
  } catch {
    return '';
  }
}

/** The scrubbed text before the first cell break, not yet cut to length. */
function candidateWords(answer: PurviewAnswer): string {
  return scrubUpstreamText(rawWords(answer));
}

/** Purview's text as it sent it, before the first cell break. */
function rawWords(answer: PurviewAnswer): string {
  const standard = answer.statusText === '' || answer.statusText === STATUS_CODES[answer.status];
  const text = standard ? messageOf(answer.body) : answer.statusText;
  return text.split(/[\t|,]/, 1)[0] ?? '';
}

/** The message of a JSON error body (`message`, `error.message`, `error_description`, …), else the body as it is. */
function messageOf(body: string): string {
  if (!body.trimStart().startsWith('{')) return body;
  try {
    const parsed = JSON.parse(body) as Record<string, unknown>;
    const error = parsed['error'];
    const nested = typeof error === 'object' && error !== null ? (error as Record<string, unknown>)['message'] : error;
    const found = [parsed['message'], parsed['Message'], nested, parsed['error_description'], parsed['title'], parsed['detail']].find(
      (value) => typeof value === 'string',
    );
    // No message field: the raw JSON, whose quotes keep it out of any message.
    return typeof found === 'string' ? found : body;
  } catch {
    return body;
  }
}

/**
 * Whether any cell of the block's rows appears in `text` (folded) as a whole, not inside a longer word; or any word of
 * a cell of at least MIN_WORD_CHARS (a cut or reworded echo: "Value exceeds 40 characters: Mother asked about…",
 * "12 Elm Street" for "12 Elm St"). Erring this way costs only Purview's words in a message.
 */
async function blockCellIn(text: string, spoolPath: string, segments: readonly ByteRange[]): Promise<boolean> {
  const vocabulary = vocabularyPositions(await headerOf(spoolPath));
  for (const { start, end } of segments) {
    if (end <= start) continue;
    // `end` of createReadStream is inclusive. Segments hold whole CRLF-ended rows.
    const input = createReadStream(spoolPath, { start, end: end - 1, encoding: 'utf8' });
    try {
      for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
        for (const [position, cell] of line.split(/[\t|,]/).entries()) {
          const value = fold(cell.replace(/^\s*"|"\s*$/g, ''));
          if (value.length < MIN_CELL_CHARS) continue;
          if (holdsWhole(text, value)) return true;
          // A code list's value ("Patient Record", "Read/View/Print") is about no one: its words stay quotable.
          if (vocabulary.has(position)) continue;
          for (const word of value.match(CELL_WORD) ?? []) {
            if (word.length >= MIN_WORD_CHARS && !COLUMN_WORDS.has(word) && holdsWhole(text, word)) return true;
          }
        }
      }
    } finally {
      input.destroy();
    }
  }
  return false;
}

/** Names of the schemas' code-list columns (SchemaColumn.codeList): their cells are looked for whole only. */
const VOCABULARY_COLUMNS: ReadonlySet<string> = new Set(
  Object.values(SCHEMA_COLUMNS).flatMap((columns) => columns.filter((column) => column.codeList).map((column) => column.name)),
);

/** Positions of the vocabulary columns in the spool's header line (none when it cannot be read: every cell is then word-checked). */
function vocabularyPositions(header: string | undefined): ReadonlySet<number> {
  const positions = new Set<number>();
  for (const [position, name] of (header ?? '').split(/[\t|,]/).entries()) {
    if (VOCABULARY_COLUMNS.has(name.trim().replace(/^"|"$/g, ''))) positions.add(position);
  }
  return positions;
}

/** The spool's first line (its header), read alone. */
async function headerOf(spoolPath: string): Promise<string | undefined> {
  const input = createReadStream(spoolPath, { start: 0, end: 64 * 1024 - 1, encoding: 'utf8' });
  try {
    for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) return line;
    return undefined;
  } finally {
    input.destroy();
  }
}

function fold(text: string): string {
  return text.normalize('NFC').toLowerCase().replace(/\s+/g, ' ').trim();
}

const WORD_CHAR = /[\p{L}\p{N}\p{M}]/u;

/** `value` occurs in `text` without a letter or digit running on at either end (a zip code inside a longer number does not count). */
function holdsWhole(text: string, value: string): boolean {
  const opensWord = WORD_CHAR.test(value[0] ?? '');
  const closesWord = WORD_CHAR.test(value[value.length - 1] ?? '');
  for (let at = text.indexOf(value); at !== -1; at = text.indexOf(value, at + 1)) {
    const before = text[at - 1] ?? ' ';
    const after = text[at + value.length] ?? ' ';
    if (!(opensWord && WORD_CHAR.test(before)) && !(closesWord && WORD_CHAR.test(after))) return true;
  }
  return false;
}
