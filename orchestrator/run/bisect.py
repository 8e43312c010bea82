"""`orch bisect`: find the first bad patch of a series, or the first bad commit of a tree.

A step is an orch run (build, boot, named tests). Its outcome maps to git bisect's
convention: tests pass -> good, a test fails -> bad, anything that prevented testing
(apply, build, boot, SSH; a flaky test) -> skip, never bad.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.base.errors import (
    BISECT_BAD,
    BISECT_GOOD,
    EXIT_INTERRUPTED,
    EXIT_TEST_FAILED,
    Interrupted,
    OrchError,
    UsageError,
    bisect_code,
)
from orchestrator.base.files import write_json
from orchestrator.base.progress import Progress
from orchestrator.base.runner import Runner
from orchestrator.kernel import dirty as dirtymod
from orchestrator.kernel import series as seriesmod
from orchestrator.kernel import tree as treemod
from orchestrator.options import Options, bisect_step_argv
from orchestrator.run.pipeline import Run, tree_lock
from orchestrator.run.state import RunState

# Exit codes of `orch bisect`.
EXIT_FOUND = 0  # a first bad patch/commit was identified
EXIT_NOT_FOUND = 1  # endpoints did not behave (good end fails, bad end passes) or all skipped
NOTHING_RAN = "no test ran: every test skipped"


@dataclass
class Step:
    label: str  # "prefix 3/5" or a commit id
    ident: str  # patch name or commit
    subject: str
    result: str  # good | bad | skip
    why: str
    seconds: float
    compiled: bool | None
    junit: str


def untested(run: RunState) -> bool:
    """Every arch that did not pass skipped all its tests: no test really failed."""
    states = run.states.values()
    return any(st.untested for st in states) and not any(
        st.exit_code == EXIT_TEST_FAILED and not st.untested for st in states)


def bisect_exit(run: RunState, code: int) -> int:
    """A run's exit code in `git bisect run`'s convention (`--bisect-exit`, orch bisect)."""
    errors = [st.error for st in run.states.values() if st.error]
    return bisect_code(code, errors[0] if errors else None,
                       flaky=any(st.flaky for st in run.states.values()),
                       untested=untested(run))


def outcome_of(run: RunState, code: int) -> tuple[str, str]:
    errors = [st.error for st in run.states.values() if st.error]
    b = bisect_exit(run, code)
    if b == BISECT_GOOD:
        return "good", "tests passed"
    if b == BISECT_BAD:
        return "bad", "a test failed"
    if any(st.flaky for st in run.states.values()):
        return "skip", "flaky: failed, then passed on retry"
    if untested(run):
        return "skip", NOTHING_RAN
    return "skip", str(errors[0]) if errors else f"cannot test (exit {code})"


def run_step(opts: Options, out: Path, label: str, ident: str, subject: str,
             progress: Progress) -> Step:
    opts = dataclasses.replace(opts, output=out, junit=None, quiet=True)
    start = time.monotonic()
    try:
        step_run = Run(opts)
        code = step_run.execute()
        run = step_run.state
        if code == EXIT_INTERRUPTED:
            raise Interrupted(run.status)  # SIGTERM/Ctrl-C stops the bisection too
        result, why = outcome_of(run, code)
    except OrchError as exc:
        result, why = ("skip", str(exc))
        run = None
    secs = round(time.monotonic() - start, 1)
    compiled = None
    if run:
        c = [st.compiled for st in run.states.values() if st.compiled is not None]
        compiled = any(c) if c else None
    step = Step(label, ident, subject, result, why, secs, compiled, str(out / "junit.xml"))
    progress.line(f"bisect: {label:>14}  {result:4}  {secs:7.1f}s  "
                  f"{'compiled' if compiled else 'no compile' if compiled is False else '':10}"
                  f"  {subject[:60]}" + (f"  ({why})" if result == "skip" else ""))
    return step


UNTESTED = "untested"  # a step's result in search(): it ran, and every test skipped


@dataclass
class Verdict:
    first_bad: int = 0  # 1-based index of the first bad patch
    candidates: list[int] = dataclasses.field(default_factory=list)  # when skips hide it
    error: str = ""
    # The first prefix the tests run on, when the base does not have what they test (a
    # reproducer of the series' own ioctl skips where there is no such ioctl): 0 otherwise
    testable_from: int = 0


def search(n: int, test) -> Verdict:
    """Binary search over prefixes 0..n of a series: the smallest k whose prefix is bad.

    `test(k)` returns good, bad, skip (could not be tested) or untested (it ran and every
    test skipped). Prefix n must be bad. Prefix 0 must be good, or untested: then the
    search starts at the first prefix the tests run on (first_testable). Skipped prefixes
    are stepped around, as `git bisect skip` does; if they hide the answer, every
    candidate is returned. No prefix is tested twice.
    """
    results: dict[int, str] = {}

    def t(k: int) -> str:
        if k not in results:
            results[k] = test(k)
        return results[k]

    if t(n) != "bad":
        return Verdict(error=f"the whole series does not fail the tests (it is {results[n]})")
    good = start = 0
    if t(0) == UNTESTED:
        below, good = first_testable(n, t)
        start = good
        if results[good] == "bad":  # the patch that made them run made them fail
            hidden = [k for k in range(below + 1, good) if results.get(k) != UNTESTED]
            return Verdict(first_bad=good, candidates=hidden + [good] if hidden else [],
                           testable_from=start)
    if results[good] != "good":
        return Verdict(error=f"the base tree without patches is not good (it is {results[0]})"
                       if good == 0 else f"prefix {good}, the first the tests run on, is not "
                       f"good (it is {results[good]})", testable_from=start)
    good = max(k for k in range(good, n) if results.get(k) == "good")
    bad = min(k for k in range(good + 1, n + 1) if results.get(k) == "bad")
    while True:
        todo = [k for k in range(good + 1, bad) if k not in results]
        if not todo:
            break
        mid = min(todo, key=lambda k: (abs(k - (good + bad) / 2), k))
        r = t(mid)
        if r == "good":
            good = mid
        elif r == "bad":
            bad = mid
    skipped = [k for k in range(good + 1, bad) if results.get(k) in ("skip", UNTESTED)]
    return Verdict(first_bad=bad, candidates=skipped + [bad] if skipped else [],
                   testable_from=start)


def first_testable(n: int, t) -> tuple[int, int]:
    """The first prefix whose tests run, when on the base every test skipped: what they
    test comes with some patch and stays (a series adds its ioctl once), so prefixes below
    it skip and prefixes from it on run. Binary search between 0 (untested) and n (ran); a
    step that could not be tested (infrastructure) is stepped around, upward first, then
    downward. Returns the last prefix known untested and the first known to run (with only
    skips between them, if any)."""
    lo, hi = 0, n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        for k in [*range(mid, hi), *range(mid - 1, lo, -1)]:
            r = t(k)
            if r == UNTESTED:
                lo = k
                break
            if r in ("good", "bad"):
                hi = k
                break
        else:  # (lo, hi) all could not be tested
            break
    return lo, hi


def ignore_dirty(opts: Options, progress: Progress, tree: treemod.Tree | None = None) -> None:
    """A bisection tests commits (or series prefixes), never what is on disk: a checkout's
    uncommitted changes are left out, and one line says so."""
    if tree is None:
        if not opts.tree or opts.tree in treemod.EMBEDDED:
            return
        tree = treemod.resolve(opts.tree, Runner(), progress=progress.line)
    d = dirtymod.state(tree, Runner())
    if d is not None:
        progress.line(f"orch bisect: {d.checkout} has uncommitted changes ({d.describe()}): "
                      f"ignored, a bisection tests commits only")


def bisect_series(opts: Options, series_spec: str, out: Path) -> int:
    """First patch of the series that makes the named tests fail, testing prefixes."""
    progress = Progress(quiet=opts.quiet)
    opts = dataclasses.replace(opts, committed=True)
    ignore_dirty(opts, progress)
    patches = seriesmod.load(series_spec)
    if not patches:
        raise UsageError("orch bisect --series: the series is empty")
    n = len(patches)
    steps: list[Step] = []

    def test(k: int) -> str:
        p = patches[k - 1] if k else None
        step = run_step(dataclasses.replace(opts, patches=patches[:k], series=series_spec),
                        out / f"step-{len(steps) + 1:02d}-prefix-{k}", f"prefix {k}/{n}",
                        p.name if p else "(base)", p.subject if p else "base tree", progress)
        steps.append(step)
        write_log()
        return UNTESTED if step.result == "skip" and step.why == NOTHING_RAN else \
            step.result

    def write_log() -> None:
        write_json(out / "bisect.json", {
            "mode": "series", "series": series_spec, "patches": [p.name for p in patches],
            "tests": opts.tests, "steps": [dataclasses.asdict(s) for s in steps],
            "first_bad": first_bad, "status": status, "testable_from": testable_from,
        })

    first_bad: dict | None = None
    status = "running"
    testable_from = 0
    out.mkdir(parents=True, exist_ok=True)
    verdict = search(n, test)
    testable_from = verdict.testable_from
    if testable_from:
        k = testable_from
        progress.line(f"bisect: every test skips below prefix {k} (what they test comes "
                      f"with [{k}/{n}] {patches[k - 1].name}): searched from there")
    if verdict.error:
        status = verdict.error
        write_log()
        progress.error(f"orch bisect: {status}")
        return EXIT_NOT_FOUND
    bad = verdict.first_bad
    p = patches[bad - 1]
    if verdict.candidates:
        names = [patches[k - 1].name for k in verdict.candidates]
        status = "ambiguous: the first bad patch is one of " + ", ".join(names)
        progress.error(f"orch bisect: {status} (untestable steps in between)")
        write_log()
        return EXIT_NOT_FOUND
    first_bad = {"index": bad, "name": p.name, "subject": p.subject}
    status = "found"
    write_log()
    progress.line(f"first bad patch: [{bad}/{n}] {p.name}: {p.subject}")
    progress.line(f"{len(steps)} steps, {sum(s.seconds for s in steps):.0f}s; "
                  f"log: {out / 'bisect.json'}")
    return EXIT_FOUND


def bisect_commits(opts: Options, good: str, bad: str, out: Path, argv: list[str]) -> int:
    """`git bisect run` in orch's worktree for the tree, with `orch run --in-worktree`
    as the step: it builds, boots and tests the commit git bisect checked out."""
    progress = Progress(quiet=opts.quiet)
    r = Runner()
    tree = treemod.resolve(opts.tree, r, progress=progress.line)
    ignore_dirty(opts, progress, tree)
    good_c = treemod.resolve_base(tree, good, r)
    bad_c = treemod.resolve_base(tree, bad, r)
    out.mkdir(parents=True, exist_ok=True)
    Run(dataclasses.replace(opts, output=out / "prepare", series="none")).validate()
    with tree_lock(tree):
        wt = treemod.prepare_worktree(tree, bad_c, r)
        g = ["git", "-C", str(wt)]
        r.run([*g, "bisect", "reset"], always=True)
        res = r.run([*g, "bisect", "start", bad_c, good_c], always=True)
        if not res.ok:
            raise UsageError(f"git bisect start failed: {res.tail[-1] if res.tail else ''}")
        step = step_command(opts, out)
        try:
            env = dict(os.environ, ORCH_TREE_LOCK_HELD=tree.key)
            progress.line(f"bisect: git bisect run {shlex.join(step)}   (in {wt})")
            start = time.monotonic()
            res = r.run([*g, "bisect", "run", *step], env=env, log=out / "git-bisect-run.log",
                        on_line=lambda ln: progress.status(ln))
            log = r.run([*g, "bisect", "log"], always=True).output
            (out / "git-bisect.log").write_text(log)
            text = (out / "git-bisect-run.log").read_text()
            first = None
            for line in text.splitlines():
                if line.endswith("is the first bad commit"):
                    first = line.split()[0]
            subject = ""
            if first:
                subject = r.run([*g, "log", "-1", "--format=%s", first],
                                always=True).output.strip()
        finally:
            # Also on SIGTERM/Ctrl-C: orch's worktree is left out of bisect mode.
            r.run([*g, "bisect", "reset"], always=True)
    steps = []
    sl = out / "steps.jsonl"
    if sl.exists():
        steps = [json.loads(line) for line in sl.read_text().splitlines() if line.strip()]
    status = "found" if first else ("failed: " + (res.tail[-1] if res.tail else ""))
    write_json(out / "bisect.json", {
        "mode": "commits", "tree": opts.tree, "good": good_c, "bad": bad_c,
        "tests": opts.tests, "steps": steps, "status": status,
        "first_bad": {"commit": first, "subject": subject} if first else None,
        "seconds": round(time.monotonic() - start, 1), "command": shlex.join(argv),
    })
    for s in steps:
        progress.line(f"bisect: {s['commit'][:12]}  {s['result']:4}  {s['seconds']:7.1f}s  "
                      f"{s['subject'][:60]}")
    if not first:
        progress.error(f"orch bisect: git bisect run did not find a first bad commit: "
                       f"{res.tail[-1] if res.tail else ''}")
        return EXIT_NOT_FOUND
    progress.line(f"first bad commit: {first} {subject}")
    progress.line(f"{len(steps)} steps; log: {out / 'git-bisect.log'}")
    return EXIT_FOUND


def step_command(opts: Options, out: Path) -> list[str]:
    """The command `git bisect run` runs at each commit: `orch run` with every option the
    user gave `orch bisect` (from cli's option table), minus the bisection's own (--good,
    --bad, -o, --series, --base), plus what makes it a step (the commit git bisect checked
    out, the bisect exit convention, its own output dir and steps log)."""
    return [sys.executable, "-m", "orchestrator", "run", *bisect_step_argv(opts),
            *STEP_OWN, "-o", str(out / "steps" / "current"),
            "--steps-log", str(out / "steps.jsonl")]


# What a commit-bisection step adds to the user's options (besides -o and --steps-log).
STEP_OWN = ["--in-worktree", "--series", "none", "--bisect-exit", "-q"]


def record_step(path: Path, run: RunState, code: int) -> None:
    """Called by `orch run --steps-log`: one JSON line per git bisect step."""
    result, why = outcome_of(run, code)
    compiled = [st.compiled for st in run.states.values() if st.compiled is not None]
    subject = ""
    if run.worktree:
        subject = Runner().run(["git", "-C", str(run.worktree), "log", "-1", "--format=%s"],
                               always=True).output.strip()
    elapsed = (time.time() - run.started.timestamp())
    n = len(path.read_text().splitlines()) + 1 if path.exists() else 1
    # Keep each step's output (JUnit, logs) under its own name.
    kept = run.out.with_name(f"{n:02d}-{run.head_commit[:12]}")
    if run.out.exists() and not kept.exists():
        os.replace(run.out, kept)
    with open(path, "a") as f:
        f.write(json.dumps({"commit": run.head_commit, "subject": subject, "result": result,
                            "why": why, "seconds": round(elapsed, 1),
                            "compiled": any(compiled) if compiled else None,
                            "output": str(kept), "junit": str(kept / "junit.xml")}) + "\n")

