"""Comparing the outcomes of one program on two kernels: what is a divergence, its
signature, and what the allowlist takes out."""

import re

from orchestrator.fuzz import allowlist, diff, normalize, trace
from orchestrator.fuzz.model import Op, Program
from orchestrator.fuzz.trace import Outcome

P = Program((Op("mmap", (0, 512, 0)), Op("write", (0, 0, 512, 1)),
             Op("madv", (0, 0, 512, "free")), Op("check"),
             Op("move", (0, 0, 0, 0, 512, 0, 0)), Op("check")))


def out(end="exit 0", klog=(), **records):
    base = {"o0": "mmap ok", "o1": "write ok", "o2": "madv 0 ok",
            "c3.maps": "0+512 rw-p", "c3.r0": "@0+512 512xPX:v1.0+",
            "o4": "move 0 ok move=2097152", "c5.maps": "0+512 rw-p", "end": "ok"}
    base.update({k.replace("_", "."): v for k, v in records.items()})
    return Outcome("1", base, list(klog), end)


def entry(**kw):
    return allowlist.Entry(kw.get("id", "x"), kw["field"],
                           re.compile(kw["prototype"]) if "prototype" in kw else None,
                           re.compile(kw["reference"]) if "reference" in kw else None,
                           "because")


def test_the_same_outcome_is_no_divergence():
    v = diff.compare(out(), out(), P, [])
    assert v.comparable and not v.diverged and not v.differences


def test_an_operation_result_is_signed_by_its_kind_and_results():
    v = diff.compare(out(o4="move -1 EBUSY move=-16"), out(), P, [])
    assert v.signature == "move: -1 EBUSY move=-16 on the prototype, 0 ok move=N on the " \
                          "reference"
    assert diff.message(v, P).startswith("operation 4 (move 0 0 0 0 512 0 0): move -1 EBUSY")


def test_a_page_difference_names_bits_content_and_the_operation_before():
    v = diff.compare(out(c3_r0="@0+512 3xPX:v1.0+,1x-,508xPX:v1.4+"), out(), P, [])
    assert v.signature == "pages after madv free: bits PX only on the reference; content " \
                          "none on the prototype, data on the reference"
    assert "page 3: -:- on the prototype, PX:v1.3 on the reference" in diff.message(v, P)


def test_maps_smaps_and_status():
    v = diff.compare(out(c5_maps="0+256 rw-p,256+256 rw-p"), out(), P, [])
    assert v.signature == "maps after move: more VMAs on the prototype"
    v = diff.compare(out(**{"c3.vma0": "rss=2048 ahp=0 swap=0 flags=rd wr mg"}),
                     out(**{"c3.vma0": "rss=2048 ahp=2048 swap=0 flags=rd wr"}), P, [])
    assert v.signature == "smaps AnonHugePages,VmFlags (+mg) after madv free"
    v = diff.compare(out(c5_status="rssanon=+0 vmswap=+8"),
                     out(c5_status="rssanon=+0 vmswap=+0"), P, [])
    assert v.signature == "status vmswap after move"


def test_crash_hang_and_kernel_reports_on_one_side():
    crash = out(end="crash")
    crash.crash = "kernel crashed during orch_fuzz: BUG: kernel NULL pointer dereference"
    v = diff.compare(crash, out(), P, [])
    assert v.signature.startswith("crash on the prototype: ")
    both = diff.compare(crash, crash, P, [])
    assert not both.diverged and both.both.startswith("crash on both")
    hung = Outcome("1", {"o0": "mmap ok", "o1": "write ok", "o2": "madv 0 ok"}, [], "timeout")
    assert diff.compare(out(), hung, P, []).signature == "hang on the reference in check"
    warn = ["WARNING: CPU: 1 PID: 90 at mm/userfaultfd.c:1200 move_pages+0x1c/0x300"]
    v = diff.compare(out(klog=warn), out(klog=["random: crng init done"]), P, [])
    assert v.signature == "kernel report on the prototype: WARNING in move_pages"


def test_infrastructure_is_not_compared():
    v = diff.compare(out(end="lost"), out(o4="move -1 EBUSY move=-16"), P, [])
    assert not v.comparable and not v.diverged
    assert not diff.compare(out(end="env swapon: EBUSY"), out(), P, []).comparable


def test_the_allowlist_takes_out_what_it_names_and_counts_it():
    allow = [entry(id="wp-bit", field="pages", prototype=r".*W.*")]
    a = out(c3_r0="@0+512 512xPXW:v1.0+")
    v = diff.compare(a, out(), P, allow)
    assert not v.diverged and v.allowed == {"wp-bit": 1}
    # an entry for another field, or a value it does not match, leaves the divergence
    assert diff.compare(a, out(), P, [entry(field="maps")]).diverged
    assert diff.compare(out(o4="move -1 EBUSY move=-16"), out(), P,
                        [entry(field="op:move", prototype="move -1 EAGAIN.*")]).diverged
    v = diff.compare(out(o4="move -1 EBUSY move=-16"), out(), P,
                     [entry(field="op:move", prototype="move -1 EBUSY.*",
                            reference="move 0 ok.*")])
    assert not v.diverged


def test_concurrent_programs_compare_invariants_and_collect_errnos():
    c = Program((Op("mmap", (0, 4, 0)), Op("mmap", (8, 4, 0)), Op("write", (0, 0, 4, 1)),
                 Op("check"), Op("move", (1, 0, 0, 0, 1, 2, 0), tid=1),
                 Op("move", (1, 1, 0, 1, 1, 2, 0), tid=2)), threads=2)
    pre = {"c3.r0": "@0+4 4xPX:v1.0+", "c3.r1": "@8+4 4x-"}
    a = Outcome("1", {**pre, "t1.4": "move ok", "t2.5": "move EAGAIN",
                      "cend.r0": "@0+4 2x-,2xPX:v1.2+", "cend.r1": "@8+4 2xPX:v1.0+,2x-"},
                [], "exit 0")
    b = Outcome("1", {**pre, "t1.4": "move ok", "t2.5": "move ok",
                      "cend.r0": "@0+4 2x-,2xPX:v1.2+", "cend.r1": "@8+4 1xPX:v1.0,3x-"},
                [], "exit 0")
    v = diff.compare(a, b, c, [])
    assert v.signature == "concurrent moves: lost=0 dup=0 on the prototype, lost=1 dup=0 " \
                          "on the reference"
    assert v.errnos == {"move mode=2": ({"ok", "EAGAIN"}, {"ok"})}


def test_an_entry_can_strip_the_one_word_that_differs():
    e = allowlist.Entry("ac", "smaps", None, None, "because", re.compile(" ac(?= |$)"))
    v = diff.compare(out(**{"c3.vma0": "rss=0 ahp=0 flags=rd mr ac sd"}),
                     out(**{"c3.vma0": "rss=0 ahp=0 flags=rd mr sd"}), P, [e])
    assert not v.diverged and v.allowed == {"ac": 1}
    v = diff.compare(out(**{"c3.vma0": "rss=4 ahp=0 flags=rd mr ac sd"}),
                     out(**{"c3.vma0": "rss=0 ahp=0 flags=rd mr sd"}), P, [e])
    assert v.signature == "smaps Rss,VmFlags (+ac) after madv free"


def test_zero_filled_subpages_normalized_as_the_zero_page():
    """6.1 keeps a split THP's zero-filled subpages, 6.12 maps them to the zero page: the
    records of the first guest run's minimized program (mremap, madv cold)."""
    e = allowlist.Entry("zero", "pages", None, None, "because", normalize="zero-subpages")
    p = Program((Op("mmap", (0, 512, 0)), Op("write", (0, 0, 1, 13))))
    a = Outcome("1", {"o0": "mmap ok", "cend.maps": "0+512 rw-p",
                      "cend.vma0": "rss=2048 dirty=2048 ahp=0 swap=0 flags=rd wr",
                      "cend.r0": "@0+512 1xPXD:v13.0,511xPXD:0",
                      "cend.status": "rssanon=+2048 vmswap=+0"}, [], "exit 0")
    b = Outcome("1", {"o0": "mmap ok", "cend.maps": "0+512 rw-p",
                      "cend.vma0": "rss=4 dirty=4 ahp=0 swap=0 flags=rd wr",
                      "cend.r0": "@0+512 1xPXD:v13.0,511xPD:0",
                      "cend.status": "rssanon=+4 vmswap=+0"}, [], "exit 0")
    assert diff.compare(a, b, p, []).signature.startswith("smaps Rss,Private_Dirty")
    v = diff.compare(a, b, p, [e])
    assert not v.diverged and v.allowed == {"zero": 3}
    # what the zero pages do not explain is still a divergence
    b.records["cend.r0"] = "@0+512 1xPXD:v13.0,510xPD:0,1x-"
    assert diff.compare(a, b, p, [e]).diverged


def test_soft_dirty_of_a_split_thp_is_normalized_only_for_whole_blocks():
    e = allowlist.Entry("sd", "pages", None, None, "because", normalize="split-soft-dirty")
    p = Program((Op("mmap", (0, 1024, 0)),))
    a = out(c3_r0="@0+1024 1024xPX:v1.0+")
    v = diff.compare(a, out(c3_r0="@0+1024 512xPXD:v1.0+,512xPX:v1.512+"), p, [e])
    assert not v.diverged and v.allowed == {"sd": 1}
    v = diff.compare(a, out(c3_r0="@0+1024 1xPX:v1.0,511xPXD:v1.1+,512xPX:v1.512+"), p, [e])
    assert v.signature.startswith("pages after mmap: bits D only on the reference")


def test_a_layout_difference_is_named_by_the_maps_not_by_a_vma_record():
    a = out(**{"c5.vma0": "rss=8 ahp=0 swap=0 flags=rd wr", "c5.vma256": "rss=0 flags=rd wr"},
            c5_maps="0+256 rw-p,256+256 rw-p")
    b = out(**{"c5.vma0": "rss=8 ahp=0 swap=0 flags=rd wr"})
    assert diff.compare(a, b, P, []).signature == "maps after move: more VMAs on the prototype"


# Region records as the executor writes them (fuzz_state.h check_region): pattern runs
# counting up ("+"), one-page pattern runs, every pagemap bit, zero, hash and unreadable.
RAW_REGIONS = ["@0+512 512xPX:v1.0+", "@0+1024 512xPXD:v1.0+,512xPX:v1.512+",
               "@0+16 2x-,3xPX:v7.2+,11x-", "@0+512 1xPXD:v13.0,511xPXD:0",
               "@3+6 1xPX:v2.5,1xPX:v2.5,1xPSXWD:v3.9,2xS:h1234abcd,1xP:!EIO",
               "@0+4 1xPXW:v1.0,1xPXW:v2.1,2xPD:0", "@0+0 "]


def test_a_rewritten_region_record_reads_as_the_executor_wrote_it():
    for raw in RAW_REGIONS:
        head, _, runs = raw.partition(" ")
        assert normalize._encode(trace.pages(raw)) == runs, raw


def test_one_group_per_event_not_per_record():
    """The records of one checkpoint are facets of one difference (a page swapped on one
    side shows in smaps Swap, its pagemap bits and RssAnon): one signature for them; a
    later operation's difference is another."""
    from orchestrator.fuzz import diff, trace
    from orchestrator.fuzz.model import Op, Program
    p = Program((Op("mmap", (0, 1, 0)), Op("madv", (0, 0, 1, "pageout")), Op("check"),
                 Op("madv", (0, 0, 1, "cold"))))
    a = trace.Outcome("1", {"o0": "mmap ok", "o1": "madv 0 ok", "c2.vma0": "rss=0 swap=4",
                            "c2.status": "rssanon=+0", "o3": "madv 0 ok"}, end="exit 0")
    b = trace.Outcome("1", {"o0": "mmap ok", "o1": "madv 0 ok", "c2.vma0": "rss=4 swap=0",
                            "c2.status": "rssanon=+4", "o3": "madv -1 EINVAL"}, end="exit 0")
    v = diff.compare(a, b, p, [])
    assert len(v.signatures) == 3
    sigs = diff.event_signatures(v, p)
    assert sigs == [v.signatures[0], "madv cold: 0 ok on the prototype, -1 EINVAL on the "
                                     "reference"], sigs


def test_a_bit_that_differs_on_a_swapped_page_is_another_signature_than_on_a_present_one():
    """A moved swap entry that is not soft-dirty (a bug planted in patch 5) and a present
    subpage of a split THP that is not (6.1 against 6.12) must not share a group: the
    first would hide behind the second, which every run shows."""
    p = Program((Op("mmap", (0, 2, 0)), Op("move", (0, 0, 0, 1, 1, 0, 0))))
    swapped = diff.compare(out(c1_r0="@0+2 2xS:v1.0+"), out(c1_r0="@0+2 2xSD:v1.0+"), p, [])
    present = diff.compare(out(c1_r0="@0+2 2xP:v1.0+"), out(c1_r0="@0+2 2xPD:v1.0+"), p, [])
    assert swapped.signature.endswith(": bits D only on the reference, of a swapped page")
    assert present.signature.endswith(": bits D only on the reference, of a present page")
