import pytest

from orchestrator.run.bisect import search


def oracle(first_bad, skip=()):
    calls = []

    def test(k):
        calls.append(k)
        if k in skip:
            return "skip"
        return "bad" if k >= first_bad else "good"
    return test, calls


@pytest.mark.parametrize("n", [1, 2, 5, 8, 13])
def test_finds_every_position(n):
    for fb in range(1, n + 1):
        test, calls = oracle(fb)
        v = search(n, test)
        assert v.first_bad == fb and not v.candidates and not v.error
        assert len(calls) == len(set(calls))  # no prefix tested twice


def test_unbuildable_step_is_stepped_around_not_blamed():
    # patches: 1-4 move series, 5 breaks the build, 6 mends it, 7 pgoff=0, 8 harmless
    test, calls = oracle(7, skip={5})
    v = search(8, test)
    assert v.first_bad == 7 and v.candidates == []


def test_skip_right_before_the_answer_makes_it_ambiguous():
    test, _ = oracle(6, skip={5})
    v = search(8, test)
    assert v.candidates == [5, 6]


def test_endpoints_checked():
    v = search(3, lambda k: "good")
    assert "does not fail" in v.error
    v = search(3, lambda k: "bad")
    assert "base tree without patches is not good" in v.error
    v = search(3, lambda k: "skip" if k == 3 else "good")
    assert "it is skip" in v.error


def test_a_dirty_checkout_is_ignored_with_a_line(fake_kernel_repo, isolated_cache):
    import io

    from orchestrator.base.progress import Progress
    from orchestrator.options import Options
    from orchestrator.run.bisect import ignore_dirty

    opts = Options(tree=str(fake_kernel_repo))
    said = io.StringIO()
    ignore_dirty(opts, Progress(stream=said))
    assert said.getvalue() == ""  # clean: nothing to say
    (fake_kernel_repo / "mm/mmap.c").write_text("edited\n")
    ignore_dirty(opts, Progress(stream=said))
    assert said.getvalue().strip() == (
        f"orch bisect: {fake_kernel_repo} has uncommitted changes (1 file: mm/mmap.c): "
        f"ignored, a bisection tests commits only")


def test_a_base_without_what_the_tests_test_starts_where_they_run():
    """A reproducer of the series' own ioctl skips every test below the patch that adds
    the ioctl (kselftest's convention: a missing feature skips): the search starts at the
    first prefix it runs on, found by bisection, and finds the bad patch above it."""
    for adds, fb, n in [(4, 7, 8), (4, 4, 8), (1, 3, 8), (8, 8, 8), (2, 5, 13)]:
        calls = []

        def test(k, adds=adds, fb=fb, calls=calls):
            calls.append(k)
            return "untested" if k < adds else "bad" if k >= fb else "good"
        v = search(n, test)
        assert (v.first_bad, v.testable_from, v.candidates, v.error) == (fb, adds, [], ""), \
            (adds, fb, n, v)
        assert len(calls) == len(set(calls))
        assert len(calls) <= 2 + 2 * (n.bit_length())


def test_an_untestable_step_beside_the_first_testable_prefix_makes_it_ambiguous():
    def test(k):
        return "untested" if k < 3 else "skip" if k == 3 else "bad"
    v = search(8, test)
    assert v.candidates == [3, 4] and v.first_bad == 4
    # stepped over upward, when it is not beside the answer
    v = search(8, lambda k: "untested" if k < 2 else "skip" if k == 4 else
               "bad" if k >= 7 else "good")
    assert (v.first_bad, v.candidates, v.testable_from) == (7, [], 2)


def test_a_base_that_fails_to_build_is_still_not_good():
    v = search(3, lambda k: "skip" if k == 0 else "bad")
    assert "base tree without patches is not good (it is skip)" in v.error


def test_skips_around_the_first_testable_prefix_are_stepped_around_both_ways():
    """n=4: prefix 1 brings the test and fails; 2 and 3 do not build. The search tries
    below its midpoint too, finds 1, and tests nothing twice."""
    seq = {0: "untested", 1: "bad", 2: "skip", 3: "skip", 4: "bad"}
    calls = []

    def test(k):
        calls.append(k)
        return seq[k]
    v = search(4, test)
    assert (v.first_bad, v.candidates, v.testable_from) == (1, [], 1)
    assert len(calls) == len(set(calls))
    # a skip at the first midpoint, the tests running from 5: prefix 4 is tested once, and
    # testable_from is the first prefix they ran on, not the skip
    seq = {**{k: "untested" for k in range(4)}, 4: "skip", 5: "good", 6: "good", 7: "good",
           8: "bad"}
    calls.clear()
    v = search(8, test)
    assert (v.first_bad, v.candidates, v.testable_from) == (8, [], 5)
    assert len(calls) == len(set(calls)), calls
