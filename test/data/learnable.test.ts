// No silent no-learning: rows with no counted label are dropped with a warning that counts them; a
// dataset with none left is an error.
import { describe, expect, test } from "vitest";
import type { TokenExample } from "../../src/data/examples.js";
import { countedLabels, keepLearnableRows } from "../../src/data/learnable.js";

const row = (labels: number[], source: string): TokenExample => ({
  inputIds: labels.map((l) => (l < 0 ? 5 : l)),
  labels,
  source,
});

describe("countedLabels", () => {
  test("index 0 is never predicted; tokens past maxLength are cut", () => {
    expect(countedLabels(row([7, -100, -100], "a"), 10)).toBe(0);
    expect(countedLabels(row([-100, -100, 9, 9], "a"), 10)).toBe(2);
    expect(countedLabels(row([-100, -100, 9, 9], "a"), 2)).toBe(0);
    expect(countedLabels(row([-100, -100, 9, 9], "a"), 3)).toBe(1);
  });
});

describe("keepLearnableRows", () => {
  test("drops rows without a learned token, with one warning counting them", () => {
    const warnings: string[] = [];
    const rows = [row([1, 2, 3], "d:1"), row([-100, -100, -100], "d:2"), row([1, -100], "d:3")];
    const kept = keepLearnableRows(rows, {
      maxLength: 8,
      file: "d",
      warn: (m) => warnings.push(m),
    });
    expect(kept.map((r) => r.source)).toEqual(["d:1"]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^warning: dropped 2 of 3 rows of d with no learned token/);
    expect(warnings[0]).toContain("first: d:2");
  });

  test("no row left is an error naming the file; nothing dropped is silent", () => {
    const warn = (m: string) => {
      throw new Error(`unexpected warning ${m}`);
    };
    expect(() =>
      keepLearnableRows([row([-100, -100], "d:1")], { maxLength: 8, file: "d", warn }),
    ).toThrow("d: none of its 1 rows has a learned token");
    expect(keepLearnableRows([row([1, 2], "d:1")], { maxLength: 8, file: "d", warn })).toHaveLength(
      1,
    );
  });
});
