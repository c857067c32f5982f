"""`kvplan check --summary-md FILE`: Markdown for `$GITHUB_STEP_SUMMARY`, appended (each step appends its own)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from kvplan.cli import app

PLAN = str(Path(__file__).parents[2] / "examples" / "plans" / "kvplan.yaml")
runner = CliRunner()


def test_summary_is_appended_as_a_markdown_table(tmp_path):
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    result = runner.invoke(app, ["check", PLAN, "--offline", "--summary-md", str(summary)])
    assert result.exit_code == 0, result.output
    text = summary.read_text()
    assert text.startswith("earlier step\n### ✅ kvplan check: 4 of 4 deployments pass\n")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 4  # the header and one row per deployment
    assert "| chat | `meta-llama/Llama-3.1-8B` | 1 × `h100-sxm-80gb` |" in text
    assert "kvplan check · 4 deployments" in result.stdout  # the table still goes to stdout


def test_failures_and_fixes_are_listed(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "deployments:\n  - name: too|long\n    model: meta-llama/Llama-3.1-8B\n    gpu: l4\n    max_model_len: 2000k\n"
    )
    summary = tmp_path / "s.md"
    result = runner.invoke(app, ["check", str(plan), "--offline", "--summary-md", str(summary)])
    assert result.exit_code == 1
    text = summary.read_text()
    assert "### ❌ kvplan check: 0 of 1 deployment pass" in text
    assert "| too\\|long |" in text  # a pipe in a name does not break the table
    assert "#### Failures" in text and "  - fix: lower max_model_len" in text


def test_dash_prints_markdown_instead_of_the_table():
    result = runner.invoke(app, ["check", PLAN, "--offline", "--summary-md", "-"])
    assert result.exit_code == 0
    assert result.stdout.startswith("### ✅ kvplan check") and "┃" not in result.stdout


def test_an_unset_variable_is_refused_before_checking():
    result = runner.invoke(app, ["check", PLAN, "--summary-md", ""])
    assert result.exit_code == 2 and "--summary-md got an empty path" in result.output
