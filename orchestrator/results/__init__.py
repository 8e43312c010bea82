"""The results record and its views: results.json (the record), JUnit, KCIDB, `orch
merge` and `orch compare`. Pure data: reads files, writes files, runs nothing."""
