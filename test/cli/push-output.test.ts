/**
 * `bridge push` output (issue #17.4) against the emulators: `--json` prints one summary object and nothing else; on a
 * terminal one progress bar; elsewhere no line per block (a short push prints its file line and its summary).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pushCommand } from '../../src/cli/commands/push.js';
import { silentLogger } from '../../src/log.js';
import { openStateStore } from '../../src/sync/state/index.js';
import { emulatorsWithCaFile, HEADER, makeRows, pushArgs } from '../purview/support.js';
import { InstantClock } from '../support/manual-clock.js';
import { recordingContext } from './support.js';

const files = emulatorsWithCaFile('bridge-cli-push-output-');
const { dir, caFile } = files;

async function push(extra: string[], options: { tty?: boolean } = {}) {
  const app = files.emu.newApp();
  const file = join(dir, `${app.jobId}.txt`);
  writeFileSync(file, `${[HEADER, ...makeRows(7)].join('\n')}\n`);
  const ctx = recordingContext({ tty: options.tty ?? false });
  const command = pushCommand({
    print: ctx.print,
    env: { PURVIEW_APP_SECRET: app.secret },
    clock: new InstantClock(),
    logger: silentLogger(),
    stdout: ctx.stdout,
    openStore: (stateDir) => openStateStore(stateDir, new InstantClock()),
  });
  await command
    .exitOverride()
    .parseAsync([...pushArgs(files.emu, app, file, join(dir, `state-${app.jobId}`), caFile), '--block-rows', '3', ...extra], { from: 'user' });
  return { ctx, app, file };
}

describe('bridge push output', () => {
  it('--json prints exactly one JSON object with the counts, like sync --json', async () => {
    const { ctx, app } = await push(['--json']);
    expect(ctx.printed).toHaveLength(1);
    const summary = JSON.parse(ctx.printed[0] ?? '') as Record<string, unknown>;
    expect(summary).toMatchObject({
      jobId: app.jobId,
      schema: 'epic',
      delimiter: 'tab',
      rows: 7,
      blockRows: 3,
      blocks: 3,
      rowsSent: 7,
      rowsAlreadyDelivered: 0,
      rowsAcked: 7,
      possiblyDuplicatedBlocks: [],
      rowsPossiblyDuplicated: 0,
    });
    expect(summary['process']).toMatchObject({ peakRssMb: expect.any(Number) });
    expect(ctx.written()).toBe('');
  });

  it('off a terminal prints no line per block; on a terminal draws one bar to 100%', async () => {
    const plain = await push([]);
    expect(plain.ctx.printed).toHaveLength(2);
    expect(plain.ctx.printed[1]).toBe(`pushed to job ${plain.app.jobId}: 7 row(s) acknowledged (7 sent now in 3 block(s), 0 acknowledged earlier)`);
    const tty = await push([], { tty: true });
    expect(tty.ctx.written()).toContain('████████████████████ pushing: 7 of 7 rows (100%) · 3 of ~3 block(s)');
    expect(tty.ctx.printed).toHaveLength(2);
    // --no-progress: lines even on a terminal.
    const lines = await push(['--no-progress'], { tty: true });
    expect(lines.ctx.written()).toBe('');
  });
});
