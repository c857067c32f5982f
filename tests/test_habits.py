"""What users of vLLM and other CLIs type by habit: -h, shell completion, vLLM's option spellings and long dtype
names, one name for the GPU profile (`--gpu-profile/-g`) and `--gpu-profile auto` from the local GPU."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.errors import ProfileError
from kvplan.sources import local_gpu
from kvplan.sources.hardware import load_profile

runner = CliRunner()
MODEL = "meta-llama/Llama-3.1-8B"
ENGINE_CONFIG = str(Path(__file__).parents[1] / "examples" / "engine-configs" / "vllm-serve.yaml")


def _json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("args", [["-h"], ["estimate", "-h"], ["profiles", "-h"], ["profiles", "list", "-h"]])
def test_dash_h_is_help(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "Usage: kvplan" in result.stdout and "-h, --help" in result.stdout


def test_shell_completion_is_offered():
    result = runner.invoke(app, ["--help"])
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


def test_vllm_spellings_on_estimate():
    short = _json("estimate", MODEL, "--seq-len", "32k", "--tp", "2", "--pp", "2", "--kv-dtype", "fp8", "--offline")
    vllm = _json(
        "estimate", MODEL, "--max-model-len", "32k", "--tensor-parallel-size", "2", "--pipeline-parallel-size", "2",
        "--kv-cache-dtype", "fp8_e4m3fn", "--offline",
    )  # fmt: skip
    assert vllm == short


@pytest.mark.parametrize(("long", "short"), [("bfloat16", "bf16"), ("float16", "fp16"), ("float32", "fp32")])
def test_long_dtype_names(long, short):
    a = _json("estimate", MODEL, "--dtype", long, "--kv-cache-dtype", long, "--offline")
    b = _json("estimate", MODEL, "--dtype", short, "--kv-dtype", short, "--offline")
    assert a == b


def test_vllm_spellings_on_recommend():
    short = _json("recommend", MODEL, "-g", "h100", "--gpus", "2", "--tp", "2", "--kv-dtype", "fp8", "--offline")
    vllm = _json(
        "recommend", MODEL, "--gpu-profile", "h100", "--gpus", "2", "--tensor-parallel-size", "2",
        "--kv-cache-dtype", "fp8", "--dtype", "bfloat16", "--offline",
    )  # fmt: skip
    assert vllm == short


def test_check_takes_gpu_profile_and_keeps_gpu():
    new = _json("check", "--engine-config", ENGINE_CONFIG, "-g", "h100-sxm-80gb", "--offline")
    old = _json("check", "--engine-config", ENGINE_CONFIG, "--gpu", "h100-sxm-80gb", "--offline")
    assert new == old


def _fake_tool(tmp_path: Path, name: str, output: str, code: int = 0) -> None:
    tool = tmp_path / name
    tool.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\nexit {code}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def only_fake_tools(tmp_path, monkeypatch):
    """PATH holds only the fake tools (and sh); torch is not asked (its child process would see a real GPU)."""
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/bin{os.pathsep}/usr/bin")
    monkeypatch.setattr(local_gpu, "_torch", lambda: [])
    return tmp_path


def test_auto_from_nvidia_smi(only_fake_tools):
    _fake_tool(only_fake_tools, "nvidia-smi", "NVIDIA H100 80GB HBM3, 81559 MiB\nNVIDIA H100 80GB HBM3, 81559 MiB")
    assert load_profile("auto").id == "h100-sxm-80gb"
    data = _json("recommend", MODEL, "--gpu-profile", "auto", "--offline")
    assert data["gpu_profile"] == "h100-sxm-80gb"


def test_auto_from_rocm_smi(only_fake_tools):
    _fake_tool(
        only_fake_tools, "rocm-smi", "device,Card series,Card model,Card vendor\ncard0,AMD Instinct MI300X,0x74a1,AMD"
    )
    assert load_profile("AUTO").id == "mi300x"


def test_auto_with_nothing_detected_is_one_error_line(only_fake_tools):
    _fake_tool(only_fake_tools, "nvidia-smi", "NVIDIA-SMI has failed", code=9)
    result = runner.invoke(app, ["recommend", MODEL, "-g", "auto", "--offline"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: --gpu-profile auto: no GPU detected (nvidia-smi, rocm-smi, torch")
    assert lines[1].startswith("hint: pass a profile id") and len(lines) == 2


def test_auto_with_an_unknown_gpu_names_it(only_fake_tools):
    _fake_tool(only_fake_tools, "nvidia-smi", "NVIDIA Imaginary X1, 12000 MiB")
    with pytest.raises(ProfileError, match="names the GPU 'NVIDIA Imaginary X1', which no profile has"):
        load_profile("auto")


def test_auto_with_different_gpus_asks_which(only_fake_tools):
    _fake_tool(only_fake_tools, "nvidia-smi", "NVIDIA H100 80GB HBM3, 81559 MiB\nNVIDIA L4, 23034 MiB")
    with pytest.raises(ProfileError, match="lists different GPUs"):
        load_profile("auto")
