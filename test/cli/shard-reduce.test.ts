// Sharded estimation through the `loraga` command: N = 1, 2, 3 processes' `estimate --shard i/N`
// + `reduce` give the gradient cache of one `estimate` over every batch (N = 1 byte for byte; more
// shards within float rounding of the summation, max relative difference printed and <= 1e-6,
// same batch count and mean loss), which `init --grads` takes; the parts of another estimation,
// a missing or repeated shard, a whole cache among the parts, and a part given to `init` are each
// refused with one line naming the file; parts written into the model directory do not change the
// model's fingerprint. Also: the shares are disjoint and cover every batch.

import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { shardRange } from "../../src/peft/gradient-shards.js";
import { maxRelDiff } from "../helpers/allclose.js";
import { copyTinyModel, runCli, tempDir } from "../helpers/cli.js";
import { readTensorFile } from "../helpers/tensors.js";

const dir = tempDir("loraga-shard-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// 6 batches of one row each, so that 2 and 3 shards split them evenly and 4 does not
const ESTIMATE = [
  "estimate",
  "--model",
  "test/fixtures/models/llama-gqa",
  "--data",
  "test/fixtures/e2e/data.jsonl",
  "--batch-size",
  "1",
  "--max-length",
  "10",
  "--batches",
  "6",
  "--kernels",
  "ref",
  "-q",
];

function ok(args: string[]): string {
  const r = runCli(args);
  expect(r.status, `loraga ${args.join(" ")}\n${r.stderr}`).toBe(0);
  return r.stderr;
}

/** The one-line error of a command that must fail with status 1 or 2. */
function refused(args: string[]): string {
  const r = runCli(args);
  expect(r.status, r.stderr).not.toBe(0);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  return r.stderr;
}

const single = join(dir, "single.safetensors");
const part = (n: number, i: number) => join(dir, `n${n}-part${i}.safetensors`);
beforeAll(() => {
  ok([...ESTIMATE, "--out", single]);
});

describe("estimate --shard i/N + reduce equals one estimate", () => {
  test.each([1, 2, 3])("N = %i", async (n) => {
    for (let i = 0; i < n; i++) ok([...ESTIMATE, "--shard", `${i}/${n}`, "--out", part(n, i)]);
    const reduced = join(dir, `reduced-${n}.safetensors`);
    const parts = Array.from({ length: n }, (_, i) => part(n, n - 1 - i)); // any order
    const log = ok(["reduce", ...parts, "--out", reduced]);
    expect(log).toMatch(new RegExp(`\\(6 batches, \\d+ tokens, from ${n} shards; mean loss`));
    const want = await readTensorFile(single);
    const got = await readTensorFile(reduced);
    expect([...got.tensors.keys()]).toEqual([...want.tensors.keys()]);
    expect(got.metadata).toEqual(want.metadata); // batches, and mean_loss to the last digit
    // max over modules of max |got - want| / max |want|
    const diff = Math.max(
      ...[...want.tensors].map(([name, w]) => maxRelDiff(got.tensors.get(name) as Float32Array, w)),
    );
    console.log(
      `${n} shard(s) + reduce vs one run: max relative difference ${diff.toExponential(3)}`,
    );
    expect(diff).toBeLessThanOrEqual(1e-6);
    if (n === 1) expect(readFileSync(reduced).equals(readFileSync(single))).toBe(true);
  });

  test("init --grads takes the reduced cache and refuses a part", () => {
    const reduced = join(dir, "reduced-3.safetensors");
    const init = ["init", "--model", "test/fixtures/models/llama-gqa", "--target", "q_proj"];
    ok([...init, "--r", "2", "--grads", reduced, "--kernels", "ref", "--out", join(dir, "init")]);
    const err = refused([...init, "--grads", part(3, 1), "--out", join(dir, "init-part")]);
    expect(err).toMatch(
      /n3-part1\.safetensors is shard 1\/3 of a sharded estimation .* `loraga reduce` first/,
    );
  });
});

test("parts written into the model directory do not change its fingerprint", () => {
  const model = join(dir, "model-with-parts");
  copyTinyModel(model);
  const args = ESTIMATE.map((a) => (a === "test/fixtures/models/llama-gqa" ? model : a));
  ok([...args, "--shard", "0/2", "--out", join(model, "p0.safetensors")]);
  ok([...args, "--shard", "1/2", "--out", join(model, "p1.safetensors")]);
  ok([
    "reduce",
    join(model, "p0.safetensors"),
    join(model, "p1.safetensors"),
    "--out",
    join(dir, "m.safetensors"),
  ]);
});

describe("reduce refuses parts that do not make one estimation", () => {
  const out = () => join(dir, "never.safetensors");
  test("a missing shard, a repeated one, and shards of another N", () => {
    expect(refused(["reduce", part(3, 0), part(3, 2), "--out", out()])).toMatch(
      /shard 1\/3 missing: give all 3 parts/,
    );
    expect(refused(["reduce", part(3, 0), part(3, 1), part(3, 1), "--out", out()])).toMatch(
      /n3-part1\.safetensors and .*n3-part1\.safetensors are both shard 1\/3/,
    );
    expect(refused(["reduce", part(2, 0), part(3, 1), "--out", out()])).toMatch(
      /n3-part1\.safetensors: shard count 3 differs from .*n2-part0\.safetensors's 2/,
    );
  });

  test("parts of other batches or another model, and a whole cache among the parts", () => {
    const other = join(dir, "other-data.safetensors");
    ok([...ESTIMATE, "--max-length", "9", "--shard", "1/2", "--out", other]);
    expect(refused(["reduce", part(2, 0), other, "--out", out()])).toMatch(
      /other-data\.safetensors was estimated on other batches than .*n2-part0\.safetensors/,
    );
    const model = join(dir, "other-model.safetensors");
    const mistral = ESTIMATE.map((a) =>
      a === "test/fixtures/models/llama-gqa" ? "test/fixtures/models/mistral" : a,
    );
    ok([...mistral, "--shard", "1/2", "--out", model]);
    expect(refused(["reduce", part(2, 0), model, "--out", out()])).toMatch(
      /other-model\.safetensors was estimated on another model than .*n2-part0\.safetensors/,
    );
    expect(refused(["reduce", part(1, 0), single, "--out", out()])).toMatch(
      /single\.safetensors is not a partial gradient sum of `loraga estimate --shard`/,
    );
  });

  test("an existing --out without --overwrite, and more shards than batches", () => {
    expect(refused(["reduce", part(1, 0), "--out", single])).toMatch(/--overwrite/);
    expect(refused([...ESTIMATE, "--shard", "0/7", "--out", out()])).toMatch(
      /--shard 0\/7: 7 shards of 6 batches \(--batches\) leave some empty/,
    );
    expect(refused([...ESTIMATE, "--shard", "2/2", "--out", out()])).toMatch(
      /--shard must be i\/N with 0 <= i < N/,
    );
  });
});

test("the shares are contiguous, disjoint, cover every batch and differ by at most one", () => {
  for (let total = 1; total <= 20; total++) {
    for (let count = 1; count <= total; count++) {
      const sizes: number[] = [];
      let next = 0;
      for (let index = 0; index < count; index++) {
        const { start, end } = shardRange(total, { index, count });
        expect(start).toBe(next);
        sizes.push(end - start);
        next = end;
      }
      expect(next).toBe(total);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      expect(Math.min(...sizes)).toBeGreaterThan(0);
    }
  }
});
