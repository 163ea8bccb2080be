// The comparison report from synthetic logs whose numbers are worked out by hand below.
import { describe, expect, test } from "vitest";
import { renderReport } from "../../src/report/html.js";
import { parseRunSummary, parseTrainLog, type RunLog } from "../../src/report/run-log.js";
import { centredMeans, compareRuns, smoothLosses } from "../../src/report/stats.js";
import { linearTicks, logTicks } from "../../src/report/svg-chart.js";
import { renderTextTable } from "../../src/report/table.js";
import { logText, RUNS, type SyntheticRun } from "./synthetic.js";

function runLog(run: SyntheticRun, name = run.name): RunLog {
  const { train, eval: evals } = parseTrainLog(logText(run), `${run.name}/train.jsonl`);
  const summary = parseRunSummary(JSON.stringify(run.summary ?? {}), `${run.name}/run.json`);
  return { name, summary, train, eval: evals };
}

const runs = RUNS.map((r) => runLog(r));

describe("parseTrainLog", () => {
  test("a malformed line is an error naming file:line", () => {
    const text = `${logText(RUNS[0]).split("\n").slice(0, 2).join("\n")}\n{"type":"train","step":3,\n`;
    expect(() => parseTrainLog(text, "runs/a/train.jsonl")).toThrow(
      /^runs\/a\/train\.jsonl:3: not valid JSON/,
    );
    expect(() => parseTrainLog('{"type":"train","step":1,"loss":"x"}', "f")).toThrow(
      'f:1: "loss" must be a finite number',
    );
    expect(() => parseTrainLog('\n{"type":"train","loss":1}', "f")).toThrow('f:2: missing "step"');
    expect(() => parseTrainLog('{"type":"grad","step":1}', "f")).toThrow(
      "f:1: unknown record type",
    );
  });

  test("a resumed run: repeated steps replace earlier ones, elapsed time stays cumulative", () => {
    const rec = (step: number, loss: number, elapsed: number) =>
      JSON.stringify({ type: "train", step, loss, elapsed_s: elapsed });
    // first process: steps 1-3 at 1, 2, 3 s; resumed from the step-2 checkpoint: steps 3-4 at 0.5, 1.5 s of the new process
    const text = [rec(1, 5, 1), rec(2, 4, 2), rec(3, 3.9, 3), rec(3, 3, 0.5), rec(4, 2, 1.5)].join(
      "\n",
    );
    const { train } = parseTrainLog(text, "f");
    expect(train.map((p) => [p.step, p.loss, p.elapsed_s])).toEqual([
      [1, 5, 1],
      [2, 4, 2],
      [3, 3, 2.5],
      [4, 2, 3.5],
    ]);
  });
});

describe("compareRuns", () => {
  test("raw losses: target = lora's final loss; steps, times, overhead, throughput, memory", () => {
    const c = compareRuns(runs, { smoothWindow: 1 });
    expect(c.target).toEqual({ loss: 2.0, source: "baseline" });
    const [lora, ga, slow] = c.runs;
    expect(lora.reached).toEqual({ step: 4, seconds: 4 }); // 2.0 <= 2.0 first at step 4
    expect(ga.reached).toEqual({ step: 2, seconds: 3 }); // 2.0 at step 2, elapsed 3 s
    expect(slow.reached).toBeNull();
    expect(ga.initSeconds).toBe(5);
    expect(lora.initSeconds).toBeNull();
    // 4 steps x 100 tokens over 1 + 0.5 + 1 + 0.5 s of step time
    expect(lora.tokensPerSecond).toBeCloseTo(400 / 3, 10);
    expect(lora.peakMemory).toBe(30);
    expect(lora.finalEvalLoss).toBe(2.4);
    expect(lora.finalPerplexity).toBeCloseTo(Math.exp(2.4), 12);
    expect(ga.metrics.get("exact_match")).toBe(0.25);
    expect(c.metricNames).toEqual(["exact_match"]);
    expect(lora.steps).toBe(4);
    expect(ga.wallSeconds).toBe(6);
  });

  test("smoothed losses (window 2) move the target and the step that reaches it", () => {
    expect(smoothLosses([4, 3, 2.5, 2], 2)).toEqual([4, 3.5, 2.75, 2.25]);
    const c = compareRuns(runs, { smoothWindow: 2 });
    expect(c.target.loss).toBe(2.25);
    // lora-ga smoothed: 3, 2.5, 1.75, 1.35 -> first <= 2.25 at step 3
    expect(c.runs[1].reached).toEqual({ step: 3, seconds: 4.5 });
  });

  test("no run named lora: the largest final loss; a given target wins", () => {
    const c = compareRuns([runs[1], runs[2]], { smoothWindow: 1 });
    expect(c.target).toEqual({ loss: 4.1, source: "max-final" });
    expect(c.runs.map((r) => r.reached?.step)).toEqual([1, 4]);
    const given = compareRuns(runs, { smoothWindow: 1, targetLoss: 1.5 });
    expect(given.target).toEqual({ loss: 1.5, source: "given" });
    expect(given.runs.map((r) => r.reached?.step ?? null)).toEqual([null, 3, null]);
  });

  test("init overhead from estimate + svd when init_seconds is absent", () => {
    const r = runLog({ ...RUNS[1], summary: { estimate_seconds: 4, svd_seconds: 0.5 } });
    expect(compareRuns([r]).runs[0].initSeconds).toBe(4.5);
  });
});

describe("renderReport", () => {
  const html = renderReport(runs, { smoothWindow: 1 });

  test("one self-contained page: no script, no external reference", () => {
    expect(html.startsWith("<!doctype html>")).toBe(true);
    expect(html).not.toMatch(/<script|<link|<img|src=|@import|url\((?!#)/i);
    expect(html.match(/<svg xmlns/g)?.length).toBe(2); // training and evaluation charts
  });

  test("a training curve and an eval curve for every run, one vertex per logged point, left to right", () => {
    for (const run of RUNS) {
      for (const [label, count] of [
        [run.name, run.losses.length],
        [`${run.name} (eval)`, run.evals?.length ?? 0],
      ] as const) {
        const m = new RegExp(`data-series="${label.replace(/[()]/g, "\\$&")}" d="([^"]*)"`).exec(
          html,
        );
        if (count === 0) {
          expect(m).toBeNull();
          continue;
        }
        expect(m, label).not.toBeNull();
        const xs = [...(m as RegExpExecArray)[1].matchAll(/[ML]([\d.]+) /g)].map((v) =>
          Number(v[1]),
        );
        expect(xs.length, label).toBe(count);
        for (let i = 1; i < xs.length; i++) expect(xs[i]).toBeGreaterThan(xs[i - 1]);
      }
    }
  });

  test("the table shows hand-computed values and 'not reached'", () => {
    const row = (name: string) =>
      new RegExp(`<tr><td>(?:<span[^>]*></span>)?${name}</td>(.*?)</tr>`).exec(html)?.[1] ?? "";
    const cells = (name: string) =>
      [...row(name).matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((m) => m[1]);
    // method, lr, steps, wall, steps to target, time to target, + init, init overhead, train loss, eval loss, ppl, exact_match, tokens/s, peak
    expect(cells("lora-ga")).toEqual([
      "lora_ga",
      "1e-3",
      "4",
      "6.0 s",
      "2",
      "3.0 s",
      "8.0 s",
      `5.0 s<br><span class="detail">est 4.0 s, svd 0.5 s</span>`,
      "1.2000",
      "1.6000",
      "4.95",
      "25.0%",
      "100",
      "1.0 KiB",
    ]);
    expect(cells("slow").slice(4, 7)).toEqual(["not reached", "not reached", "not reached"]);
    expect(cells("lora")[11]).toBe("-");
    expect(cells("lora")[12]).toBe("133"); // 400 / 3, rounded
  });

  test("a hostile run name is escaped everywhere", () => {
    const evil = `<script>alert("x")</script>&'`;
    const page = renderReport([runLog(RUNS[0], evil), runs[1]], { title: "<b>t</b>" });
    expect(page).not.toContain("<script>");
    expect(page).not.toContain("<b>t</b>");
    expect(page).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;");
    expect(page).toContain("&lt;b&gt;t&lt;/b&gt;");
    expect(renderTextTable(compareRuns([runLog(RUNS[0], "a\u001b[31mred")]))).toContain(
      "a?[31mred",
    );
  });

  test("runs without evaluations: one chart and a note", () => {
    const page = renderReport([runs[2]]);
    expect(page.match(/<svg xmlns/g)?.length).toBe(1);
    expect(page).toContain("No evaluation records in these runs.");
  });

  test("log axis renders; the text table has the target and 'not reached'", () => {
    expect(renderReport(runs, { logY: true })).toContain("loss (log scale)");
    const text = renderTextTable(compareRuns(runs, { smoothWindow: 1 }));
    expect(text.split("\n")[0]).toBe(
      'target loss 2.0000 (final training loss of the run named "lora"; raw step losses)',
    );
    expect(text).toMatch(/^slow .*not reached/m);
  });
});

describe("display helpers", () => {
  test("centred means do not lag: a window shrinking symmetrically at the ends", () => {
    // window 3 on [4, 2, 0, 0, 0]: ends alone; (4+2+0)/3, (2+0+0)/3, (0+0+0)/3
    expect(centredMeans([4, 2, 0, 0, 0], 3)).toEqual([4, 2, 2 / 3, 0, 0]);
    expect(centredMeans([1, 2, 3], 1)).toEqual([1, 2, 3]);
  });

  test("the method column is left out when every run is named after its method", () => {
    const named = RUNS.map((r) => runLog(r, String(r.summary?.method ?? r.name)));
    const header = renderTextTable(compareRuns(named)).split("\n")[2];
    expect(header).toMatch(/^run +lr +steps /);
    expect(renderTextTable(compareRuns(runs)).split("\n")[2]).toMatch(/^run +method +lr /);
  });
});

describe("axis ticks", () => {
  test("nice linear and log ticks", () => {
    expect(linearTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(linearTicks(1.3, 4.1)).toEqual([1.5, 2, 2.5, 3, 3.5, 4]);
    expect(logTicks(0.9, 11)).toEqual([1, 2, 5, 10]);
    expect(logTicks(0.01, 10)).toEqual([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10]);
    expect(logTicks(1.5, 4.5)).toEqual([1.5, 2, 2.5, 3, 3.5, 4, 4.5]); // under a decade: linear ticks
  });
});
