// Benchmark reporting: every measurement is one Record, printed as a row of a human-readable
// table, or (with --json) as one JSON object per line. Benchmarks only report; they never assert.

export type Record = { [key: string]: string | number | boolean | null };

export interface Reporter {
  /** Prints one measurement. */
  record(row: Record): void;
  /** Prints a free-text line (suppressed in --json mode). */
  note(text: string): void;
}

export function createReporter(json: boolean): Reporter {
  return {
    record(row) {
      if (json) {
        process.stdout.write(`${JSON.stringify(row)}\n`);
        return;
      }
      const cells = Object.entries(row).map(
        ([k, v]) => `${k}=${typeof v === "number" ? formatNumber(v) : v}`,
      );
      process.stdout.write(`  ${cells.join("  ")}\n`);
    },
    note(text) {
      if (!json) process.stdout.write(`${text}\n`);
    },
  };
}

function formatNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(1);
  if (a >= 1) return v.toFixed(3);
  return v.toPrecision(3);
}

/** Median wall time in milliseconds of `fn` over `reps` runs after `warmup` runs. */
export async function timeIt(fn: () => unknown, reps: number, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  return times[Math.floor(times.length / 2)];
}
