/**
 * Cell sanitising (docs/mapping.md §8.3), applied to every value in every format. Microsoft's push script splits on \n, \r and \r\n
 * ignoring quotes (StreamReader.ReadLine), so no value may hold a line break even inside CSV quotes; the delimiter
 * is replaced too, so even a naive split finds the right columns.
 */
import { DELIMITER_CHARS, type Delimiter } from './delimiters.js';

/** CR LF, CR, LF, NEL, LS, PS and TAB: each becomes one space. */
const BREAKS = /\r\n|[\r\n\u0085\u2028\u2029\t]/g;
/** Other C0 and C1 controls (and DEL) are dropped. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point: they are stripped from every Purview cell.
const CONTROLS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u0084\u0086-\u009f]/g;
/**
 * Invisible characters that change no name but defeat matching ("Müller" + a zero-width space is another name): soft
 * hyphen, zero-width space, word joiner, zero-width no-break space (a stray BOM), and the bidirectional marks, embeddings,
 * overrides and isolates (U+200E/F, U+061C, U+202A–E, U+2066–9; an override also turns how a reviewer's tool shows the
 * text). ZWJ and ZWNJ stay: some scripts need them.
 */
const INVISIBLE = /[\u00ad\u200b\u2060\ufeff\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]/g;
/**
 * Spaces other than U+0020 (no-break, the typographic ones, ideographic): "Jo Ann" with a no-break space is another name
 * of the same one. Each becomes a plain space before runs of spaces collapse.
 */
const OTHER_SPACES = /[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]/g;
/** Unpaired surrogates cannot be encoded as UTF-8. */
const LONE_SURROGATES = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const SPACES = / {2,}/g;

/** Returns the sanitising function for one delimiter. */
export function sanitizer(delimiter: Delimiter): (value: string) => string {
  const char = DELIMITER_CHARS[delimiter];
  const code = char.charCodeAt(0);
  const delimiterPattern = new RegExp(char === '|' ? '\\|' : char, 'g');
  return (value) => {
    if (isPlain(value, code)) return value;
    return value
      .replace(BREAKS, ' ')
      .replace(delimiterPattern, ' ')
      .replace(CONTROLS, '')
      .replace(INVISIBLE, '')
      .replace(OTHER_SPACES, ' ')
      .replace(LONE_SURROGATES, '\ufffd')
      .normalize('NFC')
      .replace(SPACES, ' ')
      .trim();
  };
}

/**
 * The common case, checked without a regex: printable ASCII other than the delimiter, single spaces, none at the
 * ends. Such a value is already clean (and NFC).
 */
function isPlain(value: string, delimiter: number): boolean {
  let previousSpace = true;
  for (let index = 0; index < value.length; index += 1) {
    const c = value.charCodeAt(index);
    if (c === 0x20) {
      if (previousSpace) return false;
      previousSpace = true;
    } else if (c < 0x21 || c > 0x7e || c === delimiter) return false;
    else previousSpace = false;
  }
  return !previousSpace || value.length === 0;
}

/** Sanitises one value for `delimiter` (convenience for callers outside the row engine). */
export function sanitizeCell(value: string, delimiter: Delimiter): string {
  return sanitizer(delimiter)(value);
}
