"""Patch series: a quilt `series` file, a directory of *.patch, or an mbox; and applying them.

Each patch becomes one commit in orch's worktree (`git am -3` for mails, `git apply -3`
plus a commit for plain diffs). When one does not apply, the error names the patch, the
file and the hunk, and the worktree is left as it is for the user to look at.
"""

from __future__ import annotations

import mailbox
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from pathlib import Path

from orchestrator.base.errors import ApplyError, UsageError
from orchestrator.base.runner import Runner
from orchestrator.kernel.tree import env_for_commits
from orchestrator.store import cache

DIFF_RE = re.compile(r"^(diff --git |--- \S|Index: )", re.M)
HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", re.M)
COVER_RE = re.compile(r"\[[^\]]*\b0+/\d+\]")


@dataclass
class Patch:
    path: Path  # file holding this patch (a split-out mbox message lives in the cache)
    name: str  # how the user knows it: series entry or file name, with mbox index
    subject: str
    is_mail: bool
    where: str = ""  # series file:line that named it, if any

    def text(self) -> str:
        return self.path.read_text(errors="replace")


def _subject_of(text: str) -> str:
    m = re.search(r"^Subject:\s*(.*(?:\n[ \t].*)*)", text, re.M)
    if not m:
        return ""
    raw = re.sub(r"\n[ \t]+", " ", m.group(1)).strip()
    try:
        return str(make_header(decode_header(raw)))
    except Exception:  # undecodable header: show it raw
        return raw


def _looks_like_mail(text: str) -> bool:
    head = text.lstrip()[:2000]
    return head.startswith("From ") or bool(re.search(r"^(From|Subject):", head, re.M))


def _check_patch_text(text: str, name: str, where: str) -> None:
    loc = f"{where}: " if where else ""
    if not text.strip():
        raise UsageError(f"{loc}patch {name} is empty")
    if not DIFF_RE.search(text) or not HUNK_RE.search(text):
        raise UsageError(f"{loc}{name} is not a patch (no diff hunks found)")


def load(spec: str | None) -> list[Patch]:
    """Read a series from a path; 'none' or None is the empty series."""
    if spec is None or spec == "none":
        return []
    # Absolute: git runs with -C in orch's worktree, where a relative path means nothing.
    p = Path(spec).expanduser().resolve()
    if not p.exists():
        raise UsageError(f"--series {spec}: no such file or directory")
    if p.is_dir():
        sf = p / "series"
        if sf.is_file():
            return _from_series_file(sf)
        files = sorted(f for f in p.iterdir() if f.suffix in (".patch", ".diff") and f.is_file())
        if not files:
            raise UsageError(f"--series {spec}: directory has no series file and no *.patch")
        out: list[Patch] = []
        for f in files:
            out.extend(_from_file(f, name=f.name, where="", skip_cover=True))
        if not out:
            raise UsageError(f"--series {spec}: no patches (only cover letters)")
        return out
    out = _from_file(p, name=p.name, where="", skip_cover=True)
    if not out:
        raise UsageError(f"--series {spec}: no patches in it (only a cover letter?)")
    return out


def _from_series_file(sf: Path) -> list[Patch]:
    out: list[Patch] = []
    for lineno, line in enumerate(sf.read_text().splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        fields = entry.split()
        name, opts = fields[0], fields[1:]
        if any(o not in ("-p1",) for o in opts):
            raise UsageError(f"{sf}:{lineno}: unsupported option {' '.join(opts)} (only -p1)")
        f = sf.parent / name
        where = f"{sf}:{lineno}"
        if not f.is_file():
            raise UsageError(f"{where}: patch file {name} does not exist")
        out.extend(_from_file(f, name=name, where=where, skip_cover=False))
    if not out:
        raise UsageError(f"{sf}: series file lists no patches")
    return out


def _from_file(f: Path, *, name: str, where: str, skip_cover: bool) -> list[Patch]:
    text = f.read_text(errors="replace")
    if not text.strip():
        raise UsageError(f"{where + ': ' if where else ''}patch {name} is empty")
    if not _looks_like_mail(text):
        _check_patch_text(text, name, where)
        return [Patch(f, name, name, False, where)]
    messages = _split_mbox(f, text)
    out: list[Patch] = []
    for i, msg_text in enumerate(messages, 1):
        subject = _subject_of(msg_text)
        has_diff = bool(DIFF_RE.search(msg_text) and HUNK_RE.search(msg_text))
        if not has_diff and (COVER_RE.search(subject) or len(messages) > 1):
            continue  # a cover letter, or a reply in a thread: nothing to apply
        label = name if len(messages) == 1 else f"{name} message {i}"
        _check_patch_text(msg_text, label, where)
        if len(messages) == 1:
            out.append(Patch(f, label, subject, True, where))
        else:
            part = cache.subdir("mbox-split") / f"{cache.digest(msg_text)[:16]}.patch"
            part.write_text(msg_text)
            out.append(Patch(part, label, subject, True, where))
    if not out and not skip_cover:
        raise UsageError(f"{where + ': ' if where else ''}{name} is not a patch (no diff hunks)")
    return out


def _split_mbox(f: Path, text: str) -> list[str]:
    if not text.startswith("From "):
        return [text]
    msgs = []
    for msg in mailbox.mbox(str(f), create=False):
        msgs.append(msg.as_string(unixfrom=True))
    return msgs or [text]


# --- applying ---------------------------------------------------------------------------

def apply(patches: list[Patch], wt: Path, runner: Runner, log: Path, progress=print) -> None:
    env = env_for_commits()
    for i, p in enumerate(patches, 1):
        progress(f"apply [{i}/{len(patches)}] {p.subject or p.name}")
        if p.is_mail:
            res = runner.run(["git", "-C", str(wt), "am", "-3", "--keep-cr", str(p.path)],
                             env=env, log=log)
        else:
            res = runner.run(["git", "-C", str(wt), "apply", "-3", "--index", str(p.path)],
                             log=log)
            if res.ok:
                res = runner.run(["git", "-C", str(wt), "commit", "-q", "--no-verify",
                                  "-m", p.name], env=env, log=log)
        if not res.ok:
            raise ApplyError(_describe_failure(p, wt, runner, "\n".join(res.tail)))


def _describe_failure(p: Patch, wt: Path, runner: Runner, output: str) -> str:
    """One line: which patch, which file, which hunk; and where the worktree is."""
    check = runner.run(["git", "-C", str(wt), "apply", "--check", "-v", str(p.path)],
                       always=True)
    text = check.output + "\n" + output
    m = re.search(r"patch failed: (\S+):(\d+)", text)
    file_, line, hunk = None, None, None
    if m:
        file_, line = m.group(1), int(m.group(2))
        hunk = _hunk_number(p.text(), file_, line)
    else:
        m = re.search(r"(?:CONFLICT \(content\): Merge conflict in |error: )(\S+?):? "
                      r"(?:does not exist in index|already exists|No such file)", text)
        m2 = re.search(r"Merge conflict in (\S+)", text)
        m3 = re.search(r"error: (\S+): (does not exist in index|already exists in working "
                       r"directory|No such file or directory)", text)
        if m3:
            file_ = m3.group(1)
            what = m3.group(2)
            return (f"patch {p.name} ({p.subject}) does not apply: {file_}: {what}; "
                    f"worktree kept at {wt}")
        if m2:
            file_ = m2.group(1)
        elif m:
            file_ = m.group(1)
    where = f" ({p.where})" if p.where else ""
    if file_ and hunk:
        n, header = hunk
        detail = f"{file_} hunk #{n} {header} (expected at line {line})"
    elif file_:
        detail = f"{file_}" + (f" at line {line}" if line else "")
    else:
        last = next((ln for ln in reversed(output.splitlines()) if ln.strip()), "")
        detail = last.strip() or "git could not apply it"
    return f"patch {p.name}{where} ({p.subject}) does not apply: {detail}; worktree kept at {wt}"


def _hunk_number(text: str, file_: str, line: int) -> tuple[int, str] | None:
    """Which hunk (1-based, within the file's section) starts at old line `line`."""
    sections = re.split(r"^diff --git ", text, flags=re.M)
    for sec in sections:
        first = sec.splitlines()[0] if sec else ""
        if f"b/{file_}" not in first and f"a/{file_}" not in first:
            if not re.search(rf"^\+\+\+ b/{re.escape(file_)}$", sec, re.M):
                continue
        for n, m in enumerate(HUNK_RE.finditer(sec), 1):
            if int(m.group(1)) == line:
                return n, m.group(0)
        return None
    return None


def fingerprint(patches: list[Patch]) -> list[dict]:
    """For metadata.json: each patch with its sha256."""
    return [
        {"name": p.name, "subject": p.subject, "sha256": cache.file_digest(p.path)}
        for p in patches
    ]
