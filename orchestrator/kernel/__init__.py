"""The kernel under test: architectures as records, trees (a checkout never modified, or
an imported tarball), patch series, Kconfig, and the cached, incremental build."""
