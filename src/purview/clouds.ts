/**
 * Microsoft cloud presets: the Entra ID login host and the ingestion host of each cloud, exactly as Microsoft's four
 * push scripts name them (docs/purview-protocol.md §7). L4 is GCC High and L5 is DoD.
 */

export type CloudName = 'commercial' | 'gcc' | 'gcc-high' | 'dod';

export interface CloudPreset {
  /** Entra ID authority host, without the tenant (e.g. `https://login.microsoftonline.com`). */
  readonly authorityHost: string;
  /** Scheme and host of the ingestion service; uploads go to `{ingestionBase}/api/signals?jobid=…`. */
  readonly ingestionBase: string;
}

export const CLOUDS: Readonly<Record<CloudName, CloudPreset>> = Object.freeze({
  // sample_script.ps1 uses the legacy alias login.windows.net; login.microsoftonline.com is the same service.
  commercial: Object.freeze({ authorityHost: 'https://login.microsoftonline.com', ingestionBase: 'https://webhook.ingestion.office.com' }),
  // sample_script_gcc.ps1 ends the host with '/', which makes the path '//api/signals'; we join without doubling.
  gcc: Object.freeze({ authorityHost: 'https://login.microsoftonline.com', ingestionBase: 'https://webhook-gcc.ingestion.office365.us' }),
  'gcc-high': Object.freeze({ authorityHost: 'https://login.microsoftonline.us', ingestionBase: 'https://webhook-itarl4.ingestion.office365.us' }),
  dod: Object.freeze({ authorityHost: 'https://login.microsoftonline.us', ingestionBase: 'https://webhook-itarl5.ingestion.apps.mil' }),
});

/**
 * The token resource (App ID URI) of the ingestion service since Microsoft's PR #15 (2025-03), used for every cloud
 * by the current scripts (docs/purview-protocol.md §1.3). The scope requested is `${resource}/.default`.
 */
export const DEFAULT_RESOURCE = 'https://microsoft.onmicrosoft.com/86dfdabb-5089-4a0c-880a-cfa5a790c5b1';

/** `{base}/api/signals?jobid=<jobId>` without a doubled slash (docs/purview-protocol.md §2.1, §7). */
export function signalsUrl(ingestionBase: string, jobId: string): string {
  return `${ingestionBase.replace(/\/+$/, '')}/api/signals?jobid=${encodeURIComponent(jobId)}`;
}
