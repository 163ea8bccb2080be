// Strict JSON parsing for untrusted files (safetensors headers, config.json, index.json).
//
// Contract: parseJsonStrict(text, what) returns the value JSON.parse would return, but rejects
// duplicate object keys and nesting deeper than MAX_DEPTH, and every error is one line of the form
// `${what}: <problem> at line L, column C`. It never recurses without bound (depth is checked
// before descending) and allocates nothing proportional to anything but the input text.
// Object keys are defined as own data properties, so a "__proto__" key cannot touch prototypes.
// Grammar: RFC 8259 (https://www.rfc-editor.org/rfc/rfc8259), no extensions.

const MAX_JSON_DEPTH = 256;

/** 1-based line and column of UTF-16 offset `offset` in `text`. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

class JsonSyntaxError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.offset = offset;
  }
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class Parser {
  private pos = 0;
  private readonly text: string;

  constructor(text: string) {
    this.text = text;
  }

  parseDocument(): unknown {
    this.skipSpace();
    const value = this.parseValue(0);
    this.skipSpace();
    if (this.pos < this.text.length) this.fail("unexpected data after the JSON value");
    return value;
  }

  private fail(message: string, at = this.pos): never {
    throw new JsonSyntaxError(message, at);
  }

  private skipSpace(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.pos++;
      else break;
    }
  }

  private describeHere(): string {
    if (this.pos >= this.text.length) return "end of input";
    return JSON.stringify(this.text[this.pos]);
  }

  private parseValue(depth: number): unknown {
    const c = this.text[this.pos];
    if (c === "{") return this.parseObject(depth + 1);
    if (c === "[") return this.parseArray(depth + 1);
    if (c === '"') return this.parseString();
    if (c === "t") return this.parseLiteral("true", true);
    if (c === "f") return this.parseLiteral("false", false);
    if (c === "n") return this.parseLiteral("null", null);
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return this.parseNumber();
    return this.fail(`unexpected ${this.describeHere()}`);
  }

  private parseLiteral<T>(word: string, value: T): T {
    if (this.text.startsWith(word, this.pos)) {
      this.pos += word.length;
      return value;
    }
    return this.fail(`unexpected ${this.describeHere()}`);
  }

  private parseNumber(): number {
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (match === null) return this.fail("invalid number");
    this.pos += match[0].length;
    return Number(match[0]);
  }

  private parseString(): string {
    const t = this.text;
    const start = this.pos;
    this.pos++; // opening quote
    let out = "";
    let chunkStart = this.pos;
    while (true) {
      if (this.pos >= t.length) this.fail("unterminated string", start);
      const c = t.charCodeAt(this.pos);
      if (c === 0x22) {
        out += t.slice(chunkStart, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) this.fail("control character in string");
      if (c === 0x5c) {
        out += t.slice(chunkStart, this.pos);
        const e = t[this.pos + 1];
        if (e === "u") {
          const hex = t.slice(this.pos + 2, this.pos + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail("invalid \\u escape");
          out += String.fromCharCode(Number.parseInt(hex, 16));
          this.pos += 6;
        } else {
          const simple = ESCAPES[e ?? ""];
          if (simple === undefined) this.fail("invalid escape sequence");
          out += simple;
          this.pos += 2;
        }
        chunkStart = this.pos;
      } else {
        this.pos++;
      }
    }
  }

  private enter(depth: number): void {
    if (depth > MAX_JSON_DEPTH) this.fail(`nesting deeper than ${MAX_JSON_DEPTH} levels`);
    this.pos++;
    this.skipSpace();
  }

  private parseArray(depth: number): unknown[] {
    this.enter(depth);
    const out: unknown[] = [];
    if (this.text[this.pos] === "]") {
      this.pos++;
      return out;
    }
    do {
      out.push(this.parseValue(depth));
    } while (this.nextMember("]"));
    return out;
  }

  private parseObject(depth: number): Record<string, unknown> {
    this.enter(depth);
    const out: Record<string, unknown> = {};
    if (this.text[this.pos] === "}") {
      this.pos++;
      return out;
    }
    do {
      if (this.text[this.pos] !== '"')
        this.fail(`expected a quoted key but found ${this.describeHere()}`);
      const keyAt = this.pos;
      const key = this.parseString();
      if (Object.hasOwn(out, key)) this.fail(`duplicate key ${JSON.stringify(key)}`, keyAt);
      this.skipSpace();
      if (this.text[this.pos] !== ":") this.fail(`expected ":" but found ${this.describeHere()}`);
      this.pos++;
      this.skipSpace();
      const value = this.parseValue(depth);
      Object.defineProperty(out, key, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } while (this.nextMember("}"));
    return out;
  }

  /** After an array element or object member: consumes "," (true: another follows) or `close` (false). */
  private nextMember(close: "]" | "}"): boolean {
    this.skipSpace();
    const c = this.text[this.pos];
    if (c === ",") {
      this.pos++;
      this.skipSpace();
      return true;
    }
    if (c !== close) this.fail(`expected "," or "${close}" but found ${this.describeHere()}`);
    this.pos++;
    return false;
  }
}

const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};

/**
 * Parses `text` as JSON, rejecting duplicate keys and excessive nesting. Errors are one line:
 * `${what}: invalid JSON: <problem> at line L, column C`.
 */
export function parseJsonStrict(text: string, what: string): unknown {
  try {
    return new Parser(text).parseDocument();
  } catch (error) {
    if (error instanceof JsonSyntaxError) {
      const { line, column } = lineColumn(text, error.offset);
      throw new Error(`${what}: invalid JSON: ${error.message} at line ${line}, column ${column}`);
    }
    throw error;
  }
}

/**
 * JSON.parse for large trusted-shape files (tokenizer.json); on a syntax error re-parses with the
 * strict parser to report line and column. Duplicate keys are accepted here (last one wins).
 */
export function parseJsonLarge(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    parseJsonStrict(text, what); // throws with a position
    throw new Error(`${what}: invalid JSON`);
  }
}

/** A non-null, non-array object. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
