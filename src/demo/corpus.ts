// The demo model's pretraining corpus: a seeded generator of short English texts — plain
// sentences about people, animals and things, small stories with numbers that change, lists of
// arithmetic facts ("7 + 8 = 15.") and quiz lines ("Q: what is 6 times 7? A: 42.").
// It is NOT the downstream task's format (no "Answer:" prompt, no "####" marker, other sentence
// templates): it gives the model English, digits and arithmetic, and the fine-tuning teaches the
// word-problem format (src/demo/arith-task.ts). Same seed and size -> the same texts.
// Every text uses only the characters of the demo's character tokenizer (char-tokenizer.ts).

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

/** One arithmetic fact "a op b = c" with small operands (results never negative). */
function fact(p: Pick): string {
  switch (p.int(0, 2)) {
    case 0: {
      const a = p.int(0, 60);
      const b = p.int(0, 40);
      return `${a} + ${b} = ${a + b}`;
    }
    case 1: {
      const a = p.int(1, 90);
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

function chain(p: Pick): string {
  const a = p.int(2, 9);
  const b = p.int(2, 9);
  const c = p.int(1, 30);
  if (p.int(0, 1) === 0)
    return `First ${a} * ${b} = ${a * b}, then ${a * b} + ${c} = ${a * b + c}.`;
  const s = a * b + c;
  const d = p.int(1, s);
  return `We add ${a * b} and ${c} to get ${s}. Then ${s} - ${d} = ${s - d}.`;
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

function story(p: Pick): string {
  const name = p.one(NAMES);
  let friend = p.one(NAMES);
  while (friend === name) friend = p.one(NAMES);
  const thing = p.one(THINGS);
  const a = p.int(2, 40);
  switch (p.int(0, 3)) {
    case 0: {
      const b = p.int(2, 30);
      return `${name} had ${a} ${thing}. Then ${friend} gave ${name} ${b} more. Now ${name} has ${a + b} ${thing}, because ${a} + ${b} = ${a + b}.`;
    }
    case 1: {
      const b = p.int(1, a - 1);
      return `${name} had ${a} ${thing} but lost ${b} of them at ${p.one(PLACES)}. So ${name} had ${a - b} ${thing} left, since ${a} - ${b} = ${a - b}.`;
    }
    case 2: {
      const n = p.int(2, 9);
      const k = p.int(2, 9);
      return `${name} made ${n} piles of ${thing}. Each pile had ${k} ${thing}. That is ${n} * ${k} = ${n * k} ${thing} in all.`;
    }
    default: {
      const b = p.int(2, 20);
      return `${capitalize(friend)} and ${name} counted ${thing}. ${friend} found ${a} and ${name} found ${b}. Together they found ${a + b}.`;
    }
  }
}

/** One corpus text: pieces of the kinds above, joined by spaces or newlines, until it has at least `minChars`. */
function text(p: Pick, minChars: number): string {
  const sep = p.int(0, 1) === 0 ? " " : "\n";
  let t = "";
  while (t.length < minChars) {
    const kind = p.int(0, 9);
    const piece =
      kind < 3
        ? story(p)
        : kind < 5
          ? sentence(p)
          : kind < 7
            ? factList(p)
            : kind < 8
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
