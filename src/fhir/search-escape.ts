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
