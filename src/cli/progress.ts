// Progress display for long phases (estimation, SVD, training, eval): a bar with ETA on stderr when
// it is a terminal; otherwise (logs, CI) a line at the start and end of each phase and one every
// PLAIN_INTERVAL_MS in between; nothing in quiet mode.

import cliProgress from "cli-progress";

export interface Progress {
  /** Starts a phase of `total` units. */
  start(label: string, total: number): void;
  /** Sets the units done in the current phase, with optional extra values shown after the bar. */
  update(done: number, extra?: string): void;
  /** Ends the current phase. */
  stop(): void;
}

export function createProgress(quiet: boolean): Progress {
  if (quiet) return { start() {}, update() {}, stop() {} };
  if (!process.stderr.isTTY) return plainProgress();
  let bar: cliProgress.SingleBar | null = null;
  return {
    start(label, total) {
      bar = new cliProgress.SingleBar(
        {
          format: `${label.padEnd(12)} {bar} {value}/{total} | ETA {eta_formatted} | {extra}`,
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0, { extra: "" });
    },
    update(done, extra = "") {
      bar?.update(done, { extra });
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}

/** Milliseconds between two progress lines of a phase when stderr is not a terminal. */
const PLAIN_INTERVAL_MS = 10_000;

/** Non-terminal output: the start and the end of each phase, and periodic lines, with elapsed time. */
function plainProgress(): Progress {
  let label = "";
  let total = 0;
  let done = 0;
  let extraText = "";
  let t0 = 0;
  let lastLine = 0;
  let running = false;
  return {
    start(l, t) {
      running = true;
      label = l;
      total = t;
      done = 0;
      t0 = performance.now();
      lastLine = t0;
      process.stderr.write(`${label}: 0/${total}\n`);
    },
    update(d, extra = "") {
      done = d;
      extraText = extra;
      const now = performance.now();
      if (running && now - lastLine >= PLAIN_INTERVAL_MS && done < total) {
        lastLine = now;
        const seconds = ((now - t0) / 1000).toFixed(0);
        process.stderr.write(
          `${label}: ${done}/${total} after ${seconds}s${extraText ? ` (${extraText})` : ""}\n`,
        );
      }
    },
    stop() {
      if (!running) return;
      running = false;
      const seconds = ((performance.now() - t0) / 1000).toFixed(1);
      process.stderr.write(
        `${label}: ${done}/${total} in ${seconds}s${extraText ? ` (${extraText})` : ""}\n`,
      );
    },
  };
}
