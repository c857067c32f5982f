"""`kvplan recommend ... --emit FORMAT`: every emitted file reads back through `kvplan check` (a manifest by content,
a vLLM config through --engine-config) with the plan's own settings, and checks clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kvplan.checking.emit import EMIT_FORMATS
from kvplan.checking.manifests import detect_format, load_manifest
from kvplan.cli import app

runner = CliRunner()
ENV = {"HF_HUB_OFFLINE": "1"}
PLANS = [
    ("meta-llama/Llama-3.1-70B", "h100-sxm-80gb", "4", "32768"),
    ("meta-llama/Llama-3.1-8B", "a100-sxm-80gb", "1", "65536"),
]


def emit(tmp_path: Path, fmt: str, model: str, gpu: str, tp: str, length: str, *extra: str) -> Path:
    out = tmp_path / f"{fmt}.yaml"
    args = ["recommend", model, "-g", gpu, "--tp", tp, "--gpus", tp, "--max-model-len", length, "--offline"]
    result = runner.invoke(app, [*args, "--emit", fmt, "--emit-file", str(out), *extra], env=ENV)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stderr
    return out


def check(path: Path, *args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["check", *args, str(path), "--offline", "--json"], env=ENV)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize(("model", "gpu", "tp", "length"), PLANS)
@pytest.mark.parametrize("fmt", EMIT_FORMATS)
def test_emitted_file_reads_back_and_checks_clean(tmp_path, fmt, model, gpu, tp, length):
    path = emit(tmp_path, fmt, model, gpu, tp, length)
    if fmt == "vllm-config":
        code, report = check(path, "--gpu", gpu, "--engine-config")
    else:
        assert detect_format(next(d for d in yaml.safe_load_all(path.read_text()) if d)) is not None
        code, report = check(path)  # the GPU type comes from the file itself
    assert code == 0, report
    (row,) = report["deployments"]
    assert row["ok"]
    assert (row["model"], row["gpu_profile"]) == (model, gpu)
    assert row["tensor_parallel_size"] == int(tp)
    assert row["max_model_len"] == int(length)
    assert row["gpu_memory_utilization"] == row["recommend"]["gpu_memory_utilization"]


def test_emitted_names_are_the_projects_fields(tmp_path):
    kserve = yaml.safe_load(emit(tmp_path, "kserve", *PLANS[0]).read_text())
    assert (kserve["apiVersion"], kserve["kind"]) == ("serving.kserve.io/v1alpha1", "LLMInferenceService")
    assert kserve["spec"]["parallelism"] == {"tensor": 4}
    assert kserve["spec"]["template"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    ray = yaml.safe_load(emit(tmp_path, "ray", *PLANS[0]).read_text())
    config = ray["applications"][0]["args"]["llm_configs"][0]
    assert config["accelerator_type"] == "H100"
    assert config["engine_kwargs"]["tensor_parallel_size"] == 4
    dynamo = load_manifest(emit(tmp_path, "dynamo", *PLANS[1]))
    assert [d.name for d in dynamo] == ["llama-3-1-8b/aggregated"]
    assert dynamo[0].gpu == "a100-sxm-80gb"  # NVIDIA-A100-SXM4-80GB read back


def test_a_profile_without_a_gpu_product_name_needs_gpu_profile_on_read_back(tmp_path):
    path = emit(tmp_path, "kserve", "meta-llama/Llama-3.2-1B-Instruct", "16gb", "1", "8192")
    assert "nodeSelector" not in path.read_text()
    result = runner.invoke(app, ["check", str(path), "--offline"], env=ENV)
    assert result.exit_code == 2 and "--gpu-profile" in result.stderr
    code, _ = check(path, "--gpu-profile", "16gb")
    assert code == 0


def test_emit_refuses_other_engines_and_formats(tmp_path):
    base = ["recommend", "meta-llama/Llama-3.1-8B", "-g", "h100-sxm-80gb", "--offline"]
    result = runner.invoke(
        app, [*base, "--engine", "sglang", "--emit", "kserve", "--emit-file", str(tmp_path / "x.yaml")], env=ENV
    )
    assert result.exit_code == 2 and "--emit writes manifests that run vLLM" in result.stderr
    assert not (tmp_path / "x.yaml").exists()
    result = runner.invoke(app, [*base, "--emit", "helm"], env=ENV)
    assert result.exit_code == 2 and "unknown --emit 'helm'" in result.stderr
    result = runner.invoke(app, [*base, "--emit", "ray", "--emit-file", str(tmp_path / "no" / "x.yaml")], env=ENV)
    assert result.exit_code == 2


@pytest.mark.parametrize("fmt", EMIT_FORMATS)
def test_an_emitted_dp_ep_layout_reads_back_with_its_gpus(tmp_path, fmt):
    """TP 2 x DP 2 with expert parallelism: the file asks for 4 GPUs and carries vLLM's --data-parallel-size and
    --enable-expert-parallel, which check plans again (EP 4 = TP x DP)."""
    out = tmp_path / f"{fmt}.yaml"
    args = ["recommend", "deepseek-ai/DeepSeek-V2-Lite", "-g", "h100-sxm-80gb", "--tp", "2", "-dp", "2"]
    args += ["--enable-expert-parallel", "--num-redundant-experts", "4", "--max-model-len", "8192", "--offline"]
    args += ["--emit", fmt, "--emit-file", str(out)]
    assert runner.invoke(app, args, env=ENV).exit_code == 0
    code, report = check(out, "--gpu", "h100-sxm-80gb", "--engine-config") if fmt == "vllm-config" else check(out)
    (row,) = report["deployments"]
    assert code == 0 and row["ok"] and row["gpus"] == 4, report
    layout = row["recommend"]["parallel"]
    assert (layout["dp"], layout["ep_size"], layout["expert_parallel"]) == (2, 4, True)
    assert (layout["redundant_experts"], layout["experts_per_gpu"]) == (4, 17)  # --eplb-config read back
