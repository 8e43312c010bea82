"""`--kselftest` values (kselftest.parse_request) and the programs a request runs from a
kselftest install dir (kselftest.programs): names that never collide with orch's own,
the collection's settings timeout, programs that could not be built reported as skips."""

import pytest

from orchestrator.base.errors import UsageError
from orchestrator.testing import kselftest


@pytest.mark.parametrize("text,coll,progs,cats,args", [
    ("mm", "mm", (), (), ()),
    ("mm:uffd-unit-tests", "mm", ("uffd-unit-tests",), (), ()),
    ("mm:cow,uffd-unit-tests", "mm", ("cow", "uffd-unit-tests"), (), ()),
    ("mm:uffd-stress anon 20 16", "mm", ("uffd-stress",), (), ("anon", "20", "16")),
    ("mm:@userfaultfd,@mmap", "mm", (), ("userfaultfd", "mmap"), ()),
    ("net/forwarding:router.sh", "net/forwarding", ("router.sh",), (), ()),
])
def test_parse_request(text, coll, progs, cats, args):
    q = kselftest.parse_request(text)
    assert (q.collection, q.programs, q.categories, q.args) == (coll, progs, cats, args)
    assert str(q) == text


@pytest.mark.parametrize("text,says", [
    ("", "'' is not a collection name"),
    ("../x", "'../x' is not a collection name"),
    ("mm/../x", "is not a collection name"),
    ("mm:", "nothing after ':'"),
    ("mm:cow,@mmap", "mix of programs and @categories"),
    ("mm:a,b -x", "arguments go with one program"),
    ("mm:@x -y", "arguments go with one program"),
    ("mm:a;rm", "is not a program or category name"),
    ("mm:'a", "No closing quotation"),
])
def test_bad_request_says_what(text, says):
    with pytest.raises(UsageError) as e:
        kselftest.parse_request(text)
    assert says in str(e.value)
    assert str(e.value).startswith(f"--kselftest {text}: ")


def test_suite_names_never_look_like_orch_binaries():
    assert kselftest.suite_name("mm", "uffd-unit-tests") == "kselftest.mm.uffd-unit-tests"
    assert kselftest.suite_name("mm", "uffd-stress", ("anon", "20", "16")) == \
        "kselftest.mm.uffd-stress_anon_20_16"
    assert kselftest.suite_name("net/forwarding", "a b.sh") == "kselftest.net.forwarding.a_b.sh"


@pytest.fixture
def installed(tmp_path):
    mm = tmp_path / "mm"
    mm.mkdir()
    for p in ("run_vmtests.sh", "uffd-unit-tests", "cow"):
        (mm / p).write_text("#!/bin/sh\n")
        (mm / p).chmod(0o755)
    (mm / "settings").write_text("timeout=180\n")
    return tmp_path


def _ps(progs):
    return [(p.binary, p.path, p.args, p.cwd, p.timeout, p.skip) for p in progs]


def test_collection_runs_its_list_and_reports_unbuilt_as_skips(installed):
    got = kselftest.programs(kselftest.parse_request("mm"), installed, ["run_vmtests.sh"],
                             {"mm:hmm-tests": "fatal error: numa.h: No such file"})
    assert _ps(got) == [
        ("kselftest.mm.run_vmtests.sh", "mm/run_vmtests.sh", (), "mm", 180.0, ""),
        ("kselftest.mm.hmm-tests", "mm/hmm-tests", (), "mm", 180.0,
         "not built: fatal error: numa.h: No such file")]


def test_programs_with_args_and_the_timeout_override(installed):
    got = kselftest.programs(kselftest.parse_request("mm:cow -v"), installed, [], {},
                             override=600)
    assert _ps(got) == [("kselftest.mm.cow_-v", "mm/cow", ("-v",), "mm", 600, "")]


def test_categories_run_run_vmtests_once_each(installed):
    got = kselftest.programs(kselftest.parse_request("mm:@userfaultfd,@mmap"), installed,
                             [], {})
    assert [(p.binary, p.args) for p in got] == [
        ("kselftest.mm.@userfaultfd", ("-t", "userfaultfd")),
        ("kselftest.mm.@mmap", ("-t", "mmap"))]


def test_unknown_program_names_what_was_built(installed):
    with pytest.raises(UsageError) as e:
        kselftest.programs(kselftest.parse_request("mm:nope"), installed, [], {})
    assert "mm has no program nope (built: cow, run_vmtests.sh, uffd-unit-tests)" in str(e.value)


def test_requested_program_that_did_not_build_is_a_skip(installed):
    got = kselftest.programs(kselftest.parse_request("mm:hmm-tests"), installed, [],
                             {"mm:hmm-tests": "needs libnuma"})
    assert got[0].skip == "not built: needs libnuma"


def test_category_without_run_vmtests(tmp_path):
    (tmp_path / "vm").mkdir()
    with pytest.raises(UsageError, match="@CATEGORY needs vm/run_vmtests.sh"):
        kselftest.programs(kselftest.parse_request("vm:@x"), tmp_path, [], {})
