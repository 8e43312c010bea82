"""A LAVA job's log, as orch reads it: the dispatcher's log lines (lava-run's stderr, or a
server's job log: YAML flow mappings `{dt, lvl, msg}`; results carry YAML tags such as
`! "823"`, hence a YAML parser) into a `LavaOutcome`: the guest's console (`lvl: target`),
the test cases the guest reported (`lvl: results`), and LAVA's verdict on the job."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from orchestrator.kernel import problems
from orchestrator.targets.lava.guest import FRAME
from orchestrator.targets.layout import READY_MARKER

JOB_SUITE_DEFINITION = "lava"  # LAVA's own results (deploy, boot, the job's verdict)


@dataclass
class LavaOutcome:
    """A finished LAVA job, as LAVA reported it (plain data: testing/lavaresults.py reads
    it into orch's records)."""

    job_id: str
    results: list[dict] = field(default_factory=list)  # the test cases (set, case, result)
    console: list[str] = field(default_factory=list)  # the guest's serial console
    verdict: dict = field(default_factory=dict)  # LAVA's `job` case: result, error_type...
    where: str = ""  # the job's log (local) or its URL (server)

    @property
    def tests_began(self) -> bool:
        return any(ln.startswith(f"{FRAME} begin ") for ln in self.console)

    def crash(self) -> tuple[str, str] | None:
        """The first kernel problem line (kernel/problems.py) on the console, with the
        lines after it."""
        for i, ln in enumerate(self.console):
            if problems.is_problem(ln):
                return ln.strip(), "\n".join(self.console[i:i + 60])
        return None

    def why(self) -> str:
        v = self.verdict
        what = ": ".join(str(x) for x in (v.get("error_type"), v.get("error_msg")) if x)
        return what or f"job {v.get('result', 'did not finish')}"

    def release(self) -> str:
        for ln in self.console:
            if ln.startswith(READY_MARKER):
                return ln.split()[-1]
        return ""


def read_log_line(line: str, out: LavaOutcome) -> dict | None:
    """One line of a dispatcher's log (a YAML flow mapping: `{dt, lvl, msg}`; results carry
    YAML tags such as `! "823"`, hence a YAML parser) into `out`; returns the entry."""
    line = line.strip()
    if line.startswith("- "):  # the server's job log is a YAML list of the same mappings
        line = line[2:]
    if not line.startswith("{"):
        return None
    try:
        entry = yaml.safe_load(line)
    except yaml.YAMLError:
        return None
    if not isinstance(entry, dict):
        return None
    msg = entry.get("msg")
    if entry.get("lvl") == "target" and isinstance(msg, str):
        out.console.append(msg)
    elif entry.get("lvl") == "results" and isinstance(msg, dict):
        if msg.get("definition") == JOB_SUITE_DEFINITION:
            if msg.get("case") == "job":
                out.verdict = {k: msg.get(k) for k in ("result", "error_type", "error_msg")
                               if msg.get(k) is not None}
                out.verdict.update({k: v for k, v in (msg.get("extra") or {}).items()
                                    if k in ("error_type", "error_msg")})
        else:
            out.results.append(msg)
    return entry


def read_log(text: str, job_id: str = "", where: str = "") -> LavaOutcome:
    """A whole dispatcher log (lava-run's stderr, or a server's job log)."""
    out = LavaOutcome(job_id, where=where)
    for line in text.splitlines():
        read_log_line(line, out)
    return out
