"""A finished LAVA job read into orch's suites: LAVA's verdicts with orch's detail from the
console; a kernel crash under a binary is its failure (orch's crash record) and the cases
before it keep their verdicts; a job that ends under a binary without a crash is an error."""

from orchestrator.targets.lava.log import LavaOutcome
from orchestrator.testing import lavaresults


def frame(name, lines, rc=0, secs=1.5, end=True):
    out = [f"orch-lava: begin {name}", *lines, f"orch-lava: stderr {name}"]
    return out + ([f"orch-lava: end {name} rc={rc} secs={secs}"] if end else [])


def case(binary, name, result):
    return {"case": name, "definition": "0_orch", "result": result, "set": binary}


FIRST = frame("first", ["KTAP version 1", "1..2", "# moved 4 pages", "ok 1 a",
                        "# expected 1 VMA, found 2", "not ok 2 b"], rc=1)
FIRST_CASES = [case("first", "a", "pass"), case("first", "b", "fail"),
               case("first", "dmesg_clean", "pass")]


def test_lavas_verdicts_with_orchs_detail(tmp_path):
    out = LavaOutcome("1", FIRST_CASES, FIRST, {"result": "pass"})
    suites, gone = lavaresults.suites(out, "x86_64", ["first"], 300, tmp_path)
    assert gone is None
    (s,) = suites
    assert [(c.name, c.status, c.kind) for c in s.cases] == [
        ("a", "pass", "ktap"), ("b", "fail", "ktap"), ("dmesg_clean", "pass", "dmesg_clean")]
    assert s.cases[1].message == "expected 1 VMA, found 2"  # from the console, as over SSH
    assert s.exit_code == 1 and s.duration == 1.5
    assert (tmp_path / "first.ktap").read_text().startswith("KTAP version 1")


def test_a_dmesg_problem_names_the_line_the_guest_found():
    lines = frame("first", ["KTAP version 1", "1..1", "[   12.5] WARNING: at mm/x.c:1",
                            "ok 1 a"]) + ["orch-lava: dmesg first: [   12.5] WARNING: at mm/x.c:1"]
    out = LavaOutcome("1", [case("first", "a", "pass"), case("first", "dmesg_clean", "fail")],
                      lines, {"result": "pass"})
    (s,), _ = lavaresults.suites(out, "x86_64", ["first"], 300)
    assert [c.name for c in s.cases] == ["a", "dmesg_clean"]  # a kernel line is no output
    assert s.cases[1].status == "fail"
    assert s.cases[1].message == "kernel reported during first: [   12.5] WARNING: at mm/x.c:1"


def test_a_crash_is_the_binarys_failure_and_earlier_cases_keep_their_verdicts():
    console = FIRST + frame("crash", ["KTAP version 1", "1..2", "ok 1 before_the_fault",
                                      "[   20.1] sysrq: Trigger a crash",
                                      "[   20.1] Kernel panic - not syncing: sysrq triggered "
                                      "crash"], end=False)
    out = LavaOutcome("1", FIRST_CASES, console,
                      {"result": "fail", "error_type": "Infrastructure",
                       "error_msg": "Connection closed"})
    suites, gone = lavaresults.suites(out, "x86_64", ["first", "crash", "later"], 300)
    assert gone is not None and not gone.infrastructure
    first, crash, later = suites
    assert [c.status for c in first.cases] == ["pass", "fail", "pass"]
    assert [(c.name, c.status, c.kind) for c in crash.cases] == [
        ("before_the_fault", "pass", "ktap"), ("test_2", "fail", "missing"),
        ("kernel_crash", "fail", "crash")]
    assert crash.cases[-1].message == ("kernel crashed during crash: [   20.1] Kernel panic - "
                                       "not syncing: sysrq triggered crash")
    assert [(c.status, c.kind) for c in later.cases] == [("skip", "crash")]


def test_a_job_that_ends_under_a_binary_without_a_crash_is_infrastructure():
    console = FIRST + frame("hold", ["KTAP version 1", "1..1"], end=False)
    out = LavaOutcome("1", FIRST_CASES, console,
                      {"result": "fail", "error_type": "Infrastructure",
                       "error_msg": "lava-test-shell timed out after 600 seconds"})
    suites, gone = lavaresults.suites(out, "x86_64", ["first", "hold", "later"], 300)
    assert gone is not None and gone.infrastructure
    assert gone.message.startswith("the LAVA job ended during hold: Infrastructure: lava-test")
    assert [(c.name, c.status) for c in suites[1].cases] == [("test_1", "error"),
                                                              ("lava", "error")]
    assert [(c.status, c.kind) for c in suites[2].cases] == [("error", "lava")]


def test_a_servers_results_alone_still_give_kinds():
    reported = [case("p", "p", "pass"), case("k", "test_3", "unknown"),
                case("k", "timeout", "unknown"), case("k", "dmesg_clean", "pass")]
    out = LavaOutcome("1", reported, [], {"result": "pass"})
    (p, k), gone = lavaresults.suites(out, "arm64", ["p", "k"], 300)
    assert gone is None
    assert [(c.name, c.status, c.kind) for c in p.cases] == [("p", "pass", "exit_code")]
    assert [(c.status, c.kind) for c in k.cases] == [("error", "missing"), ("error", "timeout"),
                                                      ("pass", "dmesg_clean")]


def test_a_kernel_line_printed_into_a_tests_line_is_split_off():
    """The serial console carries the test's output and the kernel's: a printk can land
    in the middle of a KTAP line (seen in a LAVA crash run). The KTAP line keeps its name;
    the kernel's part is the kernel's."""
    lines = frame("crash", ["KTAP version 1", "1..1",
                            "ok 1 before_the_fault[    3.009619] orch-fault: crash running"])
    out = LavaOutcome("1", [case("crash", "before_the_fault", "pass"),
                            case("crash", "dmesg_clean", "pass")], lines, {"result": "pass"})
    f = lavaresults.frames(lines)["crash"]
    assert f.stdout == ["KTAP version 1", "1..1", "ok 1 before_the_fault"]
    assert f.kernel == ["[    3.009619] orch-fault: crash running"]
    (s,), _ = lavaresults.suites(out, "x86_64", ["crash"], 300, None)
    assert [(c.name, c.status) for c in s.cases] == [("before_the_fault", "pass"),
                                                     ("dmesg_clean", "pass")]
