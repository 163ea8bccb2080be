// The demo model's pretraining corpus: a seeded generator of short English texts — plain
// sentences about people, animals and things; small stories whose numbers change, told with their
// computation in the "a op b = c" notation ("That is 4 * 6 = 24 cups in all."); lists of arithmetic
// facts and two-step chains where the second fact starts from the first one's result
// ("6 * 9 = 54. 54 - 35 = 19."), with operands in the task's ranges; and quiz lines
// ("Q: what is 6 times 7? A: 42.").
// It is NOT the downstream task's format (no question, no "Answer:" prompt, no "####" marker,
// other sentence templates): it gives the model English, the names and objects, digits and the
// arithmetic the task needs, and the fine-tuning teaches the word-problem format
// (src/demo/arith-task.ts). Same seed and size -> the same texts. Every text is printable ASCII
// with newlines, so the demo's word tokenizer (word-tokenizer.ts) encodes it.

import { Rng } from "../util/random.js";

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
  "Tom",
  "Ann",
  "Kai",
  "Nina",
  "Raj",
  "Eva",
  "Jon",
  "Sara",
  "Finn",
  "Rosa",
  "Yuki",
  "Amir",
];
const THINGS = [
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
  "balls",
  "cups",
  "flowers",
  "stamps",
  "rocks",
  "toys",
  "pears",
  "hats",
  "buttons",
  "leaves",
];
const ANIMALS = ["cat", "dog", "bird", "fox", "horse", "cow", "duck", "frog", "goat", "rabbit"];
const PLACES = [
  "the park",
  "the shop",
  "school",
  "the river",
  "the market",
  "the garden",
  "the hill",
  "the library",
];
const ADJECTIVES = ["big", "small", "red", "blue", "green", "old", "new", "happy", "quiet", "fast"];
const VERBS_PAST = ["walked to", "ran to", "went to", "looked at", "sat near", "played at"];
const CONTAINERS = ["box", "bag", "jar", "basket", "pack", "crate", "tray", "tin"];
const LOST_VERBS = ["lost", "sold", "gave away", "traded away", "dropped"];
const NUMBER_WORDS = [
  "zero",
  "one",
  "two",
  "three",
  "four",
  "five",
  "six",
  "seven",
  "eight",
  "nine",
  "ten",
  "eleven",
  "twelve",
];

interface Pick {
  int(lo: number, hi: number): number;
  one<T>(xs: readonly T[]): T;
}

function picker(rng: Rng): Pick {
  return {
    int: (lo, hi) => lo + Math.floor(rng.uniform() * (hi - lo + 1)),
    one: (xs) => xs[Math.floor(rng.uniform() * xs.length)],
  };
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** One arithmetic fact "a op b = c" in the task's answer notation and number ranges. */
function fact(p: Pick): string {
  switch (p.int(0, 2)) {
    case 0: {
      const a = p.int(0, 90);
      const b = p.int(0, 90);
      return `${a} + ${b} = ${a + b}`;
    }
    case 1: {
      const a = p.int(1, 120);
      const b = p.int(0, a);
      return `${a} - ${b} = ${a - b}`;
    }
    default: {
      const a = p.int(1, 12);
      const b = p.int(1, 12);
      return `${a} * ${b} = ${a * b}`;
    }
  }
}

function factList(p: Pick): string {
  const n = p.int(3, 6);
  const facts: string[] = [];
  for (let i = 0; i < n; i++) facts.push(`${fact(p)}.`);
  return facts.join(" ");
}

/** Two facts where the second starts from the first one's result ("6 * 9 = 54. 54 - 35 = 19."). */
function chain(p: Pick): string {
  const first = p.int(0, 2);
  const a = first === 2 ? p.int(2, 12) : p.int(2, 50);
  const b = first === 2 ? p.int(2, 12) : first === 0 ? p.int(2, 40) : p.int(1, a - 1);
  const x = first === 0 ? a + b : first === 1 ? a - b : a * b;
  const op = first === 0 ? "+" : first === 1 ? "-" : "*";
  if (p.int(0, 1) === 0 || x < 2) {
    const c = p.int(2, 40);
    return `${a} ${op} ${b} = ${x}. ${x} + ${c} = ${x + c}.`;
  }
  const c = p.int(1, x - 1);
  return `${a} ${op} ${b} = ${x}. ${x} - ${c} = ${x - c}.`;
}

function quiz(p: Pick): string {
  const a = p.int(2, 12);
  const b = p.int(2, 12);
  switch (p.int(0, 2)) {
    case 0:
      return `Q: what is ${a} times ${b}? A: ${a * b}.`;
    case 1:
      return `Q: what is ${a + 20} plus ${b}? A: ${a + 20 + b}.`;
    default:
      return `Q: what is ${a + b + 10} minus ${b}? A: ${a + 10}.`;
  }
}

function sentence(p: Pick): string {
  const name = p.one(NAMES);
  switch (p.int(0, 3)) {
    case 0:
      return `${name} ${p.one(VERBS_PAST)} ${p.one(PLACES)} with a ${p.one(ADJECTIVES)} ${p.one(ANIMALS)}.`;
    case 1:
      return `The ${p.one(ADJECTIVES)} ${p.one(ANIMALS)} saw ${p.int(2, 9)} ${p.one(THINGS)} at ${p.one(PLACES)}.`;
    case 2:
      return `${name} likes ${p.one(THINGS)}, and ${p.one(NAMES)} likes ${p.one(THINGS)}.`;
    default:
      return `There are ${NUMBER_WORDS[p.int(2, 12)]} ${p.one(THINGS)} on the table.`;
  }
}

/** A small story whose numbers change, told with its computation in the "a op b = c" notation. */
function story(p: Pick): string {
  const name = p.one(NAMES);
  let friend = p.one(NAMES);
  while (friend === name) friend = p.one(NAMES);
  const thing = p.one(THINGS);
  const box = p.one(CONTAINERS);
  const lost = p.one(LOST_VERBS);
  switch (p.int(0, 6)) {
    case 0: {
      const a = p.int(2, 50);
      const b = p.int(2, 30);
      return `${name} had ${a} ${thing}. Then ${friend} gave ${name} ${b} more. Now ${name} has ${a + b} ${thing}, because ${a} + ${b} = ${a + b}.`;
    }
    case 1: {
      const a = p.int(5, 60);
      const b = p.int(1, a - 1);
      return `${name} had ${a} ${thing} but ${lost} ${b} of them at ${p.one(PLACES)}. So ${name} had ${a - b} ${thing} left, since ${a} - ${b} = ${a - b}.`;
    }
    case 2: {
      const n = p.int(2, 12);
      const k = p.int(2, 12);
      return `${name} filled ${n} ${box}s and put ${k} ${thing} in every ${box}. That is ${n} * ${k} = ${n * k} ${thing} in all.`;
    }
    case 3: {
      const a = p.int(2, 40);
      const b = p.int(2, 30);
      const c = p.int(1, a + b - 1);
      return `At first ${name} owned ${a} ${thing}. ${friend} added ${b}, and later ${name} ${lost} ${c}. We get ${a} + ${b} = ${a + b} and ${a + b} - ${c} = ${a + b - c}.`;
    }
    case 4: {
      const n = p.int(2, 9);
      const k = p.int(2, 9);
      const c = p.int(1, n * k - 1);
      return `There were ${n} ${box}s of ${thing} with ${k} in each. ${name} ${lost} ${c} ${thing}. First ${n} * ${k} = ${n * k}, then ${n * k} - ${c} = ${n * k - c}.`;
    }
    case 5: {
      const a = p.int(2, 30);
      const n = p.int(2, 9);
      const k = p.int(2, 9);
      return `${name} kept ${a} ${thing} and got ${n} ${box}s holding ${k} each. So ${n} * ${k} = ${n * k}, and ${a} + ${n * k} = ${a + n * k} ${thing}.`;
    }
    default: {
      const a = p.int(2, 40);
      const b = p.int(2, 20);
      return `${capitalize(friend)} and ${name} counted ${thing}. ${friend} found ${a} and ${name} found ${b}. Together they found ${a} + ${b} = ${a + b}.`;
    }
  }
}

/** One corpus text: pieces of the kinds above, joined by spaces or newlines, until it has at least `minChars`. */
function text(p: Pick, minChars: number): string {
  const sep = p.int(0, 1) === 0 ? " " : "\n";
  let t = "";
  while (t.length < minChars) {
    const kind = p.int(0, 19);
    const piece =
      kind < 9
        ? story(p)
        : kind < 11
          ? sentence(p)
          : kind < 14
            ? factList(p)
            : kind < 18
              ? chain(p)
              : quiz(p);
    t = t === "" ? piece : `${t}${sep}${piece}`;
  }
  return t;
}

/**
 * `count` corpus texts from `seed`, each of at least `minChars` and at most `maxChars` characters
 * (a longer text is cut after its last whole sentence that fits; one that cannot be cut is dropped).
 * Texts of similar length keep padding low when they are batched.
 */
export function makeCorpus(count: number, seed: number, minChars = 140, maxChars = 190): string[] {
  const p = picker(new Rng(seed));
  const out: string[] = [];
  while (out.length < count) {
    let t = text(p, minChars);
    while (t.length > maxChars) {
      const cut = Math.max(t.lastIndexOf(". ", maxChars - 1), t.lastIndexOf(".\n", maxChars - 1));
      if (cut <= 0) break;
      t = t.slice(0, cut + 1);
    }
    if (t.length <= maxChars) out.push(t);
  }
  return out;
}
