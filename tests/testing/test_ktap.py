from orchestrator.testing import ktap

SAMPLE = """\
KTAP version 1
1..5
# diag for a
ok 1 new_before
# expected 1 VMA, found 3: 7f00-7f01 7f01-7f02 7f02-7f03
not ok 2 new_after
ok 3 thp_source # SKIP THP not available
ok 4 - dashed_name
not ok 5 todo_case # TODO not done yet
"""


def test_parse_statuses_and_messages():
    p = ktap.parse(SAMPLE)
    assert p.version == "KTAP 1"
    assert p.plan == 5
    by = {r.name: r for r in p.results}
    assert by["new_before"].status == "pass"
    assert by["new_before"].diagnostics == ["diag for a"]
    assert by["new_after"].status == "fail"
    assert by["new_after"].message.startswith("expected 1 VMA, found 3")
    assert by["thp_source"].status == "skip"
    assert by["thp_source"].message == "THP not available"
    assert by["dashed_name"].status == "pass"
    assert by["todo_case"].status == "skip"
    assert p.missing() == []


def test_missing_tests_detected_when_binary_dies():
    p = ktap.parse("KTAP version 1\n1..3\nok 1 a\n")
    assert p.missing() == [2, 3]


def test_skip_all_plan():
    p = ktap.parse("TAP version 13\n1..0 # SKIP no userfaultfd\n")
    assert p.plan == 0 and p.skip_all == "no userfaultfd"


def test_nested_subtests_are_not_top_level():
    text = "KTAP version 1\n1..1\n    KTAP version 1\n    1..2\n    ok 1 sub_a\n" \
           "    not ok 2 sub_b\nnot ok 1 parent\n"
    p = ktap.parse(text)
    assert [r.name for r in p.results] == ["parent"]
    assert p.results[0].status == "fail"


def test_garbage_gives_no_results():
    p = ktap.parse("Segmentation fault\n")
    assert p.results == [] and p.plan is None


# --- nested KTAP -------------------------------------------------------------------------

def test_nested_block_becomes_the_parents_subtests():
    text = "KTAP version 1\n1..1\n    KTAP version 1\n    1..2\n    ok 1 sub_a\n" \
           "    not ok 2 sub_b\nnot ok 1 parent\n"
    p = ktap.parse(text)
    parent = p.results[0]
    assert [(s.name, s.status, s.number) for s in parent.subtests] == [
        ("sub_a", "pass", 1), ("sub_b", "fail", 2)]
    # The parent's own detail is what it always was: every line of its block.
    assert parent.diagnostics == ["KTAP version 1", "1..2", "ok 1 sub_a", "not ok 2 sub_b"]
    assert parent.message == "sub_b: test reported not ok"
    assert [(r.name, r.status) for r in ktap.flatten(p.results)] == [
        ("parent", "fail"), ("parent.sub_a", "pass"), ("parent.sub_b", "fail")]


def test_flat_output_flattens_to_itself():
    p = ktap.parse(SAMPLE)
    assert ktap.flatten(p.results) == p.results
    assert all(r.subtests == [] for r in p.results)


# The KTAP documentation's example (Documentation/dev-tools/ktap.rst): two-space levels.
SPEC = """\
KTAP version 1
1..1
  KTAP version 1
  1..3
    KTAP version 1
    1..1
    # test_1: initializing test_1
    ok 1 test_1
  ok 1 example_test_1
    KTAP version 1
    1..2
    ok 1 test_1 # SKIP test_1 skipped
    ok 2 test_2
  ok 2 example_test_2
    KTAP version 1
    1..3
    ok 1 test_1
    # test_2: FAIL
    not ok 2 test_2
    ok 3 test_3 # SKIP test_3 skipped
  not ok 3 example_test_3
not ok 1 main_test
"""


def test_several_levels_as_in_the_ktap_documentation():
    p = ktap.parse(SPEC)
    assert p.plan == 1 and p.missing() == []
    flat = [(r.name, r.status, r.message) for r in ktap.flatten(p.results)]
    assert flat == [
        ("main_test", "fail", "example_test_3: test_2: test_2: FAIL"),
        ("main_test.example_test_1", "pass", ""),
        ("main_test.example_test_1.test_1", "pass", ""),
        ("main_test.example_test_2", "pass", ""),
        ("main_test.example_test_2.test_1", "skip", "test_1 skipped"),
        ("main_test.example_test_2.test_2", "pass", ""),
        ("main_test.example_test_3", "fail", "test_2: test_2: FAIL"),
        ("main_test.example_test_3.test_1", "pass", ""),
        ("main_test.example_test_3.test_2", "fail", "test_2: FAIL"),
        ("main_test.example_test_3.test_3", "skip", "test_3 skipped"),
    ]
    leaf = p.results[0].subtests[0].subtests[0]
    assert leaf.diagnostics == ["test_1: initializing test_1"]


# KUnit: a "# Subtest:" line opens each suite's indented block.
KUNIT = """\
KTAP version 1
1..2
    KTAP version 1
    # Subtest: uffd_suite
    # module: uffd_test
    1..2
    ok 1 move_basic
    ok 2 move_pmd # SKIP no THP
# uffd_suite: pass:1 fail:0 skip:1 total:2
ok 1 uffd_suite
    # Subtest: old_style
    1..1
    ok 1 only
ok 2 old_style
"""


def test_kunit_subtest_blocks():
    p = ktap.parse(KUNIT)
    assert [(r.name, [s.name for s in r.subtests]) for r in p.results] == [
        ("uffd_suite", ["move_basic", "move_pmd"]), ("old_style", ["only"])]
    assert p.results[0].subtests[1].message == "no THP"


# kselftest's run_kselftest.sh: each program's output prefixed "# ", KTAP ones nested.
RUNNER = """\
TAP version 13
1..3
# timeout set to 180
# selftests: mm: ksm_functional_tests
# TAP version 13
# 1..3
# # [RUN] test_unmerge
# ok 1 Pages were unmerged
# ok 2 # SKIP MADV_UNMERGEABLE not supported
# not ok 3 KSM merging not triggered
# # Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0
not ok 1 selftests: mm: ksm_functional_tests # exit=1
# timeout set to 180
# selftests: mm: uffd-unit-tests
# Testing move on anon... done
ok 2 selftests: mm: uffd-unit-tests
# timeout set to 180
# selftests: mm: hmm-tests
#
not ok 3 selftests: mm: hmm-tests # TIMEOUT 180 seconds
"""


def test_kselftest_runner_output():
    p = ktap.parse(RUNNER)
    assert p.version == "TAP 13" and p.missing() == []
    got = [(r.name, r.status, r.message) for r in ktap.flatten(p.results)]
    ksm = "selftests:_mm:_ksm_functional_tests"
    assert got[1:4] == [
        (f"{ksm}.Pages_were_unmerged", "pass", ""),
        (f"{ksm}.test_2", "skip", "MADV_UNMERGEABLE not supported"),
        (f"{ksm}.KSM_merging_not_triggered", "fail", "test reported not ok")]
    assert got[0] == (ksm, "fail", "KSM_merging_not_triggered: test reported not ok")
    assert got[4:] == [("selftests:_mm:_uffd-unit-tests", "pass", ""),
                       ("selftests:_mm:_hmm-tests", "error", "timeout: 180 seconds")]
    assert "Testing move on anon... done" in p.results[1].diagnostics


def test_binary_dying_inside_a_nested_block():
    text = "KTAP version 1\n1..2\nok 1 first\n    KTAP version 1\n    # Subtest: second\n" \
           "    1..3\n    ok 1 a\n"
    p = ktap.parse(text)
    assert [r.name for r in p.results] == ["first"]
    assert p.missing() == [2]
    ph = p.partial[2]
    assert (ph.name, ph.status, ph.kind) == ("second", "error", "missing")
    assert [(s.name, s.status) for s in ph.subtests] == [
        ("a", "pass"), ("test_2", "error"), ("test_3", "error")]


def test_a_nested_version_line_needs_indentation_or_the_runner_prefix():
    # orch's own selftests print diagnostics with "# "; a diagnostic is not a block
    p = ktap.parse("KTAP version 1\n1..1\n# ok 1 looks like a result\nok 1 real\n")
    assert [(r.name, r.subtests) for r in p.results] == [("real", [])]
    assert p.results[0].diagnostics == ["ok 1 looks like a result"]


# --- directives ------------------------------------------------------------------------

def test_every_kselftest_directive_is_a_result():
    text = "TAP version 13\n1..7\nok 1 # XFAIL known broken\nok 2 lucky # XPASS\n" \
           "not ok 3 # error setup failed\nnot ok 4 slow # TIMEOUT 45 seconds\n" \
           "ok 5 with data #  rcode=0\nnot ok 6 prog # exit=1\nnot ok 7 todo # TODO later\n"
    p = ktap.parse(text)
    assert p.missing() == []
    assert [(r.name, r.status, r.message) for r in p.results] == [
        ("test_1", "pass", "xfail: known broken"),
        ("lucky", "fail", "xpass"),
        ("test_3", "error", "error: setup failed"),
        ("slow", "error", "timeout: 45 seconds"),
        ("with_data", "pass", ""),
        ("prog", "fail", "exit=1"),
        ("todo", "skip", "later"),
    ]


def test_an_indented_plan_in_raw_output_opens_no_block():
    p = ktap.parse("KTAP version 1\n1..1\n  1..2\n  counting\nok 1 only\n")
    assert [(r.name, r.status, r.subtests) for r in p.results] == [("only", "pass", [])]
    assert p.results[0].diagnostics == ["1..2", "counting"]
