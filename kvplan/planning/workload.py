"""A serving workload: the input and output tokens of its requests, from a JSONL file or a named shape.

A JSONL file holds one request per line, `{"input_tokens": 812, "output_tokens": 240}` (blank lines and lines
starting with `#` skipped); every problem names its line. The named workloads are fixed shapes, not traffic
distributions: the ISL/OSL points of the measured grid the throughput efficiency was fitted on
(tests/fixtures/measurements/serving_latency_measured.csv.gz, aiconfigurator's silicon_sample.csv: every one of
them was measured on both H100 SXM and B200), so the TPOT estimate is used where it was fitted. Pass your own
requests as JSONL for a distribution. Pure Python, no torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvplan.errors import ConfigError, UsageError

# name -> (input tokens, output tokens, why); rows of the measured grid (tests/fixtures/measurements):
# 1024x1024 800 rows on B200 SXM and 113 on H100 SXM, 8192x1024 774 and 84, 1024x8192 469 and 62
NAMED: dict[str, tuple[int, int, str]] = {
    "chat": (1024, 1024, "1,024 in / 1,024 out: the measured grid's most-measured point"),
    "rag": (8192, 1024, "8,192 in / 1,024 out: a long retrieved prompt, a short answer (measured grid point)"),
    "reasoning": (1024, 8192, "1,024 in / 8,192 out: a long generation (measured grid point)"),
}
KEYS = ("input_tokens", "output_tokens")
MAX_REQUESTS = 1_000_000


@dataclass(frozen=True)
class Workload:
    """The requests' token counts, summarised: means (what the TPOT estimate and KV capacity use) and tails."""

    name: str
    source: str
    requests: int  # requests read (1 for a named shape)
    mean_input: float
    mean_output: float
    p99_total: int  # input + output, 99th percentile (nearest rank)
    max_total: int  # the longest request, input + output

    @property
    def mean_total(self) -> float:
        return self.mean_input + self.mean_output

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "requests": self.requests,
            "mean_input_tokens": round(self.mean_input, 2),
            "mean_output_tokens": round(self.mean_output, 2),
            "p99_total_tokens": self.p99_total,
            "max_total_tokens": self.max_total,
        }


def nearest_rank(sorted_values: list[int], fraction: float) -> int:
    """The `fraction` percentile of ascending `sorted_values` by nearest rank (a value that occurs)."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarise(name: str, source: str, pairs: list[tuple[int, int]]) -> Workload:
    totals = sorted(i + o for i, o in pairs)
    n = len(pairs)
    return Workload(
        name,
        source,
        n,
        sum(i for i, _ in pairs) / n,
        sum(o for _, o in pairs) / n,
        nearest_rank(totals, 0.99),
        totals[-1],
    )


def named(name: str) -> Workload:
    key = name.strip().lower()
    if key not in NAMED:
        raise UsageError(
            f"unknown workload {name!r}: not a file, nor one of the named workloads",
            hint='pass a JSONL file of {"input_tokens": N, "output_tokens": M} lines, or one of: ' + ", ".join(NAMED),
            field="workload",
        )
    isl, osl, why = NAMED[key]
    return summarise(key, why, [(isl, osl)])


def _count(value: Any, where: str, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: {key} must be a whole number >= {minimum}, got {value!r}", hint=_HINT)
    return value


_HINT = 'write one request per line: {"input_tokens": 812, "output_tokens": 240}'


def parse_jsonl(text: str, path: str) -> Workload:
    """The requests of a JSONL text; a ConfigError naming the line of the first problem."""
    pairs: list[tuple[int, int]] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(stripped)
        except (json.JSONDecodeError, RecursionError) as exc:
            message = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise ConfigError(f"{where}: not JSON ({message})", hint=_HINT) from None
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: a request is a JSON object, got {type(row).__name__}", hint=_HINT)
        unknown = sorted(set(row) - set(KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(KEYS)})", hint=_HINT)
        for key in KEYS:
            if key not in row:
                raise ConfigError(f"{where}: {key} is missing", hint=_HINT)
        pairs.append(
            (
                _count(row["input_tokens"], where, "input_tokens", 1),
                _count(row["output_tokens"], where, "output_tokens", 1),
            )
        )
        if len(pairs) > MAX_REQUESTS:
            raise ConfigError(f"{where}: more than {MAX_REQUESTS:,} requests", hint="pass a sample of the requests")
    if not pairs:
        raise ConfigError(f"{path}: no requests in the file", hint=_HINT)
    return summarise(Path(path).name, path, pairs)


def load_workload(spec: str) -> Workload:
    """A JSONL file (a path that exists, or one ending in .jsonl / .json) or a named workload (NAMED)."""
    from kvplan.sources.yaml_files import read_text

    if Path(spec).exists() or spec.endswith((".jsonl", ".json")):
        return parse_jsonl(read_text(spec, what="workload file"), spec)
    return named(spec)
