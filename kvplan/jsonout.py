"""Strict JSON for every document kvplan writes (stdout and files): JSON has no NaN or Infinity, which
`json.dumps` writes anyway; a figure that is not finite becomes null and its place is named. Imports nothing
from kvplan."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dumps"]


def dumps(data: Any) -> tuple[str, list[str]]:
    """(the JSON text, indented; the paths of the figures written as null because they were not finite)."""
    where: list[str] = []
    text = json.dumps(_finite(data, "$", where), indent=2, allow_nan=False)
    return text, where


def _finite(value: Any, path: str, where: list[str]) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        where.append(path)
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{path}.{k}", where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, f"{path}[{i}]", where) for i, v in enumerate(value)]
    return value
