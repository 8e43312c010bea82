"""What a run writes about itself, as it goes: metadata.json (inputs, versions, stages),
results.json (the cells and every testcase: results/record.py), and the JUnit and the
results page (report.html) rendered from it. Functions of a run's state (state.RunState);
nothing here runs anything.
"""

from __future__ import annotations

import datetime as dt
import platform
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator import __version__
from orchestrator.base.files import write_json, write_text
from orchestrator.base.paths import SELFTESTS
from orchestrator.kernel import dirty as dirtymod
from orchestrator.kernel import series as seriesmod
from orchestrator.kernel import tree as treemod
from orchestrator.kernel.tree import EMBEDDED
from orchestrator.options import command_line
from orchestrator.results import coverage as rescov
from orchestrator.results import page
from orchestrator.results import record as results
from orchestrator.results.junit import write_junit
from orchestrator.results.merge import summary_md
from orchestrator.store import cache
from orchestrator.testing import testrun

if TYPE_CHECKING:
    from orchestrator.run.state import ArchState, RunState

FILENAME = results.FILENAME


def reproduce(run: RunState) -> str:
    """The `orch run` command line that redoes this run (from cli's option table)."""
    over = {"tree": run.opts.tree or treemod.DEFAULT_TREE}
    if run.tree:
        over["tree"] = str(run.tree.origin) if run.tree.kind == "git" else run.tree.spec
    if run.base_commit:
        over["base"] = run.base_commit
    over["series"] = run.opts.series or "none"
    return shlex.join(command_line("run", run.opts, keep=lambda o: o.reproduce,
                                   always=("arches", "tree", "series"), overrides=over))


def metadata(run: RunState) -> dict:
    frag = sorted({p for ps in run.fragments.values() for p in ps})
    arches = {}
    for name, st in run.states.items():
        arches[name] = {
            "stages": st.stages,
            "kernel": {
                "key": st.kernel.key if st.kernel else None,
                "store": str(st.kernel.store) if st.kernel else None,
                "release": st.release,
                "compiled": st.compiled,
            },
            "initramfs": str(st.initrd) if st.initrd else None,
            "target": {**run.target.cell(), **st.target_facts},
            "accelerator": st.accel,
            "accelerator_reason": st.accel_reason,
            "boot_to_ready_seconds": st.boot_to_ready,
            "boot_to_ssh_seconds": st.boot_to_ssh,
            "results": run.counts(name),
            "flaky": st.flaky,
            "error": str(st.error) if st.error else None,
        }
    return {
        "orch_version": __version__,
        "status": run.status,
        "exit_code": run.exit_code,
        "command": shlex.join(run.opts.argv) if run.opts.argv else "",
        "reproduce": reproduce(run),
        "started": run.started.isoformat(),
        "updated": dt.datetime.now(dt.timezone.utc).isoformat(),
        "output_dir": str(run.out),
        "junit": str(run.junit_path),
        "inputs": {
            "tree": {
                "spec": run.opts.tree or treemod.DEFAULT_TREE,
                "kind": run.tree.kind if run.tree else None,
                "origin": str(run.tree.origin) if run.tree else None,
                "base_commit": run.base_commit,
                "head_commit": run.head_commit,
                "source_tree_object": run.source_tree,
                "dirty": {"files": run.dirty.files, "sha256": run.dirty.sha256,
                          "diff": "dirty.diff"} if run.dirty else None,
                "worktree": str(run.worktree) if run.worktree else None,
            },
            "series": {
                "spec": run.opts.series or "none",
                "patches": seriesmod.fingerprint(run.patches),
            },
            "configs": [{"path": str(p), "sha256": cache.file_digest(p)} for p in frag],
            "selftests": {
                "dir": str(run.opts.selftests),
                "files": {p.name: cache.file_digest(p)
                          for p in sorted(run.opts.selftests.glob("*.[ch]"))}
                if str(run.opts.selftests) != "none" else {},
                "only": run.opts.tests,
            },
            "kselftest": {
                "requests": [str(q) for q in run.kselftests],
                "tree": run.opts.kselftest_tree,
                "timeout_override": run.opts.kselftest_timeout,
                # Per arch: the tree and commit built, the cache key, the uAPI headers
                # used, what could not be built and why.
                "builds": {n: st.kselftest for n, st in run.states.items() if st.kselftest},
            } if run.opts.kselftest else None,
            "kernel_cmdline_extra": run.opts.append,
            # --coverage: the files asked for beyond the series', and those profiled
            "coverage": {"extra": run.opts.coverage, "requested": run.coverage_files}
            if run.opts.coverage is not None else None,
        },
        "host": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "kernel": platform.release(),
            **run.versions,
        },
        "check": run.run_stages.get("check", {}),
        "apply": run.apply_stage,
        "arches": arches,
    }


def cell(run: RunState, st: ArchState) -> results.Cell:
    """The cell this arch's part of the run is (see results.py)."""
    tree_spec = run.tree.spec if run.tree else (run.opts.tree or treemod.DEFAULT_TREE)
    fp = seriesmod.fingerprint(run.patches)
    target = run.target.cell()
    deployed = st.target_facts.get("deploy", "") != "none"
    return results.Cell(
        arch=st.arch.name,
        tree=tree_name(tree_spec, str(run.tree.origin) if run.tree else None),
        base_commit=run.base_commit,
        base_ref=run.opts.base or "",
        series=series_name(run.opts.series, len(run.patches)) +
        (f"+{dirtymod.NAME}" if run.dirty else ""),
        # The uncommitted change counts as one more patch of the set.
        series_hash=results.patchset_hash([p["sha256"] for p in fp] +
                                          ([run.dirty.sha256] if run.dirty else [])),
        dirty_hash=run.dirty.sha256 if run.dirty else "",
        profile=profile_name(run.opts.profiles, run.opts.configs),
        fragments=[str(c) for c in run.opts.configs],
        debug="debug" in run.opts.profiles,
        target_kind=target["kind"],
        target=target.get("host", target["kind"]),
        tree_spec=tree_spec,
        head_commit=run.head_commit,
        series_spec=run.opts.series or "none",
        series_patches=len(run.patches),
        kernel_release=st.release,
        # --no-deploy tests the machine's own kernel: orch's key does not describe it.
        kernel_key=st.kernel.key if st.kernel and deployed else "",
        accelerator=st.accel,
        deploy=str(st.target_facts.get("deploy", "")),
        compiler=run.versions["gcc"].get(st.arch.name, ""),
        exit_code=st.exit_code,
        status=results.status_of(st.exit_code),
        stages=({"apply": run.apply_stage} if run.apply_stage else {}) | st.stages,
        flaky=st.flaky,
        error=str(st.error) if st.error else "",
    )


# The cell's identity, handed to the target (a LAVA job's metadata: `orch lava collect`).
CELL_LABELS = ("arch", "tree", "base_commit", "base_ref", "series", "series_hash", "profile",
               "tree_spec", "head_commit", "kernel_key")


def labels(run: RunState, st: ArchState) -> dict[str, str]:
    """The cell as the labels a target may carry (CELL_LABELS that are set)."""
    c = cell(run, st)
    return {k: str(getattr(c, k)) for k in CELL_LABELS if getattr(c, k)}


def record(run: RunState) -> results.Record:
    """The run as data: results.json, and the JUnit rendered from it."""
    rec = results.Record(kind="run", orch_version=__version__,
                         command=shlex.join(run.opts.argv) if run.opts.argv else "",
                         created=run.started.isoformat())
    cov: dict[str, dict] = {}
    for name, st in run.states.items():
        c = cell(run, st)
        rec.cells.append(c)
        for s in run.suites:
            if s.arch == name:
                rec.tests += testrun.record_cases(c.id, s, source_file(run, s),
                                                      logs_of(run, name, s))
        failed = st.stages.get("coverage", {})
        if st.coverage is not None:
            cov[c.id] = st.coverage
        elif run.opts.coverage is not None and failed.get("status") == "failed":
            cov[c.id] = {"supported": False, "profiled": [], "lines": {},
                         "why": f"the coverage stage failed: {failed.get('error', '')}"}
    if run.opts.coverage is not None and (cov or run.coverage_patches is not None):
        rec.coverage = rescov.section(run.coverage_patches or [], cov)
    return rec


def source_file(run: RunState, s: testrun.Suite) -> str:
    if s.binary.startswith("orch-"):
        return ""
    if s.binary in run.test_files or s.binary.startswith("kselftest."):
        return run.test_files.get(s.binary, "")
    if run.opts.selftests == SELFTESTS:
        return f"selftests/{s.binary}.c"
    return str(run.opts.selftests / f"{s.binary}.c")


def logs_of(run: RunState, arch: str, s: testrun.Suite) -> dict[str, str]:
    """A suite's logs, relative to the output directory, those that exist."""
    if s.binary.startswith("orch-"):
        stage = s.binary.removeprefix("orch-")
        names = {"apply": "apply.log", "boot": f"{arch}/console.log",
                 "test": f"{arch}/console.log"}
        cands = {"log": names.get(stage, f"{arch}/{stage}.log")}
    else:
        cands = {"output": f"{arch}/tests/{s.binary}.ktap",
                 "dmesg": f"{arch}/tests/{s.binary}.dmesg",
                 "console": f"{arch}/console.log"}
    return {k: v for k, v in cands.items() if (run.out / v).exists()}


def write(run: RunState) -> None:
    write_json(run.out / "metadata.json", metadata(run))
    rec = record(run)
    results.write(run.out / FILENAME, rec)
    write_junit(run.junit_path, rec)
    if run.status != "running":  # a verdict to summarise
        write_text(run.out / "summary.md", summary_md(rec, title="orch run"))
    rescov.write_cobertura(run.out, rec.coverage)
    page.report(run.out, compare=False)


# --- names for the record ----------------------------------------------------------------

def tree_name(spec: str, origin: str | None) -> str:
    """linux-6.1 for an embedded tree; a checkout's directory name; a tarball's stem."""
    if spec in EMBEDDED or not origin:
        return spec
    name = Path(origin).name
    for ext in (".tar.xz", ".tar.gz", ".tar.bz2", ".tgz", ".tar"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name or spec


def series_name(spec: str | None, npatches: int) -> str:
    if not spec or spec == "none":
        return "none" if not npatches else f"{npatches}-patches"
    p = Path(spec)
    if p.name == "series" and p.is_file():
        p = p.parent
    return p.stem if p.is_file() else p.name


def profile_name(profiles: list[str], configs: list[str]) -> str:
    parts = list(profiles) + [Path(c).name.removesuffix(".config") for c in configs]
    return "+".join(parts) if parts else "default"
