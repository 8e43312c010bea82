"""The `coverage` section of results.json (schema version 2) as a JSON Schema: checked once
when a record is read (results/record.py), so `orch merge`, `orch compare` and `orch report`
meet only well-formed sections; a malformed one is one line naming where it is wrong."""

from __future__ import annotations

import jsonschema

_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}

_LINE = {
    "type": "object",
    "required": ["file", "line", "function", "text", "status", "cells"],
    "properties": {
        "file": _STR, "line": _INT, "function": _STR, "text": _STR,
        "status": {"enum": ["run", "not_run", "not_executable"]},
        "cells": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["count", "ran_by"],
            "properties": {"count": {"type": "integer"}, "ran_by": _STRS}}},
    },
}

SCHEMA = {
    "type": "object",
    "required": ["cells", "patches"],
    "properties": {
        "tool": _STR,
        "profiled": _STRS,
        "cells": {"type": "object", "additionalProperties": {
            "type": "object",
            "properties": {"supported": {"type": "boolean"}, "why": _STR, "profiled": _STRS,
                           "executable": _INT, "run": _INT}}},
        "patches": {"type": "array", "items": {
            "type": "object",
            "required": ["index", "name", "subject", "dirty", "lines"],
            "properties": {"index": _INT, "name": _STR, "subject": _STR,
                           "dirty": {"type": "boolean"}, "executable": _INT, "run": _INT,
                           "lines": {"type": "array", "items": _LINE}}}},
    },
}

_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def problem(sec: object) -> str | None:
    """What is wrong with a coverage section, in one line; None: nothing."""
    err = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(sec))
    if err is None:
        return None
    where = "coverage" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                                 for p in err.absolute_path)
    return f"{where}: {err.message}"
