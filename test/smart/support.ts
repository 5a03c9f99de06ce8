/** Shared fixtures for the SMART client and Epic-like token server tests: real keys, loopback servers, captured logs. */
import type { JsonWebKey } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { pino } from 'pino';
import type { Logger } from '../../src/log.js';
import type { SigningKey } from '../../src/smart/index.js';

const createdDirs: string[] = [];

/** A fresh directory under the OS temp dir; `removeTempDirs()` deletes all of them (call it in afterAll). */
export function tempDir(prefix = 'bridge-smart-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  createdDirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of createdDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export interface TestKey {
  readonly signingKey: SigningKey;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JsonWebKey & { kid: string };
}

/**
 * A fresh key pair for `alg`; `kid` defaults to the RFC 7638 thumbprint. For ES256/RS256 keys `signingKey` claims
 * ES384/RS384, which is how a test makes a client sign with a key that does not fit its alg.
 */
export async function makeKey(alg: 'RS384' | 'ES384' | 'ES256' | 'RS256', kid?: string): Promise<TestKey> {
  const pair = await generateKeyPair(alg, { extractable: true });
  const exported = await exportJWK(pair.publicKey);
  const publicJwk = { ...exported, kid: kid ?? (await calculateJwkThumbprint(exported)) };
  const signingAlg = alg.startsWith('ES') ? 'ES384' : 'RS384';
  return { signingKey: { alg: signingAlg, kid: publicJwk.kid, privateKey: pair.privateKey }, privateKey: pair.privateKey, publicJwk };
}

/** Signs arbitrary header and claims with jose, for assertions a correct client would never send. */
export async function signRaw(key: CryptoKey, header: { alg: string; kid?: string; typ?: string; jku?: string }, claims: JWTPayload): Promise<string> {
  return new SignJWT(claims).setProtectedHeader(header).sign(key);
}

export interface StubServer {
  readonly origin: string;
  readonly requests: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string }>;
  close(): Promise<void>;
}

/** A programmable loopback HTTP server; the handler sees each request with its body already read. */
export async function startStubServer(
  handler: (request: { method: string; url: string; headers: IncomingMessage['headers']; body: string }, response: ServerResponse) => void,
): Promise<StubServer> {
  const requests: StubServer['requests'] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(request);
      handler(request, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}

/** A real pino logger whose lines land in `lines` (parsed), for asserting on warnings and on what is never logged. */
export function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>>; raw: string[] } {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines, raw };
}

/** Reads the form a token request carried. */
export function formOf(body: string): Record<string, string> {
  return Object.fromEntries(new URLSearchParams(body));
}

/** The decoded (unverified) JSON parts of a compact JWS. */
export function decodeParts(jwt: string): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  const [h = '', c = ''] = jwt.split('.');
  const decode = (part: string): Record<string, unknown> => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
  return { header: decode(h), claims: decode(c) };
}

/** A JWK Set URL serving these public keys, as `bridge serve` does (Epic takes Elliptic Curve keys only from one). */
export async function jwksUrlFor(keys: readonly JsonWebKey[]): Promise<{ url: string; close(): Promise<void> }> {
  const host = await startStubServer((_request, response) => sendJson(response, 200, { keys }, { 'cache-control': 'public, max-age=300' }));
  return { url: `${host.origin}/.well-known/jwks.json`, close: () => host.close() };
}
