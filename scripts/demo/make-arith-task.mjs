#!/usr/bin/env node
// Deterministic generator of GSM8K-style arithmetic word problems: the downstream task of the
// `loraga` demo. Same seed and sizes -> byte-identical files.
//
// Usage:
//   node scripts/demo/make-arith-task.mjs OUT_DIR [--train 2000] [--test 200] [--seed 1]
// Writes OUT_DIR/train.jsonl and OUT_DIR/test.jsonl, one JSON object per line:
//   {"prompt": "Mia has 12 apples. ... How many apples does Mia have now?\nAnswer:",
//    "completion": " 12 + 5 = 17. #### 17"}
// Problems use a small vocabulary (names, objects, containers, verbs) and one or two operations
// (add / subtract / multiply small numbers; answers are never negative). The test split is
// held out: no test prompt appears in the train split. The answer after "####" is what
// src/train/metrics.ts gsm8kExactMatch compares. Outputs are not committed (about 100 bytes a row).

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const NAMES = ["Mia", "Leo", "Ava", "Sam", "Zoe", "Max", "Ivy", "Ben", "Lily", "Noah", "Emma", "Omar"];
const OBJECTS = ["apples", "pencils", "marbles", "stickers", "cookies", "books", "shells", "coins", "cards", "eggs"];
const CONTAINERS = ["box", "bag", "jar", "basket", "pack"];
const LOSE_VERBS = ["gives away", "loses", "sells", "trades away"];

/** mulberry32: a tiny seeded 32-bit PRNG (public domain, Tommy Ettinger). */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function makeProblem(rand) {
  const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
  const pick = (xs) => xs[Math.floor(rand() * xs.length)];
  const name = pick(NAMES);
  let friend = pick(NAMES);
  while (friend === name) friend = pick(NAMES);
  const obj = pick(OBJECTS);
  const box = pick(CONTAINERS);
  const lose = pick(LOSE_VERBS);
  const ask = `How many ${obj} does ${name} have now?`;
  switch (int(0, 5)) {
    case 0: {
      const a = int(2, 50);
      const b = int(2, 30);
      const r = a + b;
      return { q: `${name} has ${a} ${obj}. ${friend} gives ${name} ${b} more ${obj}. ${ask}`, steps: [`${a} + ${b} = ${r}`], r };
    }
    case 1: {
      const a = int(5, 60);
      const b = int(1, a - 1);
      const r = a - b;
      return { q: `${name} has ${a} ${obj} and ${lose} ${b} of them. ${ask}`, steps: [`${a} - ${b} = ${r}`], r };
    }
    case 2: {
      const a = int(2, 12);
      const b = int(2, 12);
      const r = a * b;
      return { q: `${name} buys ${a} ${box}s with ${b} ${obj} in each ${box}. How many ${obj} does ${name} buy?`, steps: [`${a} * ${b} = ${r}`], r };
    }
    case 3: {
      const a = int(2, 40);
      const b = int(2, 30);
      const c = int(1, a + b - 1);
      const s = a + b;
      const r = s - c;
      return {
        q: `${name} has ${a} ${obj}. ${friend} gives ${name} ${b} more, and then ${name} ${lose} ${c} of them. ${ask}`,
        steps: [`${a} + ${b} = ${s}`, `${s} - ${c} = ${r}`],
        r,
      };
    }
    case 4: {
      const a = int(2, 9);
      const b = int(2, 9);
      const p = a * b;
      const c = int(1, p - 1);
      const r = p - c;
      return {
        q: `${name} has ${a} ${box}s with ${b} ${obj} in each ${box}. ${name} ${lose} ${c} ${obj}. ${ask}`,
        steps: [`${a} * ${b} = ${p}`, `${p} - ${c} = ${r}`],
        r,
      };
    }
    default: {
      const a = int(2, 30);
      const b = int(2, 9);
      const c = int(2, 9);
      const p = b * c;
      const r = a + p;
      return {
        q: `${name} has ${a} ${obj}. ${name} finds ${b} ${box}s with ${c} ${obj} in each ${box}. ${ask}`,
        steps: [`${b} * ${c} = ${p}`, `${a} + ${p} = ${r}`],
        r,
      };
    }
  }
}

function toRow(p) {
  return { prompt: `${p.q}\nAnswer:`, completion: ` ${p.steps.join(". ")}. #### ${p.r}` };
}

function parseArgs(argv) {
  const opts = { out: null, train: 2000, test: 200, seed: 1 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--train" || a === "--test" || a === "--seed") {
      const v = Number(argv[++i]);
      if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${a} needs an integer >= 0, got ${argv[i]}`);
      opts[a.slice(2)] = v;
    } else if (a === "-h" || a === "--help") {
      opts.help = true;
    } else if (opts.out === null && !a.startsWith("-")) {
      opts.out = a;
    } else {
      throw new Error(`unknown argument ${a}`);
    }
  }
  return opts;
}

/** train + test rows; distinct prompts overall (the test split is held out from the train split). */
export function makeSplits(trainSize, testSize, seed) {
  const rand = mulberry32(seed);
  const seen = new Set();
  const rows = [];
  const want = trainSize + testSize;
  for (let tries = 0; rows.length < want; tries++) {
    if (tries > want * 50) throw new Error(`could not make ${want} distinct problems; ask for fewer`);
    const row = toRow(makeProblem(rand));
    if (seen.has(row.prompt)) continue;
    seen.add(row.prompt);
    rows.push(row);
  }
  return { train: rows.slice(0, trainSize), test: rows.slice(trainSize) };
}

function main() {
  const usage = "usage: node scripts/demo/make-arith-task.mjs OUT_DIR [--train N] [--test N] [--seed S]";
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`make-arith-task: ${err.message}\n${usage}\n`);
    process.exitCode = 2;
    return;
  }
  if (opts.help || opts.out === null) {
    process.stderr.write(`${usage}\n`);
    process.exitCode = opts.help ? 0 : 2;
    return;
  }
  const { train, test } = makeSplits(opts.train, opts.test, opts.seed);
  mkdirSync(opts.out, { recursive: true });
  const jsonl = (rows) => rows.map((r) => JSON.stringify(r)).join("\n") + (rows.length > 0 ? "\n" : "");
  writeFileSync(join(opts.out, "train.jsonl"), jsonl(train));
  writeFileSync(join(opts.out, "test.jsonl"), jsonl(test));
  process.stderr.write(`wrote ${train.length} train and ${test.length} test problems to ${opts.out}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
