"""The floor every tier stands on: errors and their exit codes (the one severity table),
the one place host programs start (runner), option records, progress output, atomic files,
the paths of what ships with orch, and the test-only fault hooks. Imports nothing of orch."""
