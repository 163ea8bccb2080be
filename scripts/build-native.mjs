#!/usr/bin/env node
// Builds the native engine's Node-API addon (native/src/*.c) into build/native/loraga_native.node
// with the system C compiler, against the headers Node ships in <node prefix>/include/node, so
// nothing is downloaded. Run by `npm install` (package.json "install"). The build is optional: on
// any failure it prints one line, records the reason in build/native/status.json (read by
// src/kernels/native/addon.ts to say why `--kernels native` is unavailable) and exits 0, so the
// install goes on and the wasm engine is used. LORAGA_NATIVE=0 skips the build.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const sourceDir = join(root, "native", "src");
const outDir = join(root, "build", "native");
const output = join(outDir, "loraga_native.node");
const statusFile = join(outDir, "status.json");

function finish(ok, reason) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(statusFile, `${JSON.stringify({ ok, reason }, null, 2)}\n`);
  if (ok) console.log(`loraga: built the native engine (${output})`);
  else console.log(`loraga: native engine not built (${reason}); the wasm engine will be used`);
}

function nodeHeaders() {
  const candidates = [
    join(dirname(dirname(process.execPath)), "include", "node"),
    process.env.npm_config_nodedir ? join(process.env.npm_config_nodedir, "include", "node") : "",
  ];
  return candidates.find((dir) => dir !== "" && existsSync(join(dir, "node_api.h")));
}

function build() {
  rmSync(output, { force: true }); // a failed build must not leave an older addon behind
  if (process.env.LORAGA_NATIVE === "0") return finish(false, "skipped: LORAGA_NATIVE=0");
  if (process.platform === "win32") return finish(false, "no build recipe for Windows yet");
  const include = nodeHeaders();
  if (include === undefined)
    return finish(false, "Node's headers (include/node/node_api.h) not found");
  const compiler = process.env.CC || "cc";
  const sources = readdirSync(sourceDir)
    .filter((f) => f.endsWith(".c"))
    .map((f) => join(sourceDir, f));
  const link = process.platform === "darwin" ? ["-undefined", "dynamic_lookup"] : [];
  const args = [
    "-std=gnu11",
    "-O3",
    "-fPIC",
    "-shared",
    "-fvisibility=hidden",
    "-Wall",
    "-DNODE_GYP_MODULE_NAME=loraga_native",
    `-I${include}`,
    ...sources,
    "-o",
    `${output}.tmp`,
    "-lpthread",
    ...link,
  ];
  mkdirSync(outDir, { recursive: true });
  try {
    execFileSync(compiler, args, { stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const stderr = String(error.stderr ?? "")
      .trim()
      .split("\n")
      .slice(0, 3)
      .join(" / ");
    if (error.code === "ENOENT") return finish(false, `no C compiler (${compiler} not found)`);
    return finish(false, `${compiler} failed: ${stderr || String(error.message)}`);
  }
  renameSync(`${output}.tmp`, output);
  finish(true, "");
}

build();
