import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { unknownUserStore } from '../../src/composition/unknown-users.js';
import { openStateStore } from '../../src/sync/state/index.js';
import { ManualClock } from '../support/manual-clock.js';

it('keeps the unknown users per connector and FHIR server: another base, another connector or a foreign value start afresh', () => {
  const store = openStateStore(mkdtempSync(join(tmpdir(), 'bridge-unknown-users-')), new ManualClock(0));
  try {
    const ours = unknownUserStore(store, 'main', 'https://ehr.example.org/FHIR/R4/');
    ours.save(new Map([['Practitioner?urn:oid:1.2|CLERK7', 1_000]]));
    // The same server written another way is the same server.
    expect([...unknownUserStore(store, 'main', 'HTTPS://ehr.example.org:443/FHIR/R4').load()]).toEqual([['Practitioner?urn:oid:1.2|CLERK7', 1_000]]);
    expect(unknownUserStore(store, 'main', 'https://other.example.org/FHIR/R4').load().size).toBe(0);
    expect(unknownUserStore(store, 'second', 'https://ehr.example.org/FHIR/R4').load().size).toBe(0);
    store.setSourceState('main', 'unknown-users', '{"base": 7}');
    expect(ours.load().size).toBe(0);
    store.setSourceState('main', 'unknown-users', 'not json');
    expect(ours.load().size).toBe(0);
  } finally {
    store.close();
  }
});
