/**
 * One streaming pass over a spool file: its SHA-256 (the ledger key), its header line and its block plan. The spool
 * is what the pipeline writes and what Microsoft's script sends (purview-protocol.md §3.1): UTF-8 without BOM, every
 * line ended by CRLF, the last one included. A BOM, a line ended by LF alone or a last line without CRLF is refused
 * here, before a byte goes out, because Purview would then see other rows than the ledger counted. A CR inside a line
 * is not looked for: the serializer and `bridge push` never write one, and the scan is on the push's critical path
 * (one native search per line, no per-chunk string copy). Memory stays flat: only block boundaries are kept.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { BridgeError } from '../errors.js';
import { createBlockPlanner, type BlockPlan, type BlockPlanner, type UploadLimits } from './blocks.js';

export interface SpoolScan {
  /** Lowercase hex SHA-256 of the file's bytes. */
  readonly sha256: string;
  /** The header line with its CRLF, sent at the top of every block. */
  readonly header: Buffer;
  readonly rows: number;
  readonly bytes: number;
  readonly plans: readonly BlockPlan[];
}

const LF = 0x0a;
const CR = 0x0d;
const READ_BYTES = 1 << 20;

export async function scanSpool(path: string, blockRows: number, limits?: UploadLimits): Promise<SpoolScan> {
  const state = new ScanState(path, blockRows, limits);
  try {
    const file = await open(path, 'r');
    try {
      // One reused buffer: no allocation per chunk (the scan is on the push's critical path, before the first block).
      const buffer = Buffer.allocUnsafe(READ_BYTES);
      for (let read = await file.read(buffer, 0, READ_BYTES, null); read.bytesRead > 0; read = await file.read(buffer, 0, READ_BYTES, null)) {
        state.consume(buffer.subarray(0, read.bytesRead));
      }
    } finally {
      await file.close();
    }
  } catch (cause) {
    if (cause instanceof BridgeError) throw cause;
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Cannot read the spool file ${path}.`, { cause, details: { path } });
  }
  return state.finish();
}

/** Line-by-line checks carried across chunk boundaries. */
class ScanState {
  private readonly hash = createHash('sha256');
  private offset = 0;
  private line = 1;
  private lastByte = -1;
  private headerParts: Buffer[] = [];
  private header: Buffer | undefined;
  private planner: BlockPlanner | undefined;
  private readonly plans: BlockPlan[] = [];

  constructor(private readonly path: string, private readonly blockRows: number, private readonly limits: UploadLimits | undefined) {}

  consume(chunk: Buffer): void {
    this.hash.update(chunk);
    if (this.offset === 0 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) {
      this.fail('starts with a UTF-8 byte order mark; spool files are UTF-8 without BOM');
    }
    let pos = 0;
    for (let lf = chunk.indexOf(LF); lf !== -1; lf = chunk.indexOf(LF, lf + 1)) {
      const before = lf === 0 ? this.lastByte : chunk[lf - 1];
      if (before !== CR) this.fail(`line ${this.line} ends with LF alone; spool lines end with CRLF`);
      this.lineEnded(chunk, pos, this.offset + lf + 1);
      pos = lf + 1;
    }
    if (this.header === undefined) this.headerParts.push(Buffer.from(chunk.subarray(pos)));
    this.offset += chunk.length;
    this.lastByte = chunk[chunk.length - 1] ?? this.lastByte;
  }

  private lineEnded(chunk: Buffer, lineStart: number, end: number): void {
    if (this.header === undefined) {
      this.headerParts.push(chunk.subarray(lineStart, end - this.offset));
      this.header = Buffer.concat(this.headerParts); // a copy: the read buffer is reused
      this.headerParts = [];
      this.planner = createBlockPlanner(end, this.blockRows, this.limits);
    } else {
      const closed = (this.planner as BlockPlanner).addRow(end);
      if (closed.length > 0) this.plans.push(...closed);
    }
    this.line += 1;
  }

  finish(): SpoolScan {
    if (this.offset === 0) this.fail('is empty; a connector file starts with its header line');
    if (this.lastByte !== LF || !this.header || !this.planner) this.fail(`line ${this.line} (the last) has no CRLF at its end`);
    this.plans.push(...(this.planner as BlockPlanner).finish());
    return { sha256: this.hash.digest('hex'), header: this.header as Buffer, rows: this.line - 2, bytes: this.offset, plans: this.plans };
  }

  private fail(what: string): never {
    throw new BridgeError('BRG_ERR_INPUT_INVALID', `Spool file ${this.path} ${what}. Nothing was sent.`, { details: { path: this.path } });
  }
}
