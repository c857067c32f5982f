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
    """Issue 13's proof over both calibration files: on unquantized cases with a known version, median within 1 %
    and none off by more than 1.5 GiB. The case figures are pinned near today's values (regression guards, none a
    fitted target): Gemma-3-27B-it within 0.25 GiB (its vision tower and rope tables counted), Llama-4-Scout within
    0.3 GiB (3.08 before its vision tower and its 2.5 GiB rope table were counted), the MoE logs within 0.1 GiB
    (the fused-MoE workspace), Llama-3.1-8B in fp32 no worse than the 0.37 GiB before."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "recommend_budget_error.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=600,
    ).stdout
    label = re.escape("unquantized, known version")
    match = re.search(
        rf"^{label}: (\d+) cases, median \|error\| ([\d.]+) GiB \(([\d.]+) %\), worst ([\d.]+) GiB", out, re.M
    )
    assert match, out[-2000:]
    cases, median, median_pct, worst = int(match[1]), float(match[2]), float(match[3]), float(match[4])
    assert cases >= 28 and median <= 0.08 and median_pct <= 1.0 and worst <= 1.5, (cases, median, median_pct, worst)
    assert re.search(r"^unquantized, vLLM 0\.19\.0: \d+ cases", out, re.M), out[-2000:]
    assert re.search(r"^quantized checkpoints \(planned from the base config\): \d+ cases", out, re.M), out[-2000:]
    # both files are read: every vLLM case of the 2026 file is planned or skipped with its reason
    assert len(re.findall(r"^skip \S+ \(2026\): \S", out, re.M)) + len(re.findall(r"^\S+\s+2026\s", out, re.M)) >= 35
    errors = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^(\S+)\s+20(?:25|26)\s+\S+\s+[\d.]+\s+[\d.]+\s+([+-][\d.]+)", out, re.M)
    }
    assert abs(errors["llmd-v0190-google-gemma-3-27b-it-h100-80gb-tp1pp1dp1-8192"]) <= 0.25, errors
    assert abs(errors["llmd-v0190-mistralai-mixtral-8x7b-i-h100-80gb-tp2pp1dp1-8192"]) <= 0.1, errors
    assert abs(errors["llmd-v0190-qwen-qwen3-30b-a3b-h100-80gb-tp1pp1dp1-8192"]) <= 0.1, errors
    assert abs(errors["llmd-v0190-meta-llama-llama-3-1-8b-h100-80gb-tp1pp1dp1-8192-dtf32"]) <= 0.37, errors
    assert abs(errors["llmd-v0190-meta-llama-llama-4-scout-h100-80gb-tp4pp1dp1-8192"]) <= 0.3, errors


def test_gpu_check_cpu_mode_writes_a_json_report_and_a_table(tmp_path):
    """benchmarks/gpu_check.sh --cpu: the script the lent GPU machine runs, on tiny models on the CPU (a smoke test:
    a few seconds per model on an idle machine). Every model either reports or ran out of its time budget (a loaded
    machine), never fails; the JSON summary and the Markdown table are written to $OUT and parse."""
    import json
    import os

    import pytest

    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert summary["schema"] == "kvplan.gpu_check/1" and summary["mode"] == "cpu"
    models = summary["models"]
    assert [m["name"] for m in models] == ["llama", "sliding-window", "mla", "hybrid"]
    for m in models:
        assert "report" in m or m["exit_code"] in (124, 137), m.get("why")
        assert "--device cpu" in m["command"] and "--random-weights" in m["command"]
    reported = [m for m in models if "report" in m]
    assert reported
    for m in reported:
        assert m["report"]["schema"] == "kvplan.profile/1"
        for run in m["report"]["runs"]:
            assert run["error"] is None and run["kv_cache_ratio"] == 1.0, (m["name"], run)
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.startswith("## kvplan gpu_check (cpu smoke test)")
    assert "| model | cache | batch | prompt | KV measured |" in table and "### --find-max-batch" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert len(rows) >= len(models)
    if models[0].get("report"):
        assert models[0]["report"]["searches"], "the llama model runs --find-max-batch"
        assert any(line.startswith("| llama | dynamic | 1 | 16 |") for line in rows)
