"""base/retry.py: the tenacity loops' contract."""

import pytest

from orchestrator.base.retry import retrying, stop_after_attempt, stop_after_delay, wait_fixed


class NotYet(Exception):
    pass


def test_retries_what_it_names_and_says_why():
    said, calls = [], []

    def attempt():
        calls.append(1)
        if len(calls) < 3:
            raise NotYet(f"not yet ({len(calls)})")
        return "up"

    r = retrying("guest", NotYet, stop=stop_after_attempt(5), wait=wait_fixed(0),
                 say=said.append)
    assert r(attempt) == "up"
    assert said == ["guest: not yet (1); try 2", "guest: not yet (2); try 3"]


def test_the_last_exception_when_it_stops_and_others_at_once():
    def never():
        raise NotYet("still down")

    with pytest.raises(NotYet, match="still down"):
        retrying("x", NotYet, stop=stop_after_delay(0.3), wait=wait_fixed(0.05))(never)
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("bad")

    with pytest.raises(ValueError):
        retrying("x", NotYet, stop=stop_after_attempt(5), wait=wait_fixed(0))(broken)
    assert calls == [1]
