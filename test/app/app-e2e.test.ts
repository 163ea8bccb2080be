// End to end: the built web app (app/, built here with Vite) in headless Chromium (with WebGPU:
// SwiftShader), driven as a person would: demo model and demo task, LoRA-GA for a few steps on 2
// wasm threads, the loss falls, a generated sample, the adapter and the log downloaded. Then the
// Node side:
// - `loraga eval` on the downloaded rank-2r adapter (on the ORIGINAL base) gives the eval loss the
//   page reported (the page's model is the offset base + the trained adapter: equal up to
//   rounding);
// - `loraga train` with the same seed, data, settings and engine (wasm, 2 threads, relaxed SIMD as
//   in Chromium) logs the same per-step losses as the page's train.jsonl, bit for bit.
// Every request of the page and its workers is recorded (the page's Content-Security-Policy
// bypassed, so the code's own requests are seen): none may leave the page's origin. A control
// fetch at the end shows that the recorder sees one that does.
// The engine choice: --kernels auto picks WebGPU here, and a short LoRA-GA run of the demo model
// on a small arithmetic file gives the per-step and eval losses of the same run on wasm within
// 1e-4 (small: SwiftShader runs this model at seconds per step; r 2, so that LoRA-GA's init from
// one batch's gradient is well conditioned and does not depend on float rounding); an
// encoder-decoder (t5) also runs on WebGPU with the losses of wasm; with no adapter (Chromium
// without WebGPU) auto is wasm with a notice. Out of memory
// (the page's heap-limit-mib test hook caps the engine heap) is one message naming the run and
// stage, and a smaller run then works in the same page.

import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Browser, CDPSession, Page } from "puppeteer-core";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { DEMO_TEST_FILE, DEMO_TRAIN_FILE, demoJsonl } from "../../app/src/demo-data.js";
import {
  HAS_CHROMIUM,
  launchChromium,
  recordRequests,
  requireChromium,
  type StaticServer,
  serveStatic,
} from "./browser.js";

const ROOT = resolve(import.meta.dirname, "../..");
const STEPS = 6;
/** The form's settings for this run (the rest keep the CLI's defaults). */
const SETTINGS = {
  steps: STEPS,
  lr: "5e-4",
  gaBatches: "2",
  threads: "2",
  compare: "",
  kernels: "wasm",
};

requireChromium();

/** A short LoRA-GA run for the engine comparison (the rest keep the CLI's defaults). */
const SMALL_RUN = {
  r: "2",
  batchSize: "2",
  gaBatches: "1",
  steps: "3",
  lr: "5e-4",
  threads: "2",
  compare: "",
};

/** Short rows in the demo task's format (src/demo/arith-task.ts), in the demo model's vocabulary. */
function smallJsonl(): string {
  const names = ["Mia", "Leo", "Ava", "Sam"];
  const rows = [];
  for (let i = 0; i < 8; i++) {
    const a = (i * 7 + 3) % 20;
    const b = (i * 5 + 4) % 20;
    const name = names[i % 4];
    rows.push(
      JSON.stringify({
        prompt: `${name} has ${a} coins. Zoe gives ${name} ${b} more coins. How many coins does ${name} have now?\nAnswer:`,
        completion: ` ${a} + ${b} = ${a + b}. #### ${a + b}`,
      }),
    );
  }
  return `${rows.join("\n")}\n`;
}

/** Types each value into the form's control #setting-KEY. */
async function setFields(target: Page, fields: Record<string, string | number>): Promise<void> {
  for (const [key, value] of Object.entries(fields)) {
    await target.$eval(
      `#setting-${key}`,
      (e, v) => {
        (e as HTMLInputElement).value = String(v);
      },
      value,
    );
  }
}

/** Clicks Start and waits for the run's end; returns the stage line ("done", or the error's). */
async function runToEnd(target: Page, timeoutMs: number): Promise<string> {
  await target.click("#run");
  await target.waitForFunction(
    () =>
      ["done", "stopped by an error"].includes(document.querySelector("#stage")?.textContent ?? ""),
    { timeout: timeoutMs },
  );
  return target.$eval("#stage", (e) => e.textContent ?? "");
}

/** The per-step losses of run `label`'s train.jsonl (the download link's blob) and its eval loss. */
async function runLosses(
  target: Page,
  label: string,
): Promise<{ losses: number[]; evalLoss: number }> {
  const log = await target.$eval(`tr[data-run='${label}'] a[data-path='train.jsonl']`, async (a) =>
    (await fetch((a as HTMLAnchorElement).href)).text(),
  );
  const losses = log
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((r) => r.type === "train")
    .map((r) => r.loss as number);
  const evalLoss = Number(
    await target.$eval(`tr[data-run='${label}'] .eval-loss`, (e) => e.getAttribute("data-value")),
  );
  return { losses, evalLoss };
}

const errorText = (target: Page) => target.$eval("#error", (e) => e.textContent ?? "");
const noticeText = (target: Page) => target.$eval("#notice", (e) => e.textContent ?? "");

/** The recorded requests that left `origin` (blob: and data: URLs stay in the page). */
const offOrigin = (requests: readonly string[], origin: string) =>
  requests.filter((u) => !u.startsWith(`${origin}/`) && !/^(blob|data):/.test(u));

/** `loraga` from dist/ with the V8 flag that enables relaxed SIMD (Chromium has it on). */
function loraga(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(
    process.execPath,
    ["--experimental-wasm-relaxed-simd", join(ROOT, "dist/cli/main.js"), ...args],
    {
      encoding: "utf8",
      timeout: 120_000,
    },
  );
}

async function waitForFiles(
  dir: string,
  names: readonly string[],
  timeoutMs: number,
): Promise<void> {
  const t0 = Date.now();
  while (!names.every((n) => existsSync(join(dir, n)))) {
    if (Date.now() - t0 > timeoutMs)
      throw new Error(`downloads missing in ${dir}: ${readdirSync(dir).join(", ")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.runIf(HAS_CHROMIUM)("the web app in headless Chromium", () => {
  const work = mkdtempSync(join(tmpdir(), "loraga-app-"));
  const downloads = join(work, "downloads");
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let cdp: CDPSession;
  let pageRequests: string[] = [];

  beforeAll(async () => {
    await build({
      configFile: join(ROOT, "app/vite.config.ts"),
      logLevel: "error",
      build: { outDir: join(work, "site"), emptyOutDir: true },
    });
    server = await serveStatic(join(work, "site"));
    browser = await launchChromium({ webgpu: true });
    page = await browser.newPage();
    pageRequests = await recordRequests(page);
    cdp = await browser.target().createCDPSession();
    await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: downloads });
    await page.setViewport({ width: 1280, height: 900 });
    await page.goto(server.origin, { waitUntil: "load" });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(work, { recursive: true, force: true });
  });

  test("errors name the file and line or the module, and the page stays usable", async () => {
    const bad = join(work, "bad.jsonl");
    writeFileSync(bad, '{"prompt": "1 + 1 =", "completion": " 2"}\n{"prompt": "2 + 2 =",\n[3]\n');
    const noConfig = join(work, "no-config");
    const bert = join(work, "bert-model");
    mkdirSync(noConfig);
    writeFileSync(join(noConfig, "notes.txt"), "not a model\n");
    mkdirSync(bert);
    writeFileSync(join(bert, "config.json"), '{"model_type": "bert", "vocab_size": 10}\n');

    const summaryStarts = (prefix: string) =>
      page.waitForFunction(
        (p) => document.querySelector("#preview-summary")?.textContent?.startsWith(p) === true,
        { timeout: 60_000 },
        prefix,
      );
    const errorShown = () =>
      page.waitForFunction(() => (document.querySelector("#error")?.textContent ?? "") !== "", {
        timeout: 60_000,
      });
    const errorText = () => page.$eval("#error p", (e) => e.textContent ?? "");
    const dismiss = () => page.click("#dismiss");

    await summaryStarts("demo-train.jsonl");
    const dataInput = await page.$("input#data-input");
    await dataInput?.uploadFile(bad);
    await summaryStarts("bad.jsonl: 1 rows");
    const rowErrors = await page.$$eval(".row-errors li", (l) => l.map((e) => e.textContent));
    expect(rowErrors).toEqual([expect.stringMatching(/^bad\.jsonl:2: invalid JSON: /)]);

    const modelInput = await page.$("input#model-input");
    await modelInput?.uploadFile(noConfig);
    await errorShown();
    expect(await errorText()).toBe(
      "no-config: no config.json there (expected a Hugging Face model directory)",
    );
    await dismiss();
    await modelInput?.uploadFile(bert);
    await errorShown();
    expect(await errorText()).toMatch(
      /^bert-model\/config\.json: unsupported model_type "bert"; supported: .*llama/,
    );
    await dismiss();

    // usable again: back to the demo model and task
    await page.click("#model-demo");
    await page.click("#data-demo");
    await summaryStarts("demo-train.jsonl");
  });

  test("demo data preview, LoRA-GA run, generation, downloads; the CLI agrees", async () => {
    // the preview of the demo task: row count, learned parts marked
    const summary = await page.$eval("#preview-summary", (e) => e.textContent ?? "");
    expect(summary).toMatch(/^demo-train\.jsonl: 512 rows, \d+ tokens, \d+ learned$/);
    const marked = await page.$eval(".rows li pre mark", (e) => e.textContent ?? "");
    expect(marked).toMatch(/#### \d+/);

    // settings through the form, as typed; LoRA-GA is the default method
    expect(await page.$eval("#setting-method", (e) => (e as HTMLSelectElement).value)).toBe(
      "lora-ga",
    );
    for (const [key, value] of Object.entries(SETTINGS)) {
      await page.$eval(
        `#setting-${key}`,
        (e, v) => {
          (e as HTMLInputElement).value = String(v);
        },
        value,
      );
    }
    await page.click("#run");
    await page.waitForFunction(() => document.querySelector("#stage")?.textContent === "done", {
      timeout: 120_000,
    });
    expect(await page.$eval("#error", (e) => e.textContent ?? "")).toBe("");
    expect(await page.$eval("#notice", (e) => e.textContent ?? "")).toMatch(/ on 2 threads\.$/);
    expect(
      await page.$eval("#chart svg", (e) => e.querySelectorAll("path, polyline").length),
    ).toBeGreaterThan(0);
    const pageEvalLoss = Number(
      await page.$eval("tr[data-run='lora-ga'] .eval-loss", (e) => e.getAttribute("data-value")),
    );

    // generation from the fine-tuned model
    await page.click("#generate");
    await page.waitForFunction(
      () => {
        const t = document.querySelector("#generated")?.textContent ?? "";
        return t !== "" && t !== "generating…";
      },
      { timeout: 60_000 },
    );
    expect((await page.$eval("#generated", (e) => e.textContent ?? "")).length).toBeGreaterThan(0);

    // downloads: the converted adapter (rank 2r, original base) and the run's log
    for (const path of [
      "adapter-converted/adapter_config.json",
      "adapter-converted/adapter_model.safetensors",
      "train.jsonl",
    ]) {
      await page.click(`tr[data-run='lora-ga'] a[data-path='${path}']`);
    }
    const names = ["adapter_config.json", "adapter_model.safetensors", "train.jsonl"];
    await waitForFiles(downloads, names, 30_000);

    const pageLog = readFileSync(join(downloads, "train.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const pageLosses = pageLog.filter((r) => r.type === "train").map((r) => r.loss as number);
    expect(pageLosses).toHaveLength(STEPS);
    // the loss falls: the last two steps average below the first
    expect((pageLosses[STEPS - 1] + pageLosses[STEPS - 2]) / 2).toBeLessThan(pageLosses[0]);
    expect(JSON.parse(readFileSync(join(downloads, "adapter_config.json"), "utf8")).r).toBe(16);

    // the same data on disk for the CLI
    const { train, test: heldOut } = demoJsonl();
    writeFileSync(join(work, DEMO_TRAIN_FILE), train);
    writeFileSync(join(work, DEMO_TEST_FILE), heldOut);
    const common = ["--model", join(ROOT, "demo/model"), "--kernels", "wasm", "--threads", "2"];

    const evaluated = loraga([
      "eval",
      ...common,
      "--adapter",
      downloads,
      "--data",
      join(work, DEMO_TEST_FILE),
    ]);
    expect(evaluated.stderr).toBe("");
    expect(evaluated.status).toBe(0);
    const cliEvalLoss = JSON.parse(evaluated.stdout).loss as number;
    expect(Math.abs(cliEvalLoss - pageEvalLoss)).toBeLessThan(1e-4 * pageEvalLoss);

    const out = join(work, "cli-run");
    const trained = loraga([
      "train",
      ...common,
      "--data",
      join(work, DEMO_TRAIN_FILE),
      "--method",
      "lora-ga",
      "--steps",
      String(STEPS),
      "--lr",
      SETTINGS.lr,
      "--ga-batches",
      SETTINGS.gaBatches,
      "--out",
      out,
      "--quiet",
    ]);
    expect(trained.stderr).toBe("");
    expect(trained.status).toBe(0);
    const cliLosses = readFileSync(join(out, "train.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
      .filter((r) => r.type === "train")
      .map((r) => r.loss as number);
    expect(cliLosses).toEqual(pageLosses);

    // nothing left the origin, from the page or its workers; the page forbids it by its CSP too
    expect(offOrigin(pageRequests, server.origin)).toEqual([]);
    expect(pageRequests).toContain(`${server.origin}/demo-model/model.safetensors`);
    const csp = await page.$eval("meta[http-equiv='Content-Security-Policy']", (e) =>
      e.getAttribute("content"),
    );
    expect(csp).toContain("connect-src 'self'");
    // control: an off-origin fetch is seen by the recorder
    await page.evaluate(() => fetch("http://192.0.2.1/control").catch(() => undefined));
    expect(offOrigin(pageRequests, server.origin)).toEqual(["http://192.0.2.1/control"]);
  }, 300_000);

  test("auto picks WebGPU, and a short LoRA-GA run there gives the wasm engine's losses", async () => {
    const data = join(work, "small.jsonl");
    writeFileSync(data, smallJsonl());
    const gpuPage = await browser.newPage();
    const requests = await recordRequests(gpuPage);
    try {
      await gpuPage.goto(server.origin, { waitUntil: "load" });
      await (await gpuPage.$("input#data-input"))?.uploadFile(data);
      await gpuPage.waitForFunction(
        () =>
          document
            .querySelector("#preview-summary")
            ?.textContent?.startsWith("small.jsonl: 8 rows"),
        { timeout: 60_000 },
      );
      await setFields(gpuPage, { ...SMALL_RUN, kernels: "wasm" });
      expect(await runToEnd(gpuPage, 120_000)).toBe("done");
      expect(await noticeText(gpuPage)).toMatch(/^Engine: WebAssembly SIMD.* on 2 threads\.$/);
      const wasm = await runLosses(gpuPage, "lora-ga");

      await setFields(gpuPage, { kernels: "auto" });
      expect(await runToEnd(gpuPage, 400_000)).toBe("done");
      expect(await errorText(gpuPage)).toBe("");
      expect(await noticeText(gpuPage)).toMatch(/^Engine: WebGPU on the adapter ".+"\.$/);
      const gpu = await runLosses(gpuPage, "lora-ga");
      expect(gpu.losses).toHaveLength(3);
      expect(wasm.losses).toHaveLength(3);
      gpu.losses.forEach((loss, i) => {
        expect(Math.abs(loss - wasm.losses[i]), `loss of step ${i + 1}`).toBeLessThanOrEqual(1e-4);
      });
      expect(gpu.losses[2]).toBeLessThan(gpu.losses[0]);
      expect(Math.abs(gpu.evalLoss - wasm.evalLoss)).toBeLessThanOrEqual(1e-4);
      expect(offOrigin(requests, server.origin)).toEqual([]);
    } finally {
      await gpuPage.close();
    }
  }, 600_000);

  test("an encoder-decoder (t5) in the page: auto runs it on WebGPU, with the wasm engine's losses", async () => {
    const model = join(work, "t5-model");
    mkdirSync(model);
    for (const name of ["config.json", "model.safetensors"])
      copyFileSync(join(ROOT, "test/fixtures/models/t5", name), join(model, name));
    const data = join(work, "t5.jsonl");
    const rows = Array.from({ length: 6 }, (_, i) =>
      JSON.stringify({
        input_ids: Array.from({ length: 8 }, (_, j) => ((i * 3 + j) % 60) + 3),
        labels: Array.from({ length: 4 }, (_, j) => ((i * 7 + j) % 60) + 3),
      }),
    );
    writeFileSync(data, `${rows.join("\n")}\n`);
    const t5Page = await browser.newPage();
    const requests = await recordRequests(t5Page);
    try {
      await t5Page.goto(server.origin, { waitUntil: "load" });
      await (await t5Page.$("input#model-input"))?.uploadFile(model);
      await (await t5Page.$("input#data-input"))?.uploadFile(data);
      await t5Page.waitForFunction(
        () =>
          document.querySelector("#preview-summary")?.textContent?.startsWith("t5.jsonl: 6 rows"),
        { timeout: 60_000 },
      );
      await setFields(t5Page, { ...SMALL_RUN, steps: "2", kernels: "wasm" });
      expect(await runToEnd(t5Page, 120_000)).toBe("done");
      expect(await noticeText(t5Page)).toMatch(/^Engine: WebAssembly SIMD.* on 2 threads\.$/);
      const wasm = await runLosses(t5Page, "lora-ga");

      await setFields(t5Page, { kernels: "auto" });
      expect(await runToEnd(t5Page, 300_000)).toBe("done");
      expect(await errorText(t5Page)).toBe("");
      expect(await noticeText(t5Page)).toMatch(/^Engine: WebGPU on the adapter ".+"\.$/);
      const gpu = await runLosses(t5Page, "lora-ga");
      expect(gpu.losses).toHaveLength(2);
      expect(wasm.losses).toHaveLength(2);
      gpu.losses.forEach((loss, i) => {
        expect(Math.abs(loss - wasm.losses[i]), `loss of step ${i + 1}`).toBeLessThanOrEqual(1e-4);
      });
      expect(offOrigin(requests, server.origin)).toEqual([]);
    } finally {
      await t5Page.close();
    }
  });

  test("out of memory: one message naming the run and stage; a smaller run then works", async () => {
    const small = await browser.newPage();
    const requests = await recordRequests(small);
    try {
      await small.goto(`${server.origin}/?heap-limit-mib=32`, { waitUntil: "load" });
      await small.waitForFunction(
        () =>
          document.querySelector("#preview-summary")?.textContent?.startsWith("demo-train.jsonl"),
        { timeout: 60_000 },
      );
      await setFields(small, { ...SMALL_RUN, batchSize: "64", kernels: "wasm" });
      expect(await runToEnd(small, 120_000)).toBe("stopped by an error");
      expect(await small.$$eval("#error p", (l) => l.map((e) => e.textContent))).toEqual([
        expect.stringMatching(
          /^Out of memory \(lora-ga: estimating gradients\): engine memory exhausted: asked for \d+ bytes .* a limit of 32\.0 MiB\. A smaller --batch-size or --max-length, or a smaller model, needs less\.$/,
        ),
      ]);
      await small.click("#dismiss");
      await setFields(small, { batchSize: "2" });
      expect(await runToEnd(small, 120_000)).toBe("done");
      expect(await errorText(small)).toBe("");
      expect((await runLosses(small, "lora-ga")).losses).toHaveLength(3);
      expect(offOrigin(requests, server.origin)).toEqual([]);
    } finally {
      await small.close();
    }
  });

  test("without cross-origin isolation and without WebGPU: auto is wasm on one thread, with notices; Stop ends a run cleanly", async () => {
    const plain = await serveStatic(join(work, "site"), { isolated: false });
    const noGpu = await launchChromium();
    const other = await noGpu.newPage();
    try {
      await other.goto(plain.origin, { waitUntil: "load" });
      expect(await other.evaluate(() => self.crossOriginIsolated)).toBe(false);
      expect(await other.$eval("#notice", (e) => e.textContent ?? "")).toMatch(/one thread/);
      expect(await other.$eval("#setting-kernels", (e) => (e as HTMLSelectElement).value)).toBe(
        "auto",
      );
      await other.$eval("#setting-steps", (e) => {
        (e as HTMLInputElement).value = "500";
      });
      await other.$eval("#setting-compare", (e) => {
        (e as HTMLSelectElement).value = "";
      });
      await other.$eval("#setting-method", (e) => {
        (e as HTMLSelectElement).value = "lora";
      });
      await other.click("#run");
      await other.waitForFunction(
        () => /training, step \d+\/500/.test(document.querySelector("#stage")?.textContent ?? ""),
        { timeout: 60_000 },
      );
      await other.click("#stop");
      await other.waitForFunction(
        () => document.querySelector("#stage")?.textContent === "stopped",
        {
          timeout: 60_000,
        },
      );
      const steps = await other.$eval("tr[data-run='lora'] td", (e) => e.textContent ?? "");
      expect(steps).toMatch(/^\d+ \(stopped\)$/);
      expect(Number.parseInt(steps, 10)).toBeLessThan(500);
      expect(
        await other.$$eval("tr[data-run='lora'] a", (l) => l.map((a) => a.dataset.path)),
      ).toEqual([
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "train.jsonl",
      ]);
      expect(await other.$eval("#notice", (e) => e.textContent ?? "")).toMatch(
        /^WebGPU not used: this browser gives no WebGPU adapter\. .*one thread/,
      );
      expect(await other.$eval("#error", (e) => e.textContent ?? "")).toBe("");
    } finally {
      await noGpu.close();
      await plain.close();
    }
  });
});
