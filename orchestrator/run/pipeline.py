"""A run: the walk over the stage table of stages.py (check -> apply -> config -> build ->
selftests -> [rootfs] -> boot -> test) for each arch, on a target, reported as it goes
(outputs.py).

`Run(options)` builds the run's state (state.py) and checks nothing: the check stage
validates the input and the host before anything slow. `Run.execute()` walks the stages
and returns the exit code. Only the stages that work in orch's worktree (apply, config,
build) hold the tree lock: two runs on one tree overlap everywhere else. A stage whose need
was not given is recorded as skipped. A failed test run is retried from a fresh boot
(--retries); fail-then-pass is flaky, not a verdict.
"""

from __future__ import annotations

from orchestrator import targets
from orchestrator.base.errors import (
    EXIT_INFRA,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    EXIT_TEST_FAILED,
    Interrupted,
    OrchError,
    worst,
)
from orchestrator.base.progress import Progress
from orchestrator.base.runner import Runner
from orchestrator.kernel import tree as treemod
from orchestrator.options import Options
from orchestrator.run import outputs
from orchestrator.run.stages import CHECK, MACHINE, RETRY_FROM, STAGES, TREE, Stage, check
from orchestrator.run.state import ArchState, RunState, default_output

__all__ = ["Run", "ArchState", "RunState", "Options", "default_output", "tree_lock"]


tree_lock = treemod.tree_lock  # the per-tree lock (kernel/tree.py)


class Run:
    def __init__(self, opts: Options):
        out = (opts.output or default_output()).resolve()
        progress = Progress(quiet=opts.quiet)
        target = targets.make(opts)  # the option combination, not the machine
        self.state = RunState(
            opts=opts, out=out, junit_path=(opts.junit or out / "junit.xml").resolve(),
            progress=progress, runner=Runner(dry_run=opts.dry_run, echo=progress.line),
            target=target, stages=[], states={a.name: ArchState(a) for a in opts.arches})
        s = self.state
        s.stages = [st for st in STAGES if st.wanted(s)]
        s.given = {st.gives for st in s.stages if st.gives}
        s.report = lambda: outputs.write(s)

    def validate(self) -> None:
        """The check stage's checks, raised: for callers that need them before a run."""
        check(self.state, None)

    # --- one stage ----------------------------------------------------------------------

    def run_stage(self, stg: Stage, st: ArchState | None) -> bool:
        """Run one stage (for one arch, or for the run); False when it failed or was
        skipped. A stage's error is recorded for the arches it concerns and not raised."""
        s = self.state
        records = s.run_stages if st is None else st.stages
        if st is not None and st.error is not None:
            records[stg.name] = {"status": "skipped", "reason": f"{st.error.stage} failed"}
            return False
        if st is None and all(a.error is not None for a in s.states.values()):
            records[stg.name] = {"status": "skipped", "reason": "every arch failed"}
            return False
        have = s.products | (st.products if st else set())
        missing = [n for n in stg.needs if n in s.given and n not in have]
        if missing:
            records[stg.name] = {"status": "skipped", "reason": f"no {missing[0]}"}
            return False
        try:
            with s.recording(st, stg.name):
                stg.do(s, st)
        except OrchError as exc:
            if isinstance(exc, Interrupted):
                raise
            # Bad input (the check stage) is the command's, not an arch's.
            s.fail([st] if st else list(s.states.values()), exc, name_arch=stg.name != "check")
            return False
        if stg.gives:
            (st.products if st else s.products).add(stg.gives)
        return True

    def walk(self, stages: list[Stage], st: ArchState | None = None) -> None:
        for stg in stages:
            if stg.per_arch and st is None:
                for a in self.state.states.values():
                    self.run_stage(stg, a)
            else:
                self.run_stage(stg, st)

    # --- the phases ---------------------------------------------------------------------

    def execute(self, until: str | None = None) -> int:
        """Walk the stages (all of them, or up to and including `until`, leaving the
        machine up for the caller: `orch boot`) and return the exit code."""
        s = self.state
        s.out.mkdir(parents=True, exist_ok=True)
        if not s.opts.output:
            _point_latest(s.out)
        s.write_reports()
        names = [stg.name for stg in s.stages]
        todo = s.stages[:names.index(until) + 1] if until else s.stages
        try:
            self.walk([stg for stg in todo if stg.phase == CHECK])
            tree_stages = [stg for stg in todo if stg.phase == TREE]
            if any(st.error is None for st in s.states.values()):
                self.tree_phase(tree_stages)
            else:  # recorded as skipped, without waiting for the tree
                self.walk(tree_stages)
            for st in s.states.values():
                self.machine_phase(st, [stg for stg in todo if stg.phase == MACHINE],
                                   keep_up=until is not None)
            code = worst(*[st.exit_code if st.exit_code is not None else
                           st.test_code if st.test_code is not None else EXIT_PASS
                           for st in s.states.values()])
            for st in s.states.values():
                if st.exit_code is None:
                    st.exit_code = st.test_code if st.test_code is not None else EXIT_PASS
        except (KeyboardInterrupt, Interrupted) as exc:
            # One signal stops the whole run: no other arch is started.
            self.close_machines()
            code = EXIT_INTERRUPTED
            why = str(exc) or "interrupted"
            s.progress.error(f"orch: {why}; partial results written to {s.out}")
            s.status = "interrupted"
            s.mark_unfinished("interrupted", why)
        except OrchError as exc:  # outside any stage: resolving the tree
            code = exc.exit_code
            s.fail([st for st in s.states.values() if st.error is None], exc)
            for st in s.states.values():
                s.skip_rest(st)
        except Exception as exc:
            # A bug in orch: record it in the partial results; cli prints it and maps the
            # exit code (3, or 128 under --bisect-exit: a bisection must stop).
            self.close_machines()
            s.status = "internal-error"
            s.exit_code = EXIT_INFRA
            s.mark_unfinished("internal", f"internal error: {type(exc).__name__}: {exc}")
            for st in s.states.values():
                st.exit_code = EXIT_INFRA if st.exit_code is None else st.exit_code
            s.write_reports()
            raise
        if s.status == "running":
            s.status = {EXIT_PASS: "passed", EXIT_TEST_FAILED: "failed"}.get(code, "error")
        for st in s.states.values():
            if st.exit_code is None:  # the run stopped before this arch had its own verdict
                st.exit_code = code
        s.exit_code = code
        s.write_reports()
        checked = s.run_stages.get("check", {}).get("status") == "ok"
        if until is None and checked:  # bad input: its one line is all there is to say
            self.summary()
        return code

    def tree_phase(self, stages: list[Stage]) -> None:
        """The worktree and build dirs are shared by every run of this tree: the lock
        covers apply, config and build. The kernel and its headers are then in the store,
        so what follows needs no tree and overlaps with other runs."""
        s = self.state
        s.tree = treemod.resolve(s.opts.tree, s.runner, progress=s.progress.line,
                                 meter=s.progress.meter)
        with tree_lock(s.tree):
            self.walk([stg for stg in stages if not stg.per_arch])
            for st in s.states.values():
                self.walk([stg for stg in stages if stg.per_arch], st)

    def machine_phase(self, st: ArchState, stages: list[Stage], keep_up: bool) -> None:
        """selftests, rootfs, boot, test; a failed test run is retried from a new boot."""
        s = self.state
        names = [stg.name for stg in stages]
        retry_at = names.index(RETRY_FROM) if RETRY_FROM in names else len(stages)
        self.walk(stages[:retry_at], st)
        if keep_up:
            self.walk(stages[retry_at:], st)
            return
        self.up_and_test(st, stages[retry_at:])
        attempt = 0
        while st.test_code == EXIT_TEST_FAILED and attempt < s.opts.retries:
            attempt += 1
            a = st.arch.name
            s.progress.line(f"[{a}] tests failed; retry {attempt}/{s.opts.retries}")
            first = [x for x in s.suites if x.arch == a]
            s.suites = [x for x in s.suites if x.arch != a]
            st.products.discard("machine")
            self.up_and_test(st, stages[retry_at:])
            if st.test_code == EXIT_PASS:
                # Failed, then passed on the same kernel: flaky, not a verdict.
                st.flaky = True
                s.progress.error(f"orch: [{a}] FLAKY: tests failed, then passed on "
                                 f"retry {attempt}")
                s.suites = [x for x in s.suites if x.arch != a] + first
                st.test_code = EXIT_TEST_FAILED

    # --- the machine ----------------------------------------------------------------------

    def up_and_test(self, st: ArchState, stages: list[Stage]) -> None:
        """Boot and test, then the machine goes; what comes after the tests (the coverage
        stage) runs without it."""
        names = [stg.name for stg in stages]
        cut = names.index("test") + 1 if "test" in names else len(stages)
        try:
            self.walk(stages[:cut], st)
        finally:
            self.close_machine(st)
        self.walk(stages[cut:], st)

    def close_machine(self, st: ArchState) -> None:
        if st.exit is not None:
            exit_, st.exit, st.machine = st.exit, None, None
            exit_.close()

    def close_machines(self) -> None:
        for st in self.state.states.values():
            try:
                self.close_machine(st)
            except Exception:  # noqa: BLE001 - already failing; QEMU dies with orch anyway
                pass

    def summary(self) -> None:
        s = self.state
        for name in s.states:
            c = s.counts(name)
            s.progress.line(f"{name}: {c['pass']} passed, {c['fail']} failed, "
                            f"{c['skip']} skipped, {c['error']} errors")
        if not s.opts.dry_run:
            s.progress.line(f"results: {s.junit_path}  {s.out / outputs.FILENAME}  "
                            f"metadata: {s.out / 'metadata.json'}  (exit {s.exit_code})")


def _point_latest(out) -> None:
    """orch-out/latest names the newest run (when orch chose the output directory)."""
    latest = out.parent / "latest"
    try:
        if latest.is_symlink() or not latest.exists():
            latest.unlink(missing_ok=True)
            latest.symlink_to(out.name)
    except OSError:
        pass
