/**
 * Where the bridge may send assertions, tokens and PHI: https anywhere, plain http only to this machine (the local
 * sandbox, a TLS-terminating sidecar). One rule for the config file and the command-line overrides.
 */

export const INSECURE_ENDPOINT =
  'an https:// URL: plain http only to this machine (localhost, 127.0.0.1, [::1]), since assertions, tokens and PHI must not cross the network unencrypted';

/** True for https (or any text that is no http URL: another check reports those), and for http to this machine. */
export function isSecureOrLocal(text: string): boolean {
  if (!URL.canParse(text)) return true;
  const url = new URL(text);
  return url.protocol !== 'http:' || url.hostname === 'localhost' || url.hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(url.hostname);
}
