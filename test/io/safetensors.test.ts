// safetensors reader/writer: values read from files written by Python `safetensors` (fixture from
// scripts/fixtures/make_safetensors_cases.py), byte-exact writer output, round trips, one-line
// errors for every kind of bad input, and a seeded mutation fuzz of the reader.

import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  MAX_HEADER_BYTES,
  openCheckpoint,
  SafetensorsFile,
  type TensorToWrite,
  writeSafetensors,
} from "../../src/io/safetensors.js";
import { Heap } from "../../src/tensor/heap.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "safetensors");

interface Expected {
  dtype: string;
  shape: number[];
  f32_bits?: number[];
  ints?: string[];
}

async function loadExpected(dir: string): Promise<Record<string, Expected>> {
  return JSON.parse(await readFile(join(FIXTURES, dir, "expected.json"), "utf8")) as Record<
    string,
    Expected
  >;
}

/** f32 bit patterns, every NaN folded to one pattern (NaN payloads are not preserved across converters). */
const bitsOf = (values: Float32Array | number[]): number[] => {
  const array =
    values instanceof Float32Array ? values : new Float32Array(new Uint32Array(values).buffer);
  return [...new Uint32Array(array.buffer, array.byteOffset, array.length)].map((bits, i) =>
    Number.isNaN(array[i]) ? 0x7fc00000 : bits,
  );
};

/** Builds a safetensors file from a header (object or raw text) and a data section. */
function buildFile(
  header: unknown,
  data: Uint8Array,
  declaredLength?: bigint,
): Uint8Array<ArrayBuffer> {
  const json = new TextEncoder().encode(
    typeof header === "string" ? header : JSON.stringify(header),
  );
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Expects `promise` to reject with a one-line Error containing every fragment. */
async function expectOneLineError(
  promise: Promise<unknown>,
  ...fragments: string[]
): Promise<string> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected an error containing ${fragments.join(" / ")}`).toBeInstanceOf(Error);
  const message = (caught as Error).message;
  expect(message).not.toContain("\n");
  for (const f of fragments) expect(message).toContain(f);
  return message;
}

let tmp: string;
let heap: Heap;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "loraga-safetensors-"));
  heap = new Heap({ initialBytes: 1 << 20, maxBytes: 64 << 20 });
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("reading files written by Python safetensors", () => {
  test("every tensor of the single-file fixture", async () => {
    const expected = await loadExpected("single");
    const file = await SafetensorsFile.open(join(FIXTURES, "single", "model.safetensors"));
    try {
      expect(file.metadata).toEqual({ format: "pt" });
      expect([...file.entries.keys()].sort()).toEqual(Object.keys(expected).sort());
      for (const [name, want] of Object.entries(expected)) {
        const entry = file.entries.get(name)!;
        expect(entry.shape).toEqual(want.shape);
        if (want.f32_bits !== undefined) {
          expect(bitsOf(await file.readF32(name)), name).toEqual(bitsOf(want.f32_bits!));
          const target = heap.tensor(want.shape, "f32");
          await file.readInto(name, target);
          expect(bitsOf(target.f32()), name).toEqual(bitsOf(want.f32_bits!));
          target.dispose();
        }
      }
      // I64 and I32 into i32 targets, U8 into u8
      for (const name of ["position_ids", "counts_i32"]) {
        const target = heap.tensor(expected[name].shape, "i32");
        await file.readInto(name, target);
        expect([...target.i32()].map(String)).toEqual(expected[name].ints);
        target.dispose();
      }
      const mask = heap.tensor([3], "u8");
      await file.readInto("mask_u8", mask);
      expect([...mask.u8()].map(String)).toEqual(expected.mask_u8.ints);
      mask.dispose();
    } finally {
      await file.close();
    }
  });

  test("16-bit tensors copy raw into f16/bf16 targets", async () => {
    const file = await SafetensorsFile.open(join(FIXTURES, "single", "model.safetensors"));
    const raw = new Uint8Array(await readFile(join(FIXTURES, "single", "model.safetensors")));
    for (const [name, dtype] of [
      ["specials_f16", "f16"],
      ["specials_bf16", "bf16"],
    ] as const) {
      const entry = file.entries.get(name)!;
      const target = heap.tensor(entry.shape, dtype);
      await file.readInto(name, target);
      expect([...target.u8()]).toEqual([
        ...raw.subarray(entry.byteOffset, entry.byteOffset + entry.byteLength),
      ]);
      target.dispose();
    }
    await file.close();
  });

  test("I64 values outside int32 are rejected, naming file, tensor and value", async () => {
    const path = join(FIXTURES, "single", "model.safetensors");
    const file = await SafetensorsFile.open(path);
    const target = heap.tensor([2], "i32");
    await expectOneLineError(file.readInto("big_i64", target), path, '"big_i64"', "2147483648");
    target.dispose();
    await file.close();
  });

  test("sharded checkpoint via model.safetensors.index.json", async () => {
    const expected = await loadExpected("sharded");
    const ckpt = await openCheckpoint(join(FIXTURES, "sharded"));
    try {
      expect([...ckpt.entries.keys()].sort()).toEqual(Object.keys(expected).sort());
      for (const [name, want] of Object.entries(expected)) {
        expect(ckpt.entries.get(name)!.shape).toEqual(want.shape);
        expect(bitsOf(await ckpt.readF32(name)), name).toEqual(bitsOf(want.f32_bits!));
      }
      expect(ckpt.entries.get("lm_head.weight")!.file).toContain(
        "model-00002-of-00002.safetensors",
      );
    } finally {
      await ckpt.close();
    }
  });

  test("single-file checkpoint directory", async () => {
    const ckpt = await openCheckpoint(join(FIXTURES, "single"));
    expect(ckpt.entries.has("model.embed_tokens.weight")).toBe(true);
    await ckpt.close();
  });
});

describe("writer", () => {
  test("reproduces the Python writer byte for byte", async () => {
    // the same inputs as the `writer` set in make_safetensors_cases.py (floats before rounding)
    const tensors: TensorToWrite[] = [
      {
        name: "b.weight",
        dtype: "F32",
        shape: [2, 3],
        data: Float32Array.from([0, 1, 2, 3, 4, 5], (v) => v / 4),
      },
      { name: "a.bias", dtype: "BF16", shape: [2], data: Float32Array.from([1.5, -2.25]) },
      { name: "c.half", dtype: "F16", shape: [3], data: Float32Array.from([0.1, 65504, -0]) },
      { name: "ids", dtype: "I64", shape: [2], data: BigInt64Array.from([3n, -1n]) },
      { name: "count", dtype: "I32", shape: [1], data: Int32Array.from([5]) },
      { name: "flags", dtype: "U8", shape: [3], data: Uint8Array.from([1, 0, 1]) },
      { name: "z.empty", dtype: "F32", shape: [0], data: new Float32Array(0) },
    ];
    const path = join(tmp, "writer.safetensors");
    await writeSafetensors(path, tensors, { format: "pt" });
    const ours = new Uint8Array(await readFile(path));
    const reference = new Uint8Array(
      await readFile(join(FIXTURES, "writer", "reference.safetensors")),
    );
    expect(Buffer.from(ours).equals(Buffer.from(reference))).toBe(true);
  });

  test("round trip of every writable dtype, including Int32Array as I64", async () => {
    const n = 1000;
    const f32 = Float32Array.from(
      { length: n },
      (_, i) => Math.sin(i * 0.37) * 10 ** ((i % 9) - 4),
    );
    const i32 = Int32Array.from({ length: n }, (_, i) => (i * 2654435761) | 0);
    const path = join(tmp, "roundtrip.safetensors");
    await writeSafetensors(path, [
      { name: "f32", dtype: "F32", shape: [10, 100], data: f32 },
      { name: "bf16", dtype: "BF16", shape: [n], data: f32 },
      { name: "f16", dtype: "F16", shape: [n], data: f32 },
      { name: "i64", dtype: "I64", shape: [n], data: i32 },
      { name: "i32", dtype: "I32", shape: [n], data: i32 },
    ]);
    const file = await SafetensorsFile.open(path);
    expect(bitsOf(await file.readF32("f32"))).toEqual(bitsOf(f32));
    // bf16 keeps the top 16 bits (rounded): relative error <= 2^-8; f16 (normal range) <= 2^-11
    const bf16 = await file.readF32("bf16");
    const f16 = await file.readF32("f16");
    for (let i = 0; i < n; i++) {
      expect(Math.abs(bf16[i] - f32[i])).toBeLessThanOrEqual(Math.abs(f32[i]) * 2 ** -8);
      if (Math.abs(f32[i]) > 2 ** -14 && Math.abs(f32[i]) < 65504) {
        expect(Math.abs(f16[i] - f32[i])).toBeLessThanOrEqual(Math.abs(f32[i]) * 2 ** -11);
      }
    }
    for (const name of ["i64", "i32"]) {
      const target = heap.tensor([n], "i32");
      await file.readInto(name, target);
      expect([...target.i32()]).toEqual([...i32]);
      target.dispose();
    }
    expect(file.metadata).toEqual({});
    await file.close();
  });

  test("conversions across read-chunk boundaries (tensors larger than the 8 MiB chunk)", async () => {
    const n = 4_500_001; // 9 MB as 16-bit: two chunks plus a tail
    // f16 encodes the integer k in [1, 2048) as exponent e = floor(log2 k) (bias 15) and mantissa
    // (k / 2^e - 1) * 1024 (IEEE 754 binary16); bf16 bits b are the f32 with bits b << 16.
    const period = 2047;
    const periodBits = new Uint16Array(period); // bits of k = 1 + j
    for (let j = 0; j < period; j++) {
      const k = 1 + j;
      const e = Math.floor(Math.log2(k));
      periodBits[j] = ((e + 15) << 10) | ((k / 2 ** e - 1) * 1024);
    }
    const f16Bits = new Uint16Array(n);
    const bf16Bits = new Uint16Array(n);
    for (let i = 0, j = 0; i < n; i++, j = j + 1 === period ? 0 : j + 1) {
      f16Bits[i] = periodBits[j];
      bf16Bits[i] = (i * 40503) & 0x7f7f; // finite values only
    }
    const path = join(tmp, "big.safetensors");
    await writeSafetensors(path, [
      { name: "h", dtype: "F16", shape: [n], data: f16Bits },
      { name: "b", dtype: "BF16", shape: [n], data: bf16Bits },
    ]);
    const file = await SafetensorsFile.open(path);
    const bigHeap = new Heap({ initialBytes: 1 << 20, maxBytes: 64 << 20 });
    const t = bigHeap.tensor([n], "f32");
    await file.readInto("h", t);
    let got = t.f32();
    let mismatches = 0;
    for (let i = 0; i < n; i++) if (got[i] !== 1 + (i % period)) mismatches++;
    expect(mismatches, "F16").toBe(0);
    await file.readInto("b", t);
    got = t.f32();
    const gotBits = new Uint32Array(got.buffer, got.byteOffset, n);
    for (let i = 0; i < n; i++) if (gotBits[i] !== bf16Bits[i] << 16) mismatches++;
    expect(mismatches, "BF16").toBe(0);
    t.dispose();
    await file.close();
    await rm(path);
  });

  test("bad inputs are rejected before anything is written", async () => {
    const path = join(tmp, "never.safetensors");
    await expectOneLineError(
      writeSafetensors(path, [
        { name: "w", dtype: "F32", shape: [2, 2], data: new Float32Array(3) },
      ]),
      path,
      '"w"',
      "[2, 2]",
    );
    await expectOneLineError(
      writeSafetensors(path, [{ name: "w", dtype: "I32", shape: [1], data: new Float32Array(1) }]),
      path,
      '"w"',
      "I32",
    );
    await expectOneLineError(
      writeSafetensors(path, [
        { name: "w", dtype: "F32", shape: [1], data: new Float32Array(1) },
        { name: "w", dtype: "F32", shape: [1], data: new Float32Array(1) },
      ]),
      path,
      '"w"',
      "twice",
    );
    await expect(readdir(tmp)).resolves.not.toContain("never.safetensors");
  });
});

describe("one-line errors for bad files", () => {
  const good = { w: { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] } };
  const data16 = new Uint8Array(16);

  async function write(name: string, bytes: Uint8Array): Promise<string> {
    const path = join(tmp, name);
    await writeFile(path, bytes);
    return path;
  }

  const headerCases: [string, unknown, string[]][] = [
    [
      "unknown dtype",
      { w: { dtype: "F8", shape: [4], data_offsets: [0, 4] } },
      ['"w"', "unknown dtype", '"F8"'],
    ],
    [
      "negative dim",
      { w: { dtype: "F32", shape: [-1, 4], data_offsets: [0, 16] } },
      ['"w"', "shape"],
    ],
    [
      "fractional dim",
      { w: { dtype: "F32", shape: [1.5], data_offsets: [0, 16] } },
      ['"w"', "shape"],
    ],
    [
      "shape not an array",
      { w: { dtype: "F32", shape: "4", data_offsets: [0, 16] } },
      ['"w"', "shape"],
    ],
    [
      "offsets out of range",
      { w: { dtype: "F32", shape: [8], data_offsets: [0, 32] } },
      ['"w"', "[0, 32]", "outside"],
    ],
    [
      "offsets reversed",
      { w: { dtype: "F32", shape: [0], data_offsets: [8, 4] } },
      ['"w"', "[8, 4]"],
    ],
    [
      "offsets of wrong arity",
      { w: { dtype: "F32", shape: [4], data_offsets: [0] } },
      ['"w"', "data_offsets"],
    ],
    [
      "size mismatch",
      {
        "model.layers.0.mlp.up_proj.weight": { dtype: "F32", shape: [2, 3], data_offsets: [0, 16] },
      },
      [
        'tensor "model.layers.0.mlp.up_proj.weight": data_offsets [0, 16] do not match shape [2, 3] x F32 (24 bytes)',
      ],
    ],
    [
      "overlap",
      {
        a: { dtype: "F32", shape: [3], data_offsets: [0, 12] },
        b: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
      },
      ['"b"', "overlap", '"a"'],
    ],
    [
      "huge shape",
      { w: { dtype: "F32", shape: [2 ** 40, 2 ** 40], data_offsets: [0, 16] } },
      ['"w"', "too many"],
    ],
    ["entry not an object", { w: 5 }, ['"w"', "object"]],
    ["header is an array", [1, 2], ["header must be a JSON object"]],
    [
      "metadata not strings",
      { __metadata__: { format: 1 }, ...good },
      ["__metadata__", '"format"'],
    ],
  ];
  test.each(headerCases)("%s", async (label, header, fragments) => {
    const path = await write(`${label.replace(/ /g, "-")}.safetensors`, buildFile(header, data16));
    await expectOneLineError(SafetensorsFile.open(path), path, ...fragments);
  });

  test("duplicate keys, invalid JSON and invalid UTF-8 in the header", async () => {
    const dup = await write(
      "dup.safetensors",
      buildFile(`{"w":${JSON.stringify(good.w)},"w":${JSON.stringify(good.w)}}`, data16),
    );
    await expectOneLineError(SafetensorsFile.open(dup), dup, 'duplicate key "w"');
    const bad = await write("badjson.safetensors", buildFile(`{"w": {"dtype": "F32",, }}`, data16));
    await expectOneLineError(SafetensorsFile.open(bad), bad, "invalid JSON", "line 1, column");
    const bytes = buildFile(`{"\u00e9":1}`, data16);
    bytes[10] = 0xff; // break the UTF-8 sequence of the key
    const utf = await write("badutf8.safetensors", bytes);
    await expectOneLineError(SafetensorsFile.open(utf), utf, "UTF-8");
  });

  test("header length is bounded before anything is allocated", async () => {
    const tiny = await write("short.safetensors", new Uint8Array(5));
    await expectOneLineError(SafetensorsFile.open(tiny), tiny, "too short");
    const past = await write("past.safetensors", buildFile(good, data16, 4000n));
    await expectOneLineError(
      SafetensorsFile.open(past),
      past,
      "header length 4000",
      "bytes after the length field",
    );
    // a 2^63 declared length on a tiny file: must fail on the bound, not try to allocate
    const giant = await write("giant.safetensors", buildFile(good, data16, 2n ** 63n));
    await expectOneLineError(SafetensorsFile.open(giant), giant, `${MAX_HEADER_BYTES}-byte limit`);
    const before = process.memoryUsage().arrayBuffers;
    const almost = await write(
      "almost.safetensors",
      buildFile(good, data16, BigInt(MAX_HEADER_BYTES - 8)),
    );
    await expectOneLineError(SafetensorsFile.open(almost), almost, "bytes after the length field");
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
  });

  test("readInto: missing tensor, wrong shape, unsupported dtype pairing, closed file", async () => {
    const path = join(FIXTURES, "single", "model.safetensors");
    const file = await SafetensorsFile.open(path);
    const t = heap.tensor([4, 5], "f32");
    await expectOneLineError(file.readInto("nope", t), path, '"nope"', "not found");
    await expectOneLineError(
      file.readInto("model.embed_tokens.weight", t),
      path,
      '"model.embed_tokens.weight"',
      "[5, 4]",
      "[4, 5]",
    );
    const i = heap.tensor([5, 4], "i32");
    await expectOneLineError(
      file.readInto("model.embed_tokens.weight", i),
      path,
      '"model.embed_tokens.weight"',
      "F32",
      "i32",
    );
    await expectOneLineError(file.readF32("position_ids"), path, '"position_ids"', "I64");
    await file.close();
    await expectOneLineError(file.readF32("model.embed_tokens.weight"), path, "closed");
    t.dispose();
    i.dispose();
  });

  test("sharded index: path traversal, missing shard, tensor missing from its shard", async () => {
    const src = join(FIXTURES, "sharded");
    const dir = join(tmp, "ckpt");
    await mkdir(dir);
    for (const f of await readdir(src)) await copyFile(join(src, f), join(dir, f));
    const index = JSON.parse(await readFile(join(src, "model.safetensors.index.json"), "utf8"));
    const indexPath = join(dir, "model.safetensors.index.json");
    const withMap = async (map: Record<string, string>) =>
      writeFile(
        indexPath,
        JSON.stringify({ ...index, weight_map: { ...index.weight_map, ...map } }),
      );

    for (const evil of [
      "../single/model.safetensors",
      "/etc/passwd",
      "sub/x.safetensors",
      "..",
      "a\\b",
    ]) {
      await withMap({ "lm_head.weight": evil });
      await expectOneLineError(
        openCheckpoint(dir),
        indexPath,
        '"lm_head.weight"',
        "plain file name",
      );
    }
    await withMap({ "lm_head.weight": "model-00003-of-00002.safetensors" });
    await expectOneLineError(
      openCheckpoint(dir),
      "model-00003-of-00002.safetensors",
      "cannot open",
    );
    await withMap({ "extra.weight": "model-00001-of-00002.safetensors" });
    await expectOneLineError(
      openCheckpoint(dir),
      "model-00001-of-00002.safetensors",
      '"extra.weight"',
      "missing",
    );
    await writeFile(indexPath, '{"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}}');
    await expectOneLineError(openCheckpoint(dir), indexPath, 'duplicate key "a"');
    await writeFile(indexPath, '{"weight_map": {"a": "x.safetensors"');
    await expectOneLineError(openCheckpoint(dir), indexPath, "invalid JSON", "line 1");
    const empty = join(tmp, "empty-dir");
    await mkdir(empty);
    await expectOneLineError(openCheckpoint(empty), empty, "model.safetensors");
  });
});

describe("fuzz: mutated files give clean errors or valid reads", () => {
  /** mulberry32, a small seeded PRNG (public domain). */
  function rng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  test("3000 mutations of a valid file", async () => {
    const base = new Uint8Array(await readFile(join(FIXTURES, "single", "model.safetensors")));
    const headerLength = Number(new DataView(base.buffer).getBigUint64(0, true));
    const headerText = new TextDecoder().decode(base.subarray(8, 8 + headerLength));
    const random = rng(20261128);
    const pick = (n: number) => Math.floor(random() * n);
    const jsonEdits = [
      () => headerText.replace(/"F32"/, '"F99"'),
      () =>
        headerText.replace(/\d+/g, (m) => (random() < 0.2 ? String(Number(m) + pick(9) - 4) : m)),
      () => headerText.replace(/\[/g, (m) => (random() < 0.1 ? "[[" : m)),
      () => headerText.replace(/"shape":\[/g, (m) => (random() < 0.3 ? `${m}1e300,` : m)),
      () => headerText.replace(/data_offsets/g, (m) => (random() < 0.3 ? "data_offset" : m)),
      () => headerText.slice(0, pick(headerText.length)),
      () =>
        headerText.replace(/,/, ',"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'),
      () => `${"[".repeat(100000)}`,
    ];
    const path = join(tmp, "fuzz.safetensors");
    const heapFuzz = new Heap({ initialBytes: 1 << 20, maxBytes: 16 << 20 });
    const started = Date.now();
    const counts = { opened: 0, rejected: 0 };
    for (let iteration = 0; iteration < 3000; iteration++) {
      let bytes = base.slice();
      const kind = iteration % 4;
      if (kind === 0) {
        for (let k = 1 + pick(4); k > 0; k--) bytes[pick(bytes.length)] ^= 1 << pick(8);
      } else if (kind === 1) {
        bytes = bytes.slice(0, pick(bytes.length));
      } else if (kind === 2) {
        const view = new DataView(bytes.buffer);
        const choices = [
          0n,
          1n,
          BigInt(headerLength + pick(16) - 8),
          2n ** 64n - 1n,
          2n ** 40n,
          BigInt(pick(bytes.length)),
        ];
        view.setBigUint64(0, choices[pick(choices.length)], true);
      } else {
        const text = jsonEdits[pick(jsonEdits.length)]();
        bytes = buildFile(text, base.subarray(8 + headerLength));
      }
      await writeFile(path, bytes);
      let file: SafetensorsFile | undefined;
      try {
        file = await SafetensorsFile.open(path);
        counts.opened++;
        for (const entry of file.entries.values()) {
          if (
            entry.dtype === "F32" ||
            entry.dtype === "F16" ||
            entry.dtype === "BF16" ||
            entry.dtype === "F64"
          ) {
            const values = await file.readF32(entry.name);
            expect(values.length).toBe(entry.shape.reduce((a, b) => a * b, 1));
          } else if (entry.dtype === "I64" || entry.dtype === "I32") {
            const t = heapFuzz.tensor(entry.shape, "i32");
            await file.readInto(entry.name, t).catch((error: unknown) => {
              expect(error).toBeInstanceOf(Error);
              expect((error as Error).message).toContain("int32");
            });
            t.dispose();
          }
        }
      } catch (error) {
        counts.rejected++;
        expect(error).toBeInstanceOf(Error);
        const message = (error as Error).message;
        expect(message).not.toContain("\n");
        expect(message.startsWith(path)).toBe(true);
      } finally {
        await file?.close();
      }
    }
    console.log(
      `fuzz: ${counts.opened} opened, ${counts.rejected} rejected in ${Date.now() - started} ms`,
    );
    expect(counts.rejected).toBeGreaterThan(1000);
    expect(counts.opened).toBeGreaterThan(50);
  });
});
