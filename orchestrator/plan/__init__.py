"""Plan files: the cells a CI matrix runs, in YAML.

A plan names axes (arches, trees, series, profiles, targets); its cells are their cross
product, minus `exclude`, plus `include`. Every cell has a stable name
(`x86_64-6.1-uffd-move`) that is also its CI job name and its artifact name.
`orch plan FILE --format ...` prints the cells the way a CI system wants them;
`orch run --plan FILE --cell NAME` runs one cell with exactly the options of the equivalent
hand-written `orch run`.

    axes     one record per axis: how an entry is written, checked, named and run
    cells    Plan and Cell: the cells, and the `orch run` options of each
    schema   reading a plan file: YAML in, a checked Plan or a one-line error out
    emit     the formats of `orch plan` (json, github, gitlab, names), one table
    command  `orch plan`, and `orch run --plan/--cell`
"""
