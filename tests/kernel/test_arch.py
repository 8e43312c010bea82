"""Arches by name: lookup, aliases, and a list from the command line."""

import pytest

from orchestrator.base.errors import UsageError
from orchestrator.kernel import arch


def test_arch_lookup_and_aliases():
    assert arch.get("aarch64") is arch.ARM64
    assert [a.name for a in arch.parse_list("x86_64,arm64,x86_64")] == ["x86_64", "arm64"]
    with pytest.raises(UsageError, match="unknown arch 'mips'"):
        arch.parse_list("x86_64,mips")
