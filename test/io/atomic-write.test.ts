// Atomic writes: content lands completely or not at all, and no temp file survives a failure.

import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { writeFileAtomic, writeFileAtomicStreaming } from "../../src/io/atomic-write.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "loraga-atomic-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("writes new files and replaces existing ones, leaving only the destination", async () => {
  const path = join(dir, "a.txt");
  await writeFileAtomic(path, "first");
  expect(await readFile(path, "utf8")).toBe("first");
  await writeFileAtomic(path, new Uint8Array([104, 105]));
  expect(await readFile(path, "utf8")).toBe("hi");
  expect(await readdir(dir)).toEqual(["a.txt"]);
});

test("a failure mid-stream keeps the old content and removes the temp file", async () => {
  const path = join(dir, "b.bin");
  await writeFile(path, "old content");
  await expect(
    writeFileAtomicStreaming(path, async (write) => {
      await write(new Uint8Array(1 << 20).fill(7));
      throw new Error("producer failed");
    }),
  ).rejects.toThrow("producer failed");
  expect(await readFile(path, "utf8")).toBe("old content");
  expect((await readdir(dir)).filter((f) => f.includes("b.bin"))).toEqual(["b.bin"]);
});

test("a failed rename (destination is a directory) removes the temp file", async () => {
  const sub = join(dir, "sub");
  const { mkdir } = await import("node:fs/promises");
  await mkdir(join(sub, "target"), { recursive: true });
  await writeFile(join(sub, "target", "keep"), "x");
  await expect(writeFileAtomic(join(sub, "target"), "data")).rejects.toThrow();
  expect(await readdir(sub)).toEqual(["target"]);
});

test("a missing directory fails cleanly", async () => {
  await expect(writeFileAtomic(join(dir, "no", "such", "file"), "x")).rejects.toThrow(/ENOENT/);
});

test("streams many chunks in order", async () => {
  const path = join(dir, "c.bin");
  await writeFileAtomicStreaming(path, async (write) => {
    for (let i = 0; i < 100; i++) await write(new Uint8Array([i]));
  });
  expect([...(await readFile(path))]).toEqual(Array.from({ length: 100 }, (_, i) => i));
});
