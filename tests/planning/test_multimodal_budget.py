"""A multimodal checkpoint's encoders in recommend: their own weights line (budget table and JSON), against the
llm-d vLLM 0.19.0 log of Gemma-3-27B-it on an H100 (tests/fixtures/calibration/engine_cases.yaml, issue 13)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.planning.recommend import recommend

from conftest import FIXTURES, config_path

GIB = 2**30
CASE = next(
    c
    for c in yaml.safe_load((FIXTURES / "calibration" / "engine_cases.yaml").read_text())
    if c["id"] == "llmd-v0190-google-gemma-3-27b-it-h100-80gb-tp1pp1dp1-8192"
)
GEMMA3 = str(config_path("google__gemma-3-27b-it"))


def _logged_case():
    r = CASE["reported"]
    return recommend(
        GEMMA3,
        gpu_profile="h100-sxm-80gb",
        gpu_memory_utilization=CASE["gpu_memory_utilization"],
        max_model_len=CASE["max_model_len"],
        vllm_version=CASE["engine_version"],
        offline=True,
    ), r


def test_gemma3_vision_tower_is_its_own_budget_line():
    """SigLIP tower + projector, 423,060,336 parameters in bf16 (kvplan.weights.encoders, equal to transformers'
    meta build): vLLM loads them with the language model (gemma3_mm.py:552-557), so the log's 51.45 GiB of
    weights are both; kvplan's weights line stays the language model's."""
    rec, logged = _logged_case()
    terms = {t.name: t.bytes for t in rec.budget}
    assert terms["multimodal_weights"] == -423_060_336 * 2 == -rec.multimodal_weights_bytes
    loaded = (rec.weights_bytes + rec.multimodal_weights_bytes) / GIB
    assert abs(loaded - logged["weights_gib"]) < 0.4  # 51.10 vs 51.45 GiB: 0.35 GiB vLLM holds beyond the count
    assert abs(rec.available_kv_memory_bytes / GIB - logged["available_kv_cache_gib"]) < 1.0  # was +1.31


def test_the_line_is_in_the_table_and_the_json():
    args = ["recommend", GEMMA3, "-g", "h100", "--max-model-len", "8192", "--vllm-version", "0.19.0", "--offline"]
    runner = CliRunner()
    table = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "multimodal_weights" in table.stdout
    data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert data["multimodal_weights_bytes"] == 423_060_336 * 2
    assert any(t["name"] == "multimodal_weights" for t in data["budget"])


def test_text_models_and_uncounted_wrappers(tmp_path):
    llama = recommend(str(config_path("meta-llama__Llama-3.1-8B")), gpu_profile="h100-sxm-80gb", offline=True)
    assert llama.multimodal_weights_bytes == 0 and all(t.name != "multimodal_weights" for t in llama.budget)
    gemma4 = json.loads(config_path("google__gemma-4-26B-A4B").read_text())
    gemma4["audio_config"] = {"model_type": "gemma4_audio", "hidden_size": 1024}  # no layout for Gemma 4's audio tower
    path = tmp_path / "config.json"
    path.write_text(json.dumps(gemma4))
    audio = recommend(str(path), gpu_profile="h100-sxm-80gb", offline=True)
    assert audio.multimodal_weights_bytes is None
    assert any("multimodal encoders of this gemma4 checkpoint" in n and "not counted" in n for n in audio.notes)


def _moonvit_split_params(h: int, inter: int, layers: int) -> int:
    """A MoonViT block's tensors vLLM splits over TP (kimi_k25_vit.py:336-350, :413-429): q/k/v weights and biases
    and the first MLP linear's (column-parallel), the output projection's and second MLP linear's weights
    (row-parallel; their biases stay whole)."""
    return layers * (3 * (h * h + h) + (inter * h + inter) + h * h + h * inter)


@pytest.mark.parametrize("tp", [8, 16])
def test_kimi_k25s_tower_splits_its_linears_and_keeps_the_rest_whole(tp):
    """Kimi K2.5 (471,143,920 tower + projector parameters, 16 heads): vLLM splits each block's attention and MLP
    linears over TP and keeps the patch embedding, position grid, norms, row-parallel biases and the ReplicatedLinear
    projector whole (kimi_k25_vit.py:911-946)."""
    rec = recommend(str(config_path("moonshotai__Kimi-K2.5")), gpu_profile="h200-sxm-141gb", tp=tp, offline=True)
    split = _moonvit_split_params(1152, 4304, 27)
    expected = (471_143_920 - split + split // tp) * 2  # bf16
    terms = {t.name: t.bytes for t in rec.budget}
    assert rec.multimodal_weights_bytes == expected == -terms["multimodal_weights"]
    assert expected > 471_143_920 * 2 // tp  # more than a plain / TP


@pytest.mark.parametrize("tp", [8, 16])
def test_kimi_k3s_tower_is_whole_when_its_heads_do_not_divide_by_tp(tp):
    """Kimi K3's tower has 12 heads: at TP 8 or 16 vLLM falls back to running it data-parallel, every linear whole on
    every GPU (model_executor/models/vision.py:141-156, kimi_k3/nvidia/model.py:1612-1614)."""
    rec = recommend(str(config_path("moonshotai__Kimi-K3")), gpu_profile="h200-sxm-141gb", tp=tp, offline=True)
    assert rec.multimodal_weights_bytes == 447_358_976 * 2


def test_tp_shards_the_towers_and_given_weights_hold_them():
    tp2 = recommend(GEMMA3, gpu_profile="h100-sxm-80gb", tp=2, max_model_len=8192, offline=True)
    assert tp2.multimodal_weights_bytes == 423_060_336 * 2 // 2 and tp2.gpus == 2
    given = recommend(GEMMA3, gpu_profile="h100-sxm-80gb", weights_bytes="51.45GiB", offline=True)
    assert given.multimodal_weights_bytes == 0 and all(t.name != "multimodal_weights" for t in given.budget)


def test_sglang_budgets_the_towers_too():
    """sglang-0.5.23 srt/models/gemma3_mm.py:185-191 builds the SigLIP tower and projector with the language model."""
    rec = recommend(GEMMA3, gpu_profile="h100-sxm-80gb", engine="sglang", max_model_len=8192, offline=True)
    terms = {t.name: t.bytes for t in rec.budget}
    assert terms["multimodal_weights"] == -423_060_336 * 2
    assert not any("not in sglang's budget" in n for n in rec.notes)


def test_vllm_splits_most_towers_over_tp_but_replicates_gemma4s():
    """vLLM builds Gemma 4's tower from transformers with every nn.Linear replaced by a replicated one
    (vllm-0.33.0 model_executor/models/gemma4_mm.py:1101-1112, models/transformers/utils.py:301-325) and its
    embedder as a ReplicatedLinear (:1010-1016): each TP rank holds the whole tower. Llama 4's tower uses vLLM's
    parallel linears (mllama4.py:136-150, :443-450): split over TP."""
    from kvplan.weights.encoders import encoder_parameters

    def mm(name: str, tp: int):
        rec = recommend(
            str(config_path(name)), gpu_profile="h100-sxm-80gb", gpus=tp, tp=tp, max_model_len=4096, offline=True
        )
        term = next(t for t in rec.budget if t.name == "multimodal_weights")
        return rec.multimodal_weights_bytes, -term.bytes

    gemma4 = encoder_parameters(json.loads(config_path("google__gemma-4-26B-A4B").read_text())) * 2  # bf16
    assert mm("google__gemma-4-26B-A4B", 1) == mm("google__gemma-4-26B-A4B", 2) == (gemma4, gemma4)
    scout = encoder_parameters(json.loads(config_path("meta-llama__Llama-4-Scout-17B-16E-Instruct").read_text())) * 2
    assert mm("meta-llama__Llama-4-Scout-17B-16E-Instruct", 4) == (scout // 4, scout // 4)
