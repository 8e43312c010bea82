"""Whose difference a divergence is (`orch fuzz`'s base check): its programs run on the base
kernel, the prototype's tree without its series, and are compared with what the prototype
and the reference gave (session.py calls `attribute` after shrinking). The base has no
UFFDIO_MOVE: a program runs there only where its moves moved nothing on either kernel, and
what the base cannot answer as they did (a move, the UFFDIO_MOVE bit of a registration) is
not held against it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

from orchestrator.fuzz import allowlist as allowmod
from orchestrator.fuzz import diff, repro, trace
from orchestrator.fuzz.engine import Group
from orchestrator.fuzz.machines import Side
from orchestrator.fuzz.model import Program


def undetermined(why: str) -> dict:
    return {"to": "undetermined", "why": why}


# A failed move's record: the ioctl's `move` field as the kernel left it ("unset": a kernel
# without UFFDIO_MOVE did not write it; fuzz/fuzz_core.h).
_NOTHING_MOVED = re.compile(r"move -1 \w+ move=(unset|-?\d+)")


def _moved_nothing(record: str | None) -> bool:
    """A move's trace record that says it failed having moved no byte."""
    m = _NOTHING_MOVED.fullmatch(record or "")
    return bool(m) and (m.group(1) == "unset" or int(m.group(1)) <= 0)


def _move_keys(program: Program) -> set[str]:
    """The trace record keys of the program's moves."""
    return {f"o{i}" for i, o in enumerate(program.ops) if o.kind == "move"}


def failed_moves(program: Program, outs: tuple[trace.Outcome, ...]) -> set[str] | None:
    """The record keys of the program's moves when each of them failed on every kernel of
    `outs` having moved nothing (the program's memory is as if it had not run them); None
    when one of them moved pages somewhere."""
    keys = _move_keys(program)
    if all(_moved_nothing(out.records.get(k)) for k in keys for out in outs):
        return keys
    return None


def _checkable(program: Program, outs: tuple[trace.Outcome, ...],
               v: diff.Verdict | None = None) -> bool:
    """Whether the base kernel can run the program as the others did: it has no
    UFFDIO_MOVE, so only where every move failed and moved nothing on both kernels, and
    the divergence (`v`) is not in a move's own record (its errno: the base's answer to a
    move says nothing about the series')."""
    if not program.ops or program.concurrent:
        return False
    moves = failed_moves(program, outs)
    return moves is not None and not (v and any(d.key in moves for d in v.differences))


# UFFDIO_REGISTER's `ioctls` bit of UFFDIO_MOVE (_UFFDIO_MOVE, 5): a base kernel without
# the ioctl does not offer it.
_MOVE_IOCTL_BIT = 1 << 5
_UREG = re.compile(r"ureg 0 ok ioctls=0x([0-9a-f]+)")


def _base_alike(key: str, base: str | None, want: str, moves: set[str]) -> bool:
    """Whether the base kernel answered an operation before the divergence as both kernels
    did, but for what it cannot: a move that failed on both (it fails there too), and the
    UFFDIO_MOVE bit of a registration's ioctls."""
    if base == want:
        return True
    if key in moves:
        return _moved_nothing(base)
    mb, mw = _UREG.fullmatch(base or ""), _UREG.fullmatch(want)
    return bool(mb and mw) and \
        int(mb.group(1), 16) | _MOVE_IOCTL_BIT == int(mw.group(1), 16) | _MOVE_IOCTL_BIT


def _with_moves(base: trace.Outcome, side: trace.Outcome, program: Program) -> trace.Outcome:
    """The base's outcome with a side's records of the program's moves (which the base
    cannot run): compared with that side, the moves never count either way."""
    moves = _move_keys(program)
    if not moves:
        return base
    records = dict(base.records)
    for k in moves:
        if k in side.records:
            records[k] = side.records[k]
        else:
            records.pop(k, None)
    return dataclasses.replace(base, records=records)


def attributable(g: Group) -> bool:
    return g.reproduced is not False and bool(g.program.ops) and not g.program.concurrent


def attribute(groups: list[Group], base: Side, allow: list[allowmod.Entry], timeout: float,
              say: Callable[[str], None]) -> None:
    """Whose difference each divergence is, measured on the base kernel (the prototype's
    tree without its series): the group's first program and its minimized one, each run
    twice there, compared with what the prototype and the reference gave for it.
    - "base": every run of both programs does as the prototype did and not as the
      reference did: the series did not bring it (a version difference between the trees,
      or the base kernel's own bug). Recorded, not a failure.
    - "base?": the same for the minimized program, but the first one moves pages (the base
      has no UFFDIO_MOVE) so it could not be checked: the shrinker keeps any program with
      the signature, and a series bug may share a signature with a base difference, so
      this still counts; its why says what to allowlist if it is the base's.
    - "series": the base does as the reference did, every run.
    - "undetermined": anything else, said why; and every group whose programs all move
      pages.
    Every run must first answer the operations before the divergence as both kernels did
    (repro.preconditions): a base that ran the program otherwise did not reach the state
    the divergence is about, whatever it shows after."""
    runs: list[tuple[Group, Program, tuple[trace.Outcome, trace.Outcome], diff.Verdict]] = []
    for g in groups:
        if not attributable(g):
            continue
        cands = [(g.program, g.outcomes, g.verdict)]
        if g.minimized and g.min_outcomes and g.min_verdict and \
                g.minimized.body() != g.program.body():
            cands.append((g.minimized, g.min_outcomes, g.min_verdict))
        todo = [c for c in cands if _checkable(*c)]
        if not todo:
            g.attribution = undetermined("its programs move pages, which the base kernel "
                                          "cannot (no UFFDIO_MOVE)")
        runs += [(g, *c) for c in todo for _ in range(2)]
    if not runs:
        return
    outs_c = base.run_batch([(f"b{i}", r[1]) for i, r in enumerate(runs)], timeout)
    name = base.cell_id
    seen: dict[str, list[str]] = {}  # signature -> what each run did
    for (g, program, (oa, ob), v), oc in zip(runs, outs_c, strict=True):
        if not oc.comparable or oc.end in ("crash", *trace.HANGS):
            seen.setdefault(g.signature, []).append(f"ended {oc.end or 'with no outcome'}")
            continue
        moves = failed_moves(program, (oa, ob)) or set()
        off = next((k[1:] for k, val in repro.preconditions(v, (oa, ob), program)
                    if not _base_alike(k[1:], oc.records.get(k[1:]), val, moves)), None)
        if off is not None:
            seen.setdefault(g.signature, []).append(
                f"ran it otherwise before the divergence ({off}: {oc.records.get(off)!r}, "
                f"both kernels {ob.records.get(off)!r})")
            continue
        like_ref = g.signature not in diff.compare(_with_moves(oc, ob, program), ob, program,
                                                   allow).signatures
        like_proto = g.signature not in diff.compare(oa, _with_moves(oc, oa, program),
                                                     program, allow).signatures
        seen.setdefault(g.signature, []).append(
            "proto" if like_proto and not like_ref else "ref" if like_ref and not like_proto
            else "neither")
    for g in groups:
        got = seen.get(g.signature)
        if not got or g.attribution:
            continue
        first_checked = _checkable(g.program, g.outcomes, g.verdict)
        moves = " (its moves moved nothing on either kernel: they fail there too)" if \
            _move_keys(g.program) and first_checked else ""
        if set(got) == {"proto"}:
            g.attribution = {"to": "base" if first_checked else "base?",
                             "why": f"{name} differs from the reference the same way{moves}"
                             + ("" if first_checked else
                                " in the minimized program (its first program moves pages "
                                "and could not run there): allowlist it if it is 6.1's")}
        elif set(got) == {"ref"}:
            g.attribution = {"to": "series", "why": f"{name} does as the reference does"}
        else:
            g.attribution = undetermined(f"{name}, run {len(got)} times: "
                                          + ", ".join(sorted(set(got))).replace(
                                              "proto", "as the prototype").replace(
                                              "ref", "as the reference").replace(
                                              "neither", "as neither"))
        say(f"[{base.st.arch.name}] {g.signature}: attributed to the "
            f"{g.attribution['to']} ({g.attribution['why']})")
