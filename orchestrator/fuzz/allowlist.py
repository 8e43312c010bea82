"""The documented differences between the prototype and its reference that are not
divergences: a data file (configs/fuzz-allowlist.yaml), each entry with its reason.

An entry names the field of a trace record it is about (`op:ureg`, `maps`, `smaps`,
`pages`, `status`, `klog`, `end`; `*` for any) and two regular expressions, one for the
prototype's value and one for the reference's (each must match the whole value; a missing
`prototype` or `reference` matches anything). `strip`, a regular expression, is taken out of
both values first, and the entry applies only when that makes them equal: the one word two
kernels print differently, the rest compared as usual. `normalize:` names a rewrite of both
outcomes (normalize.py) for a difference that moves several records at once; a record pair
that differed before it and not after is counted under the entry's id. A record pair that
differs and matches an entry is counted under the entry's id and not compared further.

    - id: uffdio-poison
      field: op:ureg
      prototype: 'ureg 0 ok ioctls=0x13c'
      reference: 'ureg 0 ok ioctls=0x17c'
      reason: UFFDIO_POISON (6.6) is not in the series' scope ...
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from orchestrator.base.errors import UsageError
from orchestrator.base.paths import CONFIGS
from orchestrator.fuzz import normalize

DEFAULT = CONFIGS / "fuzz-allowlist.yaml"
KEYS = {"id", "field", "arch", "prototype", "reference", "strip", "normalize", "reason"}


@dataclass(frozen=True)
class Entry:
    id: str
    field: str
    prototype: re.Pattern | None
    reference: re.Pattern | None
    reason: str
    strip: re.Pattern | None = None
    normalize: str = ""  # a normalization of normalize.py, applied to both outcomes first
    arch: str = ""  # only on this arch ("": every arch)

    def allows(self, fieldname: str, proto: str | None, ref: str | None) -> bool:
        if self.field != "*" and self.field != fieldname:
            return False
        if self.strip is not None and (proto is None or ref is None or
                                       self.strip.sub("", proto) != self.strip.sub("", ref)):
            return False
        return _match(self.prototype, proto) and _match(self.reference, ref)


def _match(rx: re.Pattern | None, value: str | None) -> bool:
    return rx is None or rx.fullmatch(value if value is not None else "<absent>") is not None


def load(path: Path = DEFAULT) -> list[Entry]:
    """The entries of an allowlist file; a malformed one is a usage error naming the entry."""
    try:
        data = yaml.safe_load(path.read_text()) or []
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the fuzz allowlist ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not YAML ({exc})") from None
    if not isinstance(data, list):
        raise UsageError(f"{path}: the fuzz allowlist is a list of entries")
    out: list[Entry] = []
    for i, e in enumerate(data):
        where = f"{path}: entry {i}"
        if not isinstance(e, dict):
            raise UsageError(f"{where}: not a mapping")
        extra = set(e) - KEYS
        if extra:
            raise UsageError(f"{where}: unknown key {sorted(extra)[0]!r}")
        for k in ("id", "field", "reason"):
            if not str(e.get(k, "")).strip():
                raise UsageError(f"{where}: needs {k!r} (every entry says why)")
        if "normalize" in e and e["normalize"] not in normalize.KNOWN:
            raise UsageError(f"{where} ({e['id']}): normalize: {e['normalize']!r} is not one "
                             f"of {', '.join(normalize.KNOWN)}")
        try:
            out.append(Entry(str(e["id"]), str(e["field"]),
                             re.compile(e["prototype"]) if "prototype" in e else None,
                             re.compile(e["reference"]) if "reference" in e else None,
                             " ".join(str(e["reason"]).split()),
                             re.compile(e["strip"]) if "strip" in e else None,
                             str(e.get("normalize", "")), str(e.get("arch", ""))))
        except re.error as exc:
            raise UsageError(f"{where} ({e['id']}): bad regular expression: {exc}") from None
    ids = [e.id for e in out]
    dup = next((x for x in ids if ids.count(x) > 1), None)
    if dup:
        raise UsageError(f"{path}: entry id {dup!r} appears twice")
    return out


def for_arch(entries: list[Entry], arch: str) -> list[Entry]:
    return [e for e in entries if not e.arch or e.arch == arch]


def allowed(entries: list[Entry], fieldname: str, proto: str | None,
            ref: str | None) -> Entry | None:
    return next((e for e in entries if e.allows(fieldname, proto, ref)), None)
