"""SSH keys, generated once per cache (never shipped, never committed).

The client key goes into the guest's authorized_keys. The guest's host key is generated
here on the host too, so the client can pin it: no "accept any host key".
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.base import files
from orchestrator.base.errors import InfraError, MissingToolError
from orchestrator.base.runner import Runner
from orchestrator.store import cache


@dataclass
class Keys:
    client: Path  # OpenSSH private key
    client_pub: str  # "ssh-ed25519 AAAA..."
    host_dropbear: Path  # dropbear-format host key for the guest
    host_pub: str  # "ssh-ed25519 AAAA..." pinned by the client

    def known_hosts_line(self, port: int) -> str:
        return f"[127.0.0.1]:{port} {self.host_pub}"


def _write_pair(priv_path: Path) -> str:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                        serialization.PublicFormat.OpenSSH).decode()
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    priv_path.with_suffix(".pub").write_text(pub + "\n")
    return pub


def ensure(runner: Runner, directory: Path | None = None) -> Keys:
    """The cache's key set, or another one kept in `directory` (a board's own keys)."""
    d = directory or cache.subdir("keys")
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    client = d / "client_ed25519"
    host = d / "host_ed25519"
    host_db = d / "host_ed25519.dropbear"
    with cache.locked(d / ".lock"):
        if not client.exists() or not client.with_suffix(".pub").exists():
            _write_pair(client)
        if not host_db.exists() or not host.with_suffix(".pub").exists():
            _write_pair(host)
            conv = shutil.which("dropbearconvert")
            if not conv:
                raise MissingToolError("dropbearconvert not found (apt-get install dropbear-bin)")
            with files.atomic(host_db) as tmp:
                runner.check([conv, "openssh", "dropbear", str(host), str(tmp)], InfraError,
                             "dropbearconvert", always=True)
    return Keys(client, client.with_suffix(".pub").read_text().strip(), host_db,
                host.with_suffix(".pub").read_text().strip())
