"""The results record and its views: results.json (the record), JUnit, KCIDB, `orch
merge`, `orch compare` and the results page. Pure data: reads files, writes files, runs
nothing."""
