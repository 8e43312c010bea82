"""Programs as text and back, and what a program says of itself."""

import pytest

from orchestrator.fuzz import model
from orchestrator.fuzz.model import Op, Program


def test_text_round_trips():
    p = Program((Op("mmap", (0, 512, 1)), Op("write", (0, 3, 2, 9)),
                 Op("madv", (0, 0, 512, "pageout")), Op("move", (1, 0, 0, 5, 3, 2, 0)),
                 Op("check"), Op("move", (1, 0, 0, 0, 1, 2, 0), tid=2)),
                thp="madvise", swap="loop", threads=2)
    text = p.text("7")
    assert text.splitlines()[:2] == ["P 7", "H thp=madvise swap=loop threads=2"]
    assert "T 2 move 1 0 0 0 1 2 0" in text and text.endswith("end\n")
    assert model.parse(text) == p


def test_a_bad_program_is_one_error():
    with pytest.raises(model.ProgramError, match="line 2: unknown operation 'mmapp'"):
        model.parse("H thp=always\nmmapp 0 1 0\n")
    with pytest.raises(model.ProgramError, match="not a mode"):
        model.parse("H thp=sometimes\n")


def test_labels_and_sizes():
    p = Program((Op("mmap", (0, 512, 0)), Op("check"), Op("madv", (0, 0, 16, "free")),
                 Op("check"), Op("move", (0, 0, 0, 0, 7, 0, 0))))
    assert p.op_label(2) == "madv free" and p.op_label(9) == "end"
    assert p.last_op_before(3) == "madv free" and p.last_op_before(1) == "mmap"
    assert p.last_op_before(0) == "start"
    assert p.size() == (5, 512 + 16 + 7)
