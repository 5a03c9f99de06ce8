/**
 * When an invalid_client is put down to clock skew (one retry at the server's time): only when the assertion's times
 * could have been refused at the server's Date, never with synchronised clocks, whatever smart.clockSkewSec.
 */
import { describe, expect, it } from 'vitest';
import { assertionClaims } from '../../src/smart/assertion.js';
import { skewCouldExplain } from '../../src/smart/skew.js';
import { makeKey } from './support.js';

const { signingKey } = await makeKey('ES384');

function sent(clientNowMs: number, skewSec: number, lifetimeSec: number) {
  return assertionClaims({
    key: signingKey,
    clientId: 'c',
    tokenUrl: 'https://ehr.example.org/token',
    jti: 'j',
    nowSec: clientNowMs / 1000,
    skewSec,
    lifetimeSec,
  });
}

const T = Date.parse('2026-11-01T08:00:00.000Z');

describe('skewCouldExplain', () => {
  it.each([
    [0, 290],
    [1, 289],
    [2, 288],
    [30, 240],
  ])('synchronised clocks with clockSkewSec %i (lifetime %i): never skew, at any fraction of a second and answer time', (skewSec, lifetimeSec) => {
    for (const fractionMs of [0, 1, 250, 500, 999]) {
      const clientNowMs = T + fractionMs;
      // The server's Date is taken when it answers: the same instant up to 1.5 s later, truncated to the second.
      for (const answerAfterMs of [0, 10, 400, 1_000, 1_500]) {
        const dateMs = Math.floor((clientNowMs + answerAfterMs) / 1000) * 1000;
        expect(skewCouldExplain(sent(clientNowMs, skewSec, lifetimeSec), dateMs), `${fractionMs} ms, +${answerAfterMs} ms`).toBe(false);
      }
    }
  });

  it.each([
    ['2 minutes fast', 120_000, 30, 240],
    ['31 s fast with clockSkewSec 30 (iat in the future)', 31_000, 30, 240],
    ['2 s fast with clockSkewSec 0', 2_000, 0, 290],
    ['10 minutes slow (exp already past)', -600_000, 30, 240],
  ])('a client clock %s: skew explains it', (_name, clientAheadMs, skewSec, lifetimeSec) => {
    expect(skewCouldExplain(sent(T + 250 + clientAheadMs, skewSec, lifetimeSec), T)).toBe(true);
  });
});
