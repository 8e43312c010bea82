"""Error families and the exit codes they map to.

Two families, as kernel CI needs them: the user's (bad arguments, bad series, a dropped
config option) and the infrastructure's (patch does not apply, build, boot, SSH).
"""

from __future__ import annotations

# Exit codes of `orch run` (documented in README.md).
EXIT_PASS = 0  # every test ran and passed (skips allowed)
EXIT_TEST_FAILED = 1  # at least one test failed, or a planned test did not report
EXIT_USAGE = 2  # bad command line, bad input file, dropped config option
EXIT_INFRA = 3  # apply, build, boot, SSH or QEMU failure: nothing could be concluded
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM

# `git bisect run` convention (orch run --bisect-exit, orch bisect steps).
BISECT_GOOD = 0
BISECT_BAD = 1
BISECT_SKIP = 125
BISECT_ABORT = 128

# The one severity order: a run's (and a merge's) code is its worst cell's.
SEVERITY = [EXIT_PASS, EXIT_TEST_FAILED, EXIT_INFRA, EXIT_USAGE, EXIT_INTERRUPTED]


def worst(*codes: int | None) -> int:
    """The most serious exit code (interrupt > usage > infra > test failure > pass); an
    unknown code counts as infrastructure, None is ignored."""
    known = [c if c in SEVERITY else EXIT_INFRA for c in codes if c is not None]
    return max(known, key=SEVERITY.index, default=EXIT_PASS)


class OrchError(Exception):
    """Base class: `str(err)` is the one line shown to the user."""

    exit_code = EXIT_INFRA
    stage = "orch"

    def __init__(self, message: str, *, hint: str | None = None, stage: str | None = None):
        super().__init__(message)
        self.hint = hint
        if stage:
            self.stage = stage


class UsageError(OrchError):
    """The user's input is wrong: arguments, series, fragments, trees."""

    exit_code = EXIT_USAGE
    stage = "usage"


class ConfigError(UsageError):
    """A requested config option did not survive olddefconfig."""

    stage = "config"


class MissingToolError(UsageError):
    """A host program is missing; the message names the Debian package."""

    stage = "host"


class InfraError(OrchError):
    """Something between the patch and the test result broke."""

    exit_code = EXIT_INFRA


class ApplyError(InfraError):
    stage = "apply"


class BuildError(InfraError):
    stage = "build"


class BootError(InfraError):
    stage = "boot"


class SSHError(InfraError):
    stage = "ssh"


class HostKeyError(SSHError):
    """The machine that answers is not the one known (another key, or none known): waiting
    longer cannot help."""


class Interrupted(BaseException):
    """SIGTERM or Ctrl-C: the whole run stops (every arch), QEMU is killed, partial results
    are written, exit 130. Not an OrchError (nor an Exception), so that no stage or arch
    handler takes it for one failure among others and carries on; and raised for SIGINT
    too, because fabric/invoke swallow a KeyboardInterrupt while a remote command runs."""

    exit_code = EXIT_INTERRUPTED
    stage = "interrupted"


class InternalError(Exception):
    """Raised on purpose by the ORCH_TEST_INTERNAL_ERROR test hook (see hooks.py)."""


def bisect_code(code: int, error: OrchError | None = None, flaky: bool = False,
                untested: bool = False) -> int:
    """An orch exit code in `git bisect run`'s convention: infrastructure trouble, a
    dropped config option, a flaky test and a run where every test skipped (`untested`)
    are "cannot test" (125), never "bad"; a usage error aborts."""
    if flaky or (untested and code == EXIT_TEST_FAILED):
        return BISECT_SKIP
    if code == EXIT_PASS:
        return BISECT_GOOD
    if code == EXIT_TEST_FAILED:
        return BISECT_BAD
    if code == EXIT_INFRA:
        return BISECT_SKIP
    if code == EXIT_USAGE and isinstance(error, ConfigError):
        return BISECT_SKIP
    return BISECT_ABORT
