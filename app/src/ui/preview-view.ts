// The data preview's view: counts, row errors with their FILE:LINE, and the first rows with the
// learned (completion) part marked.

import type { Preview } from "../protocol.js";
import { h } from "./dom.js";

export function renderPreview(p: Preview): HTMLElement {
  const summary = h(
    "p",
    { id: "preview-summary" },
    `${p.file}: ${p.rows} rows, ${p.tokens} tokens, ${p.learnedTokens} learned` +
      (p.dropped > 0
        ? `; ${p.dropped} rows have no learned token within --max-length and are dropped`
        : ""),
  );
  const errors =
    p.errors.length === 0
      ? null
      : h(
          "div",
          { class: "row-errors", role: "alert" },
          h("p", {}, `${p.errors.length} row error(s); training stops at the first:`),
          h("ul", {}, ...p.errors.map((e) => h("li", {}, e))),
        );
  const rows = h(
    "ol",
    { class: "rows", "aria-label": "first rows; the learned part is highlighted" },
    ...p.shown.map((row) =>
      h(
        "li",
        {},
        h(
          "span",
          { class: "line" },
          `line ${row.line} · ${row.tokens} tokens, ${row.learnedTokens} learned`,
        ),
        h(
          "pre",
          {},
          ...row.spans.map((s) =>
            s.learned ? h("mark", { title: "learned (in the loss)" }, s.text) : s.text,
          ),
        ),
      ),
    ),
  );
  return h(
    "div",
    {},
    summary,
    errors,
    rows,
    h("p", { class: "hint" }, "Highlighted: the learned part (counted in the loss)."),
  );
}
