"""The benchmark scripts still run against the current tree (they import kvplan and the test fixtures).

Only scripts without timing are run here; their printed figures are errors against real logs, so the test
also pins the budget model's accuracy. No wall-clock assertions.
"""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def test_recommend_budget_error_runs_and_stays_accurate():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "recommend_budget_error.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=600,
    ).stdout
    match = re.search(r"^unquantized: (\d+) cases, median \|error\| ([\d.]+) GiB", out, re.M)
    assert match, out[-2000:]
    cases, median = int(match.group(1)), float(match.group(2))
    assert cases >= 20 and median <= 0.10, (cases, median)
    assert re.search(r"^unquantized, vLLM 0\.19\.0: \d+ cases", out, re.M), out[-2000:]
