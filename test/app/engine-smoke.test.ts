// The compute engine in a browser: serves the built dist/ with the cross-origin isolation headers
// SharedArrayBuffer needs, and opens a page in headless Chromium that creates the wasm kernels on 2
// Web Workers (src/platform/threads.ts, browser path) and checks matmul (plain, transposed, fused
// LoRA term, causal), swiglu backward, rmsnorm, rope, softmax and cross-entropy against the
// reference kernels, and runs a randomized SVD. `npm test` builds dist/ first. Chromium:
// test/app/browser.ts (skipped without it, a failure under CI).

import { resolve } from "node:path";
import type { Browser } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  HAS_CHROMIUM,
  launchChromium,
  requireChromium,
  type StaticServer,
  serveStatic,
} from "./browser.js";

const ROOT = resolve(import.meta.dirname, "../..");

const PAGE = `<!doctype html><meta charset="utf-8"><title>loraga engine smoke</title><pre id="result">running</pre>
<script type="module">
const out = { crossOriginIsolated: self.crossOriginIsolated, checks: [] };
const record = (name, err, tol) => out.checks.push({ name, maxRelErr: err, ok: err <= tol });
try {
  const { Heap } = await import("/dist/tensor/heap.js");
  const { createKernels } = await import("/dist/kernels/index.js");
  const { svdLowrank } = await import("/dist/linalg/svd-lowrank.js");
  const heap = new Heap();
  const ref = await createKernels("ref", { heap });
  const wasm = await createKernels("wasm", { heap, threads: 2 });
  out.threads = wasm.threads;
  out.relaxedSimd = wasm.relaxedSimd;
  let seed = 1;
  const rand = (t) => { const v = t.f32(); for (let i = 0; i < v.length; i++) { seed = (seed * 1103515245 + 12345) >>> 0; v[i] = seed / 2 ** 31 - 1; } return t; };
  const rel = (a, b) => { const x = a.f32(), y = b.f32(); let e = 0; for (let i = 0; i < x.length; i++) e = Math.max(e, Math.abs(x[i] - y[i]) / (1 + Math.abs(y[i]))); return e; };
  const both = (shape, fn) => { const p = heap.tensor(shape), q = heap.tensor(shape); fn(wasm, p); fn(ref, q); return rel(p, q); };
  const a = rand(heap.tensor([300, 200])), b = rand(heap.tensor([200, 170])), bt = rand(heap.tensor([170, 200]));
  record("matmul 300x200x170", both([300, 170], (k, o) => k.matmul(o, a, b)), 1e-5);
  record("matmul NT", both([300, 170], (k, o) => k.matmul(o, a, bt, { transB: true })), 1e-5);
  const xa = rand(heap.tensor([300, 8])), up = rand(heap.tensor([170, 8]));
  record("matmul plus term (fused LoRA)", both([300, 170], (k, o) => k.matmul(o, a, bt, { transB: true, plus: { a: xa, b: up, transB: true, alpha: 2 } })), 1e-5);
  const gate = rand(heap.tensor([96, 130])), upIn = rand(heap.tensor([96, 130])), dOut = rand(heap.tensor([96, 130]));
  // overwrite: the fresh outputs hold whatever the heap had there, which must not matter
  record("swiglu backward, overwrite", both([96, 130], (k, o) => k.swigluBackward(o, heap.tensor([96, 130]), gate, upIn, dOut, { accumulate: false })), 1e-5);
  const q = rand(heap.tensor([4, 64, 32])), kk = rand(heap.tensor([4, 64, 32]));
  record("matmul causal maskOut", both([4, 64, 64], (k, o) => k.matmul(o, q, kk, { transB: true, causal: { kind: "maskOut", period: 64 } })), 1e-5);
  const x = rand(heap.tensor([96, 130])), w = rand(heap.tensor([130]));
  record("rmsnorm", both([96, 130], (k, o) => k.rmsnorm(o, heap.tensor([96]), x, w, 1e-5)), 1e-5);
  const cos = rand(heap.tensor([16, 8])), sin = rand(heap.tensor([16, 8])), r = rand(heap.tensor([2, 16, 3, 16]));
  record("rope", both([2, 16, 3, 16], (k, o) => k.rope(o, r, cos, sin)), 1e-5);
  const s = rand(heap.tensor([2, 3, 40, 40]));
  record("attention softmax", both([2, 3, 40, 40], (k, o) => k.attentionSoftmax(o, s, { scale: 0.3, causal: true })), 1e-5);
  const logits = rand(heap.tensor([64, 5003])), tg = heap.tensor([64], "i32");
  tg.i32().set(Int32Array.from({ length: 64 }, (_, i) => (i * 7919) % 5003));
  record("cross-entropy grad", both([64, 5003], (k, o) => k.crossEntropy(heap.tensor([64]), o, logits, tg)), 1e-5);
  const g = new Float32Array(256 * 128).map((_, i) => Math.sin(i * 0.37) * Math.exp(-(i % 128) / 16));
  const svd = svdLowrank(g, 256, 128, { q: 16, niter: 2, kernels: wasm });
  out.checks.push({ name: "svdLowrank (wasm products) returns descending singular values", ok: svd.S.every((v, i) => i === 0 || v <= svd.S[i - 1]) });
  await wasm.dispose();
  out.ok = out.crossOriginIsolated && out.checks.every((c) => c.ok);
} catch (err) {
  out.ok = false;
  out.error = String(err && err.stack || err);
}
document.getElementById("result").textContent = JSON.stringify(out);
document.getElementById("result").dataset.done = "true";
</script>`;

requireChromium();

describe.runIf(HAS_CHROMIUM)("the wasm engine in headless Chromium", () => {
  let server: StaticServer;
  let browser: Browser;

  beforeAll(async () => {
    server = await serveStatic(ROOT, {
      routes: {
        "/": (_req, res) => {
          res
            .writeHead(200, {
              "Content-Type": "text/html",
              "Cross-Origin-Opener-Policy": "same-origin",
              "Cross-Origin-Embedder-Policy": "require-corp",
            })
            .end(PAGE);
        },
      },
    });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  test("wasm kernels on 2 Web Workers match the reference kernels", async () => {
    const page = await browser.newPage();
    await page.goto(`${server.origin}/`);
    await page.waitForSelector("#result[data-done]", { timeout: 120_000 });
    const report = JSON.parse(await page.$eval("#result", (e) => e.textContent ?? ""));
    expect(report.error).toBeUndefined();
    expect(report.crossOriginIsolated).toBe(true);
    expect(report.threads).toBe(2);
    for (const check of report.checks) expect(check, check.name).toMatchObject({ ok: true });
    expect(report.checks).toHaveLength(10);
    expect(report.ok).toBe(true);
  });
});
