"""kselftest's conventions (testing.kselftest): exit codes as orch statuses, and a
collection's `settings` timeout."""

import pytest

from orchestrator.base.errors import UsageError
from orchestrator.testing import kselftest


@pytest.mark.parametrize("code,status", [(0, "pass"), (1, "fail"), (2, "pass"), (3, "fail"),
                                         (4, "skip"), (124, "fail"), (126, "error"),
                                         (127, "error"), (134, "fail"), (None, "error"),
                                         (-1, "error")])
def test_verdict(code, status):
    assert kselftest.verdict(code)[0] == status


def test_verdict_labels():
    assert kselftest.verdict(0) == ("pass", "")
    assert kselftest.verdict(2) == ("pass", "xfail: exit 2 (KSFT_XFAIL), an expected failure")
    assert kselftest.verdict(3) == ("fail", "xpass: exit 3 (KSFT_XPASS), an unexpected pass")
    assert kselftest.verdict(134) == ("fail", "killed by signal 6 (SIGABRT)")


def test_exit_case_of_a_pass_has_no_message():
    c = kselftest.exit_case("prog", 0, "ok then\n\n")
    assert (c.name, c.status, c.kind, c.message, c.diagnostics) == (
        "prog", "pass", "exit_code", "", ["ok then"])


@pytest.mark.parametrize("text,want", [
    (None, 45.0),  # no settings file: kselftest's default
    ("timeout=180\n", 180.0),  # 6.12's mm/settings
    ("# a comment\n\ntimeout = 90\nother=x\n", 90.0),
    ("timeout=2m\n", 120.0),  # /usr/bin/timeout's suffixes, which runner.sh hands it
    ("timeout=0\n", None),  # no limit
    ("other=1\n", 45.0),
])
def test_timeout(tmp_path, text, want):
    if text is not None:
        (tmp_path / "settings").write_text(text)
    assert kselftest.timeout(tmp_path) == want
    if text is not None:
        assert kselftest.timeout(tmp_path / "settings") == want


def test_bad_timeout_names_the_file(tmp_path):
    (tmp_path / "settings").write_text("timeout=soon\n")
    with pytest.raises(UsageError, match="timeout=soon: not a duration"):
        kselftest.timeout(tmp_path)


def test_read_settings(tmp_path):
    (tmp_path / "settings").write_text("timeout=180\n#x=1\nweird line\na=b=c\n")
    assert kselftest.read_settings(tmp_path) == {"timeout": "180", "a": "b=c"}
    assert kselftest.read_settings(tmp_path / "nothing") == {}
