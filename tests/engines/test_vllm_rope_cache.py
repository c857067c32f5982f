"""vLLM's rope tables (kvplan.engines.vllm.rope_table_bytes, the budget's `rope_cache` row): each rotary embedding
keeps a [positions, rotary_dim] cos/sin table in the model dtype as a GPU buffer (vllm-0.33.0
model_executor/layers/rotary_embedding/base.py:58-63, :94-103), one per distinct rope (get_rope's cache:
__init__.py:29, :84-85, :351); linear scaling multiplies the positions by its factor (linear_scaling_rope.py:86-91).
The buffer is inside vLLM's "Model loading took" figure, which is how the llm-d vLLM 0.19.0 logs show it."""

from __future__ import annotations

import yaml

from kvplan.engines.vllm import rope_table_bytes
from kvplan.planning.recommend import recommend

from conftest import FIXTURES, config_path, load_config

GIB = 2**30


def test_table_sizes_follow_vllm_rotary_embedding():
    # Llama 3.1: one llama3 rope, 131,072 positions x head dim 128 in bf16
    assert rope_table_bytes(load_config("meta-llama__Llama-3.1-8B"), "bfloat16") == 131072 * 128 * 2
    assert rope_table_bytes(load_config("meta-llama__Llama-3.1-8B"), "float32") == 131072 * 128 * 4
    # Llama-4-Scout: a 10,485,760-position context makes a 2.5 GiB table on every GPU
    assert rope_table_bytes(load_config("meta-llama__Llama-4-Scout-17B-16E-Instruct"), "bfloat16") == 10485760 * 128 * 2
    # Gemma 3 27B (max_position_embeddings left to Gemma3TextConfig's 131,072): the global layers' linear rope (x 8)
    # and the sliding layers' default one
    assert rope_table_bytes(load_config("google__gemma-3-27b-it"), "bfloat16") == 131072 * 128 * 2 * (8 + 1)
    # partial rotary (Qwen3-Next: 0.25 of head dim 256; vLLM moves the factor into the rope parameters,
    # transformers_utils/config.py:675-683, __init__.py:66-70) and a rope type kvplan does not model (YaRN)
    qwen_next = load_config("Qwen__Qwen3-Next-80B-A3B")
    assert rope_table_bytes(qwen_next, "bfloat16") == qwen_next["max_position_embeddings"] * 64 * 2
    assert rope_table_bytes(load_config("openai__gpt-oss-120b"), "bfloat16") is None


def test_the_table_is_what_the_logged_load_holds_beyond_the_parameters():
    """llm-d's vLLM 0.19.0 log of Llama-4-Scout at TP 4: "Model loading took 53.12 GiB"; kvplan's parameters per GPU
    (language model and vision tower, / TP) are 50.59 GiB, and the replicated 2.50 GiB table closes the gap."""
    case = next(
        c
        for c in yaml.safe_load((FIXTURES / "calibration" / "engine_cases.yaml").read_text())
        if c["id"] == "llmd-v0190-meta-llama-llama-4-scout-h100-80gb-tp4pp1dp1-8192"
    )
    rec = recommend(
        str(config_path("meta-llama__Llama-4-Scout-17B-16E-Instruct")),
        gpu_profile="h100-sxm-80gb",
        gpus=4,
        tp=4,
        max_model_len=case["max_model_len"],
        gpu_memory_utilization=case["gpu_memory_utilization"],
        vllm_version=case["engine_version"],
        offline=True,
    )
    terms = {t.name: -t.bytes for t in rec.budget}
    assert terms["rope_cache"] == 10485760 * 128 * 2
    params = terms["weights"] + terms["multimodal_weights"]
    assert abs(params / GIB - 50.59) < 0.01
    assert abs((params + terms["rope_cache"]) / GIB - case["reported"]["weights_gib"]) < 0.05
