/** Where the system's Chromium is (Debian's `chromium` package; no browser is downloaded) and how to start it here. */
import { existsSync } from 'node:fs';

export function findChromium(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const candidates = [env['CHROMIUM_PATH'], '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  return candidates.find((path): path is string => typeof path === 'string' && path.length > 0 && existsSync(path));
}

/**
 * Headless, no sandbox (CI containers run as root), and none of Chromium's own traffic to Google (component updates,
 * sync, field trials): there is no internet here, and the test checks that the page alone makes requests.
 */
export const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
] as const;
