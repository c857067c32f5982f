"""The engine registry: every list of engines derives from it, and an engine registered in one place (its entry)
is estimated, recommended, checked and offered by the CLI like the built-in ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import toy_engine
from typer.testing import CliRunner

import kvplan
from kvplan.checking.check import supported_engines
from kvplan.engines import registry
from kvplan.errors import UsageError
from kvplan.planning.estimate import estimate
from kvplan.planning.recommend import recommend

from conftest import config_path

LLAMA = str(config_path("meta-llama__Llama-3.1-8B"))
H100 = 85028896768  # h100-sxm-80gb memory_bytes
LLAMA_WEIGHTS = 16060522496  # bf16, analytic count
TOY_TOKEN = 32 * 8 * 128 * 2  # Llama-3.1-8B: layers x KV heads x head_dim x (K, V), one byte each
runner = CliRunner()


@pytest.fixture
def toy():
    entry = registry.register(toy_engine.ENTRY)
    try:
        yield entry
    finally:
        registry.unregister(entry.name)
    assert registry.lookup("toy") is None


def test_the_lists_come_from_the_registry():
    assert registry.names() == (
        "vllm",
        "sglang",
        "transformers",
        "transformers-static",
        "llamacpp",
        "tensorrt-llm",
        "lightllm",
        "tgi",
        "xinference",
        "naive",
    )
    assert registry.sized_engines() == ("vllm", "sglang", "llamacpp", "tensorrt-llm", "lightllm")
    assert supported_engines() == registry.sized_engines()
    assert "lightllm" not in registry.estimate_engines()  # its storage model is SGLang's
    assert registry.storage_entry("lightllm").name == "sglang"
    assert registry.config_kinds() == ("vllm", "sglang", "xinference")
    assert registry.command_engines() == ("vllm", "sglang", "llamacpp", "tensorrt-llm", "lightllm", "tgi", "xinference")
    for spelling, name in (("Llama.CPP", "llamacpp"), ("trtllm", "tensorrt-llm"), ("hf", "transformers"), ("x", "x")):
        assert registry.canonical_engine(spelling) == name
    assert registry.flag_key("llama.cpp") == "llama.cpp" and registry.flag_key("vllm") == "vllm"


def test_registration_refuses_clashes():
    with pytest.raises(ValueError, match="already taken"):
        registry.register(registry.EngineEntry(name="new", aliases=("trtllm",)))
    with pytest.raises(ValueError, match="stores like unknown"):
        registry.register(registry.EngineEntry(name="new", stores_like="nothing"))
    with pytest.raises(ValueError, match="nothing sizes its caches"):
        registry.register(registry.EngineEntry(name="new", serving=toy_engine.ToyServing()))
    assert registry.lookup("new") is None


def test_a_registered_engine_is_estimated(toy):
    est = estimate(LLAMA, engine="toy-engine", seq_len=1000, batch=2)
    assert est.engine == "toy" and est.engine_follows == toy_engine.ToyStorage.follows
    assert est.kv_cache_bytes == TOY_TOKEN * 1000 * 2
    assert "toy" in registry.estimate_engines()


def test_a_registered_engine_is_recommended(toy):
    rec = recommend(LLAMA, gpu_profile="h100-sxm-80gb", engine="toy", max_model_len=8192)
    available = int(H100 * 0.5) - LLAMA_WEIGHTS
    assert rec.engine == "toy" and rec.gpu_memory_utilization == 0.5
    assert [t.name for t in rec.budget] == ["toy_share", "weights"]
    assert rec.available_kv_memory_bytes == available
    assert rec.kv_cache_tokens == available // TOY_TOKEN and rec.block_size == 1
    assert rec.kv_bytes_per_request == 8192 * TOY_TOKEN
    assert rec.flags["toy"] == f"toy-serve {LLAMA} --len 8192 --seqs {rec.max_num_seqs} --planned"
    assert rec.fits
    other = recommend(LLAMA, gpu_profile="h100-sxm-80gb", max_model_len=8192)
    assert other.flags["toy"].endswith(f"--seqs {other.max_num_seqs}")  # every plan prints every command
    note = "--ubatch does not apply to toy and was ignored"
    assert note in recommend(LLAMA, gpu_profile="h100-sxm-80gb", engine="toy", n_ubatch=64).notes


def test_a_registered_engine_is_checked(toy, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"deployments:\n  - {{name: t, model: {LLAMA}, gpu: h100-sxm-80gb, engine: toy, max_model_len: 32k, "
        "concurrency: 4}\n  - {name: alias, model: " + LLAMA + ", gpu: h100-sxm-80gb, engine: toy-engine, "
        "max_model_len: 8k}\n"
    )
    result = runner.invoke(_app(), ["check", str(plan), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [d["engine"] for d in data["deployments"]] == ["toy", "toy"]
    first = data["deployments"][0]
    assert first["needed_kv_bytes"] == 4 * 32768 * TOY_TOKEN
    assert first["available_kv_memory_bytes"] == int(H100 * 0.5) - LLAMA_WEIGHTS
    assert first["recommend"]["flags"]["toy"].endswith("--planned")


def test_the_cli_offers_a_registered_engine(toy):
    app = _app()
    ok = runner.invoke(app, ["estimate", LLAMA, "--engine", "toy", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["engine"] == "toy"
    unknown = runner.invoke(app, ["estimate", LLAMA, "--engine", "nope"])
    assert unknown.exit_code == 2 and "toy" in unknown.stderr.splitlines()[1]  # the hint lists the choices
    refused = runner.invoke(app, ["recommend", LLAMA, "-g", "h100", "--engine", "nope"])
    assert refused.exit_code == 2 and "recommend supports vllm, sglang, llamacpp, tensorrt-llm, lightllm, toy" in (
        refused.stderr
    )
    # help texts are written when kvplan.cli is imported: a process that registers the toy first shows it
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import toy_engine\nfrom kvplan.engines import registry\nregistry.register(toy_engine.ENTRY)\n"
        "from typer.testing import CliRunner\nfrom kvplan.cli import app\n"
        "for cmd in ('estimate', 'recommend', 'check'):\n"
        "    print(CliRunner().invoke(app, [cmd, '--help'], terminal_width=400).output)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(kvplan.__file__).parent.parent)}  # this checkout's kvplan
    helps = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert "toy (one byte per element)" in helps  # estimate --engine
    assert "lightllm (--max_total_token_num from mem_fraction 0.9) or toy (half the memory)" in helps
    assert "toy share of memory (default 0.5)" in helps  # recommend --gpu-memory-utilization
    assert "engines vllm, sglang, llamacpp, tensorrt-llm, lightllm or toy;" in helps  # check


def test_an_unregistered_engine_is_unknown_again():
    assert registry.lookup("toy") is None
    with pytest.raises(UsageError, match="unknown engine 'toy'"):
        estimate(LLAMA, engine="toy")
    with pytest.raises(UsageError, match="not 'toy'"):
        recommend(LLAMA, gpu_profile="h100-sxm-80gb", engine="toy")


def _app():
    from kvplan.cli import app

    return app
