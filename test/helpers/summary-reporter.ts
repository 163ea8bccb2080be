// Prints one closing line "tests: N passed, N failed[, N not run][, N skipped]" so that CI logs
// state plainly how many tests ran. "not run" counts the tests of a suite whose setup (beforeAll)
// failed, e.g. on a missing fixture: Vitest marks them skipped, but they are failures. Vitest's own
// summary stays above it; the exit code is still Vitest's.
import type { Reporter, TestCase, TestModule } from "vitest/node";

/** True when a suite around this test failed (a beforeAll/afterAll error). */
function insideFailedSuite(test: TestCase): boolean {
  let parent = test.parent;
  while (parent.type === "suite") {
    if (parent.state() === "failed") return true;
    parent = parent.parent;
  }
  return parent.state() === "failed" && parent.errors().length > 0;
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let notRun = 0;
    let skipped = 0;
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else if (insideFailedSuite(test)) notRun++;
        else skipped++;
      }
      if (mod.state() === "failed" && mod.children.size === 0) failed++;
    }
    const parts = [`${passed} passed`, `${failed} failed`];
    if (notRun > 0) parts.push(`${notRun} not run (their suite's setup failed)`);
    if (skipped > 0) parts.push(`${skipped} skipped`);
    process.stdout.write(`tests: ${parts.join(", ")}\n`);
  }
}
