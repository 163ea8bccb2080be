// Makes docs/app-screenshot.png, the README's picture of the web app mid-run: builds app/, serves
// it with `vite preview` (cross-origin isolation headers from app/vite.config.ts), and in headless
// Chromium (Debian's, via puppeteer-core) runs LoRA against LoRA-GA on the demo model and task,
// then captures the page at 1280 px wide while the second run trains.
//
// Usage: node scripts/app-screenshot.mjs [path-to-chromium]

import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";
import { build, preview } from "vite";

const root = fileURLToPath(new URL("..", import.meta.url));
const configFile = `${root}app/vite.config.ts`;
const chromium = process.argv[2] ?? "/usr/bin/chromium";
const STEPS = 150;
const CAPTURE_AT = 60; // LoRA-GA step at which the picture is taken

await build({ configFile, logLevel: "error" });
const server = await preview({
  configFile,
  logLevel: "error",
  preview: { host: "127.0.0.1", port: 0, open: false },
});
const url = server.resolvedUrls?.local[0];
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
  ],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 1000 });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("#preview-summary", { timeout: 60_000 });
  const set = (id, value) =>
    page.$eval(
      id,
      (e, v) => {
        e.value = v;
      },
      value,
    );
  await set("#setting-steps", String(STEPS));
  await set("#setting-lr", "5e-4");
  await set("#setting-compare", "lora");
  await page.click("#run");
  await page.waitForFunction(
    (at) =>
      new RegExp(`^lora-ga: training, step ${at}/`).test(
        document.querySelector("#stage")?.textContent ?? "",
      ),
    { timeout: 300_000 },
    CAPTURE_AT,
  );
  const run = await page.$("section[aria-labelledby='h-run']");
  await run.screenshot({ path: `${root}docs/app-screenshot.png` });
  console.log("wrote docs/app-screenshot.png");
} finally {
  await browser.close();
  await server.close();
}
