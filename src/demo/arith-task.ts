// The demo's downstream task: GSM8K-style arithmetic word problems with "#### answer" targets,
// generated deterministically from a seed, inside the package so that `loraga demo` can make its
// data; scripts/demo/make-arith-task.mjs writes the same rows to files.
// Rows: {"prompt": "Mia has 12 apples. ... How many apples does Mia have now?\nAnswer:",
//        "completion": " 12 + 5 = 17. #### 17"}
// One or two operations on small numbers (answers never negative); all prompts distinct, so the
// test split is held out from the train split.

export interface TaskRow {
  prompt: string;
  completion: string;
}

const NAMES = [
  "Mia",
  "Leo",
  "Ava",
  "Sam",
  "Zoe",
  "Max",
  "Ivy",
  "Ben",
  "Lily",
  "Noah",
  "Emma",
  "Omar",
];
const OBJECTS = [
  "apples",
  "pencils",
  "marbles",
  "stickers",
  "cookies",
  "books",
  "shells",
  "coins",
  "cards",
  "eggs",
];
const CONTAINERS = ["box", "bag", "jar", "basket", "pack"];
const LOSE_VERBS = ["gives away", "loses", "sells", "trades away"];

/** mulberry32 (Tommy Ettinger, public domain): a small seeded 32-bit PRNG giving doubles in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Problem {
  q: string;
  steps: string[];
  r: number;
}

function makeProblem(rand: () => number): Problem {
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
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
      return {
        q: `${name} has ${a} ${obj}. ${friend} gives ${name} ${b} more ${obj}. ${ask}`,
        steps: [`${a} + ${b} = ${r}`],
        r,
      };
    }
    case 1: {
      const a = int(5, 60);
      const b = int(1, a - 1);
      const r = a - b;
      return {
        q: `${name} has ${a} ${obj} and ${lose} ${b} of them. ${ask}`,
        steps: [`${a} - ${b} = ${r}`],
        r,
      };
    }
    case 2: {
      const a = int(2, 12);
      const b = int(2, 12);
      const r = a * b;
      return {
        q: `${name} buys ${a} ${box}s with ${b} ${obj} in each ${box}. How many ${obj} does ${name} buy?`,
        steps: [`${a} * ${b} = ${r}`],
        r,
      };
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

function toRow(p: Problem): TaskRow {
  return { prompt: `${p.q}\nAnswer:`, completion: ` ${p.steps.join(". ")}. #### ${p.r}` };
}

/** Train and test rows with distinct prompts overall (the test split is held out). */
export function makeArithSplits(
  trainSize: number,
  testSize: number,
  seed: number,
): { train: TaskRow[]; test: TaskRow[] } {
  const rand = mulberry32(seed);
  const seen = new Set<string>();
  const rows: TaskRow[] = [];
  const want = trainSize + testSize;
  for (let tries = 0; rows.length < want; tries++) {
    if (tries > want * 50)
      throw new Error(`arithmetic task: could not make ${want} distinct problems; ask for fewer`);
    const row = toRow(makeProblem(rand));
    if (seen.has(row.prompt)) continue;
    seen.add(row.prompt);
    rows.push(row);
  }
  return { train: rows.slice(0, trainSize), test: rows.slice(trainSize) };
}

/** JSON Lines text of rows (one object per line, final newline when not empty). */
export function toJsonl(rows: readonly object[]): string {
  return rows.map((r) => JSON.stringify(r)).join("\n") + (rows.length > 0 ? "\n" : "");
}
