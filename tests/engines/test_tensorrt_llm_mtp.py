"""TensorRT-LLM's MTP speculative decoding: the checkpoint's MTP layers in the target's KV cache, and their weights.

Read from the NVIDIA/TensorRT-LLM code index: pyexecutor/config_utils.py at 00679c66 (:474-475 "Appended MTP/draft
layers need only a count because every draft layer is full attention", :595 `num_draft_layers =
get_num_spec_layers(spec_config) or 0`), and at ONE commit, 011d0933 (011d0933dcb5e592f5fa2626beaf42a96324c578),
tensorrt_llm/_torch/speculative/utils.py (`update_spec_config_from_model_config`: num_nextn_predict_layers is the
checkpoint's; `get_num_spec_layers`: 1 for MTP_EAGLE_ONE_MODEL, num_nextn_predict_layers for vanilla MTP, else 0;
`get_num_extra_kv_tokens`: max_draft_len - 1 in one-engine modes) and tensorrt_llm/llmapi/llm_args.py
(`MTPDecodingConfig`: use_mtp_vanilla False, mtp_eagle_one_model True; `spec_dec_mode`: a 1-layer checkpoint is
MTP_EAGLE_ONE_MODEL unless a flag is changed). Every figure below is written from those rules and the configs'
numbers, not from kvplan's output.
"""

from __future__ import annotations

import json

import pytest

from conftest import load_config

MTP1 = '{"method": "mtp", "num_speculative_tokens": 1}'
MLA = (512 + 64) * 2  # kv_lora_rank + qk_rope_head_dim in bf16: 1,152 B a layer and token
DSA = MLA + 128 + 128 // 128 * 4  # + fp8 indexer keys of index_head_dim 128 and one fp32 scale: 1,284 B


def _estimate(*args: str):
    from tests.test_cli import run

    return run("estimate", *args, "--engine", "tensorrt-llm", "--seq-len", "8192", "--offline")


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], lines
    return lines[0]


@pytest.mark.parametrize(
    ("model", "layers", "per_layer"),
    [("deepseek-ai/DeepSeek-V3", 61, MLA), ("deepseek-ai/DeepSeek-V3.2", 61, DSA), ("zai-org/GLM-5", 78, DSA)],
)
def test_one_mtp_layer_joins_the_cache_like_the_targets_layers(model, layers, per_layer):
    """num_nextn_predict_layers 1 (each config), MTP_EAGLE_ONE_MODEL by default: get_num_spec_layers appends 1
    layer. DeepSeek-V3: (61 + 1) x 1,152 = 71,424 B a token; DeepSeek-V3.2: (61 + 1) x 1,284 = 79,608 B (the MTP
    layer keeps its own DSA indexer, as every layer of these configs does); GLM-5: (78 + 1) x 1,284 = 101,436 B.
    One sequence of 8,192 tokens: the drafter's layer holds 8,192 x 1,152 = 9,437,184 B, or x 1,284 =
    10,518,528 B."""
    assert MLA == 1152 and DSA == 1284
    doc = _json(_estimate(model, "--speculative-config", MTP1, "--json"))
    assert doc["bytes_per_token"] == (layers + 1) * per_layer
    assert doc["bytes_per_token"] in (71_424, 79_608, 101_436)
    spec = doc["speculative"]
    assert spec["draft_kv_layers"] == 1
    assert spec["draft_layers"] == [
        {
            "kind": "mla_latent",
            "count": 1,
            "bytes": 8192 * per_layer,
            "bytes_per_gpu": 8192 * per_layer,
            "bytes_per_token": per_layer,
            "tokens_per_sequence": 8192,
        }
    ]
    plain = _json(_estimate(model, "--json"))
    assert plain["bytes_per_token"] == layers * per_layer


def test_mtp_weights_are_the_checkpoints_mtp_layer():
    """The MTP layer's tensors as the checkpoint stores them (model.layers.61.*: a copy of decoder layer 60, the
    2h x h eh_proj, enorm, hnorm, shared_head.norm; DeepseekV3MTPHead takes the target's lm_head): the same tensors
    vLLM's DeepSeek MTP drafter loads, so both engines price the same bytes."""
    from tests.test_cli import run

    trt = _json(_estimate("deepseek-ai/DeepSeek-V3", "--speculative-config", MTP1, "--json"))["speculative"]
    vllm = run(
        "estimate", "deepseek-ai/DeepSeek-V3", "--engine", "vllm", "--seq-len", "8192", "--offline",
        "--speculative-config", MTP1, "--json",
    )  # fmt: skip
    assert trt["draft_weights_bytes"] == _json(vllm)["speculative"]["draft_weights_bytes"]
    assert trt["draft_weights_bytes"] > 11 * 10**9  # one fp8 MoE layer of 256 experts x 3 x 7168 x 2048


def test_recommend_h200_tp8_subtracts_the_mtp_weights_and_prices_the_extra_layer():
    """DeepSeek-V3 on 8 x H200 at TP 8: the MTP layer's weights / 8 come off the memory before
    free_gpu_memory_fraction 0.9 applies, and each token costs 62 latent rows of 1,152 B (MLA replicated on every
    rank); capacity is whole blocks of 32 tokens."""
    from kvplan.planning.recommend import recommend

    spec = recommend(
        "deepseek-ai/DeepSeek-V3", engine="tensorrt-llm", gpu_profile="h200", tp=8, offline=True,
        speculative_config=MTP1,
    ).to_dict()  # fmt: skip
    plain = recommend(
        "deepseek-ai/DeepSeek-V3", engine="tensorrt-llm", gpu_profile="h200", tp=8, offline=True
    ).to_dict()
    terms = {t["name"]: t["bytes"] for t in spec["budget"]}
    draft = _json(_estimate("deepseek-ai/DeepSeek-V3", "--speculative-config", MTP1, "--json"))["speculative"]
    assert terms["speculative_draft_weights"] == -(draft["draft_weights_bytes"] // 8)
    free = spec["gpu_memory_bytes"] - spec["weights_bytes"] + terms["speculative_draft_weights"]
    free += terms["runtime_buffers"]
    assert spec["available_kv_memory_bytes"] == int(free * 0.9)
    assert spec["kv_cache_tokens"] == spec["available_kv_memory_bytes"] // (62 * MLA) // 32 * 32
    assert spec["kv_bytes_per_request"] == spec["max_model_len"] * 62 * MLA
    assert plain["kv_cache_tokens"] > spec["kv_cache_tokens"]
    assert "speculative_draft_weights" not in {t["name"] for t in plain["budget"]}


def test_vanilla_mtp_appends_every_checkpoint_layer(tmp_path):
    """A checkpoint with 3 MTP layers is vanilla MTP (spec_dec_mode: n != 1): get_num_spec_layers appends
    num_nextn_predict_layers = 3 layers whatever num_speculative_tokens, and max_draft_len is min(5, 3) = 3:
    (61 + 3) x 1,152 = 73,728 B a token."""
    config = load_config("deepseek-ai__DeepSeek-V3")
    config["num_nextn_predict_layers"] = 3
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = _estimate(str(path), "--speculative-config", '{"method": "mtp", "num_speculative_tokens": 5}', "--json")
    doc = _json(result)
    assert doc["bytes_per_token"] == 64 * MLA == 73_728
    assert doc["speculative"]["draft_kv_layers"] == 3
    assert "vanilla MTP cuts 5 to the checkpoint's 3 layers" in result.stderr


def test_two_model_mtp_eagle_is_refused():
    """mtp_eagle_one_model false on a 1-layer checkpoint is MTP_EAGLE, a separate draft engine
    (get_num_spec_layers: 0 layers in the target's manager), which kvplan does not size."""
    line = _one_error_line(
        _estimate(
            "deepseek-ai/DeepSeek-V3",
            "--speculative-config",
            '{"method": "mtp", "num_speculative_tokens": 1, "mtp_eagle_one_model": false}',
        )
    )
    assert "two-model MTP-Eagle" in line and "at 011d0933" in line


def test_use_mtp_vanilla_on_one_layer_still_appends_one_layer():
    doc = _json(
        _estimate(
            "deepseek-ai/DeepSeek-V3",
            "--speculative-config",
            '{"method": "mtp", "num_speculative_tokens": 1, "use_mtp_vanilla": true}',
            "--json",
        )
    )
    assert doc["bytes_per_token"] == 62 * MLA


@pytest.mark.parametrize(
    ("model", "why"),
    [
        ("zai-org/GLM-4.5", "DeepSeek-style MLA checkpoints only"),
        ("zai-org/GLM-5.2", "shares indexers between layers"),
        ("moonshotai/Kimi-K2-Instruct", "DeepSeek-style MLA checkpoints only"),
    ],
)
def test_what_kvplan_has_not_read_is_refused(model, why):
    """GLM-4.5 (glm4_moe, GQA) and Kimi K2 (kimi_k2, num_nextn_predict_layers 0): not the DeepSeek-style MTP
    checkpoints read; GLM-5.2 (index_topk_freq 4): whether the MTP layer runs its own indexer was not read."""
    line = _one_error_line(_estimate(model, "--speculative-config", MTP1))
    assert why in line


def test_kimi_k3_stays_refused():
    """modeling_kimi_linear.py:75-76 at 00679c66: no draft-head speculative modes (MTP/Eagle)."""
    line = _one_error_line(_estimate("moonshotai/Kimi-K3", "--speculative-config", MTP1))
    assert "Kimi model runs no MTP" in line


def test_other_methods_keep_the_drafter_left_out():
    result = _estimate(
        "deepseek-ai/DeepSeek-V3", "--speculative-config", '{"method": "ngram", "num_speculative_tokens": 3}'
    )
    assert result.exit_code == 0, result.output
    assert "speculative decoding is not modelled for TensorRT-LLM" in result.output
