/**
 * Where is the JSON syntax error? Node 20's JSON.parse messages carry no position but do quote the input, which may
 * be PHI, so they never reach an error message. This strict scanner (RFC 8259) runs only after JSON.parse failed.
 */

export interface JsonErrorPosition {
  /** 1-based line and column (UTF-16 code units). */
  readonly line: number;
  readonly column: number;
  readonly reason: string;
}

export function locateJsonError(text: string): JsonErrorPosition | undefined {
  const scanner = new Scanner(text);
  try {
    scanner.document();
    return undefined;
  } catch (error) {
    if (!(error instanceof SyntaxStop)) throw error;
    return { ...lineAndColumn(text, error.offset), reason: error.reason };
  }
}

class SyntaxStop extends Error {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(reason);
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const HEX4 = /^[0-9a-fA-F]{4}$/;

class Scanner {
  private index = 0;

  constructor(private readonly text: string) {}

  document(): void {
    this.value();
    this.whitespace();
    if (this.index < this.text.length) this.fail('unexpected data after the JSON value');
  }

  private fail(reason: string): never {
    throw new SyntaxStop(this.index, this.index >= this.text.length ? 'unexpected end of input' : reason);
  }

  private whitespace(): void {
    while (this.index < this.text.length && ' \t\n\r'.includes(this.text[this.index] as string)) this.index += 1;
  }

  private value(): void {
    this.whitespace();
    const c = this.text[this.index];
    if (c === '{') this.container('}', () => this.member());
    else if (c === '[') this.container(']', () => this.value());
    else if (c === '"') this.string();
    else if (c === 't') this.literal('true');
    else if (c === 'f') this.literal('false');
    else if (c === 'n') this.literal('null');
    else if (c !== undefined && (c === '-' || (c >= '0' && c <= '9'))) this.number();
    else this.fail('unexpected character');
  }

  /** `{…}` or `[…]`: items separated by commas, no trailing comma. */
  private container(close: '}' | ']', item: () => void): void {
    this.index += 1;
    this.whitespace();
    if (this.text[this.index] === close) {
      this.index += 1;
      return;
    }
    for (;;) {
      item();
      this.whitespace();
      const c = this.text[this.index];
      this.index += 1;
      if (c === close) return;
      if (c !== ',') {
        this.index -= 1;
        this.fail(`expected ',' or '${close}'`);
      }
    }
  }

  private member(): void {
    this.whitespace();
    if (this.text[this.index] !== '"') this.fail('expected a property name in double quotes');
    this.string();
    this.whitespace();
    if (this.text[this.index] !== ':') this.fail("expected ':'");
    this.index += 1;
    this.value();
  }

  private string(): void {
    this.index += 1;
    for (;;) {
      if (this.index >= this.text.length) this.fail('unterminated string');
      const c = this.text.charCodeAt(this.index);
      if (c === 0x22) {
        this.index += 1;
        return;
      }
      if (c < 0x20) this.fail('control character in string');
      if (c === 0x5c) this.escape();
      else this.index += 1;
    }
  }

  private escape(): void {
    const next = this.text[this.index + 1];
    if (next !== undefined && '"\\/bfnrt'.includes(next)) this.index += 2;
    else if (next === 'u' && HEX4.test(this.text.slice(this.index + 2, this.index + 6))) this.index += 6;
    else this.fail('invalid escape in string');
  }

  private number(): void {
    NUMBER.lastIndex = this.index;
    if (!NUMBER.test(this.text)) this.fail('invalid number');
    this.index = NUMBER.lastIndex;
  }

  private literal(word: string): void {
    if (this.text.startsWith(word, this.index)) this.index += word.length;
    else this.fail('unexpected character');
  }
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let index = text.indexOf('\n'); index !== -1 && index < offset; index = text.indexOf('\n', index + 1)) {
    line += 1;
    start = index + 1;
  }
  return { line, column: offset - start + 1 };
}
