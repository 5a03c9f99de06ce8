import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectorFileWriter } from '../../src/connector-file/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'writer-'));
  dirs.push(dir);
  return join(dir, 'rows.txt');
}

describe('ConnectorFileWriter', () => {
  it('writes header and rows with CRLF, returns byte offsets that count multi-byte characters, mode 0600', () => {
    const path = tempFile();
    const writer = new ConnectorFileWriter(path, 'A\tB');
    expect(writer.bytes).toBe(5);
    // é: 2 bytes, 語: 3 bytes, 😀: a surrogate pair, 4 bytes.
    expect(writer.append(['é\t語'])).toBe(5 + 2 + 1 + 3 + 2);
    expect(writer.append(['😀\tx', ''])).toBe(13 + 4 + 1 + 1 + 2 + 2);
    writer.finish();
    expect(readFileSync(path, 'utf8')).toBe('A\tB\r\né\t語\r\n😀\tx\r\n\r\n');
    expect(statSync(path).size).toBe(23);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('keeps lines whole across many buffer flushes and for lines longer than the buffer', () => {
    const path = tempFile();
    const writer = new ConnectorFileWriter(path, 'H');
    const lines: string[] = [];
    let offset = 3;
    for (let i = 0; i < 5000; i++) {
      // Lengths vary around the buffer edge; every 997th line is far bigger than the 64 KiB buffer.
      const line = i % 997 === 0 ? `${i}:${'語'.repeat(40_000)}` : `${i}:${'ab€'.repeat(i % 50)}`;
      lines.push(line);
      offset = writer.append([line]);
    }
    writer.finish();
    const text = readFileSync(path, 'utf8');
    expect(text).toBe(`H\r\n${lines.map((line) => `${line}\r\n`).join('')}`);
    expect(statSync(path).size).toBe(offset);
  });
});
