"""How vLLM 0.33, SGLang 0.5 and transformers store Kimi K3's KDA + MLA layers and MiniMax's lightning state
(issue 12). Every expectation is written from the engine's source (cited), not from kvplan's output."""

from __future__ import annotations

import pytest

from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.core.units import cdiv
from kvplan.engines.base import Request
from kvplan.engines.sglang import SglangEngine
from kvplan.engines.transformers import TransformersEngine
from kvplan.engines.vllm import VllmEngine
from kvplan.errors import UsageError

from conftest import load_config

K3 = load_config("moonshotai__Kimi-K3")
_LINEAR = K3["text_config"]["linear_attn_config"]
_H, _D, _K = _LINEAR["num_heads"], _LINEAR["head_dim"], _LINEAR["short_conv_kernel_size"]
_MLA_TOKEN = (K3["text_config"]["kv_lora_rank"] + K3["text_config"]["qk_rope_head_dim"]) * 2  # bf16


def _k3():
    return model_shape(K3)


def _kda_state_bytes(tp: int, columns: int, conv_bytes: int = 2, state_bytes: int = 4) -> int:
    """vLLM model_executor/layers/mamba/mamba_utils.py:296-319 `kda_state_shape`: conv (proj + 2 x proj_k) / tp
    channels x columns, recurrent (heads / tp, head_dim, head_dim); :133-149 `kda_state_dtype`: conv in the model
    dtype, the recurrent state float32 under the default `--mamba-ssm-cache-dtype auto`."""
    return 3 * _H * _D // tp * columns * conv_bytes + _H // tp * _D * _D * state_bytes


@pytest.mark.parametrize("tp", [1, 2, 8])
def test_vllm_kda_state_is_conv_in_bf16_and_a_float32_recurrent_state(tp):
    state = next(c for c in _k3().caches() if isinstance(c, L.RecurrentState))
    req = Request(4096, 1, "bfloat16", "bfloat16", tp=tp)
    assert VllmEngine._state_bytes(state, req) == _kda_state_bytes(tp, _K - 1)


def test_vllm_0_33_aligns_mla_kda_hybrid_blocks_to_128_tokens():
    """vllm-0.33.0/vllm/platforms/interface.py:1083-1088: for MLA hybrids the kernel block alignment is at least
    128; the attention block is alignment x cdiv(mamba page, alignment x MLA page of one token) (:1098-1101). The
    0.32 row keeps kvplan's 16-token unit (no MLA + Mamba hybrid was read before 0.33)."""
    shape = _k3()
    state_page = _kda_state_bytes(1, _K - 1)
    for version, unit in (("0.33.0", 128), ("0.32.0", 16)):
        req = Request(32768, 1, "bfloat16", "bfloat16", engine_version=version)
        assert VllmEngine(shape).block_size(shape.caches(), req) == unit * cdiv(state_page, unit * _MLA_TOKEN)


@pytest.mark.parametrize(
    "capability,model_dtype,bounded,pages",
    [
        ("9.0", "bfloat16", True, 3),  # FlashKDA: one prefill-checkpoint page more
        ("10.0", "bfloat16", True, 3),
        ("12.0", "bfloat16", True, 3),
        ("8.0", "bfloat16", True, 2),  # Ampere: Triton prefill
        (None, "bfloat16", True, 2),  # no GPU given
        ("9.0", "float16", True, 2),  # FlashKDA needs bf16 activations
        ("9.0", "bfloat16", False, 2),  # and a bounded gate
    ],
)
def test_vllm_0_33_kda_on_flashkda_holds_a_prefill_checkpoint_page(capability, model_dtype, bounded, pages):
    """vllm-0.33.0/vllm/models/kimi_k3/nvidia/kda.py:363-379 `is_flashkda_supported` (CUDA SM9x/10x/12x,
    head_dim 128, bf16 input, fp32/bf16 state, a gate_lower_bound), chosen for the default "auto" backend
    (:486-525); then :901-909 sets num_prefill_checkpoint_blocks = 1 (model_executor/layers/mamba/
    kda_checkpoint.py:9-10), which `align` mode counts (v1/kv_cache_interface.py:1135-1139: 2 + spec +
    checkpoint pages)."""
    config = load_config("moonshotai__Kimi-K3")
    if not bounded:
        del config["text_config"]["linear_attn_config"]["gate_lower_bound"]
    shape = model_shape(config)
    engine = VllmEngine(shape)
    req = Request(32768, 1, model_dtype, model_dtype, engine_version="0.33.0", compute_capability=capability)
    specs = engine.plan(shape.caches(), req).specs
    (state,) = (s for s in specs if s.kind == L.STATE)
    assert engine.blocks_per_request(state, req) == pages
    old = Request(32768, 1, model_dtype, model_dtype, engine_version="0.32.0", compute_capability=capability)
    (state,) = (s for s in engine.plan(shape.caches(), old).specs if s.kind == L.STATE)
    assert engine.blocks_per_request(state, old) == 2


def test_vllm_k3_groups_69_kda_layers_in_groups_of_the_24_mla_layers():
    """v1/core/kv_cache_utils.py hybrid grouping: group size is the smallest layer count (24 MLA layers; 69 is not
    < 1.5 x 24), so the 69 KDA layers fill cdiv(69, 24) = 3 groups and pay for 72 layers."""
    shape = _k3()
    req = Request(131072, 1, "bfloat16", "bfloat16", engine_version="0.33.0")
    engine = VllmEngine(shape)
    plan = engine.plan(shape.caches(), req)
    assert plan.group_size == 24
    (state,) = (s for s in plan.specs if s.kind == L.STATE)
    assert plan.groups(state) == 3
    costs = {c.kind: c for c in engine.stage_costs(shape.caches(), req)}
    block = plan.page // _MLA_TOKEN
    assert costs[L.STATE].bytes == 2 * plan.page * 72  # align mode, no GPU given: 2 pages
    assert costs[L.MLA].bytes == cdiv(131072, block) * plan.page * 24


@pytest.mark.parametrize("tp", [1, 4])
def test_sglang_kda_state_and_mla_latent(tp):
    """SGLang configs/mamba_utils.py:323-367 `KimiLinearStateShape.create`: conv (K-1, proj/tp + 2 proj_k/tp),
    temporal (heads/tp, head_dim, head_dim); :47-107 conv bf16, temporal float32 by default; MLA one latent per
    token, replicated on every rank."""
    shape = _k3()
    req = Request(1000, 2, "bfloat16", "bfloat16", tp=tp)
    costs = {c.kind: c for c in SglangEngine().stage_costs(shape.caches(), req)}
    assert costs[L.STATE].bytes == 69 * 2 * _kda_state_bytes(tp, _K - 1)
    assert costs[L.MLA].bytes == 24 * 2 * 1000 * _MLA_TOKEN


def test_transformers_keeps_the_whole_conv_window_and_a_float32_kda_state():
    """transformers modeling_kimi_linear.py:655 `update_conv_state(conv_kernel_size=...)` keeps conv_kernel columns,
    :709 stores the recurrent state in float32 (checked on real meta tensors in tests/profiling)."""
    shape = _k3()
    req = Request(10, 1, "bfloat16", "bfloat16")
    costs = {c.kind: c for c in TransformersEngine().stage_costs(shape.caches(), req)}
    assert costs[L.STATE].bytes == 69 * _kda_state_bytes(1, _K)


def test_lightning_state_is_in_the_model_dtype_in_transformers():
    """modeling_minimax.py:203-210: `attn_weights_inter` is created in value_states' dtype and stored as is."""
    config = load_config("synthetic/minimax")
    shape = model_shape(config)
    heads, hd = config["num_attention_heads"], config["head_dim"]
    req = Request(100, 3, "bfloat16", "bfloat16")
    costs = {c.kind: c for c in TransformersEngine().stage_costs(shape.caches(), req)}
    assert costs[L.STATE].bytes == 2 * 3 * heads * hd * hd * 2


@pytest.mark.parametrize("engine", [VllmEngine(), SglangEngine()])
def test_serving_engines_refuse_lightning_attention(engine):
    """vllm-0.33.0/vllm/model_executor/models/registry.py:861-864 lists MiniMaxText01/M1 as removed in 0.23.0;
    SGLang 0.5.23's srt/models has no MiniMax-01 model."""
    shape = model_shape(load_config("synthetic/minimax"))
    with pytest.raises(UsageError, match="lightning"):
        engine.stage_costs(shape.caches(), Request(100, 1, "bfloat16", "bfloat16"))


def test_tensorrt_llm_refuses_lightning_which_kvplan_has_not_read():
    """No TensorRT-LLM source for lightning attention was read: it refuses rather than size the state with another
    family's rule (TensorRT-LLM's KDA state: tests/engines/test_tensorrt_llm_kda_dsa.py; llama.cpp's KDA and
    lightning states, read at LLAMACPP_COMMIT: tests/engines/test_llamacpp_kda_lightning.py)."""
    from kvplan.engines.tensorrt_llm import TensorRtLlmEngine

    shape = model_shape(load_config("synthetic/minimax"))
    with pytest.raises(UsageError, match="kvplan has not read"):
        TensorRtLlmEngine().stage_costs(shape.caches(), Request(100, 1, "bfloat16", "bfloat16"))


def _k3_expert_padding(tp: int) -> int:
    """vllm-0.33.0/vllm/models/kimi_k3/nvidia/model.py:419-428: moe_intermediate_size 3072 / TP 16 = 192 is below
    the 256 minimum, so every expert is built 256 x 16 = 4096 wide (:532-560), split over the 16 ranks. K3's experts
    are MXFP4 (uint8 values [out, in/2] and e8m0 scales [out, in/32]): w13 (2 x 4096 rows of the 3584-wide latent)
    and w2 (3584 rows of 4096), on its 92 MoE layers."""
    text = K3["text_config"]
    experts, inter, latent = text["num_experts"], text["moe_intermediate_size"], text["routed_expert_hidden_size"]
    layers = text["num_hidden_layers"] - text["first_k_dense_replace"]
    padded = 256 * tp

    def mxfp4(out: int, inp: int) -> int:
        return out * inp // 2 + out * inp // 32

    def held(width: int) -> int:
        return layers * experts * (2 * mxfp4(width, latent) + mxfp4(latent, width))

    return (held(padded) - held(inter)) // tp


def test_vllm_pads_kimi_experts_below_256_a_rank_without_expert_parallelism():
    from kvplan.engines.vllm import kimi_moe_padding
    from kvplan.weights.stored import expert_weight_bytes

    experts = expert_weight_bytes(K3)
    assert kimi_moe_padding(K3, 16, 16, experts, False)[0] == _k3_expert_padding(16)
    assert kimi_moe_padding(K3, 8, 8, experts, False)[0] == 0  # 3072 / 8 = 384: no padding
    assert kimi_moe_padding(K3, 16, 1, experts, True)[0] == 0  # expert parallelism: experts whole, unpadded
    assert kimi_moe_padding(load_config("deepseek-ai__DeepSeek-V3"), 16, 16, 10**12, False)[0] == 0


def test_vllm_recommend_charges_the_kimi_expert_padding_to_the_weights():
    from kvplan.planning.recommend import recommend

    def weights_term(**kwargs) -> int:
        plan = recommend("moonshotai/Kimi-K3", gpu_profile="h200", max_model_len=32768, offline=True, **kwargs)
        (term,) = (t for t in plan.to_dict()["budget"] if t["name"] == "weights")
        return -term["bytes"]

    from kvplan.weights.stored import weight_bytes

    assert weights_term(tp=16) == weight_bytes(K3) // 16 + _k3_expert_padding(16)
    assert weights_term(tp=8, pp=2) == weight_bytes(K3) // 16


# ---- MiniMax-M3 (GQA K/V + the sparse layers' indexer keys) ----------------------------------------------------

M3 = load_config("MiniMaxAI__MiniMax-M3")


def _m3(architectures: list[str] | None = None, model_type: str | None = None):
    config = dict(M3)
    if architectures is not None:
        config["architectures"] = architectures
    if model_type is not None:
        config["model_type"] = model_type
    return model_shape(config)


def _storage(engine: str, shape):
    if engine == "vllm":
        return VllmEngine(shape)
    return SglangEngine(shape.architectures, shape.config_model_type, shape.features)


def test_transformers_m3_holds_kv_on_60_layers_and_one_index_key_a_token_on_57():
    """transformers 5.24 modeling_minimax_m3_vl.py: K and V [batch, 4, tokens, 128] on every layer, `idx_keys`
    [batch, 1, tokens, 128] on the 57 sparse layers, all bf16 (checked on real tensors in
    tests/profiling/test_minimax_m3_cache.py)."""
    shape = _m3()
    req = Request(8192, 2, "bfloat16", "bfloat16")
    costs = {c.kind: c for c in TransformersEngine.for_shape(shape).stage_costs(shape.caches(), req)}
    assert costs[L.FULL].bytes == 60 * 2 * 4 * 128 * 2 * 8192 * 2
    assert costs[L.INDEX].bytes == 57 * 128 * 2 * 8192 * 2
    assert (costs[L.INDEX].layers, costs[L.INDEX].bytes_per_token) == (57, 57 * 128 * 2)


def test_m3_quantized_transformers_cache_is_refused():
    """QuantizedCache takes only all-"full_attention" layer types; M3's sparse layers are "minimax_m3_sparse"."""
    shape = _m3()
    with pytest.raises(UsageError, match="only models whose layers are all full attention"):
        TransformersEngine().stage_costs(shape.caches(), Request(1024, 1, "fp8_e4m3", "bfloat16"))


# Where each engine fails the published config (model_type minimax_m3, architectures [MiniMaxM3ForCausalLM]):
# the config loader, then the model registry (with its Transformers-backend fallback).
_LOADER = {
    "vllm": "vllm/transformers_utils/config.py:155-156, :445",
    "sglang": "srt/configs/minimax_vl.py:61-62, srt/utils/hf_transformers/config.py:228-233",
}
_REGISTRY = {
    "vllm": "vllm/model_executor/models/registry.py:169-171, :523-525, fallback :1298-1317",
    "sglang": "srt/models/minimax_m3.py:2274, minimax_m3_vl.py:479, fallback srt/model_loader/utils.py:143-161",
}


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_vllm_and_sglang_do_not_serve_the_published_m3_config(engine):
    """Neither engine loads the published config. Its model_type `minimax_m3` is in neither engine's config
    registry (vllm-0.33.0 transformers_utils/config.py:155-156 has minimax_m3_vl and minimax_m3_mtp; sglang-0.5.23
    srt/configs/minimax_vl.py:61-62 minimax_m3_vl) nor in transformers 5.16.1-5.20.2 / 5.19.0 (the versions the
    engines take: vllm requirements/common.txt:11, sglang METADATA), whose AutoConfig both fall back to. Its
    architecture MiniMaxM3ForCausalLM is not registered (vllm registry.py:169-171, :523-525; sglang
    models/minimax_m3.py:2274, minimax_m3_vl.py:479 register only MiniMaxM3Sparse*), and transformers defines no
    such class, so the Transformers-backend fallback (vllm registry.py:1298-1317, sglang model_loader/utils.py:
    143-161) fails too. The error says both, where, and what to use instead."""
    with pytest.raises(UsageError, match="does not serve this config as written") as info:
        _storage(engine, _m3()).stage_costs(_m3().caches(), Request(1024, 1, "bfloat16", "bfloat16"))
    message = str(info.value)
    for fact in (
        "model_type minimax_m3_vl / minimax_m3_vl_text",
        "the config's 'minimax_m3'",
        "only as MiniMaxM3SparseForCausalLM / MiniMaxM3SparseForConditionalGeneration",
        "the config names MiniMaxM3ForCausalLM",
        "Transformers-backend fallback cannot load it",
        _LOADER[engine],
        _REGISTRY[engine],
    ):
        assert fact in message, fact
    assert "transformers" in str(info.value.hint)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_m3_refusal_names_only_the_string_that_fails(engine):
    """A served architecture under the published model_type fails at the config loader only; a model_type the
    loaders build (transformers' minimax_m3_vl_text) under the published architecture fails at the registry only."""
    req = Request(1024, 1, "bfloat16", "bfloat16")
    shape = _m3(["MiniMaxM3SparseForCausalLM"])
    with pytest.raises(UsageError, match="does not serve this config as written") as info:
        _storage(engine, shape).stage_costs(shape.caches(), req)
    assert _LOADER[engine] in str(info.value) and _REGISTRY[engine] not in str(info.value)
    shape = _m3(model_type="minimax_m3_vl_text")
    with pytest.raises(UsageError, match="does not serve this config as written") as info:
        _storage(engine, shape).stage_costs(shape.caches(), req)
    assert _REGISTRY[engine] in str(info.value) and _LOADER[engine] not in str(info.value)
    assert "the config names MiniMaxM3ForCausalLM, which transformers does not define" in str(info.value)


def _m3_wrapped():
    """The published text config inside the minimax_m3_vl wrapper both engines' loaders build (the wrapper's
    model_type is the one they read: vllm transformers_utils/config.py:361, :426-431; sglang
    srt/utils/hf_transformers/config.py:228-233, :281-293)."""
    text = {k: v for k, v in M3.items() if k != "architectures"}
    config = {"model_type": "minimax_m3_vl", "architectures": ["MiniMaxM3SparseForConditionalGeneration"]}
    return model_shape({**config, "text_config": text})


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_vllm_and_sglang_size_m3_under_a_served_architecture(engine):
    """In the minimax_m3_vl wrapper both engines' loaders build, under a served architecture, both size the index
    keys beside the K/V (vLLM: an MLAAttentionSpec in the K/V's group, tests/engines/test_minimax_m3_vllm.py;
    SGLang: MiniMaxSparseKVPool, tests/engines/test_minimax_m3_sglang.py), not K/V only."""
    shape = _m3_wrapped()
    assert (shape.model_type, shape.config_model_type) == ("minimax_m3", "minimax_m3_vl")
    costs = {
        c.kind: c for c in _storage(engine, shape).stage_costs(shape.caches(), Request(1024, 1, "bfloat16", "bfloat16"))
    }
    assert (costs[L.FULL].layers, costs[L.INDEX].layers) == (60, 57)
    assert costs[L.INDEX].bytes_per_token == 57 * 128 * 2


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_m3_as_a_minimax_m3_vl_text_config_is_refused_by_vllm_and_sglang(engine):
    """transformers' MiniMaxM3VLTextConfig pops `sparse_attention_config` (checked on the installed transformers
    below; configuration_minimax_m3_vl.py:121-123 in 5.16.1-5.20.2, the versions the engines take): a top-level
    minimax_m3_vl_text config reaches vLLM without it (every layer dense, nvidia/model.py:98-106), and SGLang, which
    builds even a wrapper's text_config through transformers' class for that model_type, fails to start."""
    transformers = pytest.importorskip("transformers")
    from transformers.models.minimax_m3_vl.configuration_minimax_m3_vl import MiniMaxM3VLTextConfig

    built = MiniMaxM3VLTextConfig(num_hidden_layers=2, sparse_attention_config={"sparse_attention_freq": [0, 1]})
    assert getattr(built, "sparse_attention_config", None) is None and transformers
    shape = _m3(["MiniMaxM3SparseForCausalLM"], model_type="minimax_m3_vl_text")
    with pytest.raises(UsageError, match="pops that key") as info:
        _storage(engine, shape).stage_costs(shape.caches(), Request(1024, 1, "bfloat16", "bfloat16"))
    assert ("every layer as dense" if engine == "vllm" else "Could not find sparse config") in str(info.value)
    # inside the wrapper: vLLM's own MiniMaxM3TextConfig keeps the key; SGLang still uses transformers' class
    text = {**{k: v for k, v in M3.items() if k != "architectures"}, "model_type": "minimax_m3_vl_text"}
    wrapped = model_shape(
        {
            "model_type": "minimax_m3_vl",
            "architectures": ["MiniMaxM3SparseForConditionalGeneration"],
            "text_config": text,
        }
    )
    req = Request(1024, 1, "bfloat16", "bfloat16")
    if engine == "vllm":
        assert _storage(engine, wrapped).stage_costs(wrapped.caches(), req)
    else:
        with pytest.raises(UsageError, match="pops that key"):
            _storage(engine, wrapped).stage_costs(wrapped.caches(), req)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_cli_refuses_the_published_m3_in_one_error_line_with_a_hint(engine):
    from tests.test_cli import run

    for command in (["estimate", "--seq-len", "8192"], ["recommend", "--gpu-profile", "h200", "--tp", "8"]):
        result = run(command[0], "MiniMaxAI/MiniMax-M3", "--engine", engine, *command[1:], "--offline")
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert [line.split(":")[0] for line in lines] == ["error", "hint"], lines
        assert "does not serve this config as written" in lines[0] and "MiniMaxM3ForCausalLM" in lines[0]
        assert lines[1] == (
            "hint: use --engine transformers for this model: it sizes minimax_m3 from transformers' real cache tensors"
            "; or pass a minimax_m3_vl config with the text model in text_config and architectures "
            "MiniMaxM3SparseForConditionalGeneration, as vLLM's tests load MiniMaxAI/MiniMax-M3"
        )


def test_other_engines_refuse_m3_and_naive_counts_its_layers():
    from kvplan.engines.llamacpp import LlamaCppEngine
    from kvplan.engines.naive import NaiveEngine
    from kvplan.engines.tensorrt_llm import TensorRtLlmEngine

    shape = _m3()
    req = Request(1024, 1, "bfloat16", "bfloat16")
    with pytest.raises(UsageError, match="MiniMaxM3ForCausalLM"):  # test_llamacpp_minimax_m3_audit.py
        LlamaCppEngine(shape.model_type, architectures=shape.architectures).stage_costs(shape.caches(), req)
    with pytest.raises(UsageError, match="does not register MiniMaxM3ForCausalLM"):  # test_tensorrt_llm_2026.py
        TensorRtLlmEngine(shape.architectures).stage_costs(shape.caches(), req)
    (naive,) = NaiveEngine(shape.hidden_size).stage_costs(shape.caches(), req)
    assert (naive.layers, naive.bytes) == (60, 2 * 60 * 6144 * 2 * 1024)  # one term a layer, not a cache


def test_decode_bound_reads_every_m3_index_key_once_whatever_the_tp():
    """The indexer scores every token's key each step; the key is one vector a token, held whole on every rank."""
    from fractions import Fraction

    from kvplan.planning.envelope import kv_bytes_per_sequence

    shape = _m3()
    kv = 60 * 2 * 4 * 128 * 2 * 1000  # K and V of 4 heads x 128 on 60 layers, bf16, 1000 tokens: split over TP 4
    for tp in (1, 4):
        index = 57 * 128 * 2 * 1000 * tp  # a copy on each rank
        assert kv_bytes_per_sequence(shape, 1000, tp, Fraction(2)) == kv + index


# ---- MiniMax-M2.5 / M2.7 (GQA full attention on every layer) ------------------------------------------------------


@pytest.mark.parametrize("name", ["MiniMaxAI__MiniMax-M2.5", "MiniMaxAI__MiniMax-M2.7"])
@pytest.mark.parametrize("tp", [1, 8, 16])
@pytest.mark.parametrize("kv_dtype, width", [("bfloat16", 2), ("fp8_e4m3", 1)])
def test_vllm_and_sglang_store_minimax_m2_as_plain_gqa_kv_on_every_layer(name, tp, kv_dtype, width):
    """Both engines register the published architecture MiniMaxM2ForCausalLM (vllm-0.33.0 model_executor/models/
    registry.py:168; sglang-0.5.23 srt/models/minimax_m2.py:1249 EntryClass) and build one standard attention per
    layer: vLLM minimax_m2.py:204-213 `Attention(num_kv_heads=max(1, total // tp))` (:160-169), its
    `per_layer_sliding_window=attn_window_size` never set by the decoder layer (:270-283, so None: no window);
    SGLang minimax_m2.py:730-738 `RadixAttention` with the same head split (:649-659). K and V of head_dim 128 on
    all 62 layers; 8 KV heads replicated to one a rank at TP 16. vLLM rounds a sequence up to its 16-token blocks,
    SGLang's default page is one token."""
    shape = model_shape(load_config(name))
    heads = max(1, 8 // tp)
    per_token = 62 * 2 * heads * 128 * width
    req = Request(1000, 3, kv_dtype, "bfloat16", tp=tp)
    (vllm,) = VllmEngine(shape).stage_costs(shape.caches(), req)
    (sglang,) = SglangEngine(shape.architectures, shape.config_model_type).stage_costs(shape.caches(), req)
    assert (vllm.kind, vllm.layers, vllm.bytes) == (L.FULL, 62, per_token * cdiv(1000, 16) * 16 * 3)
    assert (sglang.kind, sglang.layers, sglang.bytes) == (L.FULL, 62, per_token * 1000 * 3)
