// The comparison report: run logs in, one self-contained HTML page (and a text table) out.
export { type ReportOptions, renderReport } from "./html.js";
export {
  type EvalPoint,
  parseRunSummary,
  parseTrainLog,
  RUN_LOG_FILE,
  RUN_SUMMARY_FILE,
  type RunLog,
  type RunSummary,
  type TrainPoint,
} from "./run-log.js";
export { type CompareOptions, type Comparison, compareRuns, type RunStats } from "./stats.js";
export { renderTextTable } from "./table.js";
