"""The executor on the host's kernel: the trace's records and what they say (an mmap in the
arena, a write's pattern at a checkpoint, VMA bounds relative to the arena, a fault as the
operation's signal)."""

from orchestrator.fuzz import trace
from orchestrator.fuzz.model import Op, Program


def test_records_of_a_sequential_program(run_programs):
    p = Program((Op("mmap", (0, 16, 0)), Op("mmap", (16, 4, 0)), Op("write", (0, 2, 3, 7)),
                 Op("check"), Op("mprot", (1, 0, 1, "none")), Op("read", (1, 0, 1)),
                 Op("munmap", (0, 0, 16))), thp="never")
    (o,) = run_programs([p])
    assert o.end == "exit 0" and o.records["end"] == "ok"
    assert o.records["o0"] == "mmap ok" and o.records["o2"] == "write ok"
    # two anonymous mappings side by side, both untouched by a fault yet: one VMA
    assert o.records["c3.maps"] == "0+20 rw-p"
    assert trace.pages(o.records["c3.r0"])[2:5] == [("PX", "v7.2"), ("PX", "v7.3"),
                                                    ("PX", "v7.4")]
    assert o.records["c3.r0"].startswith("@0+16 2x-,3xPX:v7.2+,11x-")
    assert o.records["o5"] == "read SIGSEGV@0"  # PROT_NONE
    assert o.records["cend.maps"] == "16+1 ---p,17+3 rw-p"
    assert o.records["o6"] == "munmap 0 ok"


def test_a_missing_fault_is_a_signal_not_a_hang(run_programs):
    # A write to a page registered for missing faults, with the SIGBUS feature: a signal,
    # not a wait for a handler. A fork'd child that lives on is reaped at the end.
    p = Program((Op("mmap", (0, 4, 0)), Op("ureg", (0, 0, 4, "m")),
                 Op("write", (0, 1, 1, 2)), Op("fork", ("live", 0, 0))))
    (o,) = run_programs([p])
    assert o.records["o1"].startswith("ureg 0 ok ioctls=0x")
    assert o.records["o2"] == "write SIGBUS@1"
    assert o.records["o3"] == "fork live" and o.end == "exit 0"


def test_many_programs_one_call_each_its_own_process(run_programs):
    ps = [Program((Op("mmap", (i, 1, 0)), Op("write", (0, 0, 1, i + 1)))) for i in range(5)]
    outs = run_programs(ps)
    assert [o.pid for o in outs] == ["0", "1", "2", "3", "4"]
    # each program starts with no region of the others: its own process
    assert [o.records["cend.maps"] for o in outs] == [f"{i}+1 rw-p" for i in range(5)]
