/**
 * An untyped error's text may quote the data it failed on; what reaches run records, answers and logs has those quotes
 * blanked, and a logged error keeps only its type, message, stack, code and typed details.
 */
import { describe, expect, it } from 'vitest';
import { BridgeError, scrubErrorText, toBridgeError } from '../src/errors.js';
import { serializeError } from '../src/log.js';

describe('scrubErrorText', () => {
  it("blanks JSON.parse's quote of its input, quoted values and long digit runs, and keeps identifiers and positions", () => {
    let parseError: unknown;
    try {
      JSON.parse('Jane Doe');
    } catch (error) {
      parseError = error;
    }
    expect(toBridgeError(parseError).message).toBe(`Unexpected token 'J', "…" is not valid JSON`);
    expect(scrubErrorText("Cannot read properties of undefined (reading 'family')")).toBe("Cannot read properties of undefined (reading 'family')");
    // JSON's quote of its input may hold quotes itself: blanked whole.
    const quoting = ['Smith, "Jane"', 'MRN "E12345" x', 'Jane\nSmith, 12 Elm Street'].map((input) => {
      try {
        JSON.parse(input);
      } catch (error) {
        return toBridgeError(error).message;
      }
      return '';
    });
    for (const message of quoting) expect(message).toMatch(/^Unexpected token '.', "…" is not valid JSON$/);
    expect(quoting.join(' ')).not.toMatch(/Jane|Smith|Elm/);
    expect(scrubErrorText("Expected ',' or '}' after property value in JSON at position 12")).toBe(
      "Expected ',' or '}' after property value in JSON at position 12",
    );
    expect(scrubErrorText("EACCES: permission denied, open '/var/lib/bridge/state/x.db'")).toBe("EACCES: permission denied, open '/var/lib/bridge/state/x.db'");
    expect(scrubErrorText("no row for 'Smith'")).toBe("no row for '…'");
    expect(scrubErrorText("bad value 'Jane Doe' at position 12")).toBe("bad value '…' at position 12");
    expect(scrubErrorText('no patient with MRN 1234567 here')).toBe('no patient with MRN … here');
  });

  it("blanks what Node's fetch quotes of a refused URL (credentials, query) and the tokens, ids and e-mails upstream text is cleaned of", () => {
    const refused =
      'TypeError: Request cannot be constructed from a URL that includes credentials: https://u:p@ehr.example/api/FHIR/R4/Patient?identifier=urn:oid:1.2.3|E4502&page=2';
    const scrubbed = scrubErrorText(refused);
    expect(scrubbed).toBe('TypeError: Request cannot be constructed from a URL that includes credentials: https://…@ehr.example/api/FHIR/R4/Patient?…');
    expect(scrubbed).not.toContain('E4502');
    expect(scrubbed).not.toContain('u:p');
    expect(toBridgeError(new TypeError(refused.slice('TypeError: '.length))).message).not.toMatch(/E4502|u:p/);
    const jwt = 'eyJhbGciOiJSUzM4NCJ9.eyJzdWIiOiJjbGllbnQifQ.c2lnbmF0dXJl';
    expect(scrubErrorText(`token ${jwt} refused; Authorization: Bearer abc.DEF-123 for jane.doe@example.org on Patient/eABC12 and RelatedPerson/E77`)).toBe(
      'token [jwt] refused; Authorization: Bearer [token] for [email] on Patient/… and RelatedPerson/…',
    );
    expect(scrubErrorText('fetch https://svc:s3cr3t@proxy.example:8080/x failed')).toBe('fetch https://…@proxy.example:8080/x failed');
    // A stack trace keeps its lines and its file paths.
    const stack = "Error: MRN 1234567 for 'Smith'\n    at read (file:///app/dist/smart/key-files.js:12:3)\n    at open '/var/lib/bridge/x.db'";
    expect(scrubErrorText(stack)).toBe("Error: MRN … for '…'\n    at read (file:///app/dist/smart/key-files.js:12:3)\n    at open '/var/lib/bridge/x.db'");
  });
});

describe('serializeError (the logger’s err)', () => {
  it('keeps type, scrubbed message and stack, code and typed details; drops other properties, such as a body', () => {
    const error = Object.assign(new Error('answer "Jane Doe" refused'), { code: 'E_X', body: '{"name":"Jane Doe"}' });
    const plain = serializeError(error) as Record<string, unknown>;
    expect(Object.keys(plain).sort()).toEqual(['code', 'message', 'stack', 'type']);
    expect(JSON.stringify(plain)).not.toContain('Jane');
    expect(plain['message']).toBe('answer "…" refused');
    const typed = serializeError(new BridgeError('BRG_ERR_STATE', 'locked', { details: { sqlite: 'SQLITE_BUSY' } })) as Record<string, unknown>;
    expect(typed['details']).toEqual({ sqlite: 'SQLITE_BUSY' });
    expect(serializeError('a string')).toBe('a string');
  });
});
