// The page's sections, in order: model, data (with the preview area), settings (the form of
// settings-form.ts), run (buttons, stage, progress, chart, results), try it (generation), and the
// error area. main.ts wires them; ids are what it and the end-to-end test address.

import { h } from "./dom.js";
import { settingsForm } from "./settings-form.js";

export function pageSections(hasPicker: boolean): HTMLElement[] {
  return [
    h(
      "header",
      {},
      h("h1", {}, "loraga"),
      h(
        "p",
        {},
        "Fine-tune a language model with LoRA-GA or LoRA in this tab. Your files never leave it.",
      ),
      h("p", { id: "notice", class: "notice", role: "status" }),
    ),
    h(
      "section",
      { "aria-labelledby": "h-model" },
      h("h2", { id: "h-model" }, "1. Model"),
      h(
        "div",
        { class: "row" },
        h("button", { type: "button", id: "model-demo" }, "Use the demo model"),
        hasPicker
          ? h("button", { type: "button", id: "model-pick" }, "Open a model folder…")
          : null,
        // the folder <input>, for browsers without the directory picker
        h("input", {
          type: "file",
          id: "model-input",
          webkitdirectory: true,
          multiple: true,
          hidden: hasPicker,
        }),
        !hasPicker
          ? h("label", { class: "file", for: "model-input" }, "Open a model folder")
          : null,
      ),
      h(
        "p",
        { id: "model-status", role: "status" },
        "demo model (word tokenizer, ~1.9M parameters)",
      ),
    ),
    h(
      "section",
      { "aria-labelledby": "h-data" },
      h("h2", { id: "h-data" }, "2. Data"),
      h(
        "div",
        { class: "row" },
        h("button", { type: "button", id: "data-demo" }, "Use the demo task"),
        h("input", {
          type: "file",
          id: "data-input",
          accept: ".jsonl,.json,.txt,application/jsonl",
        }),
        h("label", { class: "file", for: "data-input" }, "Open a JSONL file"),
      ),
      h(
        "p",
        { class: "hint" },
        'One row per line: {"text"}, {"prompt", "completion"}, {"messages"} or {"input_ids"[, "labels"]}.',
      ),
      h("div", { id: "preview", "aria-live": "polite" }),
    ),
    h(
      "section",
      { "aria-labelledby": "h-settings" },
      h("h2", { id: "h-settings" }, "3. Settings"),
      settingsForm(),
    ),
    h(
      "section",
      { "aria-labelledby": "h-run" },
      h("h2", { id: "h-run" }, "4. Run"),
      h(
        "div",
        { class: "row" },
        h("button", { type: "button", id: "run", class: "primary" }, "Start"),
        h("button", { type: "button", id: "stop", disabled: true }, "Stop"),
      ),
      h("p", { id: "stage", role: "status" }, "idle"),
      h("progress", { id: "progress", max: "1", value: "0", "aria-labelledby": "stage" }),
      h("p", { id: "speed" }),
      h("figure", { id: "chart", "aria-label": "training loss chart" }),
      h("div", { id: "results" }),
    ),
    h(
      "section",
      { "aria-labelledby": "h-try" },
      h("h2", { id: "h-try" }, "5. Try it"),
      h("label", { for: "prompt" }, "Prompt"),
      h(
        "textarea",
        { id: "prompt", rows: "3" },
        "Mia has 12 apples. She buys 5 more. How many apples does Mia have now?\nAnswer:",
      ),
      h(
        "div",
        { class: "row" },
        h("label", { for: "max-new" }, "tokens to generate"),
        h("input", { id: "max-new", type: "text", inputmode: "numeric", value: "32", size: "4" }),
        h("button", { type: "button", id: "generate", disabled: true }, "Generate"),
      ),
      h("pre", { id: "generated", "aria-live": "polite" }),
    ),
    h("div", { id: "error", role: "alert" }),
  ];
}
