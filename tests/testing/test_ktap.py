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
