"""The stage walk (pipeline.Run over stages.STAGES) with fake stages: what runs, what is
skipped after a failure, which stages a target has, retries, and `until`."""

from contextlib import ExitStack, nullcontext
from pathlib import Path

import pytest

from orchestrator import options, targets
from orchestrator.base.errors import ApplyError, BuildError
from orchestrator.kernel import arch
from orchestrator.kernel import tree as treemod
from orchestrator.run import pipeline, stages
from orchestrator.run.pipeline import Options, Run
from orchestrator.run.stages import Stage
from orchestrator.testing import ktap, testrun


class FakeTree:
    key = "fake"
    spec = "linux-fake"
    kind = "tarball"
    origin = Path("/nonexistent/linux-fake.tar.xz")


@pytest.fixture
def make_run(tmp_path, monkeypatch, isolated_cache):
    monkeypatch.setattr(treemod, "resolve", lambda *a, **k: FakeTree())
    monkeypatch.setattr(pipeline, "tree_lock", lambda tree: nullcontext())

    def make(table, **kw):
        opts = options.make(output=tmp_path / "o", quiet=True, **kw)
        run = Run(opts)
        run.state.stages = [s for s in table if s.wanted(run.state)]
        run.state.given = {s.gives for s in run.state.stages if s.gives}
        return run

    return make


def _ok(run, st):
    pass


def _tests(results):
    """A test stage whose binary reports `results` (one list per attempt)."""
    attempts = iter(results)

    def do(run, st):
        s = testrun.Suite(st.arch.name, "t")
        s.cases = [ktap.TestResult(n, status) for n, status in next(attempts)]
        run.suites.append(s)
        st.test_code = 1 if any(c.status == "fail" for c in s.cases) else 0

    return do


def table(build=_ok, test=None, apply=_ok):
    return [
        Stage("apply", apply, gives="source", phase=stages.TREE, per_arch=False),
        Stage("config", _ok, needs=("source",), gives="config", phase=stages.TREE),
        Stage("build", build, needs=("config",), gives="kernel", phase=stages.TREE),
        Stage("selftests", _ok, needs=("kernel",), gives="tests"),
        Stage("rootfs", _ok, needs=("tests",), gives="initramfs",
              wanted=lambda run: run.target.wants_initramfs),
        Stage("boot", _ok, needs=("kernel", "tests", "initramfs"), gives="machine"),
        Stage("test", test or _tests([[("a", "pass")]]), needs=("machine",)),
    ]


def test_all_stages_run_in_order(make_run):
    run = make_run(table())
    assert run.execute() == 0
    st = run.state.states["x86_64"]
    assert list(st.stages) == ["config", "build", "selftests", "rootfs", "boot", "test"]
    assert all(r["status"] == "ok" for r in st.stages.values())
    assert run.state.apply_stage["status"] == "ok"


def test_stages_after_a_failure_are_skipped(make_run):
    def broken(run, st):
        if st.arch.name == "arm64":
            raise BuildError("arm64 kernel build failed: boom")

    run = make_run(table(build=broken), arches=[arch.X86_64, arch.ARM64])
    assert run.execute() == 3
    arm, x86 = run.state.states["arm64"], run.state.states["x86_64"]
    assert arm.stages["build"]["status"] == "failed"
    assert {arm.stages[n]["status"] for n in ("selftests", "rootfs", "boot", "test")} == \
        {"skipped"}
    assert arm.exit_code == 3 and x86.exit_code == 0  # each cell has its own verdict
    assert [s.binary for s in run.state.suites if s.arch == "arm64"] == ["orch-build"]


def test_a_run_wide_failure_concerns_every_arch(make_run):
    def no_apply(run, st):
        raise ApplyError("patch 0001-x.patch does not apply")

    run = make_run(table(apply=no_apply), arches=[arch.X86_64, arch.ARM64])
    assert run.execute() == 3
    for st in run.state.states.values():
        assert st.stages["config"] == {"status": "skipped", "reason": "apply failed"}
        assert st.exit_code == 3
    assert sorted(s.name for s in run.state.suites) == ["arm64.orch-apply", "x86_64.orch-apply"]


def test_ssh_target_has_no_rootfs_stage_and_checks_first(make_run):
    run = make_run(stages.STAGES, target="ssh://board", no_deploy=True)
    names = [s.name for s in run.state.stages]
    assert "rootfs" not in names and names[:2] == ["check", "preflight"]
    qemu = make_run(stages.STAGES)
    assert [s.name for s in qemu.state.stages] == ["check", "apply", "config", "build",
                                                   "selftests", "rootfs", "boot", "test"]


def test_retry_fail_then_pass_is_flaky(make_run):
    run = make_run(table(test=_tests([[("a", "fail")], [("a", "pass")]])), retries=1)
    assert run.execute() == 1
    st = run.state.states["x86_64"]
    assert st.flaky
    assert [c.status for s in run.state.suites for c in s.cases] == ["fail"]  # the first verdict


def test_until_keeps_the_machine_up(make_run):
    closed = []

    def boot(run, st):
        st.exit = ExitStack()
        st.exit.callback(lambda: closed.append(st.arch.name))
        st.machine = object()

    t = table()
    t[5] = Stage("boot", boot, needs=("kernel",), gives="machine")
    run = make_run(t)
    assert run.execute(until="boot") == 0
    st = run.state.states["x86_64"]
    assert "test" not in st.stages and st.machine is not None and closed == []
    run.close_machine(st)
    assert closed == ["x86_64"] and st.machine is None


def test_usage_errors_for_target_options(make_run):
    from orchestrator.base.errors import UsageError

    with pytest.raises(UsageError, match="--no-deploy is for --target ssh"):
        targets.make(options.make(no_deploy=True))
    with pytest.raises(UsageError, match="one --arch"):
        targets.make(Options(target="ssh://b", arches=[arch.X86_64, arch.ARM64]))
    with pytest.raises(UsageError, match="choose one"):
        targets.make(options.make(target="ssh://b", no_deploy=True, reboot_cmd="x"))


def test_building_a_run_checks_nothing_the_check_stage_does(make_run, tmp_path, monkeypatch):
    """Run() is pure: bad input and a bare host fail in the check stage, with exit 2, the
    one line, and results written (an error testcase), not in the constructor."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no flex, bison, qemu, gcc
    run = make_run(stages.STAGES, series=str(tmp_path / "no-such.mbox"))
    assert run.execute() == 2
    st = run.state.states["x86_64"]
    assert run.state.run_stages["check"]["status"] == "failed"
    assert "no-such.mbox" in run.state.run_stages["check"]["error"]
    assert st.stages["config"]["status"] == "skipped"
    assert [s.name for s in run.state.suites] == ["x86_64.orch-usage"]
    assert (tmp_path / "o" / "junit.xml").is_file()


def test_the_check_stage_finds_a_missing_host_tool(make_run, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    run = make_run(stages.STAGES, series="none")
    assert run.execute() == 2
    assert run.state.run_stages["check"]["error"].startswith("git not found")
    assert run.state.run_stages.get("apply", {}).get("status") == "skipped"


def test_the_check_stage_finds_a_missing_gcov_with_coverage(make_run, tmp_path, monkeypatch):
    """--coverage needs the arch's gcov after the tests: missing, the run stops at the
    check stage, one line, before building anything."""
    bin_ = tmp_path / "bin"  # every program of /usr/bin but gcov
    bin_.mkdir()
    for p in Path("/usr/bin").iterdir():
        if "gcov" not in p.name:
            (bin_ / p.name).symlink_to(p)
    monkeypatch.setenv("PATH", str(bin_))
    run = make_run(stages.STAGES, series="none", arches=[arch.ARM64], coverage=[])
    assert run.execute() == 2
    assert run.state.run_stages["check"]["error"] == (
        "aarch64-linux-gnu-gcov not found (apt-get install gcc-aarch64-linux-gnu)")
    assert run.state.run_stages.get("apply", {}).get("status") == "skipped"


def test_a_run_where_every_test_skipped_fails_ci_and_cannot_test_a_commit(make_run):
    """Nothing really ran: CI must not go green (exit 1), and `git bisect run` must not be
    told "bad" either: it is "cannot test" (125), as infrastructure trouble is."""
    from orchestrator.base.errors import BISECT_BAD, BISECT_SKIP
    from orchestrator.run.bisect import bisect_exit, outcome_of

    def skipped(run, st):
        s = testrun.Suite(st.arch.name, "t")
        s.cases = [ktap.TestResult("move", "skip", message="feature missing")]
        run.suites.append(s)
        st.test_code = stages.verdict(run, st, lost=False)

    run = make_run(table(test=skipped))
    assert run.execute() == 1
    assert bisect_exit(run.state, 1) == BISECT_SKIP
    assert outcome_of(run.state, 1) == ("skip", "no test ran: every test skipped")

    # one arch really failed, the other skipped everything: that is a real "bad"
    def half(run, st):
        s = testrun.Suite(st.arch.name, "t")
        s.cases = [ktap.TestResult("move", "fail" if st.arch.name == "arm64" else "skip")]
        run.suites.append(s)
        st.test_code = stages.verdict(run, st, lost=False)

    run = make_run(table(test=half), arches=[arch.X86_64, arch.ARM64])
    assert run.execute() == 1
    assert bisect_exit(run.state, 1) == BISECT_BAD


def _machine_with(runs):
    """A boot stage whose machine runs test binary `t`; each run of it reports the next
    list of (case, status) of `runs`; `calls` counts the runs."""
    from orchestrator.targets.protocol import Machine
    from orchestrator.testing.kselftest import Program
    outcomes, calls = iter(runs), []

    def fake_binary(ssh, arch_, name, timeout, outdir, **kw):
        calls.append(name)
        s = testrun.Suite(arch_, name)
        s.cases = [ktap.TestResult(n, st) for n, st in next(outcomes)]
        return s

    def boot(run, st):
        st.machine = Machine(session=object(), tests_dir="/t")
        st.programs = [Program("t", "selftests", "t", "t", timeout=5)]

    return boot, fake_binary, calls


@pytest.mark.parametrize("runs, code, done, message", [
    # a reproducer that fails on its third run: the binary fails, and says which run
    ([[("r", "pass")], [("r", "pass")], [("r", "fail")], [("r", "pass")]], 1, 3,
     "run 3 of 4"),
    # four passes: a pass, and it says so
    ([[("r", "pass")]] * 4, 0, 4, "passed 4 runs of 4"),
    # the machine went away during the second run: infrastructure, and which run it was
    ([[("r", "pass")], [("ssh", "error")]], 3, 2, "run 2 of 4: "),
])
def test_repeat_runs_a_binary_until_it_fails(make_run, monkeypatch, runs, code, done,
                                              message):
    boot, fake_binary, calls = _machine_with(runs)
    monkeypatch.setattr(testrun, "run_binary", fake_binary)
    t = table(test=stages.test)
    t[5] = Stage("boot", boot, needs=("kernel", "tests", "initramfs"), gives="machine")
    run = make_run(t, repeat=4)
    assert run.execute() == code
    assert len(calls) == done
    (case,) = [c for s in run.state.suites for c in s.cases]
    assert case.message.startswith(message) and case.message.count(" of 4") == 1


def test_repeat_is_refused_where_the_target_runs_the_tests_itself(make_run):
    run = make_run(stages.STAGES, target="lava", repeat=2)
    assert run.execute() == 2
    assert "--repeat 2: --target lava runs its tests itself, once" in \
        run.state.run_stages["check"]["error"]
