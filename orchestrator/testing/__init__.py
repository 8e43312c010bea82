"""Tests on a running machine: the selftest binaries built for it, one binary run at a
time with its timeout and kernel log (a Suite), the KTAP parser, and what a lost
connection means (faults)."""
