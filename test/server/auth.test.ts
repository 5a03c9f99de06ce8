import { describe, expect, it } from 'vitest';
import { bearerToken, hashApiToken, verifyApiToken } from '../../src/server/auth.js';

describe('API token auth', () => {
  const hashes = [hashApiToken('alpha-token'), hashApiToken('beta-token')];
  it('accepts any configured token and nothing else', () => {
    expect(verifyApiToken('alpha-token', hashes)).toBe(true);
    expect(verifyApiToken('beta-token', hashes)).toBe(true);
    expect(verifyApiToken('gamma-token', hashes)).toBe(false);
    expect(verifyApiToken(undefined, hashes)).toBe(false);
    expect(verifyApiToken('alpha-token', [])).toBe(false);
  });
  it('parses the bearer scheme case-insensitively', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer abc ')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeUndefined();
  });
});
