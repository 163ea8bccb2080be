// Guards the case lists that tests read from fixture files: an empty list would make test.each
// produce no tests at all, so a truncated or regenerated-empty fixture would pass silently.

/** Returns `list` unchanged, or throws naming the fixture when it holds no cases. */
export function nonEmpty<T>(list: readonly T[], fixture: string): readonly T[] {
  if (list.length === 0)
    throw new Error(`fixture ${fixture} has no cases: the tests would not run`);
  return list;
}
