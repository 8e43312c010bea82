"""`--target lava`: the boot and the tests go through LAVA, the scheduler of LKFT's and
KernelCI's labs, as one LAVA job per arch.

- `lava`: a local dispatcher, Debian's `lava-run` (lava-dispatcher), as tuxrun runs it: the
  job's device is QEMU on this host (`--device-type qemu`, the only one it has a device
  dictionary for);
- `lava+https://HOST`: a LAVA server (lavaserver.py): the job is submitted there, the
  lab's workers fetch the kernel and initramfs from `--artifacts-url`.

Unlike QEMU and SSH, LAVA runs the tests itself: `up()` runs the whole job and yields a
`Machine` with no session whose `report` is the finished job (`LavaOutcome`: LAVA's
per-case results, the console, the job's verdict); the test stage turns it into the same
Suite and TestCase records (testing/lavaresults.py). A job that failed before its tests
began is the boot stage's error (infrastructure), unless the console shows the kernel
panicking, which is a boot failure as under QEMU.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from orchestrator.base.errors import BootError, InfraError, MissingToolError, UsageError
from orchestrator.base.opt import RUN, Opt
from orchestrator.base.runner import Runner
from orchestrator.kernel.arch import Arch
from orchestrator.targets.lava import job as lavajob
from orchestrator.targets.lava import server as lavaserver
from orchestrator.targets.lava.guest import FRAME
from orchestrator.targets.lava.log import LavaOutcome, read_log_line
from orchestrator.targets.layout import TESTS_DIR
from orchestrator.targets.protocol import Machine, TargetBase, UpRequest, setting

LAVA_SPEC = re.compile(r"^lava(?:\+(?P<url>.*))?$")


def _check_url(url: str, what: str) -> str:
    if not re.match(r"^https?://[^/\s]+", url or ""):
        raise UsageError(f"{what} {url}: expected an http(s) URL (https://HOST[/PATH])")
    return url.rstrip("/")


@dataclass
class LavaTarget(TargetBase):
    """A LAVA job per arch: on this host's dispatcher (`lava`), or a server's lab."""

    server: str | None = None  # https://HOST; None: the local lava-run
    own: dict[str, Any] = field(default_factory=dict)
    dispatch: bool = True  # False: write the jobs only (`orch lava job`)
    memory: str = setting("1G")
    smp: int = setting(2)
    append: str = setting("")
    boot_timeout: float = setting(180.0)
    test_timeout: float = setting(300.0)
    kind = "lava"
    wants_initramfs = True
    remote = False  # one job per arch, as many arches as asked
    runs_kselftests = False  # the job runs orch's own selftests (lavaguest.TEST_SCRIPT)
    runs_tests_itself = True  # once each, in the job's test action
    SPEC = "lava or lava+https://HOST"
    SHORT = "lava"
    OPTIONS = (
        Opt(("--device-type",), "device_type", "--target lava: the LAVA device type the job "
            "asks for (default qemu; the local dispatcher knows qemu only)",
            commands=(RUN,), example="qemu-arm64"),
        Opt(("--artifacts-url",), "artifacts_url", "--target lava: the http(s) URL BASE "
            "where the dispatcher fetches the kernel and initramfs, as BASE/ARCH/lava/FILE "
            "(orch writes them to OUTPUT/ARCH/lava/: publish OUTPUT there); needed for a "
            "server, whose workers cannot read this host's files (default for the local "
            "dispatcher: file:// URLs of OUTPUT)", commands=(RUN,),
            example="https://files.example.org/orch"),
        Opt(("--lava-identity",), "lava_identity", "--target lava+https://...: the lavacli "
            "identity (~/.config/lavacli.yaml) holding the server's user and token "
            "(default: $LAVA_TOKEN and $LAVA_USER)", commands=(RUN,), example="lab"),
    )

    def __post_init__(self) -> None:
        self.own = {**self.own_values({}), **self.own}
        self.own["device_type"] = self.own["device_type"] or "qemu"

    @classmethod
    def matches(cls, spec: str | None) -> bool:
        return spec is not None and bool(LAVA_SPEC.match(spec))

    @classmethod
    def build(cls, spec: str | None, values: Mapping[str, Any]) -> LavaTarget:
        assert spec is not None
        m = LAVA_SPEC.match(spec)
        assert m is not None
        url = m.group("url")
        own = cls.own_values(values)
        if url is None:
            local_checks(own)
            return cls(None, own, **cls.common(values))
        if not re.match(r"^https?://[^/\s]+", url):
            raise UsageError(f"--target {spec}: expected lava+https://HOST (a LAVA server)")
        server = url.rstrip("/")
        if not own.get("artifacts_url"):
            raise UsageError(f"--target {spec}: --artifacts-url BASE is needed (the lab's "
                             f"workers fetch the kernel and initramfs from there)")
        _check_url(own["artifacts_url"], "--artifacts-url")
        return cls(server, own, **cls.common(values))

    @property
    def runs_qemu_here(self) -> bool:  # type: ignore[override]
        return self.server is None and self.dispatch

    def check_host(self) -> None:
        """The local dispatcher: lava-run installed, and root (it must run as root); a
        server: a token (its answer is the boot stage's: infrastructure)."""
        if not self.dispatch:
            return
        if self.server is not None:
            lavaserver.credentials(self.server, self.lava_identity)
            return
        if not shutil.which("lava-run", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            raise MissingToolError("lava-run not found (apt-get install lava-dispatcher)")
        if os.geteuid() != 0:
            raise UsageError("--target lava: lava-run must run as root")

    def cell(self) -> dict[str, str]:
        if self.server is None:
            return {"kind": "lava"}
        host = re.sub(r"^https?://", "", self.server).split("/")[0]
        return {"kind": "lava", "host": f"lava-{host}"}

    def properties(self) -> dict[str, str]:
        return {"target": "lava" if self.server is None else f"lava+{self.server}",
                "device_type": self.device_type}

    def check(self, arch: Arch, runner: Runner) -> None:
        pass

    def spec(self, req: UpRequest, kernel_url: str, initrd_url: str) -> lavajob.JobSpec:
        """The job for this request (artifact URLs as the dispatcher will fetch them)."""
        return lavajob.JobSpec(req.arch, kernel_url, initrd_url, [t.name for t in req.tests],
                               name=" ".join(["orch", req.arch.name, *(
                                   req.labels[k] for k in ("tree", "series", "profile")
                                   if req.labels.get(k))]), memory=self.memory,
                               smp=self.smp, append=self.append,
                               test_timeout=self.test_timeout,
                               boot_timeout=self.boot_timeout,
                               device_type=self.device_type, local=self.server is None,
                               labels=dict(req.labels))

    def write_job(self, req: UpRequest, where: Path) -> tuple[lavajob.JobSpec, Path]:
        """The job definition and the artifacts it names, in `where` (`orch lava job`)."""
        assert req.kernel is not None and req.initrd is not None
        where.mkdir(parents=True, exist_ok=True)
        names = {"kernel": req.kernel.image.name, "initrd": "initramfs.cpio"}
        for src, name in ((req.kernel.image, names["kernel"]), (req.initrd, names["initrd"])):
            dest = where / name
            dest.unlink(missing_ok=True)
            try:
                os.link(src, dest)
            except OSError:
                shutil.copy(src, dest)
        if self.artifacts_url:
            base = f"{self.artifacts_url.rstrip('/')}/{req.arch.name}/lava"
        else:
            base = where.resolve().as_uri()
        spec = self.spec(req, f"{base}/{names['kernel']}", f"{base}/{names['initrd']}")
        job = where / "job.yaml"
        job.write_text(lavajob.job_yaml(spec))
        return spec, job

    def dry_run(self, req: UpRequest) -> list[str]:
        if self.server is not None:
            return [f"+ lava: submit OUTPUT/{req.arch.name}/lava/job.yaml to {self.server}, "
                    f"wait, read its results"]
        return [f"+ lava-run --job-id ID --output-dir OUTPUT/{req.arch.name}/lava/out "
                f"--device device.yaml --dispatcher dispatcher.yaml job.yaml"]

    @contextmanager
    def up(self, req: UpRequest) -> Iterator[Machine]:
        where = req.console.parent / "lava"
        spec, job = self.write_job(req, where)
        req.facts.update(accelerator="tcg", accelerator_reason="LAVA qemu device (no_kvm)",
                         device_type=self.device_type)
        start = time.monotonic()
        if self.server is None:
            outcome = run_local(spec, job, where, req)
        else:
            outcome = lavaserver.run(self, job, req)
        req.facts.update(lava_job=outcome.job_id, lava_seconds=round(time.monotonic() - start, 1),
                         lava_log=outcome.where, release=outcome.release())
        if not outcome.tests_began:
            crash = outcome.crash()
            if crash:
                raise BootError(f"kernel panic during boot: {crash[0]}", hint=crash[1])
            raise InfraError(f"LAVA job {outcome.job_id} failed before the tests: "
                             f"{outcome.why()}", stage="boot")
        yield Machine(None, TESTS_DIR, req.facts, report=outcome)


def local_checks(own: Mapping[str, Any]) -> None:
    """Bad input for the local dispatcher: one line, before anything runs."""
    if (own.get("device_type") or "qemu") not in lavajob.DEVICE_TYPES:
        raise UsageError(f"--device-type {own.get('device_type')}: the local dispatcher "
                         f"(lava-run) has a device dictionary for "
                         f"{', '.join(lavajob.DEVICE_TYPES)} only")
    if own.get("lava_identity"):
        raise UsageError("--lava-identity is for a LAVA server (--target lava+https://HOST), "
                         "not the local dispatcher")
    if own.get("artifacts_url"):
        _check_url(own["artifacts_url"], "--artifacts-url")


_JOB_SEQ = iter(range(1, 1 << 30))
WORK_DIR = "/var/lib/lava/dispatcher/tmp"  # lava-run's per-job directory: WORK_DIR/ID


def _kill_leftovers(job_id: str) -> None:
    """A QEMU of this job still up after lava-run (pexpect starts it in a session of its
    own, out of lava-run's process group): SIGKILL it, found by the job's directory on
    its command line."""
    mark = f"{WORK_DIR}/{job_id}/".encode()
    for d in Path("/proc").glob("[0-9]*"):
        try:
            if mark in (d / "cmdline").read_bytes():
                os.kill(int(d.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def run_local(spec: lavajob.JobSpec, job: Path, where: Path, req: UpRequest) -> LavaOutcome:
    """Run `job` under this host's lava-run; its log (stderr) is read as it comes, the
    console goes to `req.console` and the test sets to the progress line."""
    job_id = str(os.getpid() * 1000 + next(_JOB_SEQ) % 1000)
    (where / "device.yaml").write_text(lavajob.device_dict(spec))
    (where / "dispatcher.yaml").write_text(lavajob.DISPATCHER)
    outdir = where / "out"
    shutil.rmtree(outdir, ignore_errors=True)
    argv = ["lava-run", "--job-id", job_id, "--output-dir", str(outdir),
            "--device", str(where / "device.yaml"),
            "--dispatcher", str(where / "dispatcher.yaml"), str(job)]
    limit = yaml.safe_load(job.read_text())["timeouts"]["job"]["minutes"] * 60 + 120
    out = LavaOutcome(job_id, where=str(where / "lava-run.log"))
    req.status(f"[{req.arch.name}] LAVA job {job_id}: lava-run")
    req.progress(f"+ {' '.join(argv)}")
    deadline = time.monotonic() + limit
    # A Runner.spawn child: orch's watchdog SIGTERMs it when orch dies, however (it had a
    # PDEATHSIG of its own for that); stopped here with 30 s to cancel the job and its QEMU.
    with open(where / "lava-run.log", "w") as log, open(req.console, "w") as console, \
            req.runner.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, cwd=where, grace=30) as child:
        proc = child.proc
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                log.write(line)
                n = len(out.console)
                read_log_line(line, out)
                for ln in out.console[n:]:
                    console.write(ln + "\n")
                    if ln.startswith(f"{FRAME} begin "):
                        req.status(f"[{req.arch.name}] LAVA job {job_id}: {ln.split()[-1]}")
                console.flush()
                if time.monotonic() > deadline:
                    raise InfraError(f"lava-run did not finish in {limit}s", stage="boot")
            proc.wait()
        finally:
            child.stop()  # interrupted, or too long: on SIGTERM lava-run cancels the job
            _kill_leftovers(job_id)  # and stops its QEMU (else it goes here)
    if not out.verdict:
        raise InfraError(f"lava-run exited with status {proc.returncode} without a verdict "
                         f"(see {where / 'lava-run.log'})", stage="boot")
    return out
