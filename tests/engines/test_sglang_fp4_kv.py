"""SGLang 0.5.23's FP4 KV cache (`--kv-cache-dtype nvfp4`) and its `auto` KV dtype.

The NVFP4 recipe (srt/layers/quantization/fp4_kv_cache_quant_method.py `NVFP4KVCacheMethod`) stores K and V as
torch.float4_e2m1fn_x2, head_dim / 2 bytes a head, one fp8_e4m3 scale per 16 values in each scale layout the
attention backends read, and, where FlashInfer prefills, one fp8 dequant workspace of K and V per token shared by
the layers. With no backend given SGLang prefills natively on SM100 (one scale layout, no workspace) and through
FlashInfer elsewhere (SM120: one token-linear scale layout plus the workspace). The figures below are worked out
by hand from those rules and the configs' head shapes, not taken from kvplan. `auto`: SGLang runs fp8_e4m3 for a
checkpoint whose quantization config asks for an FP8 KV cache (srt/mem_cache/kv_cache_dtype.py:49-57).

Where the SGLang tree is on this machine (KVPLAN_ENGINE_SOURCES, default /work/src) every cited line is read back
and the table of architectures whose model override sets the attention backend is rebuilt from the source.
"""

from __future__ import annotations

import ast
import json

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.core import specs as L
from kvplan.core.shapes import CHECKPOINT_FP8_KV, checkpoint_fp8_kv, model_shape
from kvplan.core.units import short_dtype
from kvplan.engines.base import Request, Speculative
from kvplan.engines.sglang import (
    SGLANG_ATTENTION_BACKEND_OVERRIDES,
    SGLANG_DSA_AUTO_ARCHS,
    SglangEngine,
    nvfp4_layer_bytes,
    nvfp4_workspace_bytes,
)
from kvplan.errors import UsageError
from kvplan.planning.estimate import estimate_shape
from kvplan.sources.hardware import load_profile

from conftest import ENGINE_SOURCES, check_cited_line, load_config

_SOURCES = ENGINE_SOURCES / "sglang-0.5.23" / "sglang"
_FP4 = "srt/layers/quantization/fp4_kv_cache_quant_method.py"
_HOOK = "srt/arg_groups/kv_cache_hook.py"
_PC = "srt/model_executor/pool_configurator.py"
_KVC = "srt/mem_cache/kv_cache_configurator.py"
_MO = "srt/layers/quantization/modelopt_quant.py"
_CITED = [
    # the dtype string -> torch dtype, one byte per two FP4 values
    ("srt/mem_cache/kv_cache_dtype.py", 76, 'elif server_args_kv_cache_dtype in ("nvfp4", "fp4_mx_block16"):'),
    ("srt/mem_cache/kv_cache_dtype.py", 78, "kv_cache_dtype = torch.float4_e2m1fn_x2"),
    # the MHA cell is the recipe's, with kv_size the element size of float4_e2m1fn_x2
    (_PC, 355, "kv_size = torch._utils._element_size(kv_cache_dtype)"),
    (_PC, 492, "n = model_config.get_num_kv_heads(tp_size, dcp_size)"),
    (_PC, 500, "if is_float4_e2m1fn_x2(kv_cache_dtype):"),
    (_PC, 520, "cell_size = quant_method.compute_cell_size("),
    (_PC, 522, "model_config.head_dim,"),
    # NVFP4KVCacheMethod.compute_cell_size
    (_FP4, 446, "Supported on SM100 and SM120."),
    (_FP4, 450, "SCALE_BLOCK_SIZE = 16"),
    (_FP4, 463, "get_platform().is_sm100"),
    (_FP4, 478, "return self.has_native_fp4_access() and self.use_trtllm_gen_native_scale_layout"),
    (_FP4, 483, "return self.needs_dequant_workspace() or ("),
    (_FP4, 484, "self.has_native_fp4_access() and not self.use_trtllm_gen_native_scale_layout"),
    (_FP4, 589, "if k % 64 != 0:"),
    (_FP4, 748, "fp4_size = head_num * (head_dim // 2) * num_layers * 2 * kv_size"),
    (_FP4, 752, "head_num * (head_dim // self.SCALE_BLOCK_SIZE) * num_layers * 2 * kv_size"),
    (_FP4, 755, "int(self.needs_linear_scale_buffer()) + int(self.needs_native_fp4_scales())"),
    (_FP4, 757, "# Dequant workspace is shared across layers, not multiplied by num_layers."),
    (_FP4, 768, "return fp4_size + scale_size + dq_size"),
    (_FP4, 929, '_NVFP4_DQ_KV_PREFILL_BACKENDS = frozenset({"flashinfer"})'),
    (_FP4, 930, '_NVFP4_KV_PREFILL_BACKENDS = frozenset({"trtllm_mha"})'),
    (_FP4, 931, '_NVFP4_KV_DECODE_BACKENDS = frozenset({"trtllm_mha"})'),
    (_FP4, 1004, "_dq_workspace(_PREFILL, _NVFP4_DQ_KV_PREFILL_BACKENDS, _NVFP4_SCALE, _FP8_E4M3),"),
    # which backends the NVFP4 hook picks, and the GPU gate
    (_HOOK, 26, '"fp8_e4m3": "flashinfer",'),
    (_HOOK, 27, '"nvfp4": "trtllm_mha",'),
    (_HOOK, 48, "explicit_backend = cfg.prefill_attention_backend or cfg.attention_backend"),
    (_HOOK, 57, 'requested_dtype = "nvfp4" if get_platform().is_sm100 else "fp8_e4m3"'),
    (_HOOK, 88, '"decode_attention_backend": "trtllm_mha",'),
    (_HOOK, 125, 'if cfg.kv_cache_dtype == "nvfp4" and not ('),
    (_HOOK, 126, "get_platform().is_sm100 or get_platform().is_sm120"),
    (_HOOK, 173, '"SM100 native NVFP4 speculative decoding does not yet support "'),
    (_HOOK, 318, 'raise RuntimeError("KV4 is not tested on non-CUDA platforms.")'),
    (_HOOK, 185, '"SM100 native NVFP4 speculative decoding supports EAGLE, "'),
    ("srt/utils/common.py", 311, "_check_cuda_device_version, device_capability_majors=[10], cuda_version=(12, 8)"),
    # the pools that take the recipe, and the SWA ones that do not
    (_KVC, 1906, "quant_method = self._build_mha_quant_method("),
    (_KVC, 1874, "if is_float4_e2m1fn_x2(self.kv_cache_dtype):"),
    (_KVC, 1875, "token_to_kv_pool = self._build_mla_fp4_kv_pool("),
    (_KVC, 2532, "token_to_kv_pool = SWAKVPool("),
    (_KVC, 2656, "quant_method = self._build_mha_quant_method("),
    (_PC, 656, "class HybridSWAPoolConfigurator(MemoryPoolConfigurator):"),
    (_PC, 663, "kv_size = torch._utils._element_size(kv_cache_dtype)"),
    # --kv-cache-dtype auto: the model dtype, or fp8_e4m3 for a checkpoint whose quant config asks for it
    ("srt/mem_cache/kv_cache_dtype.py", 49, 'if server_args_kv_cache_dtype == "auto":'),
    ("srt/mem_cache/kv_cache_dtype.py", 54, 'and kv_cache_quant_algo.upper() == "FP8"'),
    ("srt/mem_cache/kv_cache_dtype.py", 56, "kv_cache_dtype = fp8_dtype if _is_hip else torch.float8_e4m3fn"),
    ("srt/mem_cache/kv_cache_dtype.py", 59, "kv_cache_dtype = model_dtype"),
    ("srt/mem_cache/kv_cache_dtype.py", 75, "kv_cache_dtype = torch.bfloat16"),
    ("srt/layers/quantization/fp8.py", 367, 'config, ["kv_cache_quant_algo"], None'),
    (_MO, 488, 'kv_cache_quant_method = "FP8"'),
    (_MO, 490, 'kv_cache_quant_method = config.get("kv_cache_quant_algo")'),
    (_MO, 863, 'kv_cache_quant_algo = "FP8"'),
    (_MO, 872, 'kv_cache_quant_algo = config.get("kv_cache_quant_algo")'),
    (_MO, 1626, 'kv_cache_quant_algo = "FP8"'),
    (_MO, 1638, 'kv_cache_quant_algo = config.get("kv_cache_quant_algo") or "auto"'),
    ("srt/arg_groups/overrides.py", 491, "def _dsa_kv_cache_dtype_default(view: Any) -> dict:"),
    ("srt/arg_groups/overrides.py", 496, "if hf_config.architectures[0] not in _DEEPSEEK_FAMILY_ARCHS:"),
    ("srt/arg_groups/overrides.py", 498, "if not is_deepseek_dsa(hf_config):"),
    ("srt/arg_groups/overrides.py", 526, 'has_attention_sinks = bool(getattr(hf_config, "learnable_sink", False))'),
    ("srt/arg_groups/overrides.py", 534, '"fp8_e4m3" if major >= 10 and not has_attention_sinks else "bfloat16"'),
    ("srt/configs/model_config.py", 211, 'and _hf_attr(config, "index_topk") is not None'),
    ("srt/configs/model_config.py", 1855, 'if quant_algo == "MIXED_PRECISION":'),
    ("srt/configs/model_config.py", 1866, 'elif quant_algo and ("FP4" in quant_algo or "NVFP4" in quant_algo):'),
    ("srt/configs/model_config.py", 1868, 'elif quant_algo == "FP8":'),
]


@pytest.mark.parametrize(("path", "line", "text"), _CITED)
def test_cited_engine_source_lines(path, line, text):
    check_cited_line(_SOURCES / path, line, text)


def test_attention_backend_overrides_are_sglangs():
    """SGLANG_ATTENTION_BACKEND_OVERRIDES is every architecture an override in srt/arg_groups/model_overrides/
    registers (`_register_for`) from a function that names attention_backend, with that decorator's file:line."""
    folder = _SOURCES / "srt/arg_groups/model_overrides"
    if not folder.exists():
        pytest.skip(f"{folder} is not on this machine")
    found: dict[str, str] = {}
    for path in sorted(folder.glob("*.py")):
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef):
                continue
            calls = [
                d
                for d in node.decorator_list
                if isinstance(d, ast.Call) and getattr(d.func, "id", "") == "_register_for"
            ]
            body = "\n".join(lines[node.lineno - 1 : node.end_lineno])
            if calls and "attention_backend" in body:
                for arch in (a.value for d in calls for a in d.args if isinstance(a, ast.Constant)):
                    found[arch] = f"{path.name}:{calls[0].lineno}"
    assert found == SGLANG_ATTENTION_BACKEND_OVERRIDES


def _req(kv: str = "nvfp4", cc: str | None = None, **kw) -> Request:
    return Request(kw.pop("seq_len", 4096), kw.pop("batch", 1), kv, "bfloat16", compute_capability=cc, **kw)


def _per_token(name: str, **kw) -> float:
    """One GPU's bytes per token (the figure SGLang's cell is)."""
    shape = model_shape(load_config(name))
    return estimate_shape(shape, engine="sglang", kv_dtype="nvfp4", **kw).bytes_per_token_per_gpu


# (catalog config, layers, KV heads, head_dim): all full attention, no SGLang model override of the backend
_FULL = [
    ("meta-llama__Llama-3.1-8B", 32, 8, 128),
    ("Qwen__Qwen3-8B", 36, 8, 128),
    ("Qwen__Qwen3-32B", 64, 8, 128),
    ("Qwen__Qwen3-30B-A3B", 48, 4, 128),
]


@pytest.mark.parametrize(("name", "layers", "heads", "head_dim"), _FULL)
def test_nvfp4_bytes_per_token_by_hand(name, layers, heads, head_dim):
    """Per layer and token: K and V of heads x head_dim / 2 bytes (fp4_kv_cache_quant_method.py:748) plus heads x
    head_dim / 16 fp8 scales each (:752, one layout: :755); Llama-3.1-8B: 8 x 64 x 2 + 8 x 8 x 2 = 1,152 B a layer,
    36,864 B a token over 32 layers. On SM120 the FlashInfer prefill's fp8 workspace adds heads x head_dim x 2 a
    token, once (:757-767): 2,048 B for Llama-3.1-8B."""
    per_layer = heads * head_dim // 2 * 2 + heads * head_dim // 16 * 2
    assert nvfp4_layer_bytes(heads, head_dim) == per_layer
    assert _per_token(name) == layers * per_layer  # no GPU: SM100's path
    assert _per_token(name, compute_capability="10.0") == layers * per_layer
    assert _per_token(name, compute_capability="12.0") == layers * per_layer + heads * head_dim * 2
    if name == "meta-llama__Llama-3.1-8B":
        assert _per_token(name) == 36_864
        assert _per_token(name, compute_capability="12.0") == 38_912


def test_nvfp4_splits_kv_heads_over_tp():
    """get_num_kv_heads(tp) (pool_configurator.py:492): Qwen3-30B-A3B's 4 KV heads at TP 4 are 1 a rank, 48 x (64 x 2
    + 8 x 2) = 6,912 B a token; at TP 8 each rank still holds one (replicated)."""
    assert _per_token("Qwen__Qwen3-30B-A3B", tp=4) == 48 * (64 * 2 + 8 * 2) == 6_912
    assert _per_token("Qwen__Qwen3-30B-A3B", tp=8) == 6_912


def test_nvfp4_is_about_nine_sixteenths_of_fp8():
    """The scales cost 1/8 of the FP4 data: 9/16 of an fp8_e4m3 cache, not the half a bare 4-bit count gives."""
    shape = model_shape(load_config("meta-llama__Llama-3.1-8B"))
    fp8 = estimate_shape(shape, engine="sglang", kv_dtype="fp8_e4m3").bytes_per_token
    assert _per_token("meta-llama__Llama-3.1-8B") * 16 == fp8 * 9


def test_nvfp4_workspace_is_per_stage_not_per_layer():
    """With PP 2 each stage keeps its own workspace (one pool each): the stage's layers x 1,152 + 2,048 on SM120."""
    shape = model_shape(load_config("meta-llama__Llama-3.1-8B"))
    engine = SglangEngine(shape.architectures, shape.config_model_type)
    caches = shape.caches()[:16]
    costs = engine.stage_costs(caches, _req(cc="12.0"))
    assert sum(c.bytes_per_token for c in costs) == 16 * 1_152 + 2_048
    assert nvfp4_workspace_bytes(8, 128, "10.3") == 0  # B300 is SM100's path too (major 10)


@pytest.mark.parametrize(
    ("name", "cc", "needle"),
    [
        ("meta-llama__Llama-3.1-8B", "9.0", "needs a Blackwell SM100 or SM120 GPU"),
        ("meta-llama__Llama-3.1-8B", "8.0", "needs a Blackwell SM100 or SM120 GPU"),
        ("mistralai__Mistral-7B-v0.1", None, "full-attention layers only, not sliding"),
        ("google__gemma-2-9b", "10.0", "full-attention layers only, not sliding"),
        ("deepseek-ai__DeepSeek-V3", "10.0", "cannot run an MLA model with an nvfp4 KV cache"),
        ("allenai__OLMo-2-1124-7B", "10.0", "model_overrides/olmo2.py:15"),
    ],
)
def test_nvfp4_refusals(name, cc, needle):
    shape = model_shape(load_config(name))
    engine = SglangEngine(shape.architectures, shape.config_model_type)
    with pytest.raises(UsageError, match=needle) as err:
        engine.stage_costs(shape.caches(), _req(cc=cc))
    assert err.value.field in ("kv_dtype", "engine")


def test_nvfp4_head_dim_and_draft_rules():
    """SM100's native layout needs head_dim % 64 == 0 (fp4_kv_cache_quant_method.py:589-590; SM120's linear one does
    not); K and V head sizes must match (one head_dim, pool_configurator.py:520-525); SM100 refuses STANDALONE
    (draft_model) and DFLASH drafting (kv_cache_hook.py:165-188) but serves EAGLE / NEXTN."""
    engine = SglangEngine(("LlamaForCausalLM",), "llama")
    odd = [L.FullAttention(8, 96, 96)] * 2
    with pytest.raises(UsageError, match="multiple of 64"):
        engine.stage_costs(odd, _req(cc="10.0"))
    assert engine.stage_costs(odd, _req(cc="12.0"))[0].bytes_per_token == 2 * (8 * 48 * 2 + 8 * 6 * 2) + 8 * 96 * 2
    with pytest.raises(UsageError, match="K and V heads differ"):
        engine.stage_costs([L.FullAttention(8, 128, 64)], _req(cc="12.0"))
    full = [L.FullAttention(8, 128, 128)] * 4
    for method in ("draft_model", "dflash"):
        with pytest.raises(UsageError, match="EAGLE, EAGLE3, NEXTN and NGRAM"):
            engine.stage_costs(full, _req(cc="10.0", speculative=Speculative(method, 3)))
    spec = Speculative("mtp", 1, draft_caches=(full[0],))
    costs = engine.stage_costs(full, _req(cc="10.0", speculative=spec))
    assert [c.bytes_per_token for c in costs] == [4 * 1_152, 1_152]  # int(cell x 1 / 4): pool_configurator.py:305


_runner = CliRunner()


def _run(*args: str):
    return _runner.invoke(app, list(args))


def test_cli_estimate_and_recommend():
    est = _run("estimate", "meta-llama/Llama-3.1-8B-Instruct", "--engine", "sglang", "--kv-dtype", "nvfp4", "--json")
    assert est.exit_code == 0, est.output
    doc = json.loads(est.stdout)
    assert (doc["kv_dtype"], doc["bytes_per_token"], doc["kv_cache_bytes"]) == ("nvfp4", 36_864, 36_864 * 4096)
    assert any("as on SM100 (B200 / B300; no GPU given)" in n for n in doc["notes"])

    h100 = _run(
        "recommend", "meta-llama/Llama-3.1-8B-Instruct", "-g", "h100", "--engine", "sglang", "--kv-dtype", "nvfp4"
    )
    assert h100.exit_code == 2
    assert h100.stderr.splitlines()[0].startswith("error: SGLang's nvfp4 KV cache needs a Blackwell SM100 or SM120")
    assert h100.stderr.splitlines()[1].startswith("hint:")

    mi300x = _run(
        "recommend", "meta-llama/Llama-3.1-8B-Instruct", "-g", "mi300x", "--engine", "sglang", "--kv-dtype", "nvfp4"
    )  # fmt: skip
    assert mi300x.exit_code == 2  # the AMD profile has no compute capability: the vendor says it is not CUDA
    assert mi300x.stderr.splitlines()[0].startswith(
        "error: SGLang serves an FP4 KV cache on CUDA GPUs only, not on amd"
    )

    for gpu, per_token in (("b200", 36_864), ("rtx-pro-6000", 38_912)):
        rec = _run(
            "recommend", "meta-llama/Llama-3.1-8B-Instruct", "-g", gpu, "--engine", "sglang", "--kv-dtype", "nvfp4",
            "--json",
        )  # fmt: skip
        assert rec.exit_code == 0, rec.output
        plan = json.loads(rec.stdout)
        assert load_profile(gpu).compute_capability.split(".")[0] in ("10", "12")
        assert plan["kv_cache_tokens"] == plan["available_kv_memory_bytes"] // per_token
        assert plan["kv_bytes_per_request"] == per_token * plan["max_model_len"]
        assert plan["flags"]["sglang"].endswith("--kv-cache-dtype nvfp4")
    b200 = json.loads(_run("recommend", "meta-llama/Llama-3.1-8B-Instruct", "-g", "b200", "--engine", "sglang",
                           "--kv-dtype", "nvfp4", "--json").stdout)  # fmt: skip
    # int(191,502,483,456 B x mem_fraction_static 0.853 (SGLang 0.5.23's default on a B200 at TP 1: 26,832 MiB reserved,
    # tests/engines/test_sglang_mem_fraction.py) - 16,060,522,496 B of weights = 147,291,095,891 B // 36,864
    assert b200["available_kv_memory_bytes"] == int(191_502_483_456 * 0.853) - 16_060_522_496 == 147_291_095_891
    assert b200["kv_cache_tokens"] == 3_995_526


# ---------------------------------------------------------------------------------------------- auto

_FP8_KV = {"type": "float", "num_bits": 8}
_MODELOPT_FP4 = {"quant_method": "modelopt", "quant_algo": "NVFP4", "kv_cache_scheme": _FP8_KV}
_MIXED = {"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION", "kv_cache_scheme": _FP8_KV}


@pytest.mark.parametrize(
    ("quantization", "fp8"),
    [
        (_MODELOPT_FP4, True),
        ({**_MODELOPT_FP4, "quant_algo": "FP8"}, True),
        ({**_MODELOPT_FP4, "kv_cache_scheme": {"type": "float", "num_bits": 4}}, False),  # NVFP4 KV: not auto's fp8
        ({**_MODELOPT_FP4, "kv_cache_scheme": None, "kv_cache_quant_algo": "FP8"}, True),
        ({**_MIXED, "quantized_layers": {"a": {"quant_algo": "W4A16_NVFP4"}}}, True),
        ({**_MIXED, "quantized_layers": {"a": {"quant_algo": "FP8"}}}, False),  # w4afp8: reads no KV algo
        ({"quant_method": "fp8", "kv_cache_quant_algo": "fp8"}, True),
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, False),
        ({"quant_method": "compressed-tensors", "kv_cache_scheme": {"type": "float", "num_bits": 8}}, False),
        (None, False),
    ],
)
def test_checkpoint_fp8_kv(quantization, fp8):
    """SGLang's quant configs' kv_cache_quant_algo (fp8.py:366-367; modelopt_quant.py:482-490, :857-872,
    :1620-1638; which ModelOpt config a quant_algo picks: configs/model_config.py:1855-1869); compressed-tensors
    keeps no kv_cache_quant_algo, so `auto` is the model dtype there (kv_cache_dtype.py:50-59)."""
    assert checkpoint_fp8_kv(quantization) is fp8


@pytest.mark.parametrize("name", ["nvidia__Gemma-4-31B-IT-NVFP4", "nvidia__Qwen3.6-27B-NVFP4"])
def test_sglang_auto_follows_an_fp8_checkpoint(name):
    """The two ModelOpt catalog checkpoints declare kv_cache_scheme {float, 8 bits}: SGLang's auto runs fp8_e4m3
    (kv_cache_dtype.py:49-57), so its cache is half the bf16 one; vLLM's auto keeps the model dtype here."""
    shape = model_shape(load_config(name))
    assert CHECKPOINT_FP8_KV in shape.features
    auto = estimate_shape(shape, engine="sglang")
    bf16 = estimate_shape(shape, engine="sglang", kv_dtype="bf16")
    assert auto.kv_dtype == "fp8_e4m3" and bf16.kv_dtype == "bf16"
    assert auto.bytes_per_token * 2 == bf16.bytes_per_token
    assert any("SGLang's --kv-cache-dtype auto runs fp8_e4m3" in n for n in auto.notes)
    assert estimate_shape(shape, engine="vllm").kv_dtype == "bf16"


def test_sglang_auto_is_the_model_dtype_elsewhere():
    for name in ("meta-llama__Llama-3.1-8B", "deepseek-ai__DeepSeek-V3", "moonshotai__Kimi-K2.5"):
        shape = model_shape(load_config(name))
        assert CHECKPOINT_FP8_KV not in shape.features
        assert estimate_shape(shape, engine="sglang").kv_dtype == short_dtype(shape.dtype)
    fp16 = estimate_shape(model_shape(load_config("meta-llama__Llama-3.1-8B")), engine="sglang", dtype="fp16")
    assert fp16.kv_dtype == "fp16"  # auto = the model dtype --dtype gives (kv_cache_dtype.py:59)


def test_serve_command_spells_a_kv_dtype_auto_would_not_give():
    """`--kv-cache-dtype bf16` where auto would run fp8 (this checkpoint) or the model's fp16 (kv_cache_dtype.py:
    74-75); SGLang has no fp16 choice, so an fp16 cache auto would not give is said in a comment."""

    def flags(*args: str) -> str:
        out = _run("recommend", *args, "-g", "h100", "--engine", "sglang", "--json")
        assert out.exit_code == 0, out.output
        return json.loads(out.stdout)["flags"]["sglang"]

    gemma = "nvidia/Gemma-4-31B-IT-NVFP4"
    assert flags(gemma).endswith("--kv-cache-dtype fp8_e4m3")
    assert flags(gemma, "--kv-dtype", "bf16").endswith("--kv-cache-dtype bf16")
    assert "# SGLang has no fp16 --kv-cache-dtype: auto runs fp8_e4m3 here" in flags(gemma, "--kv-dtype", "fp16")
    llama = "meta-llama/Llama-3.1-8B"
    assert "--kv-cache-dtype" not in flags(llama, "--kv-dtype", "bf16")
    assert flags(llama, "--dtype", "fp16", "--kv-dtype", "bf16").endswith("--kv-cache-dtype bf16")


def _string_set(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_dsa_auto_archs_are_sglangs():
    """SGLANG_DSA_AUTO_ARCHS = _DEEPSEEK_FAMILY_ARCHS (overrides.py:745-760) & is_deepseek_dsa's architectures
    (configs/model_config.py:191-211): `_dsa_kv_cache_dtype_default` needs both (overrides.py:496-499)."""
    overrides, config = _SOURCES / "srt/arg_groups/overrides.py", _SOURCES / "srt/configs/model_config.py"
    if not overrides.exists() or not config.exists():
        pytest.skip("the SGLang source is not on this machine")
    family = next(
        n.value
        for n in ast.parse(overrides.read_text()).body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "_DEEPSEEK_FAMILY_ARCHS"
    )
    dsa = next(
        n for n in ast.parse(config.read_text()).body if isinstance(n, ast.FunctionDef) and n.name == "is_deepseek_dsa"
    )
    assert _string_set(family) & (_string_set(dsa) - {"index_topk"}) == SGLANG_DSA_AUTO_ARCHS


@pytest.mark.parametrize(
    ("name", "cc", "kv", "per_token"),
    [
        # DeepSeek-V3.2: 61 DSA layers; bf16 latent (512 + 64) x 2 = 1,152 B + 132 B of FP8 indexer keys
        ("deepseek-ai__DeepSeek-V3.2", None, "bf16", 61 * (1_152 + 132)),
        ("deepseek-ai__DeepSeek-V3.2", "9.0", "bf16", 61 * (1_152 + 132)),
        # SM100: fp8_e4m3 on the trtllm backend, the raw 576 elements a byte each (overrides.py:714-719)
        ("deepseek-ai__DeepSeek-V3.2", "10.0", "fp8_e4m3", 61 * (576 + 132)),
        ("deepseek-ai__DeepSeek-V3.2", "10.3", "fp8_e4m3", 61 * (576 + 132)),
    ],
)
def test_sglang_auto_for_dsa_turns_on_the_gpu(name, cc, kv, per_token):
    """`_dsa_kv_cache_dtype_default`: auto is fp8_e4m3 on SM100 and up, bfloat16 below (overrides.py:532-536), a
    server argument set before the model loads; kvplan used to size the model dtype (bf16) everywhere."""
    shape = model_shape(load_config(name))
    est = estimate_shape(shape, engine="sglang", compute_capability=cc)
    assert (est.kv_dtype, est.bytes_per_token) == (kv, per_token)
    assert any("overrides.py:532-536" in n for n in est.notes)


def test_sglang_auto_for_dsa_keeps_bf16_with_learnable_sinks():
    config = {**load_config("deepseek-ai__DeepSeek-V3.2"), "learnable_sink": True}
    shape = model_shape(config)
    assert estimate_shape(shape, engine="sglang", compute_capability="10.0").kv_dtype == "bf16"
    assert estimate_shape(shape, engine="vllm", compute_capability="10.0").kv_dtype == "bf16"


def test_sglang_dsa_recommend_on_b200_runs_fp8():
    """recommend on B200 plans SGLang's fp8 DSA cache for auto and writes the bf16 one out when asked for it."""

    def plan(*args: str) -> dict:
        out = _run(
            "recommend", "deepseek-ai/DeepSeek-V3.2", "-g", "b200", "--tp", "8", "--engine", "sglang", *args, "--json"
        )
        assert out.exit_code == 0, out.output
        return json.loads(out.stdout)

    auto, bf16 = plan(), plan("--kv-dtype", "bf16")
    assert auto["kv_dtype"] == "fp8_e4m3" and auto["kv_bytes_per_request"] == 61 * (576 + 132) * auto["max_model_len"]
    assert bf16["flags"]["sglang"].endswith("--kv-cache-dtype bf16")
    h100 = _run("recommend", "deepseek-ai/DeepSeek-V3.2", "-g", "h100", "--tp", "8", "--engine", "sglang", "--json")
    assert json.loads(h100.stdout)["kv_dtype"] == "bf16"
