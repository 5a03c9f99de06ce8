/**
 * FHIR search escaping (R4 search, "Escaping Search Parameters"): in a parameter value, `\` escapes `\`, `|`, `,` and
 * `$`, so an identifier whose system or value holds one of them survives the `,` of a list and the `|` of a token.
 * (The sandbox reads them back with its own code, src/sandbox/search-token.ts: a counterpart, not a copy.)
 */

const SPECIAL = /[\\|,$]/g;

export function escapeSearchValue(text: string): string {
  return text.replace(SPECIAL, (c) => `\\${c}`);
}

/** `system|value` for a token search; a bare value when there is no system (it then matches any system). */
export function tokenValue(system: string | undefined, value: string): string {
  return system === undefined ? escapeSearchValue(value) : `${escapeSearchValue(system)}|${escapeSearchValue(value)}`;
}

/**
 * The values of a list or token as the server reads them: split on the `,` and `|` that are not escaped, each part
 * unescaped. An error answer echoes these (`CORP\jdoe`), not the escaped text that was sent (`CORP\\jdoe`).
 */
export function searchValueParts(text: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let index = 0; index < text.length; index += 1) {
    const c = text[index] as string;
    if (c === '\\' && index + 1 < text.length) {
      index += 1;
      current += text[index];
    } else if (c === ',' || c === '|') {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts;
}
