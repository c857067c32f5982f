"""SGLang 0.5.23's FP4 KV caches beyond plain MHA under nvfp4: MLA models, and the block-16 recipe
`--kv-cache-dtype fp4_mx_block16` (an SGLang-only KV dtype in kvplan).

- fp4_mx_block16 (FP4MXBlock16KVCacheMethod, srt/layers/quantization/fp4_kv_cache_quant_method.py:771-914): K and V
  of heads x head_dim / 2 bytes a layer and token, plus (heads x head_dim) / 16 uint8 scales each, one level, no
  dequant workspace (every access of the recipe is plain, :1008-1011). The KV4 check takes it on triton,
  torch_native, flex_attention or trtllm_mha for MHA (srt/arg_groups/kv_cache_hook.py:306-316), and SGLang's default
  MHA backend is trtllm_mha on SM100 only (fa3 on Hopper, flashinfer elsewhere: model_override_base.py:302-334).
- MLA: MLATokenToKVPoolFP4 stores the kv_lora_rank + qk_rope_head_dim latent at half a byte plus one uint8 scale
  per 16 values (mem_cache/memory_pool.py:5143-5165, cell model_executor/pool_configurator.py:387-393), which the KV4
  check takes on flashinfer or trtllm_mla only (kv_cache_hook.py:297-305), and trtllm_mla takes fp8_e4m3 / bf16 /
  auto only (arg_groups/overrides.py:1204-1216). nvfp4 cannot serve MLA at all: the NVFP4 hook forces decode onto
  trtllm_mha (kv_cache_hook.py:86-89), which refuses MLA models (layers/attention/attention_registry.py:278-280).

Every figure below is worked out by hand from those rules and the configs' shapes, not taken from kvplan. Where the
SGLang tree is on this machine (KVPLAN_ENGINE_SOURCES, default /work/src) every cited line is read back.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.core.units import ENGINE_ONLY_KV_DTYPES, KV_DTYPE_CHOICES, canonical_dtype
from kvplan.engines.base import Request, Speculative
from kvplan.engines.registry import entries
from kvplan.engines.sglang import (
    FP4_MX_SCALE_BLOCK,
    SglangEngine,
    fp4_mla_layer_bytes,
    fp4_mx_layer_bytes,
    nvfp4_layer_bytes,
)
from kvplan.errors import UsageError
from kvplan.planning.estimate import estimate_shape

from conftest import ENGINE_SOURCES, check_cited_line, load_config

_SOURCES = ENGINE_SOURCES / "sglang-0.5.23" / "sglang"
_FP4 = "srt/layers/quantization/fp4_kv_cache_quant_method.py"
_HOOK = "srt/arg_groups/kv_cache_hook.py"
_MOB = "srt/arg_groups/model_override_base.py"
_PC = "srt/model_executor/pool_configurator.py"
_KVC = "srt/mem_cache/kv_cache_configurator.py"
_POOL = "srt/mem_cache/memory_pool.py"
_CITED = [
    # both FP4 recipes share one storage dtype and one KV4 check
    ("srt/mem_cache/kv_cache_dtype.py", 76, 'elif server_args_kv_cache_dtype in ("nvfp4", "fp4_mx_block16"):'),
    (_HOOK, 117, 'if cfg.kv_cache_dtype not in ("nvfp4", "fp4_mx_block16"):'),
    (_HOOK, 125, 'if cfg.kv_cache_dtype == "nvfp4" and not ('),  # the Blackwell gate is nvfp4's only
    # fp4_mx_block16: the recipe's cell, one scale level, no workspace on plain accesses
    (_FP4, 771, "class FP4MXBlock16KVCacheMethod(KVCacheQuantMethodBase):"),
    (_FP4, 779, "SCALE_BLOCK_SIZE = 16"),
    (_FP4, 900, "fp4_size = head_num * (head_dim // 2) * num_layers * 2 * kv_size"),
    (_FP4, 902, "(head_num * head_dim // self.SCALE_BLOCK_SIZE) * num_layers * 2 * kv_size"),
    (_FP4, 904, "dq_dtype = self.dequant_workspace_dtype()"),
    (_FP4, 932, "_FP4_MX_MHA_BACKENDS = frozenset("),
    (_FP4, 933, '{"triton", "torch_native", "flex_attention", "trtllm_mha"}'),
    (_FP4, 1009, "_plain(_PREFILL, _FP4_MX_PREFILL_BACKENDS, _FP4_MX_SCALE, _BF16),"),
    (_FP4, 1010, "_plain(_DECODE, _FP4_MX_MHA_BACKENDS, _FP4_MX_SCALE, _BF16),"),
    (_FP4, 1037, 'if kv_cache_dtype == "mxfp4":'),  # not an alias: mxfp4 is reserved for block 32
    # the KV4 check's backends
    (_HOOK, 297, "if uses_mla:  # !FA4 + MLA"),
    (_HOOK, 299, '"flashinfer",'),
    (_HOOK, 300, '"trtllm_mla",'),
    (_HOOK, 302, "assert attention_backend in KV4_ATTENTION_MLA_BACKEND_CHOICES, ("),
    (_HOOK, 308, '"triton",'),
    (_HOOK, 311, '"trtllm_mha",'),
    (_HOOK, 313, "assert attention_backend in KV4_ATTENTION_MHA_BACKEND_CHOICES, ("),
    # SGLang's default backends
    (_MOB, 305, "if get_platform().is_hopper_with_cuda_12_3 and is_no_spec_infer_or_topk_one("),
    (_MOB, 311, 'return "fa3"'),
    (_MOB, 313, "get_platform().is_sm100"),
    (_MOB, 317, "or cfg.speculative_eagle_topk is not None"),
    (_MOB, 325, 'return "trtllm_mha"'),
    (_MOB, 333, 'return "flashinfer"'),
    (_MOB, 337, "if get_platform().is_hopper_with_cuda_12_3:"),
    (_MOB, 338, 'return "fa3"'),
    (_MOB, 339, "elif get_platform().is_sm100:"),
    (_MOB, 340, 'return "flashinfer"'),
    (_MOB, 351, 'return "triton"'),
    ("srt/arg_groups/model_overrides/deepseek_v2.py", 179, "if get_platform().is_sm100:"),
    ("srt/arg_groups/model_overrides/deepseek_v2.py", 185, 'overrides["attention_backend"] = "trtllm_mla"'),
    ("srt/arg_groups/model_overrides/deepseek_v2.py", 103, 'overrides["attention_backend"] = "dsa"'),
    ("srt/arg_groups/overrides.py", 1207, 'view.attention_backend == "trtllm_mla"'),
    ("srt/arg_groups/overrides.py", 1214, 'if view.kv_cache_dtype not in ["fp8_e4m3", "bf16", "auto"]:'),
    # nvfp4 + MLA: decode forced onto trtllm_mha, which refuses MLA
    (_HOOK, 88, '"decode_attention_backend": "trtllm_mha",'),
    (_HOOK, 54, '"NVFP4 prefill supports an FP8 E4M3 workspace or native "'),
    ("srt/layers/attention/attention_registry.py", 279, "if runner.use_mla_backend:"),
    ("srt/layers/attention/attention_registry.py", 280, "trtllm_mha backend can only be used with non-MLA models."),
    # the FP4 MLA pool and its cell
    (_KVC, 1874, "if is_float4_e2m1fn_x2(self.kv_cache_dtype):"),
    (_KVC, 1875, "token_to_kv_pool = self._build_mla_fp4_kv_pool("),
    (_POOL, 5133, "class MLATokenToKVPoolFP4(MLATokenToKVPool):"),
    (_POOL, 5146, "scale_block_size = 16"),
    (_POOL, 5151, "(m, n, k // 2),"),
    (_POOL, 5160, "(m, k // scale_block_size),"),
    (_POOL, 4796, "else (kv_lora_rank + qk_rope_head_dim)"),
    (_PC, 387, "if is_float4_e2m1fn_x2(kv_cache_dtype):"),
    (_PC, 390, "cell_size = (cell_size // 2) + ("),
    (_PC, 392, "(model_config.kv_lora_rank + model_config.qk_rope_head_dim)"),
]


@pytest.mark.parametrize(("path", "line", "text"), _CITED)
def test_cited_engine_source_lines(path, line, text):
    check_cited_line(_SOURCES / path, line, text)


def _req(kv: str = "fp4_mx_block16", cc: str | None = None, **kw) -> Request:
    return Request(kw.pop("seq_len", 4096), kw.pop("batch", 1), kv, "bfloat16", compute_capability=cc, **kw)


def _per_token(name: str, kv: str = "fp4_mx_block16", **kw) -> float:
    shape = model_shape(load_config(name))
    return estimate_shape(shape, engine="sglang", kv_dtype=kv, **kw).bytes_per_token_per_gpu


def _refused(name: str, kv: str = "fp4_mx_block16", cc: str | None = None, **kw) -> UsageError:
    shape = model_shape(load_config(name))
    engine = SglangEngine(shape.architectures, shape.config_model_type)
    with pytest.raises(UsageError) as err:
        engine.stage_costs(shape.caches(), _req(kv, cc, **kw))
    return err.value


# ---------------------------------------------------------------------------------------------- fp4_mx_block16, MHA


@pytest.mark.parametrize(
    ("name", "layers", "heads", "head_dim"),
    [("meta-llama__Llama-3.1-8B", 32, 8, 128), ("Qwen__Qwen3-8B", 36, 8, 128), ("Qwen__Qwen3-32B", 64, 8, 128)],
)
def test_fp4_mx_bytes_per_token_by_hand(name, layers, heads, head_dim):
    """Per layer: K and V of heads x head_dim / 2 B (fp4_kv_cache_quant_method.py:900) plus (heads x head_dim) / 16
    scales each (:902), no workspace (:904-913 with plain accesses only); Llama-3.1-8B: 8 x 64 x 2 + 1,024 / 16 x 2 =
    1,152 B a layer, 36,864 B a token over 32 layers, on SM100 and without a GPU (kvplan takes SM100 then)."""
    per_layer = heads * head_dim // 2 * 2 + heads * head_dim // 16 * 2
    assert fp4_mx_layer_bytes(heads, head_dim) == per_layer
    assert _per_token(name) == _per_token(name, compute_capability="10.0") == layers * per_layer
    assert _per_token(name, compute_capability="10.3") == layers * per_layer  # B300: major 10, SM100's path
    if name == "meta-llama__Llama-3.1-8B":
        assert _per_token(name) == 36_864


def test_fp4_mx_scales_over_the_flattened_heads():
    """The block-16 recipe counts (heads x head_dim) // 16 scales (:902), nvfp4 heads x (head_dim // 16): 2 heads of
    72 are 9 x 2 = 18 B of scales under fp4_mx_block16 and 2 x 4 x 2 = 16 B under nvfp4, on 2 x 36 x 2 = 144 B of FP4.
    fp4_mx_block16 has no head_dim % 64 rule (that is native NVFP4's, :589-590): 72 is sized on SM100."""
    assert fp4_mx_layer_bytes(2, 72) == 144 + 18 == 162
    assert nvfp4_layer_bytes(2, 72) == 144 + 16
    engine = SglangEngine(("LlamaForCausalLM",), "llama")
    costs = engine.stage_costs([L.FullAttention(2, 72, 72)] * 3, _req(cc="10.0"))
    assert [c.bytes_per_token for c in costs] == [3 * 162]
    assert FP4_MX_SCALE_BLOCK == 16


def test_fp4_mx_splits_kv_heads_over_tp():
    """Qwen3-30B-A3B's 4 KV heads at TP 4 are one a rank: 48 x (64 x 2 + 128 / 16 x 2) = 6,912 B a token."""
    assert _per_token("Qwen__Qwen3-30B-A3B", tp=4) == 48 * (64 * 2 + 8 * 2) == 6_912


@pytest.mark.parametrize(
    ("cc", "needle"),
    [
        ("9.0", "on compute capability 9.0 is fa3 (srt/arg_groups/model_override_base.py:305-311)"),
        ("12.0", "on compute capability 12.0 is flashinfer (srt/arg_groups/model_override_base.py:330-334)"),
        ("8.9", "on compute capability 8.9 is flashinfer"),
    ],
)
def test_fp4_mx_refused_where_the_default_backend_does_not_read_it(cc, needle):
    err = _refused("meta-llama__Llama-3.1-8B", cc=cc)
    assert needle in str(err)
    assert "kv_cache_hook.py:306-316" in str(err)
    assert "--attention-backend triton" in str(err.hint)
    assert err.field == "kv_dtype"


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("mistralai__Mistral-7B-v0.1", "fp4_mx_block16 KV cache for full-attention and MLA layers only, not sliding"),
        ("allenai__OLMo-2-1124-7B", "model_overrides/olmo2.py:15"),
    ],
)
def test_fp4_mx_refusals_shared_with_nvfp4(name, needle):
    assert needle in str(_refused(name, cc="10.0"))


def test_fp4_mx_drafting_and_vendor():
    """EAGLE / NEXTN / STANDALONE commands carry --speculative-eagle-topk 1, so SM100 keeps trtllm_mha
    (model_override_base.py:312-320) and the draft layers cost the target's cell; NGRAM sets no topk: not read. A
    non-CUDA GPU is refused as for nvfp4 (kv_cache_hook.py:317-318)."""
    engine = SglangEngine(("LlamaForCausalLM",), "llama")
    full = [L.FullAttention(8, 128, 128)] * 4
    spec = Speculative("mtp", 1, draft_caches=(full[0],))
    assert [c.bytes_per_token for c in engine.stage_costs(full, _req(cc="10.0", speculative=spec))] == [
        4 * 1_152,
        1_152,
    ]
    with pytest.raises(UsageError, match="with ngram drafting"):
        engine.stage_costs(full, _req(cc="10.0", speculative=Speculative("ngram", 3)))
    with pytest.raises(UsageError, match="CUDA GPUs only, not on amd"):
        engine.stage_costs(full, _req(vendor="amd"))


# ---------------------------------------------------------------------------------------------- MLA


def test_fp4_mla_bytes_per_token_by_hand():
    """DeepSeek-V2-Lite (DeepseekV2ForCausalLM: no SGLang backend override) on SM100 runs MLA on flashinfer
    (model_override_base.py:339-340), which the KV4 check takes (kv_cache_hook.py:297-305): MLATokenToKVPoolFP4,
    (512 + 64) / 2 = 288 B of FP4 + 576 / 16 = 36 B of scales = 324 B a layer, 27 layers: 8,748 B a token; the
    latent is replicated, so TP 2 keeps it."""
    assert fp4_mla_layer_bytes(512, 64) == 288 + 36 == 324
    assert _per_token("deepseek-ai__DeepSeek-V2-Lite") == 27 * 324 == 8_748
    assert _per_token("deepseek-ai__DeepSeek-V2-Lite", compute_capability="10.0", tp=2) == 8_748
    est = estimate_shape(model_shape(load_config("deepseek-ai__DeepSeek-V2-Lite")), engine="sglang",
                         kv_dtype="fp4_mx_block16")  # fmt: skip
    assert any("MLATokenToKVPoolFP4" in n and "(324 B;" in n for n in est.notes)


@pytest.mark.parametrize(
    ("name", "cc", "needle"),
    [
        # nvfp4: never for MLA, whatever the GPU
        ("deepseek-ai__DeepSeek-V3", None, "cannot run an MLA model with an nvfp4 KV cache"),
        ("deepseek-ai__DeepSeek-V2-Lite", "12.0", "cannot run an MLA model with an nvfp4 KV cache"),
        ("moonshotai__Kimi-K2.5", "10.0", "cannot run an MLA model with an nvfp4 KV cache"),
        ("deepseek-ai__DeepSeek-V3.2", "10.0", "cannot run an MLA model with an nvfp4 KV cache"),
    ],
)
def test_nvfp4_mla_refused(name, cc, needle):
    err = _refused(name, "nvfp4", cc)
    assert needle in str(err) and "attention_registry.py:278-280" in str(err)
    assert "fp4_mx_block16" in str(err.hint)


@pytest.mark.parametrize(
    ("name", "cc", "needle"),
    [
        ("deepseek-ai__DeepSeek-V3", "10.0", "picks trtllm_mla for DeepseekV3ForCausalLM on SM100"),
        ("deepseek-ai__DeepSeek-V3", None, "picks trtllm_mla for DeepseekV3ForCausalLM on SM100"),
        ("moonshotai__Kimi-K2.5", "10.0", "picks trtllm_mla for KimiK25ForConditionalGeneration on SM100"),
        ("deepseek-ai__DeepSeek-V3", "12.0", "on compute capability 12.0 is triton"),
        ("deepseek-ai__DeepSeek-V2-Lite", "9.0", "on compute capability 9.0 is fa3"),
        ("deepseek-ai__DeepSeek-V3.2", "10.0", "dsa attention backend"),
    ],
)
def test_fp4_mx_mla_refused_by_backend(name, cc, needle):
    err = _refused(name, cc=cc)
    assert needle in str(err), str(err)
    if "trtllm_mla" in needle or "is triton" in needle or "is fa3" in needle:
        assert "--attention-backend flashinfer" in str(err.hint)


# ---------------------------------------------------------------------------------------------- one KV dtype, SGLang's


def test_fp4_mx_block16_is_sglangs_only():
    """The dtype is spelled as SGLang spells it (no mxfp4 alias: SGLang keeps that name for block 32,
    fp4_kv_cache_quant_method.py:1037-1042), and SGLang is the one engine whose entry stores it."""
    assert "fp4_mx_block16" in KV_DTYPE_CHOICES and canonical_dtype("fp4_mx_block16") == "fp4_mx_block16"
    with pytest.raises(UsageError):
        canonical_dtype("mxfp4")
    owners = {d: [e.name for e in entries(lambda e, d=d: d in e.kv_own)] for d in ENGINE_ONLY_KV_DTYPES}
    assert owners == {"fp4_mx_block16": ["sglang"]}


_runner = CliRunner()


def _run(*args: str):
    return _runner.invoke(app, list(args))


@pytest.mark.parametrize("engine", ["vllm", "llamacpp", "tensorrt_llm", "naive", "transformers"])
def test_other_engines_refuse_fp4_mx_block16(engine):
    out = _run("estimate", "meta-llama/Llama-3.1-8B", "--engine", engine, "--kv-dtype", "fp4_mx_block16")
    assert out.exit_code == 2, out.output
    lines = out.stderr.splitlines()
    assert lines[0].startswith("error: --kv-dtype fp4_mx_block16 is a KV cache only sglang stores; ")
    assert lines[1] == "hint: use --engine sglang, or fp8 for this engine"


def test_cli_estimate_deepseek_v3_nvfp4_is_refused():
    out = _run("estimate", "deepseek-ai/DeepSeek-V3", "--engine", "sglang", "--kv-dtype", "nvfp4", "--json")
    assert out.exit_code == 2
    lines = out.stderr.splitlines()
    assert lines[0].startswith("error: SGLang 0.5.23 cannot run an MLA model with an nvfp4 KV cache")
    assert lines[1].startswith("hint: use --kv-dtype fp8_e4m3 or auto")


def test_cli_recommend_fp4_mx_block16():
    def plan(model: str, gpu: str) -> dict:
        out = _run("recommend", model, "-g", gpu, "--engine", "sglang", "--kv-dtype", "fp4_mx_block16", "--json")
        assert out.exit_code == 0, out.output
        return json.loads(out.stdout)

    for model, per_token in (("meta-llama/Llama-3.1-8B-Instruct", 36_864), ("deepseek-ai/DeepSeek-V2-Lite", 8_748)):
        p = plan(model, "b200")
        assert p["kv_dtype"] == "fp4_mx_block16"
        assert p["kv_cache_tokens"] == p["available_kv_memory_bytes"] // per_token
        assert p["kv_bytes_per_request"] == per_token * p["max_model_len"]
        assert p["flags"]["sglang"].endswith("--kv-cache-dtype fp4_mx_block16")
    for model, gpu, first in (
        ("deepseek-ai/DeepSeek-V3", "b200", "error: SGLang picks trtllm_mla for DeepseekV3ForCausalLM on SM100"),
        ("meta-llama/Llama-3.1-8B-Instruct", "h100", "error: SGLang's default attention backend on compute"),
        ("deepseek-ai/DeepSeek-V2-Lite", "rtx-pro-6000", "error: SGLang's default MLA attention backend on"),
    ):
        out = _run("recommend", model, "-g", gpu, "--tp", "8" if "V3" in model else "1", "--engine", "sglang",
                   "--kv-dtype", "fp4_mx_block16")  # fmt: skip
        assert out.exit_code == 2, out.output
        assert out.stderr.splitlines()[0].startswith(first), out.stderr
        assert out.stderr.splitlines()[1].startswith("hint: run SGLang with --attention-backend")


# ---------------------------------------------------------------------------------------------- hybrid (Mamba-style)

_HYBRID_CITED = [
    # the hybrid pool takes the FP4 recipe for its full-attention layers, sized over those layers only
    (_KVC, 2656, "quant_method = self._build_mha_quant_method("),
    (_KVC, 2657, "num_layers=len(full_attention_layer_ids)"),
    (_KVC, 2708, "quant_method=quant_method,"),
    (_KVC, 2734, "if self.use_mla_backend:"),
    (_KVC, 2735, "return mla_pool_class"),
    (_PC, 229, "if mambaish := mambaish_config(kvc.model_config):"),
    (_PC, 235, "num_layers = len(effective_layer_ids)"),
    (_PC, 239, "self._cell_size = self._compute_cell_size(kvc, num_layers)"),
    # and forwards the backends' FP4 reads
    (_POOL, 4503, "def get_dequant_workspace(self) -> tuple[torch.Tensor, torch.Tensor]:"),
    (_POOL, 4504, "return self.full_kv_pool.get_dequant_workspace()"),
    ("srt/layers/attention/trtllm_mha_backend.py", 112, "if isinstance(pool, HybridLinearKVPool):"),
    ("srt/layers/attention/trtllm_mha_backend.py", 115, "pool = pool.full_kv_pool"),
    # the overrides' backends per GPU
    (
        "srt/arg_groups/model_overrides/qwen3_5.py",
        26,
        "if not get_platform().is_sm100 or cfg.attention_backend is not None:",
    ),
    ("srt/arg_groups/model_overrides/qwen3_5.py", 40, 'if default_attn_backend == "trtllm_mha" and not ('),
    ("srt/arg_groups/model_overrides/qwen3_5.py", 41, "not mamba_extra_buffer_of(resolved_view(server_args))"),
    ("srt/arg_groups/model_overrides/qwen3_5.py", 45, 'sm100_default_attn_backend = "trtllm_mha"'),
    ("srt/arg_groups/overrides.py", 406, '"Qwen3_5ForConditionalGeneration",'),
    ("srt/arg_groups/overrides.py", 449, 'return view.linear_attn_backend == "triton"'),
    ("srt/arg_groups/overrides.py", 478, "wants_overlap = not view.disable_overlap_schedule"),
    ("srt/arg_groups/overrides.py", 483, 'declared["mamba_radix_cache_strategy"] = "extra_buffer"'),
    ("srt/arg_groups/overrides.py", 1625, "if view.pp_size > 1:"),
    ("srt/arg_groups/fields/exec_.py", 548, '] = "triton"'),
    ("srt/arg_groups/fields/schedule.py", 199, "] = False"),
    ("srt/arg_groups/model_hook.py", 225, "handle_mamba_radix_cache(server_args, hf_config)"),  # before the overrides
    ("srt/arg_groups/model_hook.py", 233, "model_overrides = collect_model_override_declarations("),
    (
        "srt/arg_groups/model_overrides/nemotron_h.py",
        123,
        "if get_platform().is_blackwell and is_attention_backend_not_set(cfg):",
    ),
    ("srt/arg_groups/model_overrides/nemotron_h.py", 141, 'overrides["attention_backend"] = "triton"'),
    ("srt/arg_groups/model_overrides/nemotron_h.py", 148, 'overrides["attention_backend"] = "trtllm_mha"'),
    ("srt/arg_groups/model_overrides/falcon_h1.py", 18, 'return {"attention_backend": "triton"}'),
    ("srt/arg_groups/model_overrides/granitemoehybrid.py", 19, 'return {"attention_backend": "flashinfer"}'),
    ("srt/arg_groups/model_overrides/lfm2.py", 16, 'return {"attention_backend": "flashinfer"}'),
    # NVFP4's scale layouts: mixed FlashInfer prefill + trtllm_mha decode on SM100 owns both
    (_FP4, 750, "# scales serve TRT-LLM GenMHA. Mixed mode intentionally owns both."),
]


@pytest.mark.parametrize(("path", "line", "text"), _HYBRID_CITED)
def test_hybrid_cited_engine_source_lines(path, line, text):
    check_cited_line(_SOURCES / path, line, text)


@pytest.mark.parametrize(
    ("name", "layers", "heads", "head_dim"),
    [
        ("Qwen__Qwen3.5-27B", 16, 4, 256),  # qwen3_5 override: trtllm_mha on SM100 (extra_buffer Mamba cache)
        ("Qwen__Qwen3-Next-80B-A3B", 12, 2, 256),
        ("nvidia__NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", 6, 2, 128),  # nemotron_h override: trtllm_mha on SM100
        (
            "LiquidAI__LFM2.5-VL-1.6B",
            6,
            8,
            64,
        ),  # Lfm2VlForConditionalGeneration: no override, the hook's trtllm_mha pair
    ],
)
def test_hybrid_nvfp4_full_attention_layers_by_hand(name, layers, heads, head_dim):
    """Only the full-attention layers hold FP4 K/V (pool_configurator.py:229-239); Qwen3.5-27B: 16 layers x (4 x 128
    x 2 + 4 x 16 x 2 = 1,152) = 18,432 B a token on SM100 (native, one scale layout), + 4 x 256 x 2 = 2,048 B of
    FlashInfer's fp8 workspace on SM120 (no override there: the hook's FlashInfer prefill) = 20,480 B; the Mamba
    state is the same bytes as with a bf16 KV cache. fp4_mx_block16 on SM100 (trtllm_mha) is the same 18,432 B."""
    per_layer = heads * head_dim // 2 * 2 + heads * head_dim // 16 * 2
    assert _per_token(name, "nvfp4") == _per_token(name, "nvfp4", compute_capability="10.0") == layers * per_layer
    assert _per_token(name, "nvfp4", compute_capability="12.0") == layers * per_layer + heads * head_dim * 2
    assert _per_token(name, compute_capability="10.0") == layers * per_layer  # fp4_mx_block16
    if name == "Qwen__Qwen3.5-27B":
        assert layers * per_layer == 18_432
    shape = model_shape(load_config(name))
    fp4 = estimate_shape(shape, engine="sglang", kv_dtype="nvfp4", compute_capability="10.0")
    bf16 = estimate_shape(shape, engine="sglang", kv_dtype="bf16", compute_capability="10.0")
    state = [k.bytes for k in fp4.layers if k.kind == L.STATE]
    assert state and state == [k.bytes for k in bf16.layers if k.kind == L.STATE]
    assert any("HybridLinearKVPool" in n for n in fp4.notes)


def _hybrid(arch: str) -> tuple[SglangEngine, list]:
    """Qwen3.5-27B's layers under another hybrid family's architecture (its override is what is tested)."""
    shape = model_shape(load_config("Qwen__Qwen3.5-27B"))
    return SglangEngine((arch,), None), shape.caches()


def test_hybrid_flashinfer_override_on_sm100_owns_both_scale_layouts():
    """Granite-MoE hybrid and LFM2 overrides pick flashinfer on SM100 (granitemoehybrid.py:18-19, lfm2.py:15-16):
    the NVFP4 hook then prefills through FlashInfer's fp8 workspace and decodes natively on trtllm_mha
    (kv_cache_hook.py:47-57, :86-89), so the pool keeps both scale layouts (fp4_kv_cache_quant_method.py:750-755) and
    the workspace: 16 x (1,024 + 2 x 128) + 2,048 = 22,528 B a token; on SM120 no override, 20,480 B."""
    for arch in ("GraniteMoeHybridForCausalLM", "Lfm2ForCausalLM"):
        engine, caches = _hybrid(arch)
        sm100 = engine.stage_costs(caches, _req("nvfp4", "10.0"))
        assert sum(c.bytes_per_token for c in sm100) == 16 * (1_024 + 2 * 128) + 2_048 == 22_528
        assert nvfp4_layer_bytes(4, 256, 2) == 1_280
        sm120 = engine.stage_costs(caches, _req("nvfp4", "12.0"))
        assert sum(c.bytes_per_token for c in sm120) == 20_480
        with pytest.raises(UsageError, match="picks the flashinfer attention backend"):
            engine.stage_costs(caches, _req("fp4_mx_block16", "10.0"))


def test_hybrid_triton_override_is_refused_for_nvfp4_and_taken_for_fp4_mx():
    """Falcon-H1's override sets triton on SM100 (falcon_h1.py:17-18): the NVFP4 hook refuses it (kv_cache_hook.py:
    52-56), the KV4 check takes it for fp4_mx_block16 (:306-316): 18,432 B. Nemotron-H on SM120 with a draft sets
    triton too (nemotron_h.py:123-141)."""
    engine, caches = _hybrid("FalconH1ForCausalLM")
    with pytest.raises(UsageError, match="picks the triton attention backend for FalconH1ForCausalLM") as err:
        engine.stage_costs(caches, _req("nvfp4", "10.0"))
    assert "kv_cache_hook.py:47-56" in str(err.value)
    assert sum(c.bytes_per_token for c in engine.stage_costs(caches, _req("fp4_mx_block16", "10.0"))) == 18_432
    assert sum(c.bytes_per_token for c in engine.stage_costs(caches, _req("nvfp4", "12.0"))) == 20_480
    nemotron, _ = _hybrid("NemotronHForCausalLM")
    spec = Speculative("mtp", 1)
    with pytest.raises(UsageError, match="triton attention backend for NemotronHForCausalLM"):
        nemotron.stage_costs(caches, _req("nvfp4", "12.0", speculative=spec))
    assert sum(c.bytes_per_token for c in nemotron.stage_costs(caches, _req("nvfp4", "12.0"))) == 20_480


def test_hybrid_refusals():
    """An unread hybrid override (Inkling), and an MLA hybrid (Kimi-K3) under fp4_mx_block16 (its MLA layers stay
    in the plain MLA pool class, kv_cache_configurator.py:2734-2735); Kimi-K3 under nvfp4 is an MLA model like any
    (decode on trtllm_mha). Qwen3.5 with PP > 1 on SM100 is sized as at PP 1: the Mamba cache strategy its
    override picks trtllm_mha by is resolved (arg_groups/pipeline.py:225) before PP turns the overlap scheduler off
    (:302), so it is extra_buffer under PP too."""
    engine, caches = _hybrid("Qwen3_5ForConditionalGeneration")
    pp1, pp2 = (engine.stage_costs(caches, _req("nvfp4", "10.0", pp=pp)) for pp in (1, 2))
    assert pp1 == pp2 and sum(c.bytes_per_token for c in pp2) == 18_432
    inkling, _ = _hybrid("InklingForConditionalGeneration")
    with pytest.raises(UsageError, match="model_overrides/inkling.py:16"):
        inkling.stage_costs(caches, _req("nvfp4", "10.0"))
    assert "plain MLA pool class" in str(_refused("moonshotai__Kimi-K3", cc="10.0"))
    assert "cannot run an MLA model with an nvfp4" in str(_refused("moonshotai__Kimi-K3", "nvfp4", "10.0"))


def test_cli_recommend_hybrid_nvfp4_on_b200():
    out = _run("recommend", "Qwen/Qwen3.5-27B", "-g", "b200", "--engine", "sglang", "--kv-dtype", "nvfp4", "--json")
    assert out.exit_code == 0, out.output
    plan = json.loads(out.stdout)
    assert plan["kv_dtype"] == "nvfp4" and plan["flags"]["sglang"].endswith("--kv-cache-dtype nvfp4")
    bf16 = json.loads(
        _run("recommend", "Qwen/Qwen3.5-27B", "-g", "b200", "--engine", "sglang", "--kv-dtype", "bf16", "--json").stdout
    )
    # a request's full-attention K/V: 16 x 1,152 = 18,432 B a token under nvfp4 against 16 x 4 x 256 x 2 x 2 =
    # 65,536 B in bf16; its Mamba state is the same bytes in both
    assert plan["max_model_len"] == bf16["max_model_len"]
    assert bf16["kv_bytes_per_request"] - plan["kv_bytes_per_request"] == (65_536 - 18_432) * plan["max_model_len"]
    assert plan["kv_cache_tokens"] > bf16["kv_cache_tokens"]


def test_qwen3_5_ngram_on_sm100_is_not_read():
    """With NGRAM (no --speculative-eagle-topk in kvplan's command) SGLang's SM100 default is not trtllm_mha
    (model_override_base.py:312-320), so the qwen3_5 override's pick (qwen3_5.py:34-45) is not the one read."""
    engine, caches = _hybrid("Qwen3_5ForConditionalGeneration")
    with pytest.raises(UsageError, match="with NGRAM drafting on SM100") as err:
        engine.stage_costs(caches, _req("nvfp4", "10.0", speculative=Speculative("ngram", 3)))
    assert err.value.field == "speculative_config"
