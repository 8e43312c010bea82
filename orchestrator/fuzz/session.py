"""A whole `orch fuzz`: per arch, both kernels up (machines.py), the fuzz loop (engine.py),
each signature shrunk (shrink.py) and written as a reproducer (repro.py), which is built for
the arch and run on both machines before they go down (exit 1 on the prototype and 0 on the
reference, recorded); then the outputs (report.py). One arch after the other: both guests of
an arch already take the machine's CPUs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from orchestrator.base.errors import InfraError, Interrupted, OrchError, UsageError
from orchestrator.base.progress import Progress
from orchestrator.fuzz import allowlist as allowmod
from orchestrator.fuzz import guide, report, repro, shrink, strategies
from orchestrator.fuzz.attribution import attributable, attribute, undetermined
from orchestrator.fuzz.engine import ArchFuzz, ArchRun, Group, Hooks
from orchestrator.fuzz.machines import Side, run_both, side_options
from orchestrator.fuzz.model import Op, Program
from orchestrator.options import Options
from orchestrator.run.pipeline import Run
from orchestrator.testing import compile as selftests
from orchestrator.testing import lostmachine


@dataclass
class Config:
    base: Options  # the prototype's run options (arches, tree, series, configs, QEMU...)
    against: str  # the reference's tree
    against_series: str  # and series
    out: Path
    seed: int
    seconds: float | None = None
    programs: int | None = None
    batch: int = 16
    timeout: float = 10.0  # per program, in the guest
    shrink_seconds: float = 300.0  # per signature; 0: no shrinking
    concurrent_share: int = 10
    allowlist: Path = allowmod.DEFAULT
    hooks: Hooks = field(default_factory=Hooks)
    # Run each divergence's program on the prototype's tree without its series too, and
    # say whose difference it is (attribute()). Only when the prototype has a series.
    base_check: bool = True
    # --suite-coverage: a results.json coverage section (orch run --coverage) to show the
    # fuzzing's coverage of the series beside (with --coverage)
    suite_coverage: dict | None = None

    @property
    def coverage(self) -> bool:
        """--coverage: the prototype is a coverage build and guides the programs."""
        return self.base.coverage is not None

    def as_json(self) -> dict:
        return {"arches": [a.name for a in self.base.arches], "tree": self.base.tree,
                "series": self.base.series, "against": self.against,
                "against_series": self.against_series, "seed": self.seed,
                "seconds": self.seconds, "programs": self.programs, "batch": self.batch,
                "program_timeout": self.timeout, "shrink_seconds": self.shrink_seconds,
                "concurrent_share": self.concurrent_share, "allowlist": str(self.allowlist),
                "base_check": self.base_check, "coverage": self.base.coverage}


def verify(g: Group, path: Path, sides: tuple[Side, Side], say: Callable[[str], None]) -> None:
    """Build the reproducer for the arch and run it on both machines: its exit codes."""
    a = sides[0]
    st = a.st
    assert st.kernel is not None
    try:
        binary = selftests.build(st.arch, path.parent, st.kernel.headers,
                                 st.kernel.headers_digest(), a.run.state.runner,
                                 path.parent / "build.log", only=[path.stem])[0]
    except OrchError as exc:
        g.repro["builds"] = f"no: {exc}"
        return
    g.repro["builds"] = "yes"
    for side in sides:
        m = side.st.machine
        assert m is not None
        mark = m.guest.mark() if m.guest else 0
        try:
            m.session.put(binary, f"cat > /tmp/{path.stem} && chmod +x /tmp/{path.stem}")
            res = m.session.run(f"/tmp/{path.stem}", timeout=180)
        except InfraError as exc:
            g.repro[f"exit_{side.name}"] = f"not run: {exc}"
            continue
        if res.lost:
            lost = lostmachine.diagnose(m.guest, path.stem, since=mark)
            g.repro[f"exit_{side.name}"] = "crash" if lost.kind == lostmachine.CRASH else \
                f"lost: {lost.message}"
            side.reboot(lost.message)
            continue
        g.repro[f"exit_{side.name}"] = "timeout" if res.timed_out else res.exit_code
    ok_a = g.repro.get("exit_prototype") in (1, "crash")
    g.repro["verified"] = bool(ok_a and g.repro.get("exit_reference") == 0)
    say(f"[{st.arch.name}] reproducer {path.name}: prototype exit "
        f"{g.repro.get('exit_prototype')}, reference exit {g.repro.get('exit_reference')}")


# A wp registration of one page: "ureg 0 ok ..." where the kernel has uffd write-protect.
WP_PROBE = Program((Op("mmap", (0, 1, 0)), Op("ureg", (0, 0, 1, "w"))), thp="never")


def probe(a: Side, b: Side, timeout: float) -> dict[str, dict[str, bool]]:
    """What each kernel can do, measured on it: uffd write-protect (6.1 has it on x86_64
    only). A probe that did not run through is infrastructure."""
    outs = run_both(a, b, [("probe-wp", WP_PROBE)], timeout)
    has = {}
    for side, (o,) in zip((a, b), outs, strict=True):
        rec = o.records.get("o1", "")
        if o.end != "exit 0" or not rec.startswith("ureg "):
            raise InfraError(f"{side.name}: the uffd-wp probe did not run through "
                             f"(end {o.end or 'none'!r}, {rec or 'no record'})", stage="fuzz")
        has[side.name] = rec.startswith("ureg 0 ok")
    return {"uffd_wp": has}


def finish_group(cfg: Config, g: Group, sides: tuple[Side, Side], evaluate: shrink.Evaluate,
                 say: Callable[[str], None], out: Path, wp: bool = True,
                 corpus: strategies.Corpus | None = None) -> None:
    if g.reproduced is False:  # a one-off so far: nothing to shrink, no reproducer
        g.shrink = {"skipped": "not reproduced: its program run again did not diverge so"}
        return
    if g.program.ops and not g.program.concurrent and cfg.shrink_seconds > 0 and \
            not g.shrink:
        shrink.shrink(g, cfg.seed, evaluate, cfg.shrink_seconds, cfg.concurrent_share, say,
                      wp, corpus)
    if not g.program.ops or g.program.concurrent:
        return
    name = repro.name(g.signature)
    program = g.minimized or g.program
    v, outs = (g.min_verdict, g.min_outcomes) if g.minimized else (g.verdict, g.outcomes)
    assert v is not None and outs is not None
    a, b = sides
    about = [f"Found by orch fuzz --seed {cfg.seed} on {g.arch} (program {g.pids[0]}, "
             f"{len(g.pids)} diverging with this signature).",
             f"Prototype: {a.cell_id}", f"Reference: {b.cell_id}"] + \
        ([] if wp else ["Programs drawn without uffd write-protect (a kernel of the pair "
                        "has none): the same seed draws others where both have it."])
    d = out / "repro" / g.arch
    path = repro.write(d, name, repro.source(name, g.signature, program, v, outs, about))
    (d / f"{name}.program").write_text(program.text(g.pids[0]))
    g.repro = {"path": str(path.relative_to(out)),
               "program": str((d / f"{name}.program").relative_to(out))}
    verify(g, path, sides, say)


def base_needed(cfg: Config) -> bool:
    """A base check when it can say something: the prototype has a series, and the base
    (its tree without it) is not the reference itself."""
    b = cfg.base
    return cfg.base_check and b.series not in (None, "none") and not (
        cfg.against == b.tree and cfg.against_series in (None, "none"))


def fuzz_arch(cfg: Config, arch, say: Callable[[str], None],
              reports: list[report.ArchReport]) -> report.ArchReport:
    """Fuzz one arch; its report is in `reports` from the start, so that an interrupt (or
    an error) during fuzzing or shrinking still leaves what was found in the outputs."""
    ar = ArchRun(arch.name, cfg.seed)
    rep = report.ArchReport(arch.name, ar)
    reports.append(rep)
    d = cfg.out / arch.name
    base = cfg.base
    a = Side("prototype", Run(side_options(base, arch, base.tree, base.series,
                                           d / "prototype", coverage=True)), say)
    b = Side("reference", Run(side_options(base, arch, cfg.against, cfg.against_series,
                                           d / "reference")), say)
    allow = allowmod.for_arch(allowmod.load(cfg.allowlist), arch.name)
    try:
        a.up()
        rep.prototype = a.cell()
        b.up()
        rep.reference = b.cell()
        ar.features = probe(a, b, cfg.timeout)
        if not ar.wp:
            lacks = " and ".join(n for n, has in ar.features["uffd_wp"].items() if not has)
            say(f"[{arch.name}] the {lacks} has no uffd write-protect (a wp registration "
                f"fails): programs use none")
        hooks = cfg.hooks
        if cfg.coverage:
            rep.guide = guide.CoverageGuide(d / "coverage", cfg.timeout, say)
            rep.suite = cfg.suite_coverage
            try:
                rep.guide.start(a)
            except UsageError:  # no gcov for the arch's compiler: install it (exit 2)
                raise
            except OrchError as exc:  # no guidance, the fuzzing still stands
                rep.guide.why = f"{exc.stage + ': ' if exc.stage else ''}{exc}"
                say(f"orch: [{arch.name}] fuzz --coverage: {rep.guide.why}: unguided")
            hooks = Hooks(after_batch=rep.guide.after_batch, guides=rep.guide.supported)
        say(f"[{arch.name}] fuzzing {a.cell_id} against {b.cell_id} (seed {cfg.seed})")
        ArchFuzz(a, b, ar, allow, cfg.seconds, cfg.programs, cfg.batch, cfg.timeout, say,
                 hooks, cfg.concurrent_share).run(cfg.seed)
        evaluate = shrink.Evaluate(a, b, allow, cfg.timeout)
        for g in sorted(ar.groups.values(), key=lambda x: x.index):
            finish_group(cfg, g, (a, b), evaluate, say, cfg.out, ar.wp, ar.corpus)
        groups = sorted(ar.groups.values(), key=lambda x: x.index)
        if base_needed(cfg) and any(attributable(g) for g in groups):
            a.close()  # two guests at most: the base is the third kernel
            b.close()
            c = Side("base", Run(side_options(base, arch, base.tree, "none", d / "base")), say)
            try:
                c.up()
                attribute(groups, c, allow, cfg.timeout, say)
            except OrchError as exc:  # what was found stands: undetermined
                say(f"orch: [{arch.name}] the base kernel: {exc}: divergences not attributed")
                for g in groups:
                    if attributable(g) and not g.attribution:
                        g.attribution = undetermined(f"the base kernel: {exc}")
            finally:
                rep.sides["base"] = {"boots": c.boots, "crashes": c.crashes, "hangs": c.hangs,
                                     "seconds": round(c.seconds, 1), "cell": c.cell_id
                                     if c.st.stages else None}
                c.close()
    except UsageError:
        reports.remove(rep)
        raise
    except Interrupted as exc:
        ar.error = str(exc) or "interrupted"
        raise
    except OrchError as exc:
        ar.error = f"{exc.stage}: {exc}" if exc.stage else str(exc)
        say(f"orch: [{arch.name}] fuzz: {ar.error}")
    finally:
        rep.prototype = rep.prototype or (a.cell() if a.st.stages else None)
        rep.reference = rep.reference or (b.cell() if b.st.stages else None)
        rep.sides = {**{s.name: {"boots": s.boots, "crashes": s.crashes, "hangs": s.hangs,
                                 "seconds": round(s.seconds, 1)} for s in (a, b)},
                     **rep.sides}
        try:
            a.close()
        finally:
            b.close()  # even when a's close failed: no QEMU left up
    return rep


def fuzz(cfg: Config, progress: Progress, command: str) -> int:
    started = dt.datetime.now(dt.timezone.utc)
    cfg.out.mkdir(parents=True, exist_ok=True)
    reports: list[report.ArchReport] = []
    try:
        for arch in cfg.base.arches:
            fuzz_arch(cfg, arch, progress.line, reports)
            report.write(cfg.out, reports, cfg.as_json(), command, started)
    finally:
        code = report.write(cfg.out, reports, cfg.as_json(), command, started)
    for r in reports:
        progress.line(f"{r.arch}: {r.run.programs} programs, {len(r.run.groups)} divergence "
                      f"signature(s){', error: ' + r.run.error if r.run.error else ''}")
    progress.line(f"results: {cfg.out / 'results.json'}  {cfg.out / 'summary.md'}  "
                  f"(exit {code})")
    return code
