// Resumed runs log each step once: the log is cut back to the checkpoint's step.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { truncateTrainLog } from "../../src/train/train-log.js";
import { tempDir } from "../helpers/cli.js";

test("keeps records up to the step (eval of that step too), drops later ones and a cut line", async () => {
  const path = join(tempDir(), "train.jsonl");
  const records = [
    { type: "train", step: 1, loss: 3 },
    { type: "train", step: 2, loss: 2.5 },
    { type: "eval", step: 2, eval_loss: 2.7 },
    { type: "train", step: 3, loss: 2.2 },
    { type: "eval", step: 4, eval_loss: 2.1 },
  ];
  writeFileSync(path, `${records.map((r) => JSON.stringify(r)).join("\n")}\n{"type":"train","st`);
  await truncateTrainLog(path, 2);
  const kept = readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  expect(kept).toEqual(records.slice(0, 3));
});

test("a missing log stays missing", async () => {
  const path = join(tempDir(), "train.jsonl");
  await truncateTrainLog(path, 5);
  expect(existsSync(path)).toBe(false);
});
