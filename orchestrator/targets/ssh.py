"""SSH sessions (fabric on paramiko): run commands, upload files, never accept an unknown
host key.

Two ways to reach a machine:
- `GuestSSH`: a QEMU guest orch booted, on a forwarded 127.0.0.1 port, with the host key
  orch generated and pinned;
- `RemoteSSH`: a machine the user names (`ssh://[user@]host[:port]` or a `~/.ssh/config`
  alias, read by fabric), checked against the user's known_hosts or `--known-hosts FILE`.
"""

from __future__ import annotations

import base64
import logging
import os
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import paramiko
from fabric import Config, Connection
from fabric.runners import Remote
from invoke.exceptions import CommandTimedOut

from orchestrator.base.errors import HostKeyError, SSHError, UsageError
from orchestrator.base.retry import retrying, stop_after_delay, wait_fixed
from orchestrator.base.runner import Runner
from orchestrator.targets.keys import Keys

# paramiko logs every failed attempt (a machine still booting: "Error reading SSH protocol
# banner") with a traceback; orch retries and reports the outcome itself, in one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass
class CmdResult:
    exit_code: int | None  # None: timed out or connection lost
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    lost: bool = False


def _host_key(pub: str) -> paramiko.PKey:
    kind, b64 = pub.split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(b64))


class _StoppableRemote(Remote):
    """fabric's runner, except that anything but Ctrl-C raised while waiting (orch's
    Interrupted on SIGTERM) closes the channel first. invoke then joins its reader threads,
    which otherwise wait for a remote command that may run for minutes."""

    def wait(self) -> None:
        try:
            super().wait()
        except KeyboardInterrupt:
            raise
        except BaseException:
            self.channel.close()
            raise


class NotYet(Exception):
    """A try at connecting that may work later: the machine is not (or no longer) up."""


class UnknownHostKey(paramiko.SSHException):
    """The machine's host key is in no known_hosts file (paramiko's RejectPolicy says so
    only in a message)."""


class _Reject(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client, hostname, key) -> None:
        raise UnknownHostKey(f"{hostname} is not in known_hosts ({key.get_name()})")


def _server_answered(conn: Connection) -> bool:
    """After an AuthenticationException: did the server answer the login (a refusal), or
    not (the connection cut, or nothing within auth_timeout)? paramiko raises the same type
    for all three: a refusal leaves the transport up with its auth handler's event set (an
    answer, or the transport's end, sets it)."""
    t = conn.client.get_transport()  # fabric's conn.transport is set only once it is open
    event = getattr(getattr(t, "auth_handler", None), "auth_event", None)
    return t is not None and t.is_active() and (event is None or event.is_set())


class Session:
    """A connection that runs commands and uploads files. Subclasses say how to connect."""

    where = "?"  # for messages: host:port

    def __init__(self) -> None:
        self.conn: Connection | None = None
        # Logged in as a user with passwordless sudo rather than root: every command
        # (tests, dmesg, kexec) needs root, so every command goes through `sudo -n`.
        self.sudo = False

    def _wrap(self, command: str) -> str:
        return f"sudo -n sh -c {shlex.quote(command)}" if self.sudo else command

    def _connection(self, timeout: float) -> Connection:
        raise NotImplementedError

    def connect(self, timeout: float, alive=lambda: True, say=None) -> float:
        """Retry until the machine answers, up to `timeout` s. Returns the seconds it took.
        Tried again: no answer yet (refused, reset, no banner, a login cut or unanswered);
        not: a refused key, a host key that is not the known one."""
        start = time.monotonic()
        try:
            self.conn = retrying(f"SSH to {self.where}", NotYet, stop=stop_after_delay(timeout),
                                 wait=wait_fixed(0.1), say=say)(self._attempt, timeout, alive)
        except NotYet as exc:
            raise SSHError(f"{self.unreachable_what()} unreachable over SSH on {self.where} "
                           f"after {timeout:.0f}s ({exc})") from None
        return time.monotonic() - start

    def _attempt(self, timeout: float, alive) -> Connection:
        if not alive():
            raise SSHError("guest died while waiting for SSH")
        conn = self._connection(timeout=min(5.0, max(1.0, timeout)))
        try:
            conn.open()
            conn.transport.set_keepalive(5)
            conn.config.runners.remote = _StoppableRemote
            return conn
        except paramiko.BadHostKeyException as exc:
            conn.close()
            raise HostKeyError(f"host key of {self.where} does not match the known key: "
                               f"{exc}") from None
        except UnknownHostKey as exc:
            conn.close()
            raise HostKeyError(f"{self.where}: host key unknown ({exc}); add it to "
                               f"known_hosts or pass --known-hosts FILE") from None
        except paramiko.AuthenticationException as exc:
            answered = _server_answered(conn)
            conn.close()
            if not answered:  # cut, or no answer in auth_timeout: still starting (stopping)
                raise NotYet(f"{type(exc).__name__}: {exc}") from None
            raise SSHError(f"{self.where}: authentication failed ({exc}); orch logs in "
                           f"without prompting (keys or agent only)") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:  # socket.timeout: OSError
            conn.close()
            raise NotYet(f"{type(exc).__name__}: {exc}") from None

    def unreachable_what(self) -> str:
        return "machine"

    def run(self, command: str, timeout: float | None = None) -> CmdResult:
        if self.conn is None:
            raise SSHError("not connected")
        start = time.monotonic()
        try:
            r = self.conn.run(self._wrap(command), hide=True, warn=True, timeout=timeout,
                              in_stream=False)
            if r.exited == -1 and not self.connected():
                # The channel closed with no exit status because the connection went down
                # (the SSH server or the machine died): not the command's result.
                return CmdResult(None, r.stdout, r.stderr or "the connection closed",
                                 time.monotonic() - start, lost=True)
            return CmdResult(r.exited, r.stdout, r.stderr, time.monotonic() - start)
        except CommandTimedOut as exc:
            res = exc.result
            return CmdResult(None, res.stdout, res.stderr, time.monotonic() - start,
                             timed_out=True)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            return CmdResult(None, "", f"{type(exc).__name__}: {exc}",
                             time.monotonic() - start, lost=True)

    def connected(self) -> bool:
        t = self.conn.transport if self.conn is not None else None
        return bool(t is not None and t.is_active())

    def put(self, local: Path, remote_command: str, timeout: float = 300.0) -> None:
        """Stream `local` into the stdin of `remote_command` (e.g. `cat > PATH`).

        An exec channel rather than SFTP: dropbear and busybox systems have no SFTP server.
        """
        if self.conn is None or self.conn.transport is None:
            raise SSHError("not connected")
        try:
            chan = self.conn.transport.open_session(timeout=30)
            chan.settimeout(timeout)
            chan.exec_command(self._wrap(remote_command))
            with open(local, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 16), b""):
                    chan.sendall(chunk)
            chan.shutdown_write()
            status = chan.recv_exit_status()
            err = chan.recv_stderr(4096).decode(errors="replace").strip()
            chan.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(f"upload of {local.name} to {self.where} failed: "
                           f"{type(exc).__name__}: {exc}") from None
        if status != 0:
            raise SSHError(f"upload of {local.name} to {self.where} failed (exit {status}): "
                           f"{err}")

    def get(self, remote_command: str, timeout: float = 120.0) -> bytes:
        """The stdout of `remote_command` as bytes (a tar of files: `tar -cf - ...`); a
        non-zero exit is an SSHError with its stderr. The exec channel of `put`."""
        if self.conn is None or self.conn.transport is None:
            raise SSHError("not connected")
        try:
            chan = self.conn.transport.open_session(timeout=30)
            chan.settimeout(timeout)
            chan.exec_command(self._wrap(remote_command))
            data = b"".join(iter(lambda: chan.recv(1 << 16), b""))
            status = chan.recv_exit_status()
            err = chan.recv_stderr(4096).decode(errors="replace").strip()
            chan.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(f"reading from {self.where} failed: {type(exc).__name__}: "
                           f"{exc}") from None
        if status != 0:
            raise SSHError(f"{remote_command.split()[0]} on {self.where} failed (exit "
                           f"{status}): {err}")
        return data

    def close(self) -> None:
        if self.conn:
            self.conn.close()
            self.conn = None


class GuestSSH(Session):
    """The QEMU guest orch booted: 127.0.0.1:port, orch's client key, its host key pinned."""

    def __init__(self, port: int, keys: Keys, user: str = "root"):
        super().__init__()
        self.port = port
        self.keys = keys
        self.user = user
        self.where = f"127.0.0.1:{port}"

    def unreachable_what(self) -> str:
        return "guest"

    def _connection(self, timeout: float) -> Connection:
        config = Config(overrides={"load_ssh_configs": False})
        conn = Connection(
            "127.0.0.1", user=self.user, port=self.port, config=config,
            connect_timeout=timeout,
            connect_kwargs={
                "key_filename": str(self.keys.client),
                "look_for_keys": False,
                "allow_agent": False,
                "banner_timeout": timeout,
                "auth_timeout": timeout,
            },
        )
        # Pin the guest's host key (generated by orch); anything else is refused.
        conn.client.set_missing_host_key_policy(_Reject())
        key = _host_key(self.keys.host_pub)
        conn.client.get_host_keys().add(f"[127.0.0.1]:{self.port}", key.get_name(), key)
        return conn

    def interactive(self, known_hosts: Path) -> int:
        """A login shell for a person: OpenSSH's client when present, else fabric's."""
        known_hosts.write_text(self.keys.known_hosts_line(self.port) + "\n")
        ssh = shutil.which("ssh")
        if ssh:
            return shell([
                ssh, "-q", "-p", str(self.port), "-i", str(self.keys.client),
                "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "IdentitiesOnly=yes", "-F", "/dev/null", f"{self.user}@127.0.0.1",
            ])
        assert self.conn is not None
        return self.conn.shell().exited


def shell(argv: list[str]) -> int:
    """OpenSSH's client for a person, on orch's terminal, until they leave it."""
    with Runner().spawn(argv, terminal=True) as child:
        return child.proc.wait()


@dataclass(frozen=True)
class Address:
    """`ssh://[user@]host[:port]`: what the user typed; None = from ~/.ssh/config."""

    host: str
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{self.host}{port}"


def parse_address(spec: str) -> Address:
    if not spec.startswith("ssh://"):
        raise UsageError(f"--target {spec}: expected qemu or ssh://[user@]host[:port]")
    u = urlsplit(spec)
    if not u.hostname or u.path not in ("", "/") or u.query or u.fragment or u.password:
        raise UsageError(f"--target {spec}: expected ssh://[user@]host[:port]")
    try:
        port = u.port
    except ValueError:
        raise UsageError(f"--target {spec}: bad port") from None
    return Address(u.hostname, u.username, port)


class RemoteSSH(Session):
    """A machine orch did not start. Host and options come from the user's ~/.ssh/config
    (fabric reads it: HostName, Port, User, IdentityFile, ProxyJump...); the host key must
    already be known: `known_hosts` when given, else the config's UserKnownHostsFile, else
    ~/.ssh/known_hosts. Nothing is ever prompted for and no unknown key is accepted."""

    def __init__(self, address: Address, known_hosts: Path | None = None):
        super().__init__()
        self.address = address
        self.known_hosts = known_hosts
        probe = Connection(address.host, user=address.user, port=address.port)
        self.host = probe.host  # after ~/.ssh/config: the real host name
        self.port = probe.port
        self.user = probe.user
        self.ssh_config = probe.ssh_config
        self.where = f"{self.host}:{self.port}"

    def interactive(self, known_hosts: Path | None = None) -> int:  # noqa: ARG002
        """A login shell for a person, with OpenSSH and the user's own configuration."""
        ssh = shutil.which("ssh")
        if not ssh:
            assert self.conn is not None
            return self.conn.shell().exited
        argv = [ssh, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
        if self.known_hosts is not None:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.address.port:
            argv += ["-p", str(self.address.port)]
        user = f"{self.address.user}@" if self.address.user else ""
        return shell([*argv, f"{user}{self.address.host}"])

    def known_hosts_files(self) -> list[Path]:
        if self.known_hosts is not None:
            return [self.known_hosts]
        files = self.ssh_config.get("userknownhostsfile")
        if files:
            names = files if isinstance(files, list) else str(files).split()
            return [Path(os.path.expanduser(n)) for n in names]
        return [Path(os.path.expanduser("~/.ssh/known_hosts"))]

    def _connection(self, timeout: float) -> Connection:
        conn = Connection(self.address.host, user=self.address.user, port=self.address.port,
                          connect_timeout=timeout,
                          connect_kwargs={"banner_timeout": timeout, "auth_timeout": timeout})
        conn.client.set_missing_host_key_policy(_Reject())
        for f in self.known_hosts_files():
            if f.exists():
                try:
                    conn.client.load_host_keys(str(f))
                except (OSError, paramiko.SSHException) as exc:
                    raise UsageError(f"known hosts file {f}: {exc}") from None
        return conn


# --- commands over a session, shared by the ssh target and its deploy modes ---------------

def out(sess: Session, command: str, what: str | None = None) -> str:
    """`command`'s stdout, stripped; a failure is an SSHError naming `what` (or it)."""
    res = sess.run(command, timeout=60)
    if res.exit_code != 0:
        raise SSHError(f"{what or command} failed on {sess.where}: "
                       f"{(res.stderr or res.stdout).strip()[:200] or res.exit_code}")
    return res.stdout.strip()


def detached(command: str) -> str:
    """Run after this SSH session has gone (kexec -e and reboot take the session down)."""
    return (f"setsid sh -c {shlex.quote('sleep 1; ' + command)} "
            f"</dev/null >/dev/null 2>&1 &")
