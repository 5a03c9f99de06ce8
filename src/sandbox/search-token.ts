/**
 * The server side of FHIR search escaping (R4 search, "Escaping Search Parameters"): a `,` or `|` preceded by `\` is
 * part of a value, not a list comma or a token's system bar; `\\`, `\,`, `\|` and `\$` stand for the character itself.
 * The sandbox's own reading, independent of the client's escaping, so a test of one against the other can fail.
 */

/** Splits at each `separator` that no backslash escapes; the parts keep their escapes. */
export function splitUnescaped(text: string, separator: ',' | '|'): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let index = 0; index < text.length; index += 1) {
    const c = text[index];
    if (c === '\\') index += 1;
    else if (c === separator) {
      parts.push(text.slice(start, index));
      start = index + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/** Removes the escapes: `\x` becomes `x` for any x (a trailing lone `\` stays). */
export function unescapeSearchValue(text: string): string {
  return text.replace(/\\(.)/gs, '$1');
}

/** A token parameter's one value: `system|value`, `|value` (system empty) or `value` (any system), unescaped. */
export function parseTokenValue(token: string): { readonly system: string | undefined; readonly value: string } {
  const [first = '', ...rest] = splitUnescaped(token, '|');
  if (rest.length === 0) return { system: undefined, value: unescapeSearchValue(first) };
  return { system: unescapeSearchValue(first), value: unescapeSearchValue(rest.join('|')) };
}
