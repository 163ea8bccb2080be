// Which linear layers an adapter wraps: PEFT's target_modules / exclude_modules semantics
// (peft.tuners.tuners_utils.check_target_module_exists, 0.21), re-implemented:
// - a string is a regular expression that must match the WHOLE module path (Python re.fullmatch);
// - a list matches a path equal to an entry, or ending with "." + entry;
// - exclude_modules (same two forms) wins over target_modules.
// - "all-linear" (any case) selects every linear layer except the output head (PEFT's
//   _maybe_include_all_linear_layers excludes the model's output embedding; here: "lm_head").
// Only the linear layers a model reports (LinearInfo) are candidates, as PEFT only wraps Linear /
// Conv1D for LoRA-GA. Nothing matching is an error that lists the model's linear modules.
// Regex note: patterns run on JavaScript's RegExp, which agrees with Python's re for the usual
// target patterns (alternation, classes, quantifiers, escapes); Python-only syntax such as
// (?P<name>...) is rejected by RegExp with a clear error at config validation.

import type { LinearInfo } from "../models/linear.js";
import type { LoraConfig } from "./config.js";

function fullMatch(pattern: string, path: string): boolean {
  return new RegExp(`^(?:${pattern})$`).test(path);
}

/** PEFT's rule for one spec (regex string or list of names) against one module path. */
function matchesModuleSpec(spec: readonly string[] | string, path: string): boolean {
  if (typeof spec === "string") return fullMatch(spec, path);
  return spec.some((name) => path === name || path.endsWith(`.${name}`));
}

const ALL_LINEAR = "all-linear";

function isOutputHead(path: string): boolean {
  return path === "lm_head" || path.endsWith(".lm_head");
}

/** True when `path` is adapted under `config` (target and not excluded). */
function isTargeted(
  config: Pick<LoraConfig, "target_modules" | "exclude_modules">,
  path: string,
): boolean {
  if (config.exclude_modules !== null && matchesModuleSpec(config.exclude_modules, path))
    return false;
  const t = config.target_modules;
  if (t === null) return false;
  if (typeof t === "string" && t.toLowerCase() === ALL_LINEAR) return !isOutputHead(path);
  return matchesModuleSpec(t, path);
}

/**
 * The targeted linear layers, in the model's order. Throws when target_modules is null or matches
 * nothing, listing every linear module path the model has.
 */
export function selectTargets(
  config: Pick<LoraConfig, "target_modules" | "exclude_modules">,
  linears: readonly LinearInfo[],
): LinearInfo[] {
  const list = (): string =>
    linears.map((l) => `  ${l.path} (${l.inFeatures} -> ${l.outFeatures})`).join("\n");
  if (config.target_modules === null) {
    throw new Error(`target_modules is not set; the model's linear modules are:\n${list()}`);
  }
  const picked = linears.filter((l) => isTargeted(config, l.path));
  if (picked.length === 0) {
    throw new Error(
      `target_modules ${JSON.stringify(config.target_modules)} matched none of the model's linear modules` +
        `${config.exclude_modules === null ? "" : ` (after exclude_modules ${JSON.stringify(config.exclude_modules)})`}:\n${list()}`,
    );
  }
  return picked;
}
