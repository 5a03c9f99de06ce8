/**
 * The one delimiter vocabulary of connector files: tab, pipe or comma. Purview's Epic connector takes tab- or
 * pipe-separated files, the Healthcare connector also comma-separated ones (docs/purview-protocol.md §5.1). Mapping
 * files and the config written before this vocabulary said "csv" for comma; it is still read as a synonym.
 */

export type Delimiter = 'tab' | 'pipe' | 'comma';

export const DELIMITER_CHARS: Readonly<Record<Delimiter, string>> = Object.freeze({ tab: '\t', pipe: '|', comma: ',' });

/** What a mapping file or the config may say; "csv" is the older name of "comma". */
export type DelimiterInput = Delimiter | 'csv';

export const DELIMITER_INPUTS: readonly DelimiterInput[] = ['tab', 'pipe', 'comma', 'csv'];

export function toDelimiter(input: DelimiterInput): Delimiter {
  return input === 'csv' ? 'comma' : input;
}
