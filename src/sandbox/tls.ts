/**
 * The sandbox's TLS certificate: self-signed, valid for 127.0.0.1 and localhost, shared by the Entra ID and Purview
 * ingestion emulators. msal-node refuses http authorities (docs/purview-protocol.md §1.4), so the emulators must speak
 * https; clients trust this certificate per request (purview.caFile), never process-wide.
 */
import { generate } from 'selfsigned';

export interface SandboxCertificate {
  readonly certPem: string;
  readonly keyPem: string;
}

export async function createSandboxCertificate(options: { validDays?: number; now?: Date } = {}): Promise<SandboxCertificate> {
  const notBeforeDate = new Date((options.now ?? new Date()).getTime() - 60 * 60_000);
  const notAfterDate = new Date(notBeforeDate.getTime() + (options.validDays ?? 30) * 86_400_000);
  const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 7, ip: '127.0.0.1' },
          { type: 2, value: 'localhost' },
        ],
      },
    ],
  });
  return { certPem: pems.cert, keyPem: pems.private };
}
