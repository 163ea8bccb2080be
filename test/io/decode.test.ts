// Strict UTF-8: invalid bytes are errors naming FILE:LINE (data files and --config), never dropped.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { readJsonl } from "../../src/data/jsonl.js";
import { decodeUtf8, firstInvalidUtf8 } from "../../src/io/decode.js";
import { tempDir } from "../helpers/cli.js";

const bytes = (...b: number[]) => Uint8Array.from(b);

describe("firstInvalidUtf8 (Unicode Table 3-7)", () => {
  test.each([
    ["ASCII", [0x61, 0x62], -1],
    ["2-, 3- and 4-byte sequences", [0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80], -1],
    ["a lone continuation byte", [0x61, 0x80], 1],
    ["0xFF", [0x61, 0xff], 1],
    ["an overlong 2-byte form (C0 80)", [0xc0, 0x80], 0],
    ["an overlong 3-byte form (E0 80 80)", [0xe0, 0x80, 0x80], 0],
    ["a UTF-16 surrogate (ED A0 80)", [0x61, 0xed, 0xa0, 0x80], 1],
    ["above U+10FFFF (F4 90 80 80)", [0xf4, 0x90, 0x80, 0x80], 0],
    ["a sequence cut by the end", [0x61, 0xe2, 0x82], 1],
    ["a bad third byte", [0xe2, 0x82, 0x41], 0],
  ])("%s", (_, input, at) => {
    expect(firstInvalidUtf8(bytes(...input))).toBe(at);
  });
});

describe("decodeUtf8", () => {
  test("valid text decodes; a BOM is dropped at the start of a file only", () => {
    expect(decodeUtf8(bytes(0xef, 0xbb, 0xbf, 0x61), "f")).toBe("a");
    expect(decodeUtf8(bytes(0xef, 0xbb, 0xbf, 0x61), "f", 2)).toBe("\ufeffa");
  });

  test("invalid bytes name file, line and column", () => {
    const text = new TextEncoder().encode("ok\nappl");
    const bad = new Uint8Array([...text, 0xff, 0xfe, 0x73]);
    expect(() => decodeUtf8(bad, "data.jsonl")).toThrow(
      "data.jsonl:2: invalid UTF-8 (byte 0xFF at column 5)",
    );
    expect(() => decodeUtf8(bytes(0x61, 0xff), "data.jsonl", 7)).toThrow("data.jsonl:7:");
  });
});

describe("readJsonl", () => {
  async function rows(path: string) {
    const out = [];
    for await (const row of readJsonl(path)) out.push(row);
    return out;
  }

  test('"appl\\xff\\xfes" is an error naming file:line, not "appls"', async () => {
    const path = join(tempDir(), "data.jsonl");
    writeFileSync(
      path,
      Buffer.concat([
        Buffer.from('{"text":"fine"}\n{"text":"appl'),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('s"}\n'),
      ]),
    );
    await expect(rows(path)).rejects.toThrow(`${path}:2: invalid UTF-8 (byte 0xFF at column 14)`);
  });

  test("CRLF, blank lines, a BOM, no final newline and multi-byte text across chunks", async () => {
    const path = join(tempDir(), "data.jsonl");
    const long = "é".repeat(100_000); // 200 kB: spans several 64 KiB read chunks
    writeFileSync(path, `\ufeff{"a":1}\r\n\r\n{"b":"${long}"}\n{"c":3}`);
    const got = await rows(path);
    expect(got.map((r) => r.line)).toEqual([1, 3, 4]);
    expect(got[0].value).toEqual({ a: 1 });
    expect(got[1].value).toEqual({ b: long });
    expect(got[2].value).toEqual({ c: 3 });
  });
});
