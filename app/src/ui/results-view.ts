// The results table: one row per finished run with its first, last and eval losses and its files
// as download links (named as PEFT expects them), plus "Save all to a folder…" where the browser
// has the File System Access API (it keeps the adapter/, adapter-converted/ layout).

import type { RunOutcome } from "../protocol.js";
import { h } from "./dom.js";
import { directoryPicker, saveToFolder } from "./sources.js";

const loss = (x: number | undefined) => (x === undefined ? "–" : x.toFixed(4));

/** The object URLs of the table shown now, revoked when it is replaced. */
let shownUrls: string[] = [];

function objectUrl(blob: Blob): string {
  const url = URL.createObjectURL(blob);
  shownUrls.push(url);
  return url;
}

export function resultsTable(
  outcomes: readonly RunOutcome[],
  showError: (message: string) => void,
): HTMLElement {
  for (const url of shownUrls) URL.revokeObjectURL(url);
  shownUrls = [];
  const picker = directoryPicker();
  const saveButton = (o: RunOutcome) => {
    if (picker === null) return null;
    const button = h("button", { type: "button" }, `Save all of ${o.label} to a folder…`);
    button.addEventListener("click", async () => {
      try {
        button.textContent = `Saved to ${await saveToFolder(picker, o.files)}`;
      } catch (error) {
        if ((error as Error).name !== "AbortError")
          showError(`saving: ${(error as Error).message}`);
      }
    });
    return button;
  };
  const rows = outcomes.map((o) =>
    h(
      "tr",
      { "data-run": o.label },
      h("th", { scope: "row" }, o.label),
      h("td", {}, `${o.steps}${o.interrupted ? " (stopped)" : ""}`),
      h("td", { class: "first-loss" }, loss(o.losses[0])),
      h("td", { class: "last-loss" }, loss(o.losses[o.losses.length - 1])),
      h("td", { class: "eval-loss", "data-value": String(o.evalLoss) }, loss(o.evalLoss)),
      h(
        "td",
        {},
        h(
          "ul",
          { class: "files" },
          ...o.files.map((f) =>
            h(
              "li",
              {},
              h(
                "a",
                {
                  href: objectUrl(f.blob),
                  download: f.path.split("/").pop() ?? f.path,
                  "data-path": f.path,
                },
                f.path,
              ),
            ),
          ),
        ),
        saveButton(o),
      ),
    ),
  );
  return h(
    "table",
    {},
    h(
      "caption",
      {},
      `Eval loss: mean token loss on ${outcomes[0]?.evalData ?? ""}. adapter-converted/ is the ` +
        "rank-2r adapter for the ORIGINAL base model (PEFT's PeftModel.from_pretrained loads it); " +
        "adapter/ is for the offset base the run trained on.",
    ),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ...["run", "steps", "first loss", "last loss", "eval loss", "files"].map((t) =>
          h("th", { scope: "col" }, t),
        ),
      ),
    ),
    h("tbody", {}, ...rows),
  );
}
