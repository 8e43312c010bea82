"""orchestrator.base.files, the one writer orch has: a reader sees the old file or the new
one, never part of one; a writer that fails leaves the old file and no temporary file."""

import json
import os
import threading
from pathlib import Path

import pytest

from orchestrator.base import files


def leftovers(d: Path, name: str) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name != name)


def test_round_trip_and_the_temporary_name(tmp_path):
    path = tmp_path / "sub" / "m.json"
    files.write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    with files.atomic(path) as tmp:
        # beside the file (same filesystem: the rename is atomic), hidden, per writer
        assert tmp.parent == path.parent
        assert tmp.name.startswith(".m.json.") and str(os.getpid()) in tmp.name
        assert tmp != path
        tmp.write_text("new")
    assert path.read_text() == "new" and leftovers(path.parent, "m.json") == []


def test_an_exception_in_the_block_keeps_the_old_file(tmp_path):
    path = tmp_path / "results.json"
    files.write_json(path, {"old": True})
    with pytest.raises(RuntimeError):
        with files.atomic(path) as tmp:
            tmp.write_text('{"new": ')  # half written ...
            raise RuntimeError("... and the writer dies")
    assert json.loads(path.read_text()) == {"old": True}
    assert leftovers(tmp_path, "results.json") == []


def test_a_write_that_fails_half_way_keeps_the_old_file(tmp_path, monkeypatch):
    """The disk fills up in the middle of the new file."""
    path = tmp_path / "junit.xml"
    files.write_text(path, "<old/>\n")
    real = Path.write_bytes

    def half_then_enospc(self, data):
        real(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_enospc)
    with pytest.raises(OSError, match="No space left"):
        files.write_text(path, "<new>" + "x" * 10000 + "</new>\n")
    monkeypatch.undo()
    assert path.read_text() == "<old/>\n"
    assert leftovers(tmp_path, "junit.xml") == []


def test_a_reader_holding_the_old_file_reads_all_of_it(tmp_path):
    path = tmp_path / "metadata.json"
    old = {"status": "running", "pad": "o" * 100000}
    files.write_json(path, old)
    with open(path) as f:
        files.write_json(path, {"status": "passed"})
        assert json.loads(f.read()) == old
    assert json.loads(path.read_text()) == {"status": "passed"}


def test_a_concurrent_reader_never_sees_a_partial_file(tmp_path):
    """A watcher of metadata.json polls it while the run rewrites it: every read is one
    whole version. (A plain open-truncate-write fails this within a few reads.)"""
    path = tmp_path / "metadata.json"
    versions = [{"v": i, "pad": str(i) * 200000} for i in range(2)]
    files.write_json(path, versions[0])
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            files.write_json(path, versions[i % 2])

    t = threading.Thread(target=writer)
    t.start()
    bad, reads = [], 0
    try:
        for _ in range(300):
            text = path.read_text()
            reads += 1
            try:
                if json.loads(text) not in versions:
                    bad.append(len(text))
            except ValueError:
                bad.append(len(text))
    finally:
        stop.set()
        t.join()
    assert reads == 300 and bad == [], f"{len(bad)} of {reads} reads saw a partial file"
    assert leftovers(tmp_path, "metadata.json") == []
