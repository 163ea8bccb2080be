// The demo task as the app offers it: the arithmetic word problems of `loraga demo`
// (src/demo/arith-task.ts), a training split and a held-out split for the eval loss, as JSONL
// text. The end-to-end test writes the same files for the Node side.

import { makeArithSplits, toJsonl } from "../../src/demo/arith-task.js";

const DEMO_TASK = { trainRows: 512, testRows: 32, seed: 1 } as const;
export const DEMO_TRAIN_FILE = "demo-train.jsonl";
export const DEMO_TEST_FILE = "demo-test.jsonl";

export function demoJsonl(): { train: string; test: string } {
  const { train, test } = makeArithSplits(DEMO_TASK.trainRows, DEMO_TASK.testRows, DEMO_TASK.seed);
  return { train: toJsonl(train), test: toJsonl(test) };
}
