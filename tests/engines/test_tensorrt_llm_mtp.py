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

from conftest import ENGINE_SOURCES, check_cited_line, load_config

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


@pytest.mark.parametrize("pp", [2, 4])
def test_under_pp_the_mtp_layer_is_on_the_last_stage_only(pp):
    """TensorRT-LLM puts the appended MTP layers on the last PP rank (resource_manager.py `get_pp_layers`), so one
    sequence of 8,192 tokens holds 62 layers' cache at any PP: (61 + 1) x 1,152 x 8,192 = 585,105,408 B (before,
    every stage got the MTP layer: 63 layers at PP 2, 65 at PP 4). At PP 2 the fullest GPU holds 31 layers (stage 0:
    layers 0-30; stage 1: 30 layers + the MTP layer), 31 x 1,152 x 8,192 = 292,552,704 B."""
    one = _json(_estimate("deepseek-ai/DeepSeek-V3", "--speculative-config", MTP1, "--json"))
    doc = _json(_estimate("deepseek-ai/DeepSeek-V3", "--pp", str(pp), "--speculative-config", MTP1, "--json"))
    assert doc["kv_cache_bytes"] == one["kv_cache_bytes"] == 62 * MLA * 8192
    assert doc["bytes_per_token"] == one["bytes_per_token"] == 62 * MLA
    if pp == 2:
        assert doc["kv_cache_bytes_per_gpu"] == 31 * MLA * 8192


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
    # trtllm-serve has no speculative option: the MTPDecodingConfig keys (llm_args.py:2503-2504) go in the YAML
    assert "speculative_config {decoding_type: MTP, max_draft_len: 1}" in spec["flags"]["tensorrt-llm"]
    assert "speculative_config" not in plain["flags"]["tensorrt-llm"]
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


def test_glm52_mtp_layer_runs_its_own_indexer():
    """GLM-5.2 shares indexers (index_topk_freq 4, index_skip_topk_offset 3: layer i runs its own when
    max(i - 2, 0) % 4 == 0, so layers 0, 1 and 2, 6, ..., 74: 21 of 78), but "The MTP/nextn layer (>= num_hidden_layers)
    is always full" (llm_args.py:1006-1007 at 011d0933): 78 x 1,152 + 21 x 132 = 92,628 B a token without MTP,
    + 1,284 = 93,912 with it."""
    plain = _json(_estimate("zai-org/GLM-5.2", "--json"))
    assert plain["bytes_per_token"] == 78 * MLA + 21 * 132 == 92_628
    doc = _json(_estimate("zai-org/GLM-5.2", "--speculative-config", MTP1, "--json"))
    assert doc["bytes_per_token"] == 92_628 + DSA == 93_912
    assert doc["speculative"]["draft_layers"][0]["bytes_per_token"] == DSA


@pytest.mark.parametrize(
    ("model", "why"),
    [
        ("zai-org/GLM-4.5", "DeepSeek-style MLA checkpoints only"),
        ("moonshotai/Kimi-K2-Instruct", "num_nextn_predict_layers = 0"),
    ],
)
def test_what_kvplan_has_not_read_is_refused(model, why):
    """GLM-4.5 (Glm4MoeForCausalLM, GQA): not the DeepSeek-style MTP checkpoints read; Kimi K2
    (DeepseekV3ForCausalLM) has num_nextn_predict_layers 0: no MTP layer to draft with."""
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


# ------------------------------------------------------------------------------ the cited source lines

_AT = "TensorRT-LLM-011d0933"
_UTILS = f"{_AT}/tensorrt_llm/_torch/speculative/utils.py"
_ARGS = f"{_AT}/tensorrt_llm/llmapi/llm_args.py"
_CITED = [
    (_UTILS, 319, "if spec_dec_mode.is_mtp_vanilla():"),
    (_UTILS, 325, "return MTPHiddenStatesManager("),
    (_UTILS, 444, "def get_num_spec_layers(spec_config):"),
    (_UTILS, 445, "if spec_config.spec_dec_mode.is_mtp_eagle_one_model():"),
    (_UTILS, 446, "return 1"),
    (_UTILS, 447, "if spec_config.spec_dec_mode.is_mtp_vanilla():"),
    (_UTILS, 448, "return spec_config.num_nextn_predict_layers"),
    (_UTILS, 452, "return 0"),
    (_UTILS, 514, "def get_num_extra_kv_tokens(spec_config):"),
    (_UTILS, 521, "if spec_config.spec_dec_mode.use_one_engine():"),
    (_UTILS, 522, "return spec_config.max_draft_len - 1"),
    (_UTILS, 541, "def update_spec_config_from_model_config(spec_config, model_config):"),
    (_UTILS, 552, 'num_nextn_predict_layers = getattr(model_config, "num_nextn_predict_layers",'),
    (_UTILS, 556, '"mtp_num_hidden_layers", None)'),
    (_UTILS, 558, "num_nextn_predict_layers = 1"),
    (_UTILS, 559, "spec_config.num_nextn_predict_layers = num_nextn_predict_layers"),
    (_UTILS, 566, "spec_config.max_draft_len = (spec_config.num_nextn_predict_layers"),
    (_UTILS, 569, "effective_draft_len = min(spec_config.max_draft_len,"),
    (_UTILS, 575, "spec_config.max_draft_len = effective_draft_len"),
    (_ARGS, 1006, "if n is not None and layer_idx >= n:"),
    (_ARGS, 1007, "return True  # MTP/nextn layer"),
    (_ARGS, 2503, "class MTPDecodingConfig(DecodingBaseConfig):"),
    (_ARGS, 2504, 'decoding_type: Literal["MTP"] = Field(default="MTP")'),
    (_ARGS, 2520, "use_mtp_vanilla: bool = Field("),
    (_ARGS, 2521, "default=False,"),
    (_ARGS, 2525, "mtp_eagle_one_model: bool = Field("),
    (_ARGS, 2526, "default=True,"),
    (_ARGS, 2556, "num_nextn_predict_layers: Optional[int] = Field("),
    (_ARGS, 2583, 'data["max_draft_len"] = data.pop("num_nextn_predict_layers")'),
    (_ARGS, 2660, "n = self.num_nextn_predict_layers if self.num_nextn_predict_layers is not None else 1"),
    (_ARGS, 2661, "if n == 1 and not self.use_mtp_vanilla and self.mtp_eagle_one_model:"),
    (_ARGS, 2662, "return TorchSpeculativeDecodingMode.MTP_EAGLE_ONE_MODEL"),
    (_ARGS, 2663, "elif n == 1 and not self.use_mtp_vanilla and not self.mtp_eagle_one_model:"),
    (_ARGS, 2664, "return TorchSpeculativeDecodingMode.MTP_EAGLE"),
    (_ARGS, 2665, "return TorchSpeculativeDecodingMode.MTP"),
]


@pytest.mark.parametrize(("path", "line", "text"), _CITED)
def test_cited_engine_source_lines(path, line, text):
    check_cited_line(ENGINE_SOURCES / path, line, text)
