/**
 * The fields of one normalised row as raw text, for rewriting a few cells and leaving every other byte as the file
 * had it (enrichment fills empty cells only). Split as the scanner counted them: on every tab or pipe, on commas
 * outside double quotes.
 */
import { DELIMITER_CHARS, type Delimiter } from './delimiters.js';
import { quoteCsvField } from './line.js';
import { sanitizer } from './sanitize.js';

/** Each field's text as written, quotes included. */
export function splitFields(line: string, delimiter: Delimiter): string[] {
  const char = DELIMITER_CHARS[delimiter];
  if (delimiter !== 'comma') return line.split(char);
  const fields: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') quoted = !quoted;
    else if (c === char && !quoted) {
      fields.push(line.slice(start, i));
      start = i + 1;
    }
  }
  fields.push(line.slice(start));
  return fields;
}

/** Empty as Purview reads it: nothing, blanks, or an empty quoted CSV field. */
export function isEmptyField(raw: string, delimiter: Delimiter): boolean {
  const text = raw.trim();
  return text === '' || (delimiter === 'comma' && text === '""');
}

/** The unquoted value of a field (CSV quotes removed, "" unescaped), trimmed. */
export function fieldValue(raw: string, delimiter: Delimiter): string {
  const text = raw.trim();
  if (delimiter === 'comma' && text.length >= 2 && text.startsWith('"') && text.endsWith('"')) return text.slice(1, -1).replace(/""/g, '"').trim();
  return text;
}

/** A value as a field of this delimiter: sanitised (no delimiter, no line break), quoted for CSV when it holds a quote. */
export function encodeField(value: string, delimiter: Delimiter): string {
  const clean = sanitizer(delimiter)(value);
  return delimiter === 'comma' ? quoteCsvField(clean) : clean;
}
