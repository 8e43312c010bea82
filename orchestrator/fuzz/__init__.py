"""`orch fuzz`: a differential oracle for the series. The same random programs (anonymous
memory and userfaultfd, fuzz/*.h in C) run on the prototype and on a reference kernel; any
difference in what user space observes, not in the allowlist, is a divergence, grouped by
signature and shrunk to a C reproducer.

model (programs, their text) · strategies (Hypothesis: generation and shrinking) · trace
(the executor's output) · diff (comparison, allowlist, signatures) · machines (the two
kernels, booted by the run stages) · engine (the loop) · shrink · repro (the KTAP program)
· report (results.json, JUnit, summary.md, fuzz.json).
"""
