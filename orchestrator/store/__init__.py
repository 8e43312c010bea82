"""orch's cache on disk (trees, worktrees, build dirs, kernels, keys, downloads) and
`orch gc`, which keeps it in bounds."""
