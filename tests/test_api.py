"""The public Python API: typed keyword arguments, the same answers as the commands, nothing heavy imported."""

from __future__ import annotations

import inspect
import json

import pytest
from typer.testing import CliRunner

import kvplan
from kvplan.checking.plans import load_plan
from kvplan.cli import app

from conftest import ROOT

PLAN = ROOT / "examples" / "plans" / "kvplan.yaml"
LLAMA = "meta-llama/Llama-3.1-8B"


@pytest.mark.parametrize("name", ["estimate", "recommend", "check", "resolve"])
def test_api_functions_take_typed_keywords_only(name):
    params = list(inspect.signature(getattr(kvplan, name)).parameters.values())
    assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params)
    assert all(p.kind == p.KEYWORD_ONLY for p in params[1:])
    assert all(p.annotation is not inspect.Parameter.empty for p in params)


def test_recommend_is_the_planner_and_takes_a_resolved_model():
    model = kvplan.resolve(LLAMA, offline=True)
    by_name = kvplan.recommend(LLAMA, gpu_profile="h100-sxm-80gb", max_model_len=32768, offline=True)
    once = kvplan.recommend(model, gpu_profile="h100-sxm-80gb", max_model_len=32768)
    assert isinstance(once, kvplan.Recommendation) and once.to_dict() == by_name.to_dict()


def test_check_takes_plan_files_and_deployments_and_matches_the_command():
    report = kvplan.check(PLAN, offline=True)
    assert isinstance(report, kvplan.CheckReport)
    cli = CliRunner().invoke(app, ["check", str(PLAN), "--json", "--offline"])
    assert report.to_dict() == json.loads(cli.stdout) and report.exit_code == cli.exit_code
    deployments = load_plan(PLAN)
    mixed = kvplan.check([deployments[0], str(PLAN)], min_headroom="5%", offline=True)
    assert len(mixed.results) == 1 + len(deployments) and mixed.min_headroom == 0.05
    assert kvplan.check(deployments[0], offline=True).results[0].to_dict() == report.results[0].to_dict()
    with pytest.raises(kvplan.UsageError, match="cannot check int"):
        kvplan.check([3])


def test_lazy_names_are_listed():
    assert {"check", "profile", "CheckReport", "Deployment", "ProfileReport"} <= set(dir(kvplan))
    with pytest.raises(AttributeError):
        kvplan.no_such_thing  # noqa: B018
