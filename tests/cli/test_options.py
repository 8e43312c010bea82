"""The option table in cli.py: parsing and writing back agree, commit-bisection steps keep
every option of the user's command line, and nonsense values are usage errors (exit 2)
that name the option."""

import sys
from pathlib import Path

import pytest

from orchestrator import options
from orchestrator.cli import main as cli
from orchestrator.run.bisect import STEP_OWN, step_command
from tests.support.orch import orch

# The bisection's own options (not passed to a step) and those a step sets itself.
BISECTION_ONLY = {"--good", "--bad", "--output", "--base", "--series"}
STEP_SETS = {"--quiet"}


def example_argv(cmd: str) -> list[str]:
    words = [cmd]
    for o in options.options_for(cmd):
        words += o.tokens(o.example)
    return words


def test_every_option_has_a_non_default_example():
    for o in options.OPTIONS:
        assert o.example is not None, o.flags
        for cmd in o.commands:
            assert o.tokens(o.example) != o.tokens(o.parsed_default(cmd)), (o.flags, cmd)


@pytest.mark.parametrize("cmd", ["run", "bisect", "boot"])
def test_command_line_round_trips(cmd):
    argv = example_argv(cmd)
    ns = cli.parser().parse_args(argv)
    again = options.command_line(cmd, ns)
    assert again[:2] == ["orch", cmd]
    assert again[2:] == argv[1:]
    ns2 = cli.parser().parse_args(again[1:])
    assert vars(ns2) == vars(ns)


def _step_for(user_argv: list[str], tmp_path):
    ns = cli.parser().parse_args(user_argv)
    opts = options.options_from(ns, user_argv)
    step = step_command(opts, tmp_path)
    assert step[:4] == [sys.executable, "-m", "orchestrator", "run"]
    return ns, step[3:]


def _minus_step_own(words: list[str], out: Path) -> list[str]:
    own = STEP_OWN + ["-o", str(out / "steps" / "current"),
                      "--steps-log", str(out / "steps.jsonl")]
    assert words[-len(own):] == own
    return words[:-len(own)]


def test_bisect_step_is_the_users_command_minus_bisection_options(tmp_path):
    user = example_argv("bisect")
    ns, step = _step_for(user, tmp_path)
    # The user's words, minus the bisection's options and their values:
    kept, i = [], 1
    flags = {f: o for o in options.options_for("bisect") for f in o.flags}
    while i < len(user):
        o = flags[user[i]]
        n = 1 if o.kind in ("flag", "const") else 2
        if o.flags[0] not in BISECTION_ONLY | STEP_SETS:
            kept += user[i:i + n]
        i += n
    assert _minus_step_own(step[1:], tmp_path) == kept
    # ... and the step, parsed as `orch run`, has the user's value for every kept option.
    sns = cli.parser().parse_args(step)
    for o in options.options_for("bisect"):
        if o.flags[0] in BISECTION_ONLY | STEP_SETS or "run" not in o.commands:
            continue
        assert getattr(sns, o.dest) == getattr(ns, o.dest), o.flags
    assert sns.in_worktree and sns.bisect_exit and sns.quiet and sns.series == "none"


def test_bisect_step_keeps_the_options_the_issue_lists(tmp_path):
    """The reported case: with --selftests DIR --test X every step used to fail."""
    st = tmp_path / "st"
    user = ["bisect", "--tree", str(tmp_path), "--good", "v6.1", "--bad", "HEAD",
            "--selftests", str(st), "--test", "crash", "--append", "quiet loglevel=3",
            "--accel", "tcg", "--memory", "2G", "--smp", "3", "--test-timeout", "42",
            "--boot-timeout", "99", "--ssh-timeout", "21", "--jobs", "2", "--debug",
            "--config", "kvm"]
    _, step = _step_for(user, tmp_path)
    for pair in (["--selftests", str(st)], ["--test", "crash"],
                 ["--append", "quiet loglevel=3"], ["--accel", "tcg"], ["--memory", "2G"],
                 ["--smp", "3"], ["--test-timeout", "42.0"], ["--boot-timeout", "99.0"],
                 ["--ssh-timeout", "21.0"], ["--jobs", "2"], ["--config", "kvm"],
                 ["--tree", str(tmp_path)], ["--retries", "1"]):
        i = step.index(pair[0])
        assert step[i:i + 2] == pair
    assert "--debug" in step and "--good" not in step and "--bad" not in step


def test_relative_paths_are_written_absolute(tmp_path, monkeypatch):
    """git bisect run starts the step in orch's worktree: a relative path would move."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "st").mkdir()
    (tmp_path / "frag.config").write_text("CONFIG_X=y\n")
    _, step = _step_for(["bisect", "--tree", ".", "--good", "a", "--bad", "b", "--test", "t",
                         "--selftests", "st", "--config", "frag.config"], tmp_path)
    assert step[step.index("--tree") + 1] == str(tmp_path)
    assert step[step.index("--selftests") + 1] == str(tmp_path / "st")
    assert step[step.index("--config") + 1] == str(tmp_path / "frag.config")


@pytest.mark.parametrize("args,flag", [
    (["--memory", "lots"], "--memory"),
    (["--memory", "0"], "--memory"),
    (["--memory", "100000G"], "--memory"),
    (["--smp", "0"], "--smp"),
    (["--smp", "-2"], "--smp"),
    (["--smp", "1000"], "--smp"),
    (["--jobs", "0"], "--jobs"),
    (["-j", "many"], "--jobs"),
    (["--boot-timeout", "0"], "--boot-timeout"),
    (["--ssh-timeout", "-5"], "--ssh-timeout"),
    (["--test-timeout", "inf"], "--test-timeout"),
    (["--test-timeout", "0.2"], "--test-timeout"),
    (["--retries", "-1"], "--retries"),
    (["--append", "a\nb"], "--append"),
    (["--append", "x" * 5000], "--append"),
    (["--accel", "hvf"], "--accel"),
    (["--coverage=../etc/x.c"], "--coverage"),
    (["--coverage=mm/mmap.h"], "--coverage"),
    (["--coverage="], "--coverage"),
])
def test_nonsense_values_are_usage_errors_naming_the_option(args, flag, tmp_path):
    r = orch("run", *args, "-o", str(tmp_path / "o"),
             env={"ORCH_CACHE": str(tmp_path / "cache")}, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"orch: usage: {flag}: "), lines
    assert "Optional suffix" not in r.stderr  # no fragment of QEMU's help text


def test_smp_beyond_the_machine_of_the_arch(tmp_path):
    r = orch("run", "--arch", "arm64", "--smp", "9", "--dry-run", "-o", str(tmp_path / "o"),
             env={"ORCH_CACHE": str(tmp_path / "cache")}, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "orch: usage: --smp 9: QEMU's virt machine (arm64) takes at most 8 CPUs"]


def test_usage_error_under_bisect_exit_aborts(tmp_path):
    r = orch("run", "--bisect-exit", "--memory", "lots", env={"ORCH_CACHE": str(tmp_path / "c")})
    assert r.returncode == 128 and "orch: usage: --memory: " in r.stderr


def test_coverage_takes_an_optional_list_of_files():
    """Bare `--coverage`: the series' own files; `--coverage=A,B`: and these; absent: no
    coverage build. Either way the profile (cell id, build dir) says coverage."""
    for argv, files, profiles in (
            (["run", "--coverage", "--arch", "arm64"], [], ["coverage"]),
            (["run", "--debug", "--coverage=mm/mmap.c,mm/a.c,mm/mmap.c"],
             ["mm/a.c", "mm/mmap.c"], ["debug", "coverage"]),
            (["run"], None, [])):
        o = options.options_from(cli.parser().parse_args(argv), argv)
        assert (o.coverage, o.profiles) == (files, profiles)
        words = options.command_line("run", o)
        again = options.options_from(cli.parser().parse_args(words[1:]), words[1:])
        assert again.coverage == files
