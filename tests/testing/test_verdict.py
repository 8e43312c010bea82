"""An arch's verdict from its suites (testing/testrun.py's verdict), the one rule `orch run`
and `orch lava collect` share."""

import pytest

from orchestrator.base.errors import EXIT_INFRA, EXIT_PASS, EXIT_TEST_FAILED
from orchestrator.testing import ktap
from orchestrator.testing.testrun import Suite, verdict


def suite(*statuses: str, binary: str = "t") -> Suite:
    s = Suite("x86_64", binary)
    s.cases = [ktap.TestResult(f"c{i}", st) for i, st in enumerate(statuses)]
    s.cases.append(ktap.TestResult("dmesg_clean", "pass", kind="dmesg_clean"))
    return s


@pytest.mark.parametrize("suites, lost, want", [
    ([suite("pass", "skip")], False, (EXIT_PASS, False)),
    ([suite("pass"), suite("fail", binary="u")], False, (EXIT_TEST_FAILED, False)),
    ([suite("pass", "error")], False, (EXIT_TEST_FAILED, False)),  # a hang: the test's
    ([suite("pass", "error")], True, (EXIT_INFRA, False)),  # the machine went away
    ([suite("fail", "error")], True, (EXIT_INFRA, False)),
    ([suite("skip"), suite("skip", binary="u")], False, (EXIT_TEST_FAILED, True)),
    ([], False, (EXIT_TEST_FAILED, True)),  # nothing ran: never a pass
])
def test_verdict(suites, lost, want):
    assert verdict(suites, lost) == want
