"""TensorRT-LLM and Kimi K3's KDA state, MTP speculative decoding, and the DSA cache's dtype options.

Read from the NVIDIA/TensorRT-LLM code index at ONE commit, 00679c66 (00679c66c3e38f6d2651ad0a5bef0f94d862e36c):
tensorrt_llm/_torch/pyexecutor/config_utils.py (`extract_mamba_kv_cache_params`, `MambaKVCacheParams.
get_states_bytes_per_layer`), tensorrt_llm/_torch/pyexecutor/_util.py (`get_kv_cache_manager_cls` and the Kimi
route of `_create_kv_cache_manager`) and tensorrt_llm/_torch/models/modeling_kimi_linear.py. The DSA figures stay
those of dsa/cache_manager.py at 0bbb76d2 (tests/engines/test_tensorrt_llm_2026.py). Every expectation is written
from the quoted source, not from kvplan's output; the quoted lines are the test data at the end, read back where
a checkout is on this machine (KVPLAN_ENGINE_SOURCES, as TensorRT-LLM-<commit>/...).
"""

from __future__ import annotations

import json

import pytest

from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.core.units import cdiv
from kvplan.engines.base import Request
from kvplan.engines.registry import get_engine
from kvplan.errors import UsageError

from conftest import ENGINE_SOURCES, check_cited_line, load_config

K3 = load_config("moonshotai__Kimi-K3")
_TEXT = K3["text_config"]
_LINEAR = _TEXT["linear_attn_config"]
_H, _D, _W = _LINEAR["num_heads"], _LINEAR["head_dim"], _LINEAR["short_conv_kernel_size"]  # 96, 128, 4
_KDA_LAYERS, _MLA_LAYERS = len(_LINEAR["kda_layers"]), len(_LINEAR["full_attn_layers"])  # 69, 24
_MLA_TOKEN = (_TEXT["kv_lora_rank"] + _TEXT["qk_rope_head_dim"]) * 2  # 576 bf16 values: 1,152 B


def _trtllm_kda_state(tp: int, conv_bytes: int = 2) -> int:
    """get_states_bytes_per_layer (config_utils.py:517-531 at 00679c66) with Kimi's mapping (:580-584): d_inner =
    head_dim x heads, conv_dim = (d_inner + 2 x n_groups (= heads) x state_size (= head_dim)) // tp, conv_kernel =
    short_conv_kernel_size so conv_kernel - 1 columns, in the checkpoint dtype; heads // tp x head_dim x head_dim
    in float32 (:605-613)."""
    conv_dim = (_D * _H + 2 * _H * _D) // tp
    return conv_dim * (_W - 1) * conv_bytes + _H // tp * _D * _D * 4


def _costs(config: dict, req: Request) -> dict:
    shape = model_shape(config)
    return {c.kind: c for c in get_engine("tensorrt-llm", shape).stage_costs(shape.caches(), req)}


def _req(**kw) -> Request:
    return Request(
        kw.pop("seq_len", 8192), kw.pop("batch", 1), kw.pop("kv", "bfloat16"), kw.pop("dtype", "bfloat16"), **kw
    )


# ---------------------------------------------------------------------------------------------------- KDA


def test_k3_kda_state_by_hand():
    """Kimi K3 at TP 1: 3 x 96 x 128 = 36,864 conv channels x 3 columns x 2 B = 221,184 B and 96 x 128 x 128 x 4 B
    = 6,291,456 B: 6,512,640 B a KDA layer, 69 layers 449,372,160 B a request."""
    assert (_H, _D, _W, _KDA_LAYERS, _MLA_LAYERS) == (96, 128, 4, 69, 24)
    assert _trtllm_kda_state(1) == 221_184 + 6_291_456 == 6_512_640
    costs = _costs(K3, _req())
    assert costs[L.STATE].bytes == 69 * 6_512_640 == 449_372_160
    assert costs[L.STATE].bytes_per_token == 0


@pytest.mark.parametrize("tp", [1, 2, 8, 16])
def test_kda_state_is_split_over_tp(tp):
    """:519-522: conv_dim and the heads divide by tp_size (attention DP off); the Kimi route of _util.py
    `_create_kv_cache_manager` passes the params through unscaled."""
    for batch in (1, 3):
        costs = _costs(K3, _req(tp=tp, batch=batch))
        assert costs[L.STATE].bytes == batch * _KDA_LAYERS * _trtllm_kda_state(tp)


def test_kda_keeps_w_minus_1_conv_columns_unlike_transformers():
    """:577-578 "The pool stores the W - 1 raw inputs" (conv_kernel = short_conv_kernel_size, :581), where
    transformers keeps all W: the TensorRT-LLM state is 36,864 x 2 B smaller a layer."""
    trt = _costs(K3, _req())[L.STATE].bytes
    transformers_state = 3 * _H * _D * _W * 2 + _H * _D * _D * 4
    assert trt == _KDA_LAYERS * (transformers_state - 3 * _H * _D * 2)


def test_kda_recurrent_state_is_float32_whatever_the_config_says():
    """:605-613: a mamba_ssm_cache_dtype other than float32 is overridden to torch.float32; the conv state follows
    the model dtype (:524, :625)."""
    config = json.loads(json.dumps(K3))
    config["text_config"]["mamba_ssm_cache_dtype"] = "bfloat16"
    assert _costs(config, _req())[L.STATE].bytes == _KDA_LAYERS * _trtllm_kda_state(1)
    float16 = _costs(K3, _req(dtype="float16", kv="float16"))[L.STATE].bytes
    assert float16 == _KDA_LAYERS * _trtllm_kda_state(1, conv_bytes=2)
    float32 = _costs(K3, _req(dtype="float32", kv="float32"))[L.STATE].bytes
    assert float32 == _KDA_LAYERS * _trtllm_kda_state(1, conv_bytes=4)


@pytest.mark.parametrize(("kv", "latent_bytes"), [("bfloat16", 2), ("fp8_e4m3", 1)])
def test_k3_mla_layers_are_deepseek_latent_pages(kv, latent_bytes):
    """_util.py Kimi route: the MLA side is SELFKONLY with num_kv_heads 1 and head_dim kv_lora_rank +
    qk_rope_head_dim (576) on its 24 full-attention layers, in whole 32-token pages; the KDA state does not
    depend on the KV dtype."""
    costs = _costs(K3, _req(seq_len=1000, batch=2, kv=kv))
    assert costs[L.MLA].bytes_per_token == 24 * 576 * latent_bytes
    assert costs[L.MLA].bytes == 2 * cdiv(1000, 32) * 32 * 24 * 576 * latent_bytes
    assert costs[L.STATE].bytes == 2 * _KDA_LAYERS * _trtllm_kda_state(1)


def test_kda_under_pipeline_parallelism_is_refused():
    """modeling_kimi_linear.py:75: "Not supported: pipeline parallelism"."""
    with pytest.raises(UsageError, match="does not support pipeline parallelism") as info:
        _costs(K3, _req(pp=2))
    assert info.value.field == "pp" and "modeling_kimi_linear.py:75 at 00679c66" in info.value.message
    assert "\n" not in info.value.message


def test_cli_estimates_kimi_k3_with_tensorrt_llm():
    from tests.test_cli import run

    result = run(
        "estimate", "moonshotai/Kimi-K3", "--engine", "tensorrt-llm", "--seq-len", "8192", "--json", "--offline"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    layers = {row["kind"]: row for row in data["layers"]}
    assert layers[L.STATE]["bytes"] == 449_372_160 and layers[L.STATE]["count"] == 69
    assert layers[L.MLA]["bytes"] == 8192 * 24 * 1152 == 226_492_416
    assert data["kv_cache_bytes"] == 449_372_160 + 226_492_416


def test_recommend_counts_the_kda_state_in_each_request():
    """TP 16: 69 x (2,304 x 3 x 2 + 6 x 128 x 128 x 4 = 407,040) B of state plus 32,768 x 24 x 1,152 B of MLA."""
    from kvplan.planning.recommend import recommend

    rec = recommend(
        "moonshotai/Kimi-K3",
        engine="tensorrt-llm",
        gpu_profile="b200",
        gpus=16,
        tp=16,
        max_model_len=32768,
        offline=True,
    ).to_dict()
    assert _trtllm_kda_state(16) == 407_040
    assert rec["kv_bytes_per_request"] == 69 * 407_040 + 32768 * 24 * 1152 == 934_055_424


# ------------------------------------------------------------------------------------ speculative decoding


def _cli(*args: str):
    from tests.test_cli import run

    return run("estimate", *args, "--engine", "tensorrt-llm", "--seq-len", "8192", "--offline")


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], lines
    return lines[0]


def test_mtp_layers_join_the_target_pool():
    """config_utils.py:474-475 and :595: TensorRT-LLM appends the MTP layers (get_num_spec_layers) to the target's
    cache manager; kvplan sizes them (tests/engines/test_tensorrt_llm_mtp.py): DeepSeek-V3.2's one MTP layer adds
    2 x 576 + 132 = 1,284 B a token to 61 x 1,284 = 78,324."""
    result = _cli(
        "deepseek-ai/DeepSeek-V3.2", "--speculative-config", '{"method": "mtp", "num_speculative_tokens": 1}', "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bytes_per_token"] == 62 * 1284
    assert "config_utils.py:474-475 and :595 at 00679c66" in result.stderr


def test_mtp_on_kimi_is_refused_with_the_models_own_words():
    """modeling_kimi_linear.py:75-76: no draft-head speculative modes (MTP/Eagle); :62 SA only."""
    result = _cli("moonshotai/Kimi-K3", "--speculative-config", '{"method": "mtp", "num_speculative_tokens": 1}')
    line = _one_error_line(result)
    assert "Kimi model runs no MTP" in line and "modeling_kimi_linear.py:75-76 at 00679c66" in line
    assert "suffix automaton" in result.stderr


def test_other_methods_keep_the_drafter_left_out_note():
    result = _cli(
        "deepseek-ai/DeepSeek-V3.2", "--speculative-config", '{"method": "ngram", "num_speculative_tokens": 3}'
    )
    assert result.exit_code == 0, result.output
    assert "speculative decoding is not modelled for TensorRT-LLM" in result.output


# ---------------------------------------------------------------------------------------------------- DSA


@pytest.mark.parametrize(
    ("kv", "per_token"),
    [("auto", 61 * (2 * 576 + 132)), ("bf16", 61 * (2 * 576 + 132)), ("fp8", 61 * (576 + 132))],
)
def test_cli_dsa_kv_dtypes_tensorrt_llm_prices(kv, per_token):
    """DSACacheManager.get_cache_size_per_token (0bbb76d2 :284-290, :299-301, :319-327): the latent in 2 bytes, 1
    with an fp8 KV cache (kv_cache_config.dtype fp8), plus 132 raw bytes of fp8 indexer keys on every layer:
    78,324 and 43,188 B a token for DeepSeek-V3.2."""
    result = _cli("deepseek-ai/DeepSeek-V3.2", "--kv-dtype", kv, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bytes_per_token"] == per_token
    assert per_token in (78_324, 43_188)


@pytest.mark.parametrize("kv", ["nvfp4", "int8", "fp32"])
def test_cli_dsa_kv_dtypes_the_estimate_misprices_are_refused(kv):
    line = _one_error_line(_cli("deepseek-ai/DeepSeek-V3.2", "--kv-dtype", kv))
    assert "counts the latent of a" in line and "cache_manager.py:284-287 at 0bbb76d2" in line


# ------------------------------------------------------------------------------ the cited source lines

_AT = "TensorRT-LLM-00679c66"
_CONFIG_UTILS = f"{_AT}/tensorrt_llm/_torch/pyexecutor/config_utils.py"
_KIMI = f"{_AT}/tensorrt_llm/_torch/models/modeling_kimi_linear.py"
_UTIL = f"{_AT}/tensorrt_llm/_torch/pyexecutor/_util.py"
_CITED = [
    (_UTIL, 136, 'Model loading resolves ``use_kv_cache_manager_v2="auto"`` to V2 for'),
    (_UTIL, 137, "supported hybrid Mamba models. An explicit ``False`` selects a"),
    (_UTIL, 191, "if is_kimi_linear(config) and not use_v2 and not is_disagg:"),
    (_UTIL, 199, "return MixedMambaHybridCacheManager"),
    (_UTIL, 321, "# ``(slope, intercept)`` tuple (CppMambaHybridCacheManager, where mamba"),
    (_UTIL, 322, "# state introduces a per-batch fixed cost). CacheCost normalizes the combined"),
    (_UTIL, 329, "class CacheCost:"),
    (_UTIL, 330, '"""Affine KV cache budget: ``bytes = slope * tokens + intercept``.'),
    (_UTIL, 359, "def tokens_for_budget(self, budget: int) -> int:"),
    (_UTIL, 363, "tokens = max((budget - self.intercept) // self.slope, 0)"),
    (_CONFIG_UTILS, 148, 'return getattr(config, "linear_attn_config", None) is not None'),
    (_CONFIG_UTILS, 474, "# Target-layer masks and counts. Appended MTP/draft layers need only a"),
    (_CONFIG_UTILS, 475, "# count because every draft layer is full attention."),
    (_CONFIG_UTILS, 517, "def get_states_bytes_per_layer(self, mapping) -> int:"),
    (_CONFIG_UTILS, 519, "tp_size = mapping.tp_size if not mapping.enable_attention_dp else 1"),
    (_CONFIG_UTILS, 521, "conv_dim = (d_inner + 2 * self.n_groups * self.state_size) // tp_size"),
    (_CONFIG_UTILS, 522, "nheads = self.num_heads // tp_size"),
    (_CONFIG_UTILS, 524, "conv_dtype = self.dtype"),
    (_CONFIG_UTILS, 527, "conv_bytes = conv_dim * (self.conv_kernel - 1) * conv_dtype.itemsize"),
    (_CONFIG_UTILS, 528, "ssm_bytes = (nheads * self.head_dim * self.state_size *"),
    (_CONFIG_UTILS, 570, "elif is_kimi_linear(config):"),
    (_CONFIG_UTILS, 573, "#   conv_dim = head_dim*num_heads + 2*n_groups*state_size"),
    (_CONFIG_UTILS, 577, "# The pool stores the W - 1 raw inputs needed by the production"),
    (_CONFIG_UTILS, 580, 'state_size = lin["head_dim"]'),
    (_CONFIG_UTILS, 581, 'conv_kernel = lin["short_conv_kernel_size"]'),
    (_CONFIG_UTILS, 582, 'num_heads = lin["num_heads"]'),
    (_CONFIG_UTILS, 583, 'n_groups = lin["num_heads"]'),
    (_CONFIG_UTILS, 595, "num_draft_layers = get_num_spec_layers(spec_config) or 0"),
    (_CONFIG_UTILS, 605, "if is_kimi_linear(config) and mamba_ssm_cache_dtype != torch.float32:"),
    (_CONFIG_UTILS, 613, "mamba_ssm_cache_dtype = torch.float32"),
    (_CONFIG_UTILS, 625, "dtype=resolve_hf_torch_dtype(config) or torch.bfloat16,"),
    (_KIMI, 62, "Speculative decoding: SA (suffix automaton, one-engine, draft-weight-free);"),
    (_KIMI, 75, "Not supported: pipeline parallelism, draft-head spec-dec modes"),
    (_KIMI, 76, "(MTP/Eagle — no draft-head checkpoint exists)."),
]


@pytest.mark.parametrize(("path", "line", "text"), _CITED)
def test_cited_engine_source_lines(path, line, text):
    check_cited_line(ENGINE_SOURCES / path, line, text)


def test_recommend_says_the_state_intercept_is_not_subtracted():
    """_util.py:317-330 and :359-364 (00679c66): a hybrid manager's cost may be slope x tokens + a per-batch fixed
    state cost, `tokens_for_budget` = (budget - intercept) // slope; kvplan's token capacity divides the whole
    budget, and says so for models with recurrent states only."""
    from kvplan.planning.recommend import recommend

    def notes(model: str, gpus: int) -> list[str]:
        rec = recommend(model, engine="tensorrt-llm", gpu_profile="b200", gpus=gpus, tp=gpus, offline=True)
        return [n for n in rec.to_dict()["notes"] if "_util.py:359-364 CacheCost.tokens_for_budget at 00679c66" in n]

    assert len(notes("moonshotai/Kimi-K3", 16)) == 1
    assert notes("deepseek-ai/DeepSeek-V3.2", 8) == []
