"""Progress: a log (not a TTY) gets at most one progress line every 30 s, --quiet nothing,
a terminal a live line with done/total and the time left; the time-left estimate."""

import io
import json

import pytest

from orchestrator.base import progress as pmod
from orchestrator.base.progress import Progress, time_left


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _log(quiet=False, tty=False):
    clock, out = Clock(), io.StringIO()
    return Progress(out, quiet=quiet, clock=clock, tty=tty), clock, out


def test_a_log_gets_one_progress_line_per_30_seconds():
    p, clock, out = _log()
    m = p.meter("build x86_64", total=200, expected=100.0)
    for step in range(100):  # a step per second for 100 s
        clock.t += 1
        m.update(f"CC mm/f{step}.o")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # at 30, 60 and 90 s
    assert lines[0] == "build x86_64: 30/200 (15%), 2:50 left: CC mm/f29.o"


def test_plain_status_is_throttled_too_and_a_line_restarts_the_wait():
    p, clock, out = _log()
    for _ in range(20):
        clock.t += 1
        p.status("[x86_64] booting (tcg)")
    p.line("[x86_64] kernel built")
    for _ in range(29):
        clock.t += 1
        p.status("[x86_64] booting (tcg)")
    assert out.getvalue() == "[x86_64] kernel built\n"
    clock.t += 1
    p.status("[x86_64] booting (tcg)")
    assert out.getvalue().splitlines()[-1] == "[x86_64] booting (tcg)"


def test_quiet_stays_quiet_but_errors_show():
    p, clock, out = _log(quiet=True)
    m = p.meter("build x86_64", total=10)
    for _ in range(100):
        clock.t += 31
        m.update("CC x.o")
        p.status("x")
    p.line("done")
    assert out.getvalue() == ""
    p.error("orch: boom")
    assert out.getvalue() == "orch: boom\n"


def test_a_terminal_gets_counts_a_bar_and_the_time_left():
    p, clock, out = _log(tty=True)
    m = p.meter("build arm64", total=10, expected=50.0)
    clock.t += 1
    m.update("CC mm/mmap.o", done=3)
    shown = out.getvalue()
    assert shown.startswith("\r\x1b[K")
    assert "build arm64" in shown and "3/10 (30%)" in shown and "0:02 left" in shown
    assert "━" in shown and "CC mm/mmap.o" in shown  # rich's bar
    p.line("[arm64] kernel built")
    assert out.getvalue().endswith("\r\x1b[K[arm64] kernel built\n")


@pytest.mark.parametrize("elapsed,done,total,expected,left", [
    (10, 5, 100, None, None),  # no previous run: no estimate
    (10, 0, None, 60.0, 50.0),  # no count: what is left of last time's duration
    (90, 0, None, 60.0, 0.0),  # longer than last time: never negative
    (5, 5, 100, 60.0, 57.0),  # early: last time's duration, scaled by what is left
    (30, 50, 100, 60.0, 30.0),  # from a tenth on: this run's own pace
    (30, 20, 100, 60.0, 120.0),  # a slower machine than last time
])
def test_time_left(elapsed, done, total, expected, left):
    assert time_left(elapsed, done, total, expected) == left


def test_build_estimate_is_the_latest_kernel_built_the_same_way(isolated_cache):
    from orchestrator.kernel import arch, build, estimates

    def stored(key, when, **info):
        k = build.store_for(arch.X86_64, key)
        k.store.mkdir(parents=True)
        (k.store / "kernel.json").write_text(json.dumps(info))
        import os
        os.utime(k.store / "kernel.json", (when, when))

    assert estimates.estimate(arch.X86_64, cold=True) == (None, None)
    stored("a" * 20, 100, steps=2400, compile_seconds=300.0, cold=True)
    stored("b" * 20, 200, steps=2500, compile_seconds=350.0, cold=True)
    stored("c" * 20, 300, steps=12, compile_seconds=11.0, cold=False)
    stored("d" * 20, 400, compile_seconds=11.0)  # stored before steps were counted
    assert estimates.estimate(arch.X86_64, cold=True) == (2500, 350.0)
    assert estimates.estimate(arch.X86_64, cold=False) == (None, 11.0)  # no total: edit-sized
    assert estimates.estimate(arch.ARM64, cold=True) == (None, None)


def test_log_interval_is_30_seconds():
    assert pmod.LOG_INTERVAL == 30.0
