// The comparison report: run logs in, one self-contained HTML page (and a text table) out.
export { renderReport, type ReportOptions } from "./html.js";
export { type RunLog, type RunSummary, type TrainPoint, type EvalPoint, parseTrainLog, parseRunSummary, RUN_LOG_FILE, RUN_SUMMARY_FILE } from "./run-log.js";
export { compareRuns, type Comparison, type CompareOptions, type RunStats } from "./stats.js";
export { renderTextTable } from "./table.js";
