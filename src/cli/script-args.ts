/**
 * `bridge push` as a drop-in for Microsoft's sample_script.ps1: the script's PowerShell parameters (`-tenantId`,
 * `-appId`, `-jobId`, `-filePath`, `-appSecret`, any case, one or two dashes, `-Name value` or `-Name:value`) are read
 * as the bridge's own flags, so
 * a scheduled task's command line changes only its program name; `-appSecret` then meets the bridge's refusal of
 * secrets on the command line, which names the safe alternatives. A misspelt flag is named with the one meant, before
 * commander's "required option not specified" would hide it.
 */
import { BridgeError } from '../errors.js';

const SCRIPT_PARAMETERS: Readonly<Record<string, string>> = {
  tenantid: '--tenant-id',
  appid: '--app-id',
  jobid: '--job-id',
  filepath: '--file',
  appsecret: '--app-secret',
};

/** Rewrites the script's parameter names in `args` (the words after `push`); throws on an unknown flag, naming the closest. */
export function translateScriptArgs(args: readonly string[], knownFlags: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      out.push(...args.slice(i));
      break;
    }
    const [name, value] = splitFlag(arg);
    const script = /^--?([A-Za-z]+)$/.exec(name)?.[1];
    // One of the bridge's own flags written with one dash (`-app-secret`), PowerShell style.
    const own = name.startsWith('--') ? name : /^-[A-Za-z][A-Za-z0-9-]+$/.test(name) ? `-${name}` : undefined;
    const mapped = (script === undefined ? undefined : SCRIPT_PARAMETERS[script.toLowerCase()]) ?? (own && knownFlags.includes(own) ? own : undefined);
    if (mapped) {
      // `--flag=value` whatever the separator: commander would print a `--flag:value` it cannot read whole, value included.
      if (value === undefined && mapped === '--app-secret' && i + 1 < args.length) {
        // The secret as the next word: handed over joined, so commander never meets it as a word of its own (`--p@ss`).
        out.push(`${mapped}=${args[i + 1] as string}`);
        i++;
      } else {
        out.push(value === undefined ? mapped : `${mapped}=${value}`);
      }
    } else if (
      (name.startsWith('--') && !['--help', '--version'].includes(name)) ||
      // An unknown PowerShell-style word with its value (`-appSecrt:…`, `-client_secret:…`): commander would print it whole.
      (value !== undefined && name.startsWith('-'))
    ) {
      const meant = closest(name, knownFlags);
      throw new BridgeError('BRG_ERR_INPUT_INVALID', `Unknown option ${name}${meant ? `; did you mean ${meant}?` : ''} (bridge push --help lists them).`, {
        details: { option: name },
      });
    } else {
      out.push(arg);
    }
  }
  return out;
}

/**
 * `--name=value`, and PowerShell's `-Name:value` (one word on its command line), into name and value, whatever the
 * name holds (`--app_secret=…`): a word commander cannot read is printed back by it whole, value included.
 */
function splitFlag(arg: string): [string, string | undefined] {
  const match = /^(--?[^-=:\s][^=:\s]*)[=:]([\s\S]*)$/.exec(arg);
  return match ? [match[1] as string, match[2] as string] : [arg, undefined];
}

/** The known flag within a few edits of `name`, if one is clearly meant. */
function closest(name: string, known: readonly string[]): string | undefined {
  let best: { flag: string; distance: number } | undefined;
  for (const flag of known) {
    const distance = editDistance(name.toLowerCase(), flag);
    if (!best || distance < best.distance) best = { flag, distance };
  }
  return best && best.distance <= Math.max(2, Math.floor(name.length / 4)) ? best.flag : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] as number;
}
