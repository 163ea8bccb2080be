// Output paths: mkdir -p that terminates on pseudo file systems and under files, the state of an
// output, real paths of paths that do not exist yet, and the write probe.
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import {
  contains,
  makeDirs,
  outputState,
  probeWritable,
  resolveReal,
} from "../../src/io/output-paths.js";
import { tempDir } from "../helpers/cli.js";

const onLinux = process.platform === "linux";

describe("makeDirs", () => {
  test("creates missing parents and accepts an existing directory", async () => {
    const root = tempDir();
    await makeDirs(join(root, "a", "b", "c"));
    expect(await outputState(join(root, "a", "b", "c"))).toBe("empty-dir");
    await makeDirs(join(root, "a", "b"));
  });

  test.skipIf(!onLinux)(
    "fails at once on /proc (Node's recursive mkdir loops forever)",
    async () => {
      const t0 = performance.now();
      await expect(makeDirs("/proc/loraga-nope/x")).rejects.toThrow(
        /cannot create directory \/proc\/loraga-nope: ENOENT/,
      );
      expect(performance.now() - t0).toBeLessThan(2000);
    },
  );

  test("under a regular file: names the file", async () => {
    const root = tempDir();
    writeFileSync(join(root, "f"), "x");
    await expect(makeDirs(join(root, "f", "sub", "x"))).rejects.toThrow(
      `${join(root, "f")} exists and is not a directory`,
    );
  });
});

describe("outputState", () => {
  test("missing, file, empty and non-empty directories, a path under a file", async () => {
    const root = tempDir();
    expect(await outputState(join(root, "none"))).toBe("missing");
    writeFileSync(join(root, "f"), "x");
    expect(await outputState(join(root, "f"))).toBe("file");
    mkdirSync(join(root, "d"));
    expect(await outputState(join(root, "d"))).toBe("empty-dir");
    writeFileSync(join(root, "d", "x"), "x");
    expect(await outputState(join(root, "d"))).toBe("non-empty-dir");
    symlinkSync(join(root, "gone"), join(root, "dangling"));
    expect(await outputState(join(root, "dangling"))).toBe("file");
    await expect(outputState(join(root, "f", "x"))).rejects.toThrow(
      `${join(root, "f")} is a file, not a directory`,
    );
  });
});

describe("resolveReal and contains", () => {
  test("symlinks resolve through the nearest existing ancestor", async () => {
    const root = await resolveReal(tempDir());
    mkdirSync(join(root, "real"));
    symlinkSync(join(root, "real"), join(root, "link"));
    expect(await resolveReal(join(root, "link", "new", "file"))).toBe(
      join(root, "real", "new", "file"),
    );
    expect(contains(join(root, "real"), join(root, "real", "x"))).toBe(true);
    expect(contains(join(root, "real"), join(root, "real"))).toBe(true);
    expect(contains(join(root, "real"), join(root, "realm"))).toBe(false);
  });
});

describe("probeWritable", () => {
  test("a writable directory keeps nothing from the probe", async () => {
    const root = tempDir();
    await probeWritable(root);
    expect(await outputState(root)).toBe("empty-dir");
  });

  test.skipIf(!onLinux)("/proc refuses files: the OS reason is in the message", async () => {
    await expect(probeWritable("/proc")).rejects.toThrow(/^cannot write in \/proc: E[A-Z]+: /);
  });
});
