"""`--target lava+https://HOST`: a LAVA server, through its REST API (`/api/v0.2/`).

The token comes from the environment (`LAVA_TOKEN`, with `LAVA_USER`) or from a lavacli
identity (`--lava-identity NAME`: `~/.config/lavacli.yaml`, the file `lavacli identities
add` writes), never from the command line. A job is submitted (`POST /jobs/`), watched
(`GET /jobs/ID/`: state, health) with its state on the progress line, then read back:
its log (`/jobs/ID/logs/`, the same YAML lines as lava-run's: the console and the results)
and its test cases (`/jobs/ID/tests/`, 50 a page, each with its `set` in its metadata).

Infrastructure, never a test failure: a server that cannot be reached or refuses the token
or the job, a job cancelled or timed out in the queue (`health` Canceled, or no worker).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.base.errors import InfraError, UsageError
from orchestrator.base.retry import retrying, stop_never, wait_fixed
from orchestrator.targets.lava.log import LavaOutcome, read_log

IDENTITIES = Path("~/.config/lavacli.yaml")
FINISHED = "Finished"
POLL = 5.0  # seconds between two looks at a job's state
QUEUE_LIMIT = 3600.0  # a job still queued after this: infrastructure (no worker for it)
RETRIES = 5  # a call whose connection fails, or that a proxy answers 502/503/504 (GET only)
BACKOFF = 2.0  # seconds: 0, 4, 8, 16, 32 between those tries (urllib3's backoff_factor)


def credentials(server: str, identity: str | None) -> tuple[str, str]:
    """(user, token) for `server`: from `identity` in lavacli's file, else $LAVA_TOKEN and
    $LAVA_USER. Missing: a usage error (one line, exit 2)."""
    if identity:
        path = Path(os.environ.get("LAVACLI_CONFIG", IDENTITIES)).expanduser()
        try:
            ids = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"--lava-identity {identity}: cannot read {path}: {exc}") from None
        ident = ids.get(identity) if isinstance(ids, dict) else None
        if not isinstance(ident, dict) or not ident.get("token"):
            raise UsageError(f"--lava-identity {identity}: no such identity with a token in "
                             f"{path} (lavacli identities add)")
        return str(ident.get("username", "")), str(ident["token"])
    token = os.environ.get("LAVA_TOKEN", "")
    if not token:
        raise UsageError(f"--target lava+{server}: no token: set LAVA_TOKEN (and LAVA_USER) "
                         f"or give --lava-identity NAME (a lavacli identity)")
    return os.environ.get("LAVA_USER", ""), token


@dataclass
class Server:
    """A LAVA server's REST API, with a token."""

    url: str  # https://HOST[/PATH]
    token: str
    user: str = ""
    timeout: float = 60.0
    _http: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def connect(cls, url: str, identity: str | None = None) -> Server:
        if not re.match(r"^https?://[^/\s]+", url):
            raise UsageError(f"--server {url}: expected https://HOST")
        user, token = credentials(url, identity)
        return cls(url.rstrip("/"), token, user)

    @property
    def host(self) -> str:
        return re.sub(r"^https?://", "", self.url).split("/")[0]

    def session(self) -> Any:
        """One HTTP session (one kept-alive connection) for every call, with urllib3's
        Retry: a connection that fails is tried again for any call (nothing reached the
        server); a 502/503/504 (a proxy in front of it, a restart) for reads only: a
        submission answered 502 may have been taken."""
        if self._http is None:
            import requests  # noqa: PLC0415 - the remote path only
            from requests.adapters import HTTPAdapter  # noqa: PLC0415
            from urllib3.util.retry import Retry  # noqa: PLC0415

            retry = Retry(total=RETRIES, backoff_factor=BACKOFF, raise_on_status=False,
                          status_forcelist=(502, 503, 504),
                          allowed_methods=frozenset({"GET", "HEAD", "OPTIONS"}))
            self._http = requests.Session()
            self._http.mount("http://", HTTPAdapter(max_retries=retry))
            self._http.mount("https://", HTTPAdapter(max_retries=retry))
            self._http.headers["Authorization"] = f"Token {self.token}"
        return self._http

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        import requests  # noqa: PLC0415 - the remote path only

        url = path if path.startswith("http") else f"{self.url}/api/v0.2/{path}"
        try:
            r = self.session().request(method, url, timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            raise InfraError(f"LAVA server {self.host} cannot be reached: {exc}",
                             stage="boot") from None
        if r.status_code in (401, 403):
            raise InfraError(f"LAVA server {self.host} refused the token ({r.status_code})",
                             stage="boot")
        if r.status_code >= 400:
            raise InfraError(f"LAVA server {self.host}: {method} {path}: HTTP "
                             f"{r.status_code}: {r.text.strip()[:300]}", stage="boot")
        return r

    def submit(self, definition: str) -> str:
        data = self._call("POST", "jobs/", json={"definition": definition}).json()
        ids = data.get("job_ids") or ([data["id"]] if "id" in data else [])
        if not ids:
            raise InfraError(f"LAVA server {self.host} did not take the job: {data}",
                             stage="boot")
        return str(ids[0])

    def job(self, job_id: str) -> dict:
        return self._call("GET", f"jobs/{job_id}/").json()

    def definition(self, job_id: str) -> dict:
        d = yaml.safe_load(self.job(job_id).get("definition") or "{}")
        return d if isinstance(d, dict) else {}

    def tests(self, job_id: str) -> list[dict]:
        """Every test case of the job, as the dispatcher's result entries (set, case...)."""
        out: list[dict] = []
        url: str | None = f"jobs/{job_id}/tests/?limit=50"
        while url:
            page = self._call("GET", url).json()
            for t in page.get("results", []):
                meta = yaml.safe_load(t.get("metadata") or "{}") or {}
                entry = {**meta} if isinstance(meta, dict) else {}
                entry.setdefault("case", t.get("name"))
                entry["result"] = t.get("result", entry.get("result"))
                out.append(entry)
            url = page.get("next")
        return out

    def outcome(self, job_id: str) -> LavaOutcome:
        """A finished job as orch reads it: the log's console, the cases, the verdict."""
        log = self._call("GET", f"jobs/{job_id}/logs/").text
        out = read_log(log, job_id, where=f"{self.url}/scheduler/job/{job_id}")
        cases = [t for t in self.tests(job_id) if t.get("definition") != "lava"]
        if cases:  # the API's record is the lab's; the log's is the same, without paging
            out.results = cases
        if not out.verdict:
            j = self.job(job_id)
            out.verdict = {"result": "pass" if j.get("health") == "Complete" else "fail",
                           "error_msg": j.get("failure_comment") or j.get("health", "")}
        return out

    def wait(self, job_id: str, status, limit: float) -> dict:
        """Until the job is finished; infrastructure if it never leaves the queue."""
        queued_until = time.monotonic() + QUEUE_LIMIT
        deadline = time.monotonic() + limit
        last = [""]

        def look() -> dict:
            j = self.job(job_id)
            state = str(j.get("state", ""))
            if state != last[0]:
                status(f"LAVA job {job_id} on {self.host}: {state}")
                last[0] = state
            if state == FINISHED:
                return j
            if state in ("Submitted", "Scheduling") and time.monotonic() > queued_until:
                raise InfraError(f"LAVA job {job_id} still queued on {self.host} after "
                                 f"{QUEUE_LIMIT:.0f}s (no {j.get('requested_device_type')} "
                                 f"device free?)", stage="boot")
            if time.monotonic() > deadline:
                raise InfraError(f"LAVA job {job_id} on {self.host} did not finish in "
                                 f"{limit:.0f}s", stage="boot")
            raise NotFinished(state)

        return retrying(f"LAVA job {job_id}", NotFinished, stop=stop_never,
                        wait=wait_fixed(POLL))(look)


class NotFinished(Exception):
    """A job still queued or running: looked at again in POLL s."""


def run(target, job: Path, req) -> LavaOutcome:
    """Submit `job` (targets.lava.LavaTarget.write_job's), wait, read it back."""
    server = Server.connect(target.server, target.lava_identity)
    job_id = server.submit(job.read_text())
    req.progress(f"[{req.arch.name}] LAVA job {job_id}: {server.url}/scheduler/job/{job_id}")
    limit = yaml.safe_load(job.read_text())["timeouts"]["job"]["minutes"] * 60 + QUEUE_LIMIT
    j = server.wait(job_id, lambda m: req.status(f"[{req.arch.name}] {m}"), limit)
    if j.get("health") == "Canceled":
        raise InfraError(f"LAVA job {job_id} was cancelled on {server.host}", stage="boot")
    out = server.outcome(job_id)
    req.console.write_text("\n".join(out.console) + "\n")
    return out
