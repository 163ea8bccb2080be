// A machine without a C compiler, simulated in a temporary copy of the package: the build script
// (scripts/build-native.mjs, npm's `install` step) runs with CC naming a program that does not
// exist. It must exit 0 and record why in build/native/status.json; the built CLI (dist/, copied
// beside it) must then run on the wasm engine under `--kernels auto`, saying so in one line, and
// `--kernels native` must fail with an error that names the reason. No reinstall: the copy holds
// only the script, the C sources, dist/ and a link to node_modules.

import { spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { copyTinyModel, tempDir } from "../helpers/cli.js";

const MISSING_CC = "/nonexistent/loraga-test-cc";

describe("no C compiler: the install still succeeds and loraga runs on wasm", () => {
  const root = tempDir("loraga-nocc-");
  const model = join(root, "model");
  let build: ReturnType<typeof spawnSync>;

  beforeAll(() => {
    writeFileSync(join(root, "package.json"), '{ "name": "loraga", "type": "module" }\n');
    mkdirSync(join(root, "scripts"));
    cpSync("scripts/build-native.mjs", join(root, "scripts", "build-native.mjs"));
    cpSync("native/src", join(root, "native", "src"), { recursive: true });
    cpSync("dist", join(root, "dist"), { recursive: true });
    symlinkSync(resolve("node_modules"), join(root, "node_modules"), "dir");
    copyTinyModel(model);
    build = spawnSync(process.execPath, [join(root, "scripts", "build-native.mjs")], {
      encoding: "utf8",
      env: { ...process.env, CC: MISSING_CC, LORAGA_NATIVE: "" },
    });
  });

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  function generate(kernels: string) {
    const args = ["generate", "--model", model, "--prompt", "ab", "--max-new-tokens", "2"];
    return spawnSync(
      process.execPath,
      [join(root, "dist/cli/main.js"), ...args, "--kernels", kernels, "-q"],
      {
        encoding: "utf8",
        timeout: 120_000,
        env: { ...process.env, LORAGA_DEBUG: "" },
      },
    );
  }

  test("the build step exits 0, says so in one line and records the reason", () => {
    expect(build.status).toBe(0);
    expect(String(build.stdout).trim().split("\n")).toEqual([
      `loraga: native engine not built (no C compiler (${MISSING_CC} not found)); the wasm engine will be used`,
    ]);
    expect(existsSync(join(root, "build/native/loraga_native.node"))).toBe(false);
    const status = JSON.parse(readFileSync(join(root, "build/native/status.json"), "utf8"));
    expect(status).toEqual({ ok: false, reason: `no C compiler (${MISSING_CC} not found)` });
  });

  test("--kernels auto runs on wasm with a one-line notice naming why", () => {
    const r = generate("auto");
    expect(r.status, r.stderr).toBe(0);
    const notices = r.stderr.split("\n").filter((line) => line.startsWith("loraga: using"));
    expect(notices).toEqual([
      `loraga: using the wasm engine (the native engine is not built: no C compiler (${MISSING_CC} not found))`,
    ]);
    expect(r.stdout.length).toBeGreaterThan(0);
  });

  test("--kernels native fails with an error naming why", () => {
    const r = generate("native");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(
      `native kernels unavailable: the native engine is not built: no C compiler (${MISSING_CC} not found)`,
    );
  });
});
