"""targets/lava/server.py against a real HTTP server on 127.0.0.1 that stands in for a LAVA
server's REST API: one connection for all calls, a 502 of a proxy in front of it retried,
the job's state polled until it is finished."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.base.errors import InfraError
from orchestrator.targets.lava import server as lavaserver


class API(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answers):
        super().__init__(("127.0.0.1", 0), Handler)
        self.answers = answers  # path -> list of (status, body); the last one stays
        self.seen: list[tuple[str, str]] = []
        self.clients: set[int] = set()  # client ports: one per connection
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client may reuse its connection

    def log_message(self, *a):
        pass

    def _answer(self):
        srv: API = self.server
        srv.seen.append((self.command, self.path))
        srv.clients.add(self.client_address[1])
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        queue = srv.answers.get(self.path) or [(404, {"detail": "no"})]
        status, body = queue.pop(0) if len(queue) > 1 else queue[0]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@pytest.fixture
def api():
    servers = []

    def start(answers):
        servers.append(API(answers))
        return servers[-1]

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


JOB = "/api/v0.2/jobs/7/"


def test_a_502_once_is_retried(api):
    """Seen failing before: one 502 (a proxy in front of the server, a restart) during an
    hour-long wait was an infrastructure failure."""
    srv = api({JOB: [(502, {"detail": "bad gateway"}), (200, {"state": "Running"})]})
    server = lavaserver.Server(srv.url, "tok")
    assert server.job("7") == {"state": "Running"}
    assert srv.seen == [("GET", JOB), ("GET", JOB)]


def test_one_connection_for_every_call(api):
    """Seen failing before: a new connection (and TLS handshake) per call."""
    srv = api({JOB: [(200, {"state": "Running"})]})
    server = lavaserver.Server(srv.url, "tok")
    for _ in range(3):
        server.job("7")
    assert len(srv.seen) == 3 and len(srv.clients) == 1


def test_a_submission_is_not_sent_twice_on_a_502(api):
    """POST is not idempotent: a 502 may come after the server took the job."""
    srv = api({"/api/v0.2/jobs/": [(502, {}), (201, {"job_ids": [8]})]})
    with pytest.raises(InfraError, match="HTTP 502"):
        lavaserver.Server(srv.url, "tok").submit("job: x")
    assert srv.seen == [("POST", "/api/v0.2/jobs/")]


def test_a_lasting_502_is_infrastructure(api, monkeypatch):
    monkeypatch.setattr(lavaserver, "BACKOFF", 0.01)
    srv = api({JOB: [(502, {"detail": "bad gateway"})]})
    with pytest.raises(InfraError, match="HTTP 502"):
        lavaserver.Server(srv.url, "tok").job("7")
    assert 2 < len(srv.seen) <= 1 + lavaserver.RETRIES


def test_wait_polls_until_finished(api, monkeypatch):
    monkeypatch.setattr(lavaserver, "POLL", 0.01)
    srv = api({JOB: [(200, {"state": "Submitted"}), (200, {"state": "Running"}),
                     (200, {"state": "Finished", "health": "Complete"})]})
    states = []
    j = lavaserver.Server(srv.url, "tok").wait("7", states.append, limit=30)
    assert j["health"] == "Complete"
    assert states == [f"LAVA job 7 on 127.0.0.1:{srv.server_address[1]}: {s}"
                      for s in ("Submitted", "Running", "Finished")]


def test_wait_gives_up_at_the_limit(api, monkeypatch):
    monkeypatch.setattr(lavaserver, "POLL", 0.01)
    srv = api({JOB: [(200, {"state": "Running"})]})
    with pytest.raises(InfraError, match="did not finish in 0s"):
        lavaserver.Server(srv.url, "tok").wait("7", lambda m: None, limit=0.2)
