"""Kernel reports parsed from logs of both arches: kind, title, header file:line, frames."""

from pathlib import Path

from orchestrator.testing import reports

DATA = Path(__file__).parent / "data"


def load(name):
    return reports.parse((DATA / name).read_text())


def test_x86_warning_then_null_dereference():
    warn, oops = load("x86_warn_null.log")
    assert (warn.kind, warn.title) == ("warning", "WARNING in move_pages_pte")
    assert (warn.file, warn.line) == ("mm/userfaultfd.c", 1087)
    # The crash site (RIP) first; "? __warn" is the unwinder's guess, left out.
    assert [f.symbol for f in warn.frames][:3] == [
        "move_pages_pte+0x5c/0x6a0", "uffd_move_pages+0x1f4/0x380",
        "userfaultfd_ioctl+0x8b9/0x1730"]
    assert all(f.function != "__warn" for f in warn.frames)
    assert oops.kind == "oops"
    assert oops.title == "BUG: kernel NULL pointer dereference in move_pages_pte"
    assert oops.frames[0].symbol == "move_pages_pte+0x66/0x6a0"
    assert len([f for f in oops.frames if f.function == "move_pages_pte"]) == 1
    assert any("Oops: 0000 [#1]" in t for t in oops.text)


def test_arm64_warning_then_null_dereference():
    warn, oops = load("arm64_warn_null.log")
    assert (warn.kind, warn.title, warn.file, warn.line) == (
        "warning", "WARNING in move_pages_pte", "mm/userfaultfd.c", 1087)
    # pc, then the call trace without the pc's frame twice
    assert [f.symbol for f in warn.frames][:2] == ["move_pages_pte+0x78/0x7d0",
                                                   "uffd_move_pages+0x1e8/0x3a0"]
    assert oops.kind == "oops"
    assert oops.title == "Unable to handle kernel NULL pointer dereference in move_pages_pte"
    assert [f.symbol for f in oops.frames][:2] == ["move_pages_pte+0x80/0x7d0",
                                                   "uffd_move_pages+0x1e8/0x3a0"]


def test_kasan_lockdep_hung_task():
    kasan, lockdep, hung = load("kasan_lockdep_hung.log")
    assert (kasan.kind, kasan.title) == ("kasan", "KASAN: use-after-free in move_pages_pte")
    # Only the access stack: not the allocation's or the free's.
    assert [f.function for f in kasan.frames] == [
        "dump_stack_lvl", "print_report", "kasan_report", "move_pages_pte", "uffd_move_pages"]
    assert [f.function for f in kasan.frames if not f.internal][0] == "move_pages_pte"
    assert lockdep.kind == "lockdep"
    assert lockdep.title == "possible circular locking dependency detected in down_read"
    # The dependency chain's stacks are not the report's stack.
    assert "anon_vma_fork" not in [f.function for f in lockdep.frames]
    assert hung.kind == "hung_task" and hung.title == "INFO: task hung in folio_wait_bit_common"


def test_panic_closes_the_report_it_follows_and_a_bare_panic_is_one():
    text = ("[ 1.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\n"
            "[ 1.1] Oops: 0002 [#1] SMP\n[ 1.2] RIP: 0010:f+0x1/0x10\n"
            "[ 1.3] Kernel panic - not syncing: Fatal exception\n")
    (r,) = reports.parse(text)
    assert r.fatal == "Fatal exception" and r.title.endswith(" in f")
    (p,) = reports.parse("[ 2.0] sysrq: Trigger a crash\n"
                         "[ 2.1] Kernel panic - not syncing: sysrq triggered crash\n"
                         "[ 2.2] Call Trace:\n[ 2.3]  <TASK>\n[ 2.4]  panic+0x1/0x2\n"
                         "[ 2.5]  sysrq_handle_crash+0x1a/0x20\n")
    assert (p.kind, p.title) == ("panic", "Kernel panic - not syncing: sysrq triggered crash")
    assert [f.function for f in p.frames if not f.internal] == ["sysrq_handle_crash"]


def test_no_report_and_json():
    assert reports.parse("[ 1.0] orch: begin x\n[ 1.1] random: crng init done\n") == []
    (warn, _) = load("x86_warn_null.log")
    d = warn.to_json()
    assert d["kind"] == "warning" and d["file"] == "mm/userfaultfd.c"
    assert d["frames"][0] == {"function": "move_pages_pte", "offset": "0x5c", "size": "0x6a0"}


def test_a_guessed_stack_is_kept_as_guesses():
    """x86_64's tinyconfig unwinder (UNWINDER_GUESS) marks every frame `? `."""
    text = ("[ 1.0] BUG: kernel NULL pointer dereference, address: 0000000000000000\n"
            "[ 1.1] Oops: 0000 [#1] SMP\n[ 1.2] RIP: 0010:uffd_move_pages+0x6c/0x8a0\n"
            "[ 1.3] Call Trace:\n[ 1.4]  <TASK>\n[ 1.5]  ? __die+0x1f/0x60\n"
            "[ 1.6]  ? userfaultfd_ioctl+0x3d0/0x1530\n[ 1.7]  ? uffd_move_pages+0x6c/0x8a0\n"
            "[ 1.8]  </TASK>\n")
    (r,) = reports.parse(text)
    assert [(f.function, f.guess) for f in r.frames] == [
        ("uffd_move_pages", False), ("__die", True), ("userfaultfd_ioctl", True)]
    assert r.to_json()["frames"][2] == {"function": "userfaultfd_ioctl", "offset": "0x3d0",
                                        "size": "0x1530", "guess": True}
    assert "guesses" not in r.to_json()


def test_every_report_kind_parsed_also_fails_dmesg_clean():
    """One list decides dmesg_clean (SSH and the LAVA guest's grep): a report that triage
    can parse is never in a log that passed."""
    from orchestrator.testing.testrun import dmesg_problems

    stall = ("[   30.1] rcu: INFO: rcu_preempt self-detected stall on CPU\n"
             "[   30.1] rcu: \t1-....: (2100 ticks this GP)\n"
             "[   30.2] Call Trace:\n[   30.2]  uffd_move_pages+0x10/0x200\n")
    kinds = {r.kind for r in reports.parse(stall)}
    assert kinds == {"rcu_stall"}, kinds
    assert dmesg_problems(stall)
