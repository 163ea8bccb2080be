// The CLI's one error class for usage errors: a bad flag or --config value, a missing required
// option, a combination that cannot work. program.ts prints it as `loraga: error: ...` and exits 2;
// every other error exits 1.

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
