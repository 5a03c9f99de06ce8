/**
 * `bridge push` end to end against the emulators: the flat file is sniffed, normalised and checked before any request;
 * the secret comes from the environment or a file, never a flag; a rerun resumes like the sync does.
 */

import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { describe, expect, it } from 'vitest';
import { pushCommand } from '../../src/cli/commands/push.js';
import { pidNamespace } from '../../src/composition/process.js';
import { silentLogger } from '../../src/log.js';
import { MANDATORY_COLUMNS } from '../../src/purview/index.js';
import { openStateStore } from '../../src/sync/state/index.js';
import { rejectionOf } from '../support/error-of.js';
import { linesLogger } from '../support/log-lines.js';
import { InstantClock } from '../support/manual-clock.js';
import { emulatorsWithCaFile, pushArgs } from './support.js';

const files = emulatorsWithCaFile('bridge-cli-push-');
const { dir, caFile } = files;

const EPIC = MANDATORY_COLUMNS.epic;
const row = (i: number, sep: string): string => EPIC.map((_, c) => `v${i}.${c}`).join(sep);

async function bridgePush(args: string[], env: NodeJS.ProcessEnv = {}, logged?: string[]): Promise<string[]> {
  const printed: string[] = [];
  const command = pushCommand({
    print: (line) => printed.push(line),
    env,
    clock: new InstantClock(),
    logger: logged ? linesLogger(logged, 'warn') : silentLogger(),
    openStore: (stateDir) => openStateStore(stateDir, new InstantClock()),
  });
  await command.exitOverride().parseAsync(args, { from: 'user' });
  return printed;
}

function input(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

function appArgs(app: { tenantId: string; appId: string; jobId: string }, file: string, stateDir = join(dir, `state-${app.jobId}`)): string[] {
  return pushArgs(files.emu, app, file, stateDir, caFile);
}

describe('bridge push', () => {
  it('pushes a tab file with a BOM and LF line ends as CRLF blocks, the secret from PURVIEW_APP_SECRET', async () => {
    const app = files.emu.newApp();
    const file = input('bom-lf.txt', `\uFEFF${EPIC.join('\t')}\n${[0, 1, 2].map((i) => row(i, '\t')).join('\n')}\n`);
    const stateDir = join(dir, 'state-bom');
    const printed = await bridgePush([...appArgs(app, file, stateDir), '--block-rows', '2'], { PURVIEW_APP_SECRET: app.secret });
    expect(printed).toEqual([
      `bom-lf.txt: 3 row(s), tab-separated, every mandatory epic column present, every row 9 fields; BOM removed`,
      `pushed to job ${app.jobId}: 3 row(s) acknowledged (3 sent now in 2 block(s), 0 acknowledged earlier)`,
    ]);
    const accepted = files.emu.ingest.accepted(app.jobId);
    expect(accepted.map((b) => [b.header, b.delimiter, b.rows])).toEqual([
      [EPIC.join('\t'), 'tab', [row(0, '\t'), row(1, '\t')]],
      [EPIC.join('\t'), 'tab', [row(2, '\t')]],
    ]);
    expect(readdirSync(join(stateDir, 'push'))).toEqual([]); // the normalised spool is removed
  });

  it.each([
    ['quoted', EPIC.map((column) => `"${column}"`).join('\t')],
    ['padded', EPIC.map((column) => ` ${column} `).join('\t')],
    ['lower-case', EPIC.map((column) => column.toLowerCase()).join('\t')],
  ])(
    "sends a %s header in the schema's spelling: the check read those names, and Purview reads a tab file's quotes and spaces as part of them",
    async (name, header) => {
      const app = files.emu.newApp();
      const file = input(`${name}-header.txt`, `${header}\r\n${row(0, '\t')}\r\n`);
      await bridgePush(appArgs(app, file), { PURVIEW_APP_SECRET: app.secret });
      expect(files.emu.ingest.accepted(app.jobId).map((block) => block.header)).toEqual([EPIC.join('\t')]);
    },
  );

  it('removes the copies pushes killed with -9 left on this host, and no copy of a live push, another host or another container', async () => {
    const app = files.emu.newApp();
    const stateDir = join(dir, 'state-leftovers');
    const copies = join(stateDir, 'push');
    mkdirSync(copies, { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', '']).pid; // exited: as a push killed with -9
    const host = hostname();
    const ns = pidNamespace();
    expect(ns).toMatch(/^\d+-[0-9a-f-]{36}$/); // Linux: the copies below carry it, as the bridge's own do here
    const here = `~${ns}@${host}`;
    const uuid = (n: number): string => `00000000-0000-4000-8000-00000000000${n}`;
    const names = {
      killed: `${dead}${here}.${uuid(1)}.txt`,
      live: `${process.pid}${here}.${uuid(2)}.txt`,
      otherHost: `${dead}@another-host.example.org.${uuid(3)}.txt`,
      unownedOld: `${uuid(4)}.txt`,
      unownedNew: `${uuid(5)}.txt`,
      // A container's push: pid 1 on a hostname of its own, killed a day ago.
      containerOld: `1@3f2a9c1b7d4e.${uuid(6)}.txt`,
      // A push on this host, alive (the test runner's parent), running for a day: never touched.
      liveOld: `${process.ppid}${here}.${uuid(7)}.txt`,
      // Another container sharing this host name (host networking): its pid means nothing here, alive or not.
      otherNamespace: `${dead}~1@${host}.${uuid(8)}.txt`,
      otherNamespaceOld: `${dead}~1@${host}.${uuid(9)}.txt`,
      // Named without a namespace (a build before it): unknown here, so kept for a day.
      noNamespace: `${dead}@${host}.${uuid(0)}.txt`,
      notACopy: 'notes.txt',
    };
    for (const name of Object.values(names)) writeFileSync(join(copies, name), 'PATIENT ROW\r\n');
    const dayAgo = new Date(new InstantClock().now() - 25 * 3600 * 1000); // a day before the push's clock
    for (const name of [names.unownedOld, names.containerOld, names.liveOld, names.otherNamespaceOld, names.notACopy])
      utimesSync(join(copies, name), dayAgo, dayAgo);
    const file = input('after-kill.txt', `${EPIC.join('\t')}\n${row(0, '\t')}\n`);
    await bridgePush(appArgs(app, file, stateDir), { PURVIEW_APP_SECRET: app.secret });
    expect(readdirSync(copies).sort()).toEqual(
      [names.live, names.otherHost, names.unownedNew, names.liveOld, names.otherNamespace, names.noNamespace, names.notACopy].sort(),
    );
  });

  it('sniffs a pipe file (Epic) and a comma file (Healthcare)', async () => {
    const pipeApp = files.emu.newApp();
    await bridgePush(appArgs(pipeApp, input('pipe.txt', `${EPIC.join('|')}\r\n${row(0, '|')}\r\n`)), { PURVIEW_APP_SECRET: pipeApp.secret });
    expect(files.emu.ingest.accepted(pipeApp.jobId).map((b) => [b.delimiter, b.rows])).toEqual([['pipe', [row(0, '|')]]]);

    const csvApp = files.emu.newApp('healthcare');
    const healthcare = MANDATORY_COLUMNS.healthcare.join(',');
    const secretFile = input('secret.txt', `${csvApp.secret}\n`);
    const csvRow = MANDATORY_COLUMNS.healthcare.map((_, i) => (i === 2 ? '"Doe, Jo"' : `c${i}`)).join(',');
    chmodSync(secretFile, 0o644);
    const logged: string[] = [];
    await bridgePush(
      [...appArgs(csvApp, input('export.csv', `${healthcare}\n${csvRow}\n`)), '--schema', 'healthcare', '--app-secret-file', secretFile],
      {},
      logged,
    );
    expect(files.emu.ingest.accepted(csvApp.jobId).map((b) => [b.delimiter, b.header, b.rows])).toEqual([['comma', healthcare, [csvRow]]]);
    // A secret file others can read is warned about, as `bridge sync` warns; never its content.
    expect(logged.join('\n')).toContain(`the Purview app secret: ${secretFile} has mode 644, so other users have access to it`);
    expect(logged.join('\n')).not.toContain(csvApp.secret);
  });

  it('refuses a file missing a mandatory column before any request', async () => {
    const app = files.emu.newApp();
    const [requests, issued] = [files.emu.ingest.requests, files.emu.entra.stats.issued];
    const header = EPIC.filter((c) => c !== 'ZC_BTG_REASON.NAME').join('\t');
    const error = await rejectionOf(bridgePush(appArgs(app, input('missing.txt', `${header}\nx\n`)), { PURVIEW_APP_SECRET: app.secret }));
    expect([error.code, error.exitCode]).toEqual(['BRG_ERR_INPUT_INVALID', 2]);
    expect(error.message).toBe(
      `${join(dir, 'missing.txt')} line 1: the header lacks mandatory epic column(s) "ZC_BTG_REASON.NAME" (tab-separated). Nothing was sent.`,
    );
    expect([files.emu.ingest.requests - requests, files.emu.entra.stats.issued - issued]).toEqual([0, 0]);
  });

  it('names the line and the column of a short row, before any request', async () => {
    const app = files.emu.newApp();
    const requests = files.emu.ingest.requests;
    const short = EPIC.slice(0, 7)
      .map((_, c) => `v1.${c}`)
      .join('\t');
    const error = await rejectionOf(
      bridgePush(appArgs(app, input('short.txt', `${EPIC.join('\t')}\n${row(0, '\t')}\n${short}\n`)), { PURVIEW_APP_SECRET: app.secret }),
    );
    expect(error.code).toBe('BRG_ERR_INPUT_INVALID');
    expect(error.message).toContain(`line 3 has 7 field(s), the header has 9 (tab-separated). The row ends at column ${short.length + 1}.`);
    expect(files.emu.ingest.requests).toBe(requests);
  });

  it('never takes the secret from the command line, and says where to put it', async () => {
    const app = files.emu.newApp();
    const file = input('ok.txt', `${EPIC.join('\t')}\n${row(0, '\t')}\n`);
    const flag = await rejectionOf(bridgePush([...appArgs(app, file), '--app-secret', app.secret]));
    expect(flag.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(flag.message).not.toContain(app.secret);
    expect(flag.message).toContain('PURVIEW_APP_SECRET');
    const missing = await rejectionOf(bridgePush([...appArgs(app, file), '--app-secret-env', 'MY_SECRET']));
    expect([missing.code, missing.message]).toEqual(['BRG_ERR_CONFIG_SECRET_MISSING', 'the Purview app secret: environment variable MY_SECRET is not set.']);
    // The secret itself passed where its variable's name belongs: refused without echoing it.
    const pasted = await rejectionOf(bridgePush([...appArgs(app, file), '--app-secret-env', app.secret]));
    expect(pasted.code).toBe('BRG_ERR_CONFIG_INVALID');
    expect(`${pasted.message} ${JSON.stringify(pasted.details)}`).not.toContain(app.secret);
    expect(pasted.message).toContain('never the secret itself');
    const wrong = await rejectionOf(bridgePush(appArgs(app, file), { PURVIEW_APP_SECRET: 'not-the-secret' }));
    expect([wrong.code, wrong.exitCode]).toEqual(['BRG_ERR_PURVIEW_AUTH', 5]);
  });

  it('signs in with a certificate', async () => {
    const app = files.emu.newApp();
    const pems = await generate([{ name: 'commonName', value: 'bridge-cli' }], { keySize: 2048, algorithm: 'sha256' });
    files.emu.entra.registerApp({ tenantId: app.tenantId, appId: app.appId, certificatePem: pems.cert });
    const thumbprint = new X509Certificate(pems.cert).fingerprint256; // colons as Windows shows them are accepted
    const args = [
      ...appArgs(app, input('cert.txt', `${EPIC.join('\t')}\n${row(0, '\t')}\n`)),
      '--cert',
      input('key.pem', pems.private),
      '--cert-thumbprint',
      thumbprint,
    ];
    const keyFile = args[args.indexOf('--cert') + 1] as string;
    chmodSync(keyFile, 0o644);
    const logged: string[] = [];
    expect((await bridgePush(args, {}, logged)).at(-1)).toBe(
      `pushed to job ${app.jobId}: 1 row(s) acknowledged (1 sent now in 1 block(s), 0 acknowledged earlier)`,
    );
    // A private key others can read is warned about (never refused, never quoted).
    expect(logged.join('\n')).toContain(`--cert: ${keyFile} has mode 644, so other users have access to it`);
    expect(logged.join('\n')).not.toContain('PRIVATE KEY');
  });

  it('resumes after a failure: the rerun skips what Purview acknowledged', async () => {
    const app = files.emu.newApp();
    const file = input('resume.txt', `${EPIC.join('\t')}\n${[0, 1, 2, 3].map((i) => row(i, '\t')).join('\n')}\n`);
    const args = [...appArgs(app, file), '--block-rows', '2'];
    files.emu.ingest.injectFaults({ kind: 'delay', ms: 0 }, { kind: 'status', status: 400, body: 'Bad block' });
    const error = await rejectionOf(bridgePush(args, { PURVIEW_APP_SECRET: app.secret }));
    expect([error.code, error.exitCode]).toEqual(['BRG_ERR_PURVIEW_REJECTED', 5]);
    const printed = await bridgePush(args, { PURVIEW_APP_SECRET: app.secret });
    // The 400 said Purview did not take the block: the ledger recorded the refusal, so the re-sent block is not flagged.
    expect(printed.slice(1)).toEqual([`pushed to job ${app.jobId}: 4 row(s) acknowledged (2 sent now in 1 block(s), 2 acknowledged earlier)`]);
    expect(files.emu.ingest.accepted(app.jobId).flatMap((b) => b.rows)).toEqual([0, 1, 2, 3].map((i) => row(i, '\t')));
  });

  it('names the rows of the file Purview may hold twice, not only the blocks of this push: a rerun plans its blocks around what was acknowledged', async () => {
    const app = files.emu.newApp();
    const rows = [0, 1, 2, 3, 4, 5].map((i) => row(i, '\t'));
    const file = input('flagged.txt', `${EPIC.join('\t')}\n${rows.join('\n')}\n`);
    const env = { PURVIEW_APP_SECRET: app.secret };
    // The second block is stored but its answer lost, then refused: rows 3–4 went out without a recorded answer.
    files.emu.ingest.injectFaults({ kind: 'delay', ms: 0 }, { kind: 'accept-then-reset' }, { kind: 'status', status: 400, body: 'Bad block' });
    expect((await rejectionOf(bridgePush([...appArgs(app, file), '--block-rows', '2'], env))).code).toBe('BRG_ERR_PURVIEW_REJECTED');
    // The rerun's block 0 holds rows 3–5 of the file: 3 and 4 sent again.
    const printed = await bridgePush([...appArgs(app, file), '--block-rows', '3'], env);
    expect(printed.slice(1)).toEqual([
      `pushed to job ${app.jobId}: 6 row(s) acknowledged (4 sent now in 2 block(s), 2 acknowledged earlier)`,
      'possibly duplicated: 2 row(s), data row(s) 3–4 of the file, in block(s) 0 of this push (sent before without a recorded acknowledgement; Purview may hold them twice)',
    ]);

    // An answer lost within the push: the whole block is flagged, its rows listed by --json.
    const other = files.emu.newApp();
    files.emu.ingest.injectFaults({ kind: 'delay', ms: 0 }, { kind: 'accept-then-status', status: 503 });
    const [json] = await bridgePush([...appArgs(other, file), '--block-rows', '2', '--json'], { PURVIEW_APP_SECRET: other.secret });
    expect(JSON.parse(json ?? '')).toMatchObject({
      blocks: 3,
      possiblyDuplicatedBlocks: [1],
      rowsPossiblyDuplicated: 2,
      possiblyDuplicatedRows: [{ firstRow: 3, lastRow: 4 }],
    });
  });

  it('a push that fails after a block went again names the rows Purview may hold twice, which no rerun could name', async () => {
    const app = files.emu.newApp();
    const file = input('failing.txt', `${EPIC.join('\t')}\n${[0, 1, 2, 3].map((i) => row(i, '\t')).join('\n')}\n`);
    // Block 0 is stored but its answer lost, then sent again and acknowledged; block 1 is refused.
    files.emu.ingest.injectFaults({ kind: 'accept-then-status', status: 503 }, { kind: 'delay', ms: 0 }, { kind: 'status', status: 400, body: 'Bad block' });
    const failed = await rejectionOf(bridgePush([...appArgs(app, file), '--block-rows', '2'], { PURVIEW_APP_SECRET: app.secret }));
    expect(failed.code).toBe('BRG_ERR_PURVIEW_REJECTED');
    expect(failed.message).toContain('Before it, Purview may have been sent data row(s) 1–2 of the file twice (an answer lost, the block sent again).');
  });

  it('refuses a file edited after part of it went out (its acknowledged rows would go again, unflagged), unless --resend-edited', async () => {
    const app = files.emu.newApp();
    const rows = [0, 1, 2, 3].map((i) => row(i, '\t'));
    const path = join(dir, 'edited.txt');
    writeFileSync(path, `${EPIC.join('\t')}\n${rows.join('\n')}\n`);
    const args = [...appArgs(app, path), '--block-rows', '2'];
    const env = { PURVIEW_APP_SECRET: app.secret };
    files.emu.ingest.injectFaults({ kind: 'delay', ms: 0 }, { kind: 'status', status: 400, body: 'Bad block' });
    expect((await rejectionOf(bridgePush(args, env))).code).toBe('BRG_ERR_PURVIEW_REJECTED');
    // The operator fixes the row Purview refused, in place.
    const fixed = [rows[0], rows[1], row(20, '\t'), rows[3]] as string[];
    writeFileSync(path, `${EPIC.join('\t')}\n${fixed.join('\n')}\n`);
    const refused = await rejectionOf(bridgePush(args, env));
    expect([refused.code, refused.exitCode]).toEqual(['BRG_ERR_INPUT_INVALID', 2]);
    expect(refused.message).toBe(
      `edited.txt was pushed to job ${app.jobId} before with other content, not all of it: 2 of its 4 rows are in Purview. Edited, it is a new file: all its rows would be sent, any it shares with what went out again. Push the earlier content again to finish it, or push the rows not sent yet from a file of another name (this name is held by the earlier content until it is finished); or pass --resend-edited to send this one whole (Purview then holds twice the rows it shares with what went out).`,
    );
    expect(files.emu.ingest.accepted(app.jobId).flatMap((b) => b.rows)).toEqual(rows.slice(0, 2));
    // Said so, it is sent whole; the same content again sends nothing.
    await bridgePush([...args, '--resend-edited'], env);
    expect(files.emu.ingest.accepted(app.jobId).flatMap((b) => b.rows)).toEqual([...rows.slice(0, 2), ...fixed]);
    expect((await bridgePush(args, env)).at(-1)).toContain('4 acknowledged earlier');
    // Delivered whole, the path takes the next export written under its name (tomorrow's file) as it is.
    const tomorrow = [4, 5].map((i) => row(i, '\t'));
    writeFileSync(path, `${EPIC.join('\t')}\n${tomorrow.join('\n')}\n`);
    await bridgePush(args, env);
    expect(
      files.emu.ingest
        .accepted(app.jobId)
        .flatMap((b) => b.rows)
        .slice(-2),
    ).toEqual(tomorrow);
  });

  it('refuses a file edited after part of it went out by whichever path names it: a symbolic link to it, or its own path after one', async () => {
    const app = files.emu.newApp();
    const rows = [0, 1, 2, 3].map((i) => row(i, '\t'));
    const path = join(dir, 'linked.txt');
    const link = join(dir, 'linked-current.txt');
    writeFileSync(path, `${EPIC.join('\t')}\n${rows.join('\n')}\n`);
    symlinkSync(path, link);
    const env = { PURVIEW_APP_SECRET: app.secret };
    // A scheduled task pushes through the link; Purview refuses the second block.
    files.emu.ingest.injectFaults({ kind: 'delay', ms: 0 }, { kind: 'status', status: 400, body: 'Bad block' });
    expect((await rejectionOf(bridgePush([...appArgs(app, link), '--block-rows', '2'], env))).code).toBe('BRG_ERR_PURVIEW_REJECTED');
    // The operator fixes the row in the file and pushes it by its own path, then through the link again.
    writeFileSync(path, `${EPIC.join('\t')}\n${[rows[0], rows[1], row(20, '\t'), rows[3]].join('\n')}\n`);
    for (const name of [path, link]) {
      const refused = await rejectionOf(bridgePush([...appArgs(app, name), '--block-rows', '2'], env));
      expect([refused.code, refused.exitCode]).toEqual(['BRG_ERR_INPUT_INVALID', 2]);
      expect(refused.message).toContain('before with other content, not all of it: 2 of its 4 rows are in Purview');
    }
    expect(files.emu.ingest.accepted(app.jobId).flatMap((b) => b.rows)).toEqual(rows.slice(0, 2));

    // The other way round: pushed in part by its own path, then edited and pushed through a link made since.
    const other = files.emu.newApp();
    const direct = join(dir, 'direct.txt');
    writeFileSync(direct, `${EPIC.join('\t')}\n${rows.join('\n')}\n`);
    files.emu.ingest.injectFaults({ kind: 'delay', ms: 0 }, { kind: 'status', status: 400, body: 'Bad block' });
    const otherEnv = { PURVIEW_APP_SECRET: other.secret };
    expect((await rejectionOf(bridgePush([...appArgs(other, direct), '--block-rows', '2'], otherEnv))).code).toBe('BRG_ERR_PURVIEW_REJECTED');
    writeFileSync(direct, `${EPIC.join('\t')}\n${[rows[0], rows[1], row(20, '\t'), rows[3]].join('\n')}\n`);
    const directLink = join(dir, 'direct-link.txt');
    symlinkSync(direct, directLink);
    expect((await rejectionOf(bridgePush([...appArgs(other, directLink), '--block-rows', '2'], otherEnv))).code).toBe('BRG_ERR_INPUT_INVALID');
    expect(files.emu.ingest.accepted(other.jobId).flatMap((b) => b.rows)).toEqual(rows.slice(0, 2));
  });

  it('refuses a file that is the content pushed before with rows added (an export that grows), unless --resend-edited', async () => {
    const app = files.emu.newApp();
    const rows = [0, 1, 2].map((i) => row(i, '\t'));
    const path = join(dir, 'growing.txt');
    // Written with LF first, then CRLF when it grew: the same rows are the same content.
    writeFileSync(path, `${EPIC.join('\t')}\n${rows.join('\n')}\n`);
    const env = { PURVIEW_APP_SECRET: app.secret };
    await bridgePush([...appArgs(app, path), '--block-rows', '2'], env);
    const added = row(3, '\t');
    writeFileSync(path, `${EPIC.join('\t')}\r\n${[...rows, added].join('\r\n')}\r\n`);
    // Another block size between the runs changes nothing.
    const refused = await rejectionOf(bridgePush([...appArgs(app, path), '--block-rows', '3'], env));
    expect([refused.code, refused.exitCode]).toEqual(['BRG_ERR_INPUT_INVALID', 2]);
    expect(refused.message).toBe(
      `growing.txt is the content pushed to job ${app.jobId} before (3 rows, all in Purview) with 1 row(s) added after them. Grown, it is a new file: all its rows would be sent, those 3 again. Push a file holding the header line and only the rows after the first 3; or pass --resend-edited to send this one whole (Purview then holds those rows twice).`,
    );
    expect(files.emu.ingest.accepted(app.jobId).flatMap((b) => b.rows)).toEqual(rows);
    // Following the advice: the added row alone, as a file of its own, arrives once.
    const rest = join(dir, 'growing-rest.txt');
    writeFileSync(rest, `${EPIC.join('\t')}\n${added}\n`);
    await bridgePush(appArgs(app, rest), env);
    expect(files.emu.ingest.accepted(app.jobId).flatMap((b) => b.rows)).toEqual([...rows, added]);
    // Said so, the grown file is sent whole.
    await bridgePush([...appArgs(app, path), '--resend-edited'], env);
    expect(files.emu.ingest.accepted(app.jobId).flatMap((b) => b.rows)).toEqual([...rows, added, ...rows, added]);
  });

  it('refuses the rows pushed before under a header spelled otherwise (quoted names, another case), with or without rows added', async () => {
    const app = files.emu.newApp();
    const rows = [0, 1, 2].map((i) => row(i, '\t'));
    const path = join(dir, 'respelled.txt');
    const env = { PURVIEW_APP_SECRET: app.secret };
    writeFileSync(path, `${EPIC.join('\t')}\n${rows.join('\n')}\n`);
    await bridgePush(appArgs(app, path), env);
    // Tomorrow's export of the same day, its header quoted: the same rows, another content.
    writeFileSync(path, `${EPIC.map((column) => `"${column}"`).join('\t')}\n${rows.join('\n')}\n`);
    const same = await rejectionOf(bridgePush(appArgs(app, path), env));
    expect([same.code, same.exitCode]).toEqual(['BRG_ERR_INPUT_INVALID', 2]);
    expect(same.message).toContain(`respelled.txt holds the rows pushed to job ${app.jobId} before (3 rows, all in Purview) under a header spelled otherwise`);
    // Lower-case names and a row added: the content pushed before, grown.
    writeFileSync(path, `${EPIC.join('\t').toLowerCase()}\n${[...rows, row(3, '\t')].join('\n')}\n`);
    const grown = await rejectionOf(bridgePush(appArgs(app, path), env));
    expect(grown.message).toContain('with 1 row(s) added after them');
    expect(files.emu.ingest.accepted(app.jobId).flatMap((b) => b.rows)).toEqual(rows);
  });

  it('refuses the rows pushed before from a comma file re-exported with every cell quoted, with or without rows added', async () => {
    const app = files.emu.newApp('healthcare');
    const columns = MANDATORY_COLUMNS.healthcare;
    const cells = (i: number): string[] => columns.map((_, c) => (c === 2 ? `Smith, v${i}` : `v${i}.${c}`));
    const minimal = (i: number): string =>
      cells(i)
        .map((cell) => (cell.includes(',') ? `"${cell}"` : cell))
        .join(',');
    const everyCell = (i: number): string =>
      cells(i)
        .map((cell) => `"${cell}"`)
        .join(',');
    const path = join(dir, 'requoted.csv');
    const env = { PURVIEW_APP_SECRET: app.secret };
    const args = [...appArgs(app, path), '--schema', 'healthcare'];
    writeFileSync(path, `${columns.join(',')}\r\n${[0, 1, 2].map(minimal).join('\r\n')}\r\n`);
    await bridgePush(args, env);
    // Tomorrow's export of the same day quotes every cell: the same rows to a CSV reader, another content.
    writeFileSync(path, `${columns.join(',')}\n${[0, 1, 2].map(everyCell).join('\n')}\n`);
    const same = await rejectionOf(bridgePush(args, env));
    expect([same.code, same.exitCode]).toEqual(['BRG_ERR_INPUT_INVALID', 2]);
    expect(same.message).toContain(
      `requoted.csv holds the rows pushed to job ${app.jobId} before (3 rows, all in Purview) under a header spelled otherwise or with cells quoted otherwise`,
    );
    writeFileSync(path, `${columns.map((c) => `"${c}"`).join(',')}\n${[0, 1, 2, 3].map(everyCell).join('\n')}\n`);
    const grown = await rejectionOf(bridgePush(args, env));
    expect(grown.message).toContain('with 1 row(s) added after them');
    expect(files.emu.ingest.accepted(app.jobId).flatMap((b) => b.rows)).toEqual([0, 1, 2].map(minimal));
  });

  it('checks --block-rows', async () => {
    const error = await rejectionOf(bridgePush(['--tenant-id', 't', '--app-id', 'a', '--job-id', 'j', '--file', 'f', '--block-rows', '0']));
    expect(error.message).toBe('--block-rows must be a whole number from 1 to 100000, got "0".');
    // Blocks larger than the documented 100K rows are a size the service was never shown to take.
    const large = await rejectionOf(bridgePush(['--tenant-id', 't', '--app-id', 'a', '--job-id', 'j', '--file', 'f', '--block-rows', '100001']));
    expect([large.exitCode, large.message]).toEqual([2, '--block-rows must be a whole number from 1 to 100000, got "100001".']);
  });

  it('refuses an endpoint override in plain http to another machine: the token and the rows would cross the network in the clear', async () => {
    const args = ['--tenant-id', 't', '--app-id', 'a', '--job-id', 'j', '--file', 'f'];
    for (const flag of ['--ingestion-base', '--authority-host']) {
      const error = await rejectionOf(bridgePush([...args, flag, 'http://ingest.example.org']));
      expect([error.code, error.exitCode]).toEqual(['BRG_ERR_CONFIG_INVALID', 2]);
      expect(error.message).toContain(`${flag} must be an https:// URL: plain http only to this machine`);
      const ftp = await rejectionOf(bridgePush([...args, flag, 'ftp://ingest.example.org']));
      expect(ftp.message).toBe(`${flag} must be an https:// URL, got "ftp://ingest.example.org".`);
    }
  });
});
