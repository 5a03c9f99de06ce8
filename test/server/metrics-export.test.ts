/** The one-shot's metrics delivery: an atomic textfile, a Pushgateway PUT; failures are typed, for a warning. */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BridgeError } from '../../src/errors.js';
import { pushgatewayBase, pushToGateway, writeMetricsFile } from '../../src/server/metrics-export.js';

describe('metrics export', () => {
  it('replaces the textfile in one rename, leaving no temporary file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-prom-'));
    writeMetricsFile(join(dir, 'bridge.prom'), 'a 1\n');
    writeMetricsFile(join(dir, 'bridge.prom'), 'a 2\n');
    expect(readFileSync(join(dir, 'bridge.prom'), 'utf8')).toBe('a 2\n');
    expect(readdirSync(dir)).toEqual(['bridge.prom']);
    expect(() => writeMetricsFile(join(dir, 'missing', 'x.prom'), 'a 1\n')).toThrow(BridgeError);
  });

  it("PUTs to the connector's group and reports an unreachable or refusing gateway as an error", async () => {
    const calls: Array<[string, RequestInit | undefined]> = [];
    const ok: typeof fetch = async (input, init) => {
      calls.push([String(input), init]);
      return new Response('', { status: 202 });
    };
    await pushToGateway('http://gw:9091//', 'east-1', 'a 1\n', ok);
    expect(calls[0]?.[0]).toBe('http://gw:9091/metrics/job/bridge/connector/east-1');
    expect(calls[0]?.[1]?.method).toBe('PUT');
    const refused: typeof fetch = async () => new Response('no', { status: 400 });
    await expect(pushToGateway('http://gw:9091', 'c', '', refused)).rejects.toThrow('--pushgateway: http://gw:9091 answered HTTP 400.');
    const down: typeof fetch = async () => {
      throw new TypeError('fetch failed');
    };
    await expect(pushToGateway('http://gw:9091', 'c', '', down)).rejects.toThrow('--pushgateway: http://gw:9091 did not answer.');
  });

  it('refuses a gateway URL with credentials, a query or another scheme, without quoting the credentials', async () => {
    expect(pushgatewayBase('https://gw.example.org:9091/prefix/')).toBe('https://gw.example.org:9091/prefix');
    for (const bad of [
      'https://metrics:S3cretPw@gw:9091',
      'http://S3cretPw@gw:9091/',
      'http://gw:9091/?token=S3cretPw',
      'ftp://gw/S3cretPw',
      'gw:9091 S3cretPw',
    ]) {
      let thrown: unknown;
      try {
        pushgatewayBase(bad);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, bad).toMatchObject({ code: 'BRG_ERR_INPUT_INVALID' });
      expect((thrown as Error).message, bad).not.toContain('S3cretPw');
    }
    let called = false;
    const fetcher: typeof fetch = async () => {
      called = true;
      return new Response('', { status: 202 });
    };
    const error = await pushToGateway('https://metrics:S3cretPw@gw:9091', 'c', '', fetcher).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'BRG_ERR_INPUT_INVALID', message: expect.stringContaining('carries credentials') });
    expect(called).toBe(false);
  });
});
