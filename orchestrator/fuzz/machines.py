"""The two kernels of a fuzz run, one arch at a time: each side is an `orch run` walked up
to its booted machine (run/pipeline.py's stages: apply, config, build, the executor built as
the run's selftests, rootfs, boot), so fuzz builds, stores and boots kernels exactly as a
run does and shares their store keys.

`Side.run_batch` runs a batch of programs on the side's machine and returns one outcome per
program. A kernel crash or a hang of the whole guest during a program is that program's
outcome (`crash`, `hung`): the machine is booted again and the rest of the batch goes on.
A machine lost for another reason (QEMU killed, SSH gone) is infrastructure: booted again
and the batch retried once, then an InfraError (exit 3), never a divergence.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from orchestrator.base.errors import EXIT_PASS, InfraError, UsageError
from orchestrator.base.paths import FUZZ
from orchestrator.fuzz import trace
from orchestrator.fuzz.model import Program, batch_text
from orchestrator.kernel import problems
from orchestrator.kernel.arch import Arch
from orchestrator.options import Options
from orchestrator.run import outputs
from orchestrator.run.pipeline import Run
from orchestrator.run.state import ArchState
from orchestrator.testing import lostmachine

EXECUTOR = "orch_fuzz"
# Kernel reports after which the machine is booted again (a WARNING is not one of them):
# the kernel goes on, but maybe with a lock held or a page leaked, and the next programs
# would see that rather than what they do.
HURT_RE = re.compile("|".join(pat for p in problems.PROBLEMS if p.kind not in ("warning",)
                              for pat in p.patterns))
BATCH = "/tmp/orch-fuzz-batch.txt"


def side_options(base: Options, arch: Arch, tree: str | None, series: str | None,
                 out: Path, coverage: bool = False) -> Options:
    """One side's run: the user's run options, this arch, tree and series, the fuzz
    executor as its only selftest. `coverage`: the user's --coverage build (the
    prototype's, guide.py); otherwise a plain one."""
    profiles = [p for p in base.profiles if coverage or p != "coverage"]
    return dataclasses.replace(base, arches=[arch], tree=tree, base=base.base if tree ==
                               base.tree else None, series=series or "none", output=out,
                               junit=None, selftests=FUZZ, tests=None, kselftest=[],
                               kselftest_tree=None, retries=0, patches=None,
                               profiles=profiles,
                               coverage=base.coverage if coverage else None)


@dataclass
class Side:
    name: str  # "prototype" or "reference"
    run: Run
    say: Callable[[str], None]
    boots: int = 0
    crashes: int = 0
    hangs: int = 0
    seconds: float = 0.0  # spent running batches

    @property
    def st(self) -> ArchState:
        return next(iter(self.run.state.states.values()))

    @property
    def cell_id(self) -> str:
        return outputs.cell(self.run.state, self.st).id

    def cell(self):
        return outputs.cell(self.run.state, self.st)

    def up(self) -> None:
        """Build (or take from the store) and boot the kernel, then set the guest up."""
        code = self.run.execute(until="boot")
        self._ready(code)

    def _ready(self, code: int = EXIT_PASS) -> None:
        st = self.st
        if isinstance(st.error, UsageError):
            raise st.error
        if st.error is not None or st.machine is None or code != EXIT_PASS:
            why = st.error or f"the {self.name} did not come up (exit {code})"
            raise InfraError(f"{self.name} ({self.cell_id}): {why}", stage="fuzz")
        self.boots += 1
        res = st.machine.session.run(f"{self.executor} setup", timeout=120)
        if res.exit_code != 0:
            raise InfraError(f"{self.name}: {EXECUTOR} setup failed: "
                             f"{(res.stdout + res.stderr).strip()[-300:]}", stage="fuzz")

    @property
    def executor(self) -> str:
        assert self.st.machine is not None
        return f"{self.st.machine.tests_dir}/{EXECUTOR}"

    def reboot(self, why: str) -> None:
        self.say(f"[{self.st.arch.name}] {self.name}: {why}; booting again")
        run, st = self.run, self.st
        run.close_machine(st)
        st.products.discard("machine")
        boot = next(s for s in run.state.stages if s.name == "boot")
        run.run_stage(boot, st)
        self._ready()

    def close(self) -> None:
        self.run.close_machine(self.st)

    def run_batch(self, programs: list[tuple[str, Program]], timeout: float) -> \
            list[trace.Outcome]:
        """One outcome per program, in order."""
        done: dict[str, trace.Outcome] = {}
        todo = list(programs)
        retried = False
        while todo:
            got, lost = self._attempt(todo, timeout)
            for o in got:
                if o.finished:
                    done[o.pid] = o
            todo = [(pid, p) for pid, p in todo if pid not in done]
            if lost is None:
                for pid, _ in todo:  # the executor said nothing of them: it stopped early
                    done[pid] = trace.Outcome(pid, end="lost")
                break
            partial = next((o for o in got if not o.finished), None)
            victim = partial.pid if partial else (todo[0][0] if todo else None)
            if lost.kind == lostmachine.CRASH or lost.kind == "hung":
                o = partial or trace.Outcome(victim or "?")
                o.end = "crash" if lost.kind == lostmachine.CRASH else "hung"
                o.crash, o.excerpt = lost.message, lost.excerpt
                if lost.kind == lostmachine.CRASH:
                    self.crashes += 1
                else:
                    self.hangs += 1
                done[o.pid] = o
                todo = [(pid, p) for pid, p in todo if pid != o.pid]
                self.reboot(lost.message)
                continue
            if retried:
                raise InfraError(f"{self.name}: {lost.message} (twice)", stage="fuzz")
            retried = True
            self.reboot(lost.message)
        outs = [done.get(pid, trace.Outcome(pid, end="lost")) for pid, _ in programs]
        hurt = next((ln for o in outs for ln in o.klog if HURT_RE.search(ln)), None)
        if hurt:  # the kernel may hold a lock or leak a page for ever: start afresh
            self.reboot(f"the kernel reported {hurt.strip()[:120]!r}")
        elif any(o.end == "stuck" for o in outs):  # a process SIGKILL cannot end
            self.reboot("a program's process could not be killed")
        return outs

    def _attempt(self, programs: list[tuple[str, Program]], timeout: float) -> \
            tuple[list[trace.Outcome], lostmachine.Lost | None]:
        m = self.st.machine
        assert m is not None
        mark = m.guest.mark() if m.guest else 0
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            f.write(batch_text(programs))
            f.flush()
            try:
                m.session.put(Path(f.name), f"cat > {BATCH}")
            except InfraError as exc:
                return [], lostmachine.diagnose(m.guest, EXECUTOR, since=mark,
                                                detail=str(exc))
        host = len(programs) * (timeout + 8) + 60
        cmd = f"{self.executor} run {BATCH} {timeout:g}"
        res = m.session.run(cmd, timeout=host)
        self.seconds += res.duration
        got = trace.parse(res.stdout)
        if res.timed_out:
            return got, lostmachine.Lost("hung", f"the whole guest hung (no answer in "
                                                 f"{host:.0f}s)")
        if res.lost:
            return got, lostmachine.diagnose(m.guest, EXECUTOR, since=mark,
                                             detail=res.stderr.strip())
        if res.exit_code not in (0, None):
            return got, None if got else lostmachine.Lost(
                lostmachine.SSH_LOST, f"{EXECUTOR} exited {res.exit_code}: "
                f"{res.stderr.strip()[-200:]}")
        return got, None


def run_both(a: Side, b: Side, programs: list[tuple[str, Program]], timeout: float) -> \
        tuple[list[trace.Outcome], list[trace.Outcome]]:
    """The batch on both kernels at once (one thread each: the guests run in parallel)."""
    results: dict[str, list[trace.Outcome]] = {}
    errors: list[BaseException] = []

    def go(side: Side) -> None:
        try:
            results[side.name] = side.run_batch(programs, timeout)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results[a.name], results[b.name]

