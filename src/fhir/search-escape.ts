/**
 * FHIR search escaping (R4 search, "Escaping Search Parameters"): in a parameter value, `\` escapes `\`, `|`, `,` and `$`, so an
 * identifier whose system or value holds one of them survives the `,` of a list and the `|` of a token. The client
 * escapes what it sends; the sandbox splits and unescapes what it receives, with the same rules.
 */

const SPECIAL = /[\\|,$]/g;

export function escapeSearchValue(text: string): string {
  return text.replace(SPECIAL, (c) => `\\${c}`);
}

/** Removes the escapes: `\x` becomes `x` for any x (a trailing lone `\` stays). */
export function unescapeSearchValue(text: string): string {
  return text.replace(/\\(.)/gs, '$1');
}

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

/** A token parameter's one value: `system|value`, `|value` (system empty) or `value` (any system), unescaped. */
export function parseTokenValue(token: string): { readonly system: string | undefined; readonly value: string } {
  const [first = '', ...rest] = splitUnescaped(token, '|');
  if (rest.length === 0) return { system: undefined, value: unescapeSearchValue(first) };
  return { system: unescapeSearchValue(first), value: unescapeSearchValue(rest.join('|')) };
}

/** `system|value` for a token search; a bare value when there is no system (it then matches any system). */
export function tokenValue(system: string | undefined, value: string): string {
  return system === undefined ? escapeSearchValue(value) : `${escapeSearchValue(system)}|${escapeSearchValue(value)}`;
}
