"""`orch lava job` and `orch lava collect`: LAVA jobs for other people's lab tooling.

- `orch lava job [run options]`: the run's stages up to the initramfs (the same records as
  `orch run`), then per arch the job definition and the artifacts it names in
  OUTPUT/ARCH/lava/ (job.yaml, the kernel, initramfs.cpio; for the local dispatcher also
  device.yaml and dispatcher.yaml, so `lava-run` runs it as is). Nothing runs the job.
- `orch lava collect SOURCE -o OUT`: a finished job's results into orch's outputs
  (results.json, junit.xml, summary.md). SOURCE: a `lava-run` log (lava-run's stderr, or a
  directory holding lava-run.log and job.yaml: OUTPUT/ARCH/lava), or `--server URL --job
  ID` for a LAVA server (targets/lava/server.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path

import yaml

from orchestrator import __version__
from orchestrator.base import files
from orchestrator.base.errors import (
    EXIT_INFRA,
    EXIT_PASS,
    InfraError,
    UsageError,
    bisect_code,
)
from orchestrator.base.opt import RUN
from orchestrator.cli.common import Parser, add_run_options
from orchestrator.options import options_from
from orchestrator.plan.command import cell_command
from orchestrator.results import merge as mergemod
from orchestrator.results import record as results
from orchestrator.run import outputs, stages
from orchestrator.run.pipeline import Run
from orchestrator.targets.lava import job as lavajob
from orchestrator.targets.lava import server as lavaserver
from orchestrator.targets.lava.log import LavaOutcome, read_log
from orchestrator.targets.lava.target import LAVA_SPEC
from orchestrator.testing import lavaresults, testrun

NAME = "lava"
HELP = "LAVA jobs: write them (job), read a finished one's results (collect)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="lava_cmd", required=True, parser_class=Parser)
    j = sub.add_parser("job", help="write the job definitions and their artifacts, run nothing",
                       description="the run's stages up to the initramfs, then per arch "
                                   "OUTPUT/ARCH/lava/job.yaml and the files it names")
    add_run_options(j, RUN)
    c = sub.add_parser("collect", help="a finished LAVA job's results into results.json, "
                                       "junit.xml and summary.md")
    c.add_argument("source", nargs="?", type=Path, metavar="LOG",
                   help="a lava-run log, or a directory holding lava-run.log (and job.yaml)")
    c.add_argument("--server", metavar="URL", help="a LAVA server (https://HOST)")
    c.add_argument("--job", metavar="ID", help="the job's id on --server")
    c.add_argument("--lava-identity", metavar="NAME",
                   help="the lavacli identity for --server (default: $LAVA_TOKEN)")
    c.add_argument("--output", "-o", type=Path, required=True, help="output directory")
    c.add_argument("--test-timeout", type=float, default=300.0,
                   help="the job's per-binary timeout, seconds (to tell a hang)")
    c.add_argument("--bisect-exit", action="store_true",
                   help="exit 0 good / 1 bad / 125 cannot test")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    if args.lava_cmd == "job":
        return job(args, argv)
    return collect(args, argv)


# --- job -------------------------------------------------------------------------------

def job(args: argparse.Namespace, argv: list[str]) -> int:
    if args.plan or args.cell:
        cell_argv = cell_command(args)
        p = Parser(prog="orch lava job")
        add_run_options(p, RUN)
        args = p.parse_args(cell_argv[1:])
    args.target = args.target or "lava"
    if not LAVA_SPEC.match(args.target):
        raise UsageError(f"--target {args.target}: orch lava job writes LAVA jobs "
                         f"(--target lava or lava+https://HOST)")
    run = Run(options_from(args, argv[1:]))
    s = run.state
    s.target.dispatch = False  # type: ignore[attr-defined]
    s.report = lambda: files.write_json(s.out / "metadata.json", outputs.metadata(s))
    code = run.execute(until="rootfs")
    if code != EXIT_PASS or s.opts.dry_run:
        return code
    for st in s.states.values():
        req = stages.up_request(s, st)
        where = s.out / st.arch.name / "lava"
        spec, path = s.target.write_job(req, where)  # type: ignore[attr-defined]
        if spec.local:
            (where / "device.yaml").write_text(lavajob.device_dict(spec))
            (where / "dispatcher.yaml").write_text(lavajob.DISPATCHER)
        s.progress.line(f"[{st.arch.name}] {path}")
    return EXIT_PASS


# --- collect ---------------------------------------------------------------------------

def collect(args: argparse.Namespace, argv: list[str]) -> int:
    if (args.source is None) == (args.server is None):
        raise UsageError("orch lava collect: give a lava-run LOG, or --server URL --job ID")
    if args.server is not None:
        if not args.job:
            raise UsageError("orch lava collect --server: --job ID is missing")
        server = lavaserver.Server.connect(args.server, args.lava_identity)
        outcome, definition = server.outcome(args.job), server.definition(args.job)
        target = f"lava-{server.host}"
    else:
        outcome, definition = _local(args.source)
        target = "lava"
    code, untested = write(outcome, definition, target, args.output, args.test_timeout,
                           shlex.join(["orch", *argv]))
    if args.bisect_exit:
        return bisect_code(code, InfraError("LAVA") if code == EXIT_INFRA else None,
                           untested=untested)
    return code


def _local(source: Path) -> tuple[LavaOutcome, dict]:
    log = source / "lava-run.log" if source.is_dir() else source
    if not log.is_file():
        raise UsageError(f"orch lava collect: {log}: no such file (a lava-run log)")
    outcome = read_log(log.read_text(errors="replace"), where=str(log))
    if not outcome.verdict and not outcome.results and not outcome.console:
        raise UsageError(f"orch lava collect: {log}: not a lava-run log (no YAML log lines)")
    jobfile = log.parent / "job.yaml"
    definition = yaml.safe_load(jobfile.read_text()) if jobfile.is_file() else {}
    return outcome, definition if isinstance(definition, dict) else {}


def cell_of(definition: dict, outcome: LavaOutcome, target: str) -> results.Cell:
    """The cell a job ran for: its orch.* metadata (`orch lava job`, `orch run`)."""
    meta = {k.removeprefix("orch."): str(v) for k, v in
            (definition.get("metadata") or {}).items() if str(k).startswith("orch.")}
    arch = meta.get("arch") or str((definition.get("context") or {}).get("arch") or "")
    if not arch:
        raise UsageError("orch lava collect: the job names no arch (no job.yaml next to the "
                         "log, or no context: arch in it)")
    names = set(results.Cell.__dataclass_fields__)
    given = {k: v for k, v in meta.items() if k in names and k not in ("arch", "tree")}
    cell = results.Cell(arch, meta.get("tree") or f"lava-job-{outcome.job_id or 'local'}",
                        **given)
    cell.target_kind, cell.target = "lava", target
    cell.kernel_release = outcome.release()
    cell.accelerator = "tcg"
    return cell


def binaries_of(definition: dict, outcome: LavaOutcome) -> list[str]:
    """The binaries the job ran: its test step's arguments, else LAVA's sets in order."""
    for action in definition.get("actions") or []:
        for d in (action.get("test") or {}).get("definitions") or []:
            for step in ((d.get("repository") or {}).get("run") or {}).get("steps") or []:
                words = shlex.split(str(step))
                if len(words) > 3 and words[0].endswith("/lava-tests"):
                    return words[3:]
    seen: list[str] = []
    for r in outcome.results:
        if r.get("set") and r["set"] not in seen:
            seen.append(str(r["set"]))
    return seen


def write(outcome: LavaOutcome, definition: dict, target: str, out: Path, timeout: float,
          command: str) -> tuple[int, bool]:
    """orch's outputs for a finished job; returns the exit code (0, 1, or 3) and whether
    no test really ran (every one skipped: exit 1, and "cannot test" for git bisect)."""
    cell = cell_of(definition, outcome, target)
    untested = False
    binaries = binaries_of(definition, outcome)
    rec = results.Record(kind="run", command=command, orch_version=__version__,
                         created=dt.datetime.now(dt.timezone.utc).isoformat())
    if not outcome.tests_began:
        crash = outcome.crash()
        why = (f"kernel panic during boot: {crash[0]}" if crash else
               f"LAVA job {outcome.job_id} failed before the tests: {outcome.why()}")
        suites = [testrun.infra_suite(cell.arch, "boot", why, crash[1] if crash else "")]
        code = EXIT_INFRA
        cell.error = why
    else:
        suites, gone = lavaresults.suites(outcome, cell.arch, binaries, timeout,
                                          out / cell.arch / "tests")
        code, untested = testrun.verdict(suites, lost=bool(gone and gone.infrastructure))
        if gone and gone.infrastructure:
            cell.error = gone.message
    cell.exit_code, cell.status = code, results.status_of(code)
    rec.cells.append(cell)
    for s in suites:
        logs = {k: v for k, v in {"output": f"{cell.arch}/tests/{s.binary}.ktap",
                                  "dmesg": f"{cell.arch}/tests/{s.binary}.dmesg"}.items()
                if (out / v).exists()}
        rec.tests += testrun.record_cases(cell.id, s, "" if s.binary.startswith("orch-")
                                          else f"selftests/{s.binary}.c", logs)
    out.mkdir(parents=True, exist_ok=True)
    (out / cell.arch).mkdir(exist_ok=True)
    (out / cell.arch / "console.log").write_text("\n".join(outcome.console) + "\n")
    mergemod.write(rec, out)
    summary = mergemod.summary_md(rec, title="orch lava collect")
    print(summary, end="")
    if code == EXIT_INFRA:
        print(f"orch: lava: {cell.error}", file=sys.stderr)
    if untested:
        print(f"orch: [{cell.arch}] no test ran (all skipped)", file=sys.stderr)
    return code, untested

