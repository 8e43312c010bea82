"""`orch fuzz`'s bad input: one line and exit 2, before anything is built."""


def test_time_and_programs_are_one_budget(orch):
    r = orch("fuzz", "--time", "10", "--programs", "5")
    assert r.returncode == 2 and "not allowed with argument" in r.stderr


def test_an_unknown_reference_tree_or_series(orch, tmp_path):
    r = orch("fuzz", "--against-series", str(tmp_path / "nope"), "-o", str(tmp_path / "o"))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        "orch: fuzz: the reference (--against, --against-series): --series ")


def test_a_bad_allowlist_says_which_entry(orch, tmp_path):
    f = tmp_path / "allow.yaml"
    f.write_text("- {id: a, field: maps}\n")
    r = orch("fuzz", "--allowlist", str(f), "-o", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip() == f"orch: usage: {f}: entry 0: needs 'reason' (every entry " \
                               f"says why)"


def test_the_shipped_allowlist_loads_and_says_why():
    from orchestrator.fuzz import allowlist
    for e in allowlist.load():
        assert len(e.reason) > 20, e.id


def test_no_shrinking_is_a_shrink_time_of_0():
    from orchestrator.cli import fuzz as cli
    from orchestrator.cli.common import Parser

    p = Parser(prog="orch fuzz")
    cli.add_arguments(p)
    assert p.parse_args(["--shrink-time", "0"]).shrink_time == 0
    assert p.parse_args([]).shrink_time == 300


def test_suite_coverage_needs_coverage_and_a_run_with_it(orch, tmp_path):
    r = orch("fuzz", "--suite-coverage", str(tmp_path), "-o", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].endswith(
        "--suite-coverage needs --coverage (the fuzzing's own coverage to show beside it)")
    r = orch("fuzz", "--coverage", "--suite-coverage", str(tmp_path), "-o",
             str(tmp_path / "o"))
    assert r.returncode == 2
    assert f"{tmp_path}/results.json: no such file" in r.stderr.strip().splitlines()[-1]
