// Runs the built `loraga` command (dist/cli/main.js) as a user would: a child process with real
// files. `npm test` builds dist/ first.
import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], options: { timeoutMs?: number } = {}): CliResult {
  const out = spawnSync(process.execPath, ["dist/cli/main.js", ...args], {
    encoding: "utf8",
    timeout: options.timeoutMs ?? 120_000,
    env: { ...process.env, LORAGA_DEBUG: "" },
  });
  return { status: out.status, stdout: out.stdout, stderr: out.stderr };
}

export function tempDir(prefix = "loraga-cli-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Creates modelDir holding a tiny fixture model (by default the GQA Llama; the decoder-only ones
 * have vocab 96) with a tokenizer from test/fixtures/tokenizer (by default the character one; the
 * T5s (vocab 64) take "tiny-t5").
 */
export function copyTinyModel(modelDir: string, fixture = "llama-gqa", tokenizer = "tiny-char") {
  mkdirSync(modelDir);
  for (const f of ["config.json", "model.safetensors"])
    copyFileSync(`test/fixtures/models/${fixture}/${f}`, join(modelDir, f));
  cpSync(`test/fixtures/tokenizer/${tokenizer}`, modelDir, { recursive: true });
}
