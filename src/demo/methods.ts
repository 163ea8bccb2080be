// The demo's methods and its two protocols, fixed before any comparison run:
//
// - "paper": one learning rate for every method, the full fine-tuning rate (the LoRA-GA paper,
//   arXiv 2407.05000, compares methods at one rate; docs/lora-ga-spec.md section 3.1).
// - "tuned": each method at its own best rate from a small sweep (SWEEP_RATES), chosen by the
//   lowest loss on a validation split that is neither the training nor the held-out set.
//
// The full fine-tuning rate is full fine-tuning's tuned rate. The sweep's result is committed in
// demo/tuned-rates.json (written by scripts/demo/sweep-lr.mjs through `loraga demo --sweep`);
// `loraga demo` reads it and runs both protocols. Everything else (steps, batch size, rank,
// alpha, schedule, seeds) is the same for every method.

export const DEMO_METHOD_NAMES = ["lora", "lora-ga", "pissa", "lora-one", "full"];

/** Learning rates the sweep tries, per method (a 2-2.5x grid around each family's usual rate). */
export function sweepRates(method: string): number[] {
  return method === "full" ? [2e-4, 5e-4, 1e-3, 2e-3] : [1e-3, 2e-3, 5e-3, 1e-2, 2e-2];
}

/** demo/tuned-rates.json: the sweep's outcome. */
export interface TunedRates {
  /** Best rate per method. */
  rates: Record<string, number>;
  /** Every swept rate's final validation loss, per method: [lr, loss][]. */
  sweep: Record<string, [number, number][]>;
  /** The sweep's settings, for the record. */
  settings: Record<string, number | string>;
}

export interface Protocol {
  name: string;
  /** One sentence: how the rates were chosen. */
  description: string;
  /** Learning rate per method. */
  rates: Map<string, number>;
}

/** The two protocols for `methods` from the tuned rates; `oneRate` replaces both with one rate. */
export function protocolsOf(
  methods: readonly string[],
  tuned: TunedRates,
  oneRate?: number,
): Protocol[] {
  const rateOf = (m: string) => {
    const r = tuned.rates[m];
    if (r === undefined) throw new Error(`tuned rates: no rate for "${m}" (rerun the sweep)`);
    return r;
  };
  const same = (lr: number) => new Map(methods.map((m) => [m, lr]));
  if (oneRate !== undefined)
    return [
      {
        name: "One learning rate (--lr)",
        description: `every method at lr ${oneRate}`,
        rates: same(oneRate),
      },
    ];
  const fullRate = rateOf("full");
  return [
    {
      name: "Paper protocol: one learning rate",
      description: `every method at the full fine-tuning rate, lr ${fullRate}`,
      rates: same(fullRate),
    },
    {
      name: "Tuned protocol: each method at its best rate",
      description:
        "each method at the rate with the lowest validation loss in the committed sweep (demo/tuned-rates.json)",
      rates: new Map(methods.map((m) => [m, rateOf(m)])),
    },
  ];
}

/** Parses demo/tuned-rates.json text. */
export function parseTunedRates(text: string, file: string): TunedRates {
  const value = JSON.parse(text) as Partial<TunedRates>;
  if (typeof value !== "object" || value === null || typeof value.rates !== "object")
    throw new Error(`${file}: expected {"rates": {...}, "sweep": {...}, "settings": {...}}`);
  for (const [m, r] of Object.entries(value.rates ?? {}))
    if (typeof r !== "number" || !(r > 0)) throw new Error(`${file}: rate of "${m}" must be > 0`);
  return { rates: value.rates ?? {}, sweep: value.sweep ?? {}, settings: value.settings ?? {} };
}
