"""Tests on a running machine: the selftest binaries built for it, one binary run at a
time with its timeout and kernel log (a Suite), the KTAP parser (nested blocks as
subtests), kselftest's conventions for what is not KTAP (exit codes, a collection's
`settings`: kselftest), per-program text formats (textformats), and what a lost
connection means (lostmachine)."""
