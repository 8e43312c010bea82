"""orch: apply a kernel patch series, build, boot in QEMU, run selftests, report JUnit."""

__version__ = "0.1.0"
