"""Session.connect against a real SSH server (paramiko's, on 127.0.0.1) that misbehaves as
a machine does while it boots, kexecs or is not the one expected: which answers are tried
again and which stop at once, decided on exception types and transport state, not on the
text of a message."""

import socket
import threading
import time

import paramiko
import pytest

from orchestrator.base.errors import HostKeyError, SSHError
from orchestrator.base.runner import Runner
from orchestrator.targets import keys as keysmod
from orchestrator.targets.ssh import Address, GuestSSH, RemoteSSH


class _Server(paramiko.ServerInterface):
    def __init__(self, how: str, sock: socket.socket):
        self.how, self.sock = how, sock

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if self.how == "eof":  # the machine goes down in the middle of the login
            self.sock.shutdown(socket.SHUT_RDWR)
            return paramiko.AUTH_FAILED
        return paramiko.AUTH_SUCCESSFUL if self.how == "accept" else paramiko.AUTH_FAILED


class SSHD:
    """Answers its connections in turn as `script` says ("eof", "refuse", "accept"; the last
    one for every connection after)."""

    def __init__(self, host_key: paramiko.PKey, script: list[str]):
        self.key, self.script, self.seen = host_key, list(script), 0
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.transports: list[paramiko.Transport] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                return
            how = self.script[min(self.seen, len(self.script) - 1)]
            self.seen += 1
            t = paramiko.Transport(sock)
            t.add_server_key(self.key)
            self.transports.append(t)
            try:
                t.start_server(server=_Server(how, sock))
            except (paramiko.SSHException, EOFError, OSError):
                pass

    def close(self):
        self.lsock.close()
        for t in self.transports:
            t.close()


@pytest.fixture
def keys(tmp_path):
    return keysmod.ensure(Runner(), tmp_path / "keys")


@pytest.fixture
def sshd(keys, tmp_path):
    servers = []

    def start(script):
        host = paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "keys/host_ed25519"))
        servers.append(SSHD(host, script))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_a_login_cut_by_the_machine_going_down_is_tried_again(keys, sshd):
    """Seen failing before: paramiko calls it "Authentication failed: transport shut down
    or saw EOF", which was read as a refused key (no "timeout" in it): connect stopped."""
    d = sshd(["eof", "accept"])
    s = GuestSSH(d.port, keys)
    s.connect(10)
    assert s.connected() and d.seen == 2
    s.close()


def test_a_refused_key_stops_at_once(keys, sshd):
    d = sshd(["refuse"])
    start = time.monotonic()
    with pytest.raises(SSHError, match="authentication failed") as e:
        GuestSSH(d.port, keys).connect(10)
    assert not isinstance(e.value, HostKeyError)
    assert time.monotonic() - start < 5 and d.seen == 1


def test_another_host_key_stops_at_once(keys, sshd, tmp_path):
    other = keysmod.ensure(Runner(), tmp_path / "other")
    d = sshd(["accept"])
    with pytest.raises(HostKeyError, match="does not match the known key"):
        GuestSSH(d.port, other).connect(10)
    assert d.seen == 1


def test_an_unknown_host_key_stops_at_once(sshd, tmp_path):
    d = sshd(["accept"])
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError, match="host key unknown"):
        RemoteSSH(Address("127.0.0.1", "root", d.port), known_hosts=empty).connect(10)
    assert d.seen == 1


def test_nobody_listening_is_tried_until_the_timeout(keys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(SSHError, match=r"unreachable over SSH .* after 2s \(.*Unable to connect"):
        GuestSSH(port, keys).connect(2)
    assert 1.9 < time.monotonic() - start < 5
