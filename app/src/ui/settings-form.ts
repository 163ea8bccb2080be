// The settings form, generated from the CLI's flag declarations (../settings.ts): one labelled
// control per flag — a select for flags with choices, a text input otherwise — with the flag's
// help and default as its description, and the "compare with" choice of a second run.

import {
  ADVANCED,
  defaultTexts,
  FIELDS,
  type FieldKey,
  flagName,
  METHODS,
  type Method,
} from "../settings.js";
import { h } from "./dom.js";

const INPUT_MODE: Partial<Record<FieldKey, string>> = {
  r: "numeric",
  steps: "numeric",
  batchSize: "numeric",
  maxLength: "numeric",
  gaBatches: "numeric",
  warmup: "numeric",
  seed: "numeric",
  threads: "numeric",
  lr: "decimal",
  alpha: "decimal",
  clip: "decimal",
  dropout: "decimal",
  gamma: "decimal",
};

function field(key: FieldKey, value: string): HTMLElement {
  const flag = FIELDS[key];
  const id = `setting-${key}`;
  const helpId = `${id}-help`;
  const shownDefault = value === "" ? "" : ` (default ${value})`;
  const control =
    "choices" in flag && flag.choices !== undefined
      ? h(
          "select",
          { id, name: key, "aria-describedby": helpId },
          ...flag.choices.map((c) => h("option", { value: c, selected: c === value }, c)),
        )
      : h("input", {
          id,
          name: key,
          type: "text",
          value,
          inputmode: INPUT_MODE[key] ?? "text",
          autocomplete: "off",
          spellcheck: "false",
          "aria-describedby": helpId,
        });
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, flagName(key)),
    control,
    h("small", { id: helpId }, `${flag.help}${shownDefault}`),
  );
}

/** The form's fields (main, then the folded details) and the "compare with" select. */
export function settingsForm(): HTMLElement {
  const defaults = defaultTexts();
  const keys = Object.keys(FIELDS) as FieldKey[];
  const main = keys.filter((k) => !ADVANCED.includes(k));
  const compare = h(
    "div",
    { class: "field" },
    h("label", { for: "setting-compare" }, "compare with"),
    h(
      "select",
      { id: "setting-compare", name: "compare", "aria-describedby": "setting-compare-help" },
      h("option", { value: "" }, "no second run"),
      ...METHODS.map((m) => h("option", { value: m, selected: m === "lora" }, m)),
    ),
    h(
      "small",
      { id: "setting-compare-help" },
      "a second run with this method on the same data and settings, drawn on the same chart",
    ),
  );
  return h(
    "form",
    { id: "settings", class: "settings", novalidate: true },
    h("div", { class: "grid" }, ...main.map((k) => field(k, defaults[k])), compare),
    h(
      "details",
      {},
      h("summary", {}, "LoRA-GA and init details"),
      h("div", { class: "grid" }, ...ADVANCED.map((k) => field(k, defaults[k]))),
    ),
  );
}

/** The texts of every field as the person left them. */
export function formTexts(form: HTMLFormElement): Record<FieldKey, string> {
  const data = new FormData(form);
  const out = {} as Record<FieldKey, string>;
  for (const key of Object.keys(FIELDS) as FieldKey[]) out[key] = String(data.get(key) ?? "");
  return out;
}

export function compareMethod(form: HTMLFormElement): Method | null {
  const value = String(new FormData(form).get("compare") ?? "");
  return value === "" ? null : (value as Method);
}
