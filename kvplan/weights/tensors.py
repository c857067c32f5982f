"""Exact analytic parameter counts of a language model, tensor by tensor, computed from its `config.json`.

This module must NOT import torch (or transformers): it is plain integer arithmetic over the config, so the
planner works without the heavy extras installed. The formulas mirror, tensor by tensor, what
`transformers.AutoModelForCausalLM.from_config(...)` builds (transformers 5.x) for natively supported model
types, and what the published remote-code `modeling_*.py` builds for the others (chatglm, baichuan, internlm2,
minicpm). The test-suite checks every natively buildable fixture config against a meta-device build.

Public API
----------
- `count_parameters(config)`: number of parameters of the language model (the raw config dict is accepted;
  nested multimodal configs are resolved with `text_config()`, and only the text model + LM head is counted).
  Tied input/output embeddings are counted once, buffers are not counted, and multi-token-prediction layers
  that transformers drops (DeepSeek-V3's `num_nextn_predict_layers`) are not counted.
- bytes as stored (`quantization_config`): kvplan.weights.stored.weight_bytes, from the tensors listed here.
- `weight_tensors(config)`: the tensor list both functions are computed from (name, shape, role).
- `assumed_family(config)`: `None` when the config's family has a weights layout; otherwise the layout used
  instead (inferred from `architectures`, else the generic llama formula, reported as "llama").
  Unknown model types, and families the table (kvplan.core.families) lists with `weights=None`, never raise
  by themselves; they are sized with the assumed family's formula, so callers that want to warn should call
  `assumed_family`.
- `LAYOUTS`: the layouts by name. Which model_types use which layout, their head_dim policy and the defaults
  transformers assumes for omitted fields are kvplan.core.families' business; every dimension is read through
  kvplan.core.config and every dtype through kvplan.core.units' table.

Which numbers are exact
-----------------------
Parameter counts of the families in `LAYOUTS` follow the modeling code tensor by tensor. They are tested
equal to transformers' meta-device count for every native fixture config plus synthetic configs covering each
switch, equal to published counts for GLM-4-9B (chatglm), InternLM2-7B and MiniCPM-2B, and to a count derived
from `modeling_baichuan.py` for Baichuan2-7B. Unquantized weight bytes are parameters x dtype bytes, plus
DeepSeek-V3's `e_score_correction_bias` router buffer (charged at the model dtype, as transformers loads it; the
checkpoint keeps it in fp32, a 30 KB difference). Quantized weight bytes follow the storage layouts listed in
`kvplan.weights.stored.weight_bytes`, whose docstring names the approximations (packing variants, activation scales, bitsandbytes
metadata). Unknown model types are approximate by construction (see `assumed_family`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from kvplan.core import config as fields
from kvplan.core import specs as L
from kvplan.core.config import first, positive_int, text_config, with_defaults
from kvplan.core.families import FAMILIES as POLICY
from kvplan.core.families import Family, family_of
from kvplan.core.shapes import (
    deepseek_v4_ratios,
    gemma4_layer_heads,
    gemma4_layers,
    granitemoehybrid,
    indexer_layers,
    kda_state,
    kimi_linear_kinds,
    lfm2,
    mimo_v2_flash_kinds,
    mimo_v2_flash_swa_heads,
    nemotron_h_layer_kinds,
    zamba2_layer_types,
)
from kvplan.core.specs import FULL, SLIDING
from kvplan.errors import ConfigError, UnsupportedArchitecture

__all__ = [
    "LAYOUTS",
    "Tensor",
    "assumed_family",
    "count_parameters",
    "uncounted_parts",
    "weight_tensors",
]


class Tensor(NamedTuple):
    """One stored tensor. Matrices are (out_features, in_features); stacked experts are (experts, out, in).

    `role` is one of: linear, expert (quantizable matmul weights), router, embedding, lm_head, norm, bias,
    other (conv kernels, SSM parameters, attention sinks, matmul weights a checkpoint ships unquantized such as
    the DSA indexer's weights_proj) and buffer (stored but not a parameter). `dtype`: the tensor's own dtype
    whatever the model dtype and quantization (the fp32 routers of glm4_moe and hunyuan, transformers'
    `_keep_in_fp32_modules_strict`, integer buffers); None: the model dtype.
    """

    name: str
    shape: tuple[int, ...]
    role: str
    dtype: str | None = None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def module(self) -> str:
        return self.name.rsplit(".", 1)[0]


# --------------------------------------------------------------------------------------------------------------
# Family description for the generic decoder
# --------------------------------------------------------------------------------------------------------------

_NAMES = {
    "embed": "model.embed_tokens",
    "layers": "model.layers",
    "attn": "self_attn",
    "q": "q_proj",
    "k": "k_proj",
    "v": "v_proj",
    "o": "o_proj",
    "q_norm": "q_norm",
    "k_norm": "k_norm",
    "mlp": "mlp",
    "gate": "gate_proj",
    "up": "up_proj",
    "down": "down_proj",
    "gate_up": "gate_up_proj",
    "norm": "model.norm",
    "lm_head": "lm_head",
}


@dataclass(frozen=True)
class Spec:
    """Switches of the generic decoder (llama and relatives). Flags are bools or (config key, default)."""

    qkv_bias: Any = False
    o_bias: Any = False
    mlp_bias: Any = False
    qk_norm: str = ""  # "" | "head" (width head_dim) | "proj" (full projection width, olmo2/cohere)
    qk_norm_flag: Any = True
    norm_params: int = 1  # parameters per element of every norm: 0 (olmo), 1 (RMSNorm), 2 (LayerNorm + bias)
    layer_norms: tuple[str, ...] = ("input_layernorm", "post_attention_layernorm")
    mixer: str = "attention"
    ffn: str = "gated"  # key of _FFN
    fused_qkv: str = ""  # module name when q/k/v are one matrix
    q_mult: int = 1  # qwen3_next's gated attention doubles q_proj
    sinks: bool = False
    final_norm: bool = True
    lm_head_bias: bool = False
    shared_expert: bool = False
    router_bias_buffer: bool = False  # deepseek_v3's e_score_correction_bias
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Opts:
    """A Spec resolved against one config: concrete dimensions and switches."""

    spec: Spec
    cfg: dict[str, Any]
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tie: bool

    def name(self, key: str) -> str:
        return self.spec.names.get(key, _NAMES[key])

    def flag(self, value: Any) -> bool:
        if isinstance(value, tuple):
            return bool(first(self.cfg, value[0], default=value[1]))
        return bool(value)


def _resolve(spec: Spec, raw: dict[str, Any], family: Family) -> Opts:
    """Read the dimensions through kvplan.core.config; `raw` already holds the family's defaults, and the
    family's head_dim policy decides whether an explicit `head_dim` counts."""
    cfg = {k: v for k, v in raw.items() if v is not None}
    hidden, heads = fields.hidden_size(cfg), fields.num_heads(cfg)
    return Opts(
        spec=spec,
        cfg=cfg,
        hidden=hidden,
        heads=heads,
        head_dim=fields.head_dim(cfg, family),
        layers=fields.num_layers(cfg),
        kv_heads=fields.num_kv_heads(cfg),
        vocab=positive_int(cfg, *fields.VOCAB_KEYS),
        tie=bool(first(cfg, "tie_word_embeddings", default=False)),
    )


# --------------------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------------------


def _linear(module: str, out: int, inp: int, bias: bool = False, role: str = "linear") -> list[Tensor]:
    tensors = [Tensor(f"{module}.weight", (out, inp), role)]
    if bias:
        tensors.append(Tensor(f"{module}.bias", (out,), "bias"))
    return tensors


def _norm(module: str, width: int, params: int) -> list[Tensor]:
    """A norm with `params` parameters per element: 0 = none, 1 = weight, 2 = weight + bias."""
    names = ("weight", "bias")[:params]
    return [Tensor(f"{module}.{n}", (width,), "norm" if n == "weight" else "bias") for n in names]


def _experts(module: str, experts: int, hidden: int, inter: int) -> list[Tensor]:
    """Routed experts as checkpoints store them: separate gate/up/down matrices, stacked over experts."""
    return [
        Tensor(f"{module}.gate_proj.weight", (experts, inter, hidden), "expert"),
        Tensor(f"{module}.up_proj.weight", (experts, inter, hidden), "expert"),
        Tensor(f"{module}.down_proj.weight", (experts, hidden, inter), "expert"),
    ]


def _gated(module: str, hidden: int, inter: int, bias: bool = False) -> list[Tensor]:
    return (
        _linear(f"{module}.gate_proj", inter, hidden, bias)
        + _linear(f"{module}.up_proj", inter, hidden, bias)
        + _linear(f"{module}.down_proj", hidden, inter, bias)
    )


def _num_experts(cfg: dict[str, Any]) -> int:
    return fields.num_experts(cfg)


# --------------------------------------------------------------------------------------------------------------
# Token mixers: (opts, layer index, layer prefix) -> tensors
# --------------------------------------------------------------------------------------------------------------


def _attention(o: Opts, i: int, p: str) -> list[Tensor]:
    a = f"{p}.{o.name('attn')}"
    q, kv, qkv_bias = o.heads * o.head_dim, o.kv_heads * o.head_dim, o.flag(o.spec.qkv_bias)
    if o.spec.fused_qkv:
        t = _linear(f"{a}.{o.spec.fused_qkv}", q + 2 * kv, o.hidden, qkv_bias)
    else:
        t = _linear(f"{a}.{o.name('q')}", q * o.spec.q_mult, o.hidden, qkv_bias)
        t += _linear(f"{a}.{o.name('k')}", kv, o.hidden, qkv_bias)
        t += _linear(f"{a}.{o.name('v')}", kv, o.hidden, qkv_bias)
    t += _linear(f"{a}.{o.name('o')}", o.hidden, q, o.flag(o.spec.o_bias))
    if o.spec.sinks:
        t.append(Tensor(f"{a}.sinks", (o.heads,), "other"))
    return t + _qk_norms(o, a, q, kv)


def _qk_norms(o: Opts, a: str, q: int, kv: int) -> list[Tensor]:
    if not o.spec.qk_norm or not o.flag(o.spec.qk_norm_flag):
        return []
    q_width, k_width = (o.head_dim, o.head_dim) if o.spec.qk_norm == "head" else (q, kv)
    params = o.spec.norm_params
    return _norm(f"{a}.{o.name('q_norm')}", q_width, params) + _norm(f"{a}.{o.name('k_norm')}", k_width, params)


def _mla(o: Opts, i: int, p: str) -> list[Tensor]:
    """DeepSeek-V2/V3 multi-head latent attention."""
    c, a = o.cfg, f"{p}.self_attn"
    kv_rank, rope = positive_int(c, "kv_lora_rank"), positive_int(c, "qk_rope_head_dim")
    nope, v_dim = positive_int(c, "qk_nope_head_dim"), positive_int(c, "v_head_dim")
    q_rank, bias = c.get("q_lora_rank"), o.flag(("attention_bias", False))
    q_out = o.heads * (nope + rope)
    if q_rank:
        t = _linear(f"{a}.q_a_proj", q_rank, o.hidden, bias) + _norm(f"{a}.q_a_layernorm", q_rank, 1)
        t += _linear(f"{a}.q_b_proj", q_out, q_rank)
    else:
        t = _linear(f"{a}.q_proj", q_out, o.hidden)
    t += _linear(f"{a}.kv_a_proj_with_mqa", kv_rank + rope, o.hidden, bias) + _norm(f"{a}.kv_a_layernorm", kv_rank, 1)
    t += _linear(f"{a}.kv_b_proj", o.heads * (nope + v_dim), kv_rank)
    return t + _linear(f"{a}.o_proj", o.hidden, o.heads * v_dim, bias)


def _dsa(o: Opts, i: int, p: str) -> list[Tensor]:
    """DeepSeek Sparse Attention (DeepSeek V3.2, GLM-5): MLA plus, on the layers that run their own indexer
    (kvplan.core.shapes.indexer_layers), the indexer's wq_b, wk, k_norm (LayerNorm with bias) and weights_proj.
    weights_proj stays unquantized in fp8 checkpoints (transformers `_keep_in_fp32_modules`, vLLM
    deepseek_v2.py `_try_load_fp8_indexer_wk`: "weights_proj is stored in BF16"): role "other"."""
    t = _mla(o, i, p)
    if not indexer_layers(o.cfg)[i]:
        return t
    c, x = o.cfg, f"{p}.self_attn.indexer"
    heads, dim = positive_int(c, "index_n_heads"), positive_int(c, "index_head_dim")
    t += _linear(f"{x}.wq_b", heads * dim, positive_int(c, "q_lora_rank")) + _linear(f"{x}.wk", dim, o.hidden)
    t += _norm(f"{x}.k_norm", dim, 2)
    return t + [Tensor(f"{x}.weights_proj.weight", (heads, o.hidden), "other")]


def _gated_delta_net(o: Opts, i: int, p: str) -> list[Tensor]:
    """Qwen3-Next linear-attention layer (gated DeltaNet)."""
    c, a = o.cfg, f"{p}.linear_attn"
    v_heads, k_heads = positive_int(c, "linear_num_value_heads"), positive_int(c, "linear_num_key_heads")
    v_dim, k_dim = v_heads * positive_int(c, "linear_value_head_dim"), k_heads * positive_int(c, "linear_key_head_dim")
    kernel = positive_int(c, "linear_conv_kernel_dim")
    return [
        Tensor(f"{a}.dt_bias", (v_heads,), "other"),
        Tensor(f"{a}.A_log", (v_heads,), "other"),
        Tensor(f"{a}.conv1d.weight", (2 * k_dim + v_dim, 1, kernel), "other"),
        *_linear(f"{a}.in_proj_qkvz", 2 * k_dim + 2 * v_dim, o.hidden),
        *_linear(f"{a}.in_proj_ba", 2 * v_heads, o.hidden),
        *_norm(f"{a}.norm", positive_int(c, "linear_value_head_dim"), 1),
        *_linear(f"{a}.out_proj", o.hidden, v_dim),
    ]


def _qwen3_next_mixer(o: Opts, i: int, p: str) -> list[Tensor]:
    types = o.cfg.get("layer_types")
    if not types:
        interval = positive_int(o.cfg, "full_attention_interval", default=4)
        types = ["linear_attention" if (j + 1) % interval else "full_attention" for j in range(o.layers)]
    return _gated_delta_net(o, i, p) if types[i] == "linear_attention" else _attention(o, i, p)


def _dt_rank(value: Any, hidden: int) -> int:
    return math.ceil(hidden / 16) if value in (None, "auto") else int(value)


def _mamba_mixer(module: str, hidden: int, c: dict[str, Any], keys: dict[str, str]) -> list[Tensor]:
    """A Mamba-1 mixer; `keys` maps the generic field names to the family's config keys."""
    inner = positive_int(c, keys["expand"], default=2) * hidden
    state, kernel = positive_int(c, keys["state"], default=16), positive_int(c, keys["conv"], default=4)
    rank = _dt_rank(c.get(keys["rank"]), hidden)
    proj_bias, conv_bias = bool(c.get(keys["proj_bias"], False)), bool(c.get(keys["conv_bias"], True))
    conv = [Tensor(f"{module}.conv1d.weight", (inner, 1, kernel), "other")]
    conv += [Tensor(f"{module}.conv1d.bias", (inner,), "bias")] if conv_bias else []
    return conv + [
        *_linear(f"{module}.in_proj", 2 * inner, hidden, proj_bias),
        *_linear(f"{module}.x_proj", rank + 2 * state, inner),
        *_linear(f"{module}.dt_proj", inner, rank, True),
        Tensor(f"{module}.A_log", (inner, state), "other"),
        Tensor(f"{module}.D", (inner,), "other"),
        *_linear(f"{module}.out_proj", hidden, inner, proj_bias),
    ]


_JAMBA_KEYS = {
    "expand": "mamba_expand",
    "state": "mamba_d_state",
    "conv": "mamba_d_conv",
    "rank": "mamba_dt_rank",
    "proj_bias": "mamba_proj_bias",
    "conv_bias": "mamba_conv_bias",
}


def _jamba_mixer(o: Opts, i: int, p: str) -> list[Tensor]:
    c = o.cfg
    period, offset = positive_int(c, "attn_layer_period", default=8), int(c.get("attn_layer_offset", 4))
    if i % period == offset:
        return _attention(o, i, p)
    m = f"{p}.mamba"
    state, rank = positive_int(c, "mamba_d_state", default=16), _dt_rank(c.get("mamba_dt_rank"), o.hidden)
    norms = _norm(f"{m}.dt_layernorm", rank, 1) + _norm(f"{m}.b_layernorm", state, 1)
    norms += _norm(f"{m}.c_layernorm", state, 1)
    return _mamba_mixer(m, o.hidden, c, _JAMBA_KEYS) + norms


_MIXERS: dict[str, Callable[[Opts, int, str], list[Tensor]]] = {
    "attention": _attention,
    "mla": _mla,
    "dsa": _dsa,
    "qwen3_next": _qwen3_next_mixer,
    "jamba": _jamba_mixer,
}


# --------------------------------------------------------------------------------------------------------------
# Feed-forward blocks: (opts, layer index, layer prefix) -> tensors
# --------------------------------------------------------------------------------------------------------------


def _ffn_gated(o: Opts, i: int, p: str) -> list[Tensor]:
    m, inter, bias = f"{p}.{o.name('mlp')}", fields.intermediate_size(o.cfg), o.flag(o.spec.mlp_bias)
    return (
        _linear(f"{m}.{o.name('gate')}", inter, o.hidden, bias)
        + _linear(f"{m}.{o.name('up')}", inter, o.hidden, bias)
        + _linear(f"{m}.{o.name('down')}", o.hidden, inter, bias)
    )


def _ffn_fused(o: Opts, i: int, p: str) -> list[Tensor]:
    m, inter, bias = f"{p}.{o.name('mlp')}", fields.intermediate_size(o.cfg), o.flag(o.spec.mlp_bias)
    gate_up = _linear(f"{m}.{o.name('gate_up')}", 2 * inter, o.hidden, bias)
    return gate_up + _linear(f"{m}.{o.name('down')}", o.hidden, inter, bias)


def _ffn_plain(o: Opts, i: int, p: str) -> list[Tensor]:
    m, inter, bias = f"{p}.{o.name('mlp')}", fields.intermediate_size(o.cfg), o.flag(o.spec.mlp_bias)
    up = _linear(f"{m}.{o.name('up')}", inter, o.hidden, bias)
    return up + _linear(f"{m}.{o.name('down')}", o.hidden, inter, bias)


def _ffn_mixtral(o: Opts, i: int, p: str) -> list[Tensor]:
    experts, inter = _num_experts(o.cfg), fields.intermediate_size(o.cfg)
    router = _linear(f"{p}.mlp.gate", experts, o.hidden, role="router")
    return router + _experts(f"{p}.mlp.experts", experts, o.hidden, inter)


def _qwen_is_sparse(c: dict[str, Any], i: int) -> bool:
    experts = int(first(c, *fields.EXPERT_KEYS, default=0))
    step = positive_int(c, "decoder_sparse_step", default=1)
    return i not in (c.get("mlp_only_layers") or []) and experts > 0 and (i + 1) % step == 0


def _ffn_qwen_moe(o: Opts, i: int, p: str) -> list[Tensor]:
    """qwen2_moe / qwen3_moe / qwen3_next: sparse layers by decoder_sparse_step, optional gated shared expert."""
    c = o.cfg
    if not _qwen_is_sparse(c, i):
        return _gated(f"{p}.mlp", o.hidden, fields.intermediate_size(c))
    experts = _num_experts(c)
    t = _linear(f"{p}.mlp.gate", experts, o.hidden, role="router")
    t += _experts(f"{p}.mlp.experts", experts, o.hidden, positive_int(c, "moe_intermediate_size"))
    if o.spec.shared_expert:
        t += _gated(f"{p}.mlp.shared_expert", o.hidden, positive_int(c, "shared_expert_intermediate_size"))
        t += _linear(f"{p}.mlp.shared_expert_gate", 1, o.hidden, role="router")
    return t


def _ffn_gpt_oss(o: Opts, i: int, p: str) -> list[Tensor]:
    experts, inter, m = _num_experts(o.cfg), fields.intermediate_size(o.cfg), f"{p}.mlp"
    return [
        *_linear(f"{m}.router", experts, o.hidden, True, role="router"),
        Tensor(f"{m}.experts.gate_up_proj", (experts, 2 * inter, o.hidden), "expert"),
        Tensor(f"{m}.experts.gate_up_proj_bias", (experts, 2 * inter), "bias"),
        Tensor(f"{m}.experts.down_proj", (experts, o.hidden, inter), "expert"),
        Tensor(f"{m}.experts.down_proj_bias", (experts, o.hidden), "bias"),
    ]


def _ffn_deepseek(o: Opts, i: int, p: str) -> list[Tensor]:
    """DeepSeek-V2/V3: dense MLP for the first `first_k_dense_replace` layers, then routed + shared experts."""
    c, m = o.cfg, f"{p}.mlp"
    if i < int(c.get("first_k_dense_replace") or 0):
        return _gated(m, o.hidden, fields.intermediate_size(c))
    experts, inter = _num_experts(c), positive_int(c, "moe_intermediate_size")
    t = _linear(f"{m}.gate", experts, o.hidden, role="router") + _experts(f"{m}.experts", experts, o.hidden, inter)
    if o.spec.router_bias_buffer:  # stored and loaded, but a buffer, not a parameter
        t.append(Tensor(f"{m}.gate.e_score_correction_bias", (experts,), "buffer"))
    shared = int(c.get("n_shared_experts") or 0)
    return t + (_gated(f"{m}.shared_experts", o.hidden, inter * shared) if shared else [])


def _ffn_dsa(o: Opts, i: int, p: str) -> list[Tensor]:
    """GLM-5 / DeepSeek V3.2: DeepSeek's MLP and MoE, the dense layers named by `mlp_layer_types` where the
    config lists them (transformers GlmMoeDsaDecoderLayer), else the first `first_k_dense_replace`."""
    types = o.cfg.get("mlp_layer_types")
    if types is None:
        return _ffn_deepseek(o, i, p)
    if not isinstance(types, list) or len(types) != o.layers or not set(map(str, types)) <= {"dense", "sparse"}:
        raise ConfigError(
            f"config `mlp_layer_types` must list {o.layers} entries of 'dense' or 'sparse'", hint="fix config.json"
        )
    if types[i] == "dense":
        return _gated(f"{p}.mlp", o.hidden, fields.intermediate_size(o.cfg))
    return _ffn_deepseek(replace(o, cfg={**o.cfg, "first_k_dense_replace": 0}), i, p)


def _ffn_jamba(o: Opts, i: int, p: str) -> list[Tensor]:
    c, m = o.cfg, f"{p}.feed_forward"
    period, offset = positive_int(c, "expert_layer_period", default=2), int(c.get("expert_layer_offset", 1))
    experts, inter = positive_int(c, "num_experts", default=16), fields.intermediate_size(c)
    if experts > 1 and i % period == offset:
        router = _linear(f"{m}.router", experts, o.hidden, role="router")
        return router + _experts(f"{m}.experts", experts, o.hidden, inter)
    return _gated(m, o.hidden, inter)


def _ffn_minimax_m2(o: Opts, i: int, p: str) -> list[Tensor]:
    """MiniMax-M2: routed experts on every layer (no shared expert) and the router's `e_score_correction_bias`
    buffer (transformers modeling_minimax_m2.py:52, :76-77 and :114)."""
    experts = _num_experts(o.cfg)
    return _ffn_mixtral(o, i, p) + [Tensor(f"{p}.mlp.e_score_correction_bias", (experts,), "buffer")]


_FFN: dict[str, Callable[[Opts, int, str], list[Tensor]]] = {
    "gated": _ffn_gated,
    "fused": _ffn_fused,
    "plain": _ffn_plain,
    "mixtral": _ffn_mixtral,
    "qwen_moe": _ffn_qwen_moe,
    "gpt_oss": _ffn_gpt_oss,
    "deepseek": _ffn_deepseek,
    "dsa": _ffn_dsa,
    "jamba": _ffn_jamba,
    "minimax_m2": _ffn_minimax_m2,
}


# --------------------------------------------------------------------------------------------------------------
# The generic decoder and the families that use it
# --------------------------------------------------------------------------------------------------------------


def _decoder(o: Opts) -> list[Tensor]:
    s = o.spec
    tensors = [Tensor(f"{o.name('embed')}.weight", (o.vocab, o.hidden), "embedding")]
    for i in range(o.layers):
        p = f"{o.name('layers')}.{i}"
        tensors += _MIXERS[s.mixer](o, i, p) + _FFN[s.ffn](o, i, p)
        tensors += [t for n in s.layer_norms for t in _norm(f"{p}.{n}", o.hidden, s.norm_params)]
    if s.final_norm:
        tensors += _norm(o.name("norm"), o.hidden, s.norm_params)
    return tensors + _lm_head(o.name("lm_head"), o.vocab, o.hidden, o.tie, s.lm_head_bias)


def _lm_head(module: str, vocab: int, hidden: int, tied: bool, bias: bool = False) -> list[Tensor]:
    head = [] if tied else [Tensor(f"{module}.weight", (vocab, hidden), "lm_head")]
    return head + ([Tensor(f"{module}.bias", (vocab,), "bias")] if bias else [])


_GEMMA2_NORMS = (
    "input_layernorm",
    "post_attention_layernorm",
    "pre_feedforward_layernorm",
    "post_feedforward_layernorm",
)
_GLM4_NORMS = ("input_layernorm", "post_self_attn_layernorm", "post_attention_layernorm", "post_mlp_layernorm")
_OLMO2_NORMS = ("post_attention_layernorm", "post_feedforward_layernorm")
_LLAMA = Spec(qkv_bias=("attention_bias", False), o_bias=("attention_bias", False), mlp_bias=("mlp_bias", False))
_QWEN3 = Spec(qkv_bias=("attention_bias", False), o_bias=("attention_bias", False), qk_norm="head")

SPECS: dict[str, Spec] = {
    "llama": _LLAMA,
    "granite": _LLAMA,
    "minicpm": _LLAMA,
    "mistral": Spec(),
    "qwen2": Spec(qkv_bias=True),
    "qwen3": _QWEN3,
    "gemma": Spec(),
    "gemma2": Spec(layer_norms=_GEMMA2_NORMS),
    "gemma3_text": Spec(layer_norms=_GEMMA2_NORMS, qk_norm="head"),
    "olmo": replace(_LLAMA, norm_params=0),
    "olmo2": replace(_LLAMA, qk_norm="proj", layer_norms=_OLMO2_NORMS),
    "olmo3": replace(_LLAMA, qk_norm="proj", layer_norms=_OLMO2_NORMS),
    "cohere": replace(
        _LLAMA,
        mlp_bias=False,
        layer_norms=("input_layernorm",),
        qk_norm="proj",
        qk_norm_flag=("use_qk_norm", False),
    ),
    "cohere2": replace(_LLAMA, mlp_bias=False, layer_norms=("input_layernorm",)),
    "starcoder2": Spec(
        qkv_bias=("use_bias", True),
        o_bias=("use_bias", True),
        mlp_bias=("use_bias", True),
        ffn="plain",
        norm_params=2,
        names={"up": "c_fc", "down": "c_proj"},
    ),
    "phi": Spec(
        qkv_bias=True,
        o_bias=True,
        mlp_bias=True,
        ffn="plain",
        norm_params=2,
        layer_norms=("input_layernorm",),
        qk_norm="head",
        qk_norm_flag=("qk_layernorm", False),
        lm_head_bias=True,
        names={
            "o": "dense",
            "up": "fc1",
            "down": "fc2",
            "norm": "model.final_layernorm",
            "q_norm": "q_layernorm",
            "k_norm": "k_layernorm",
        },
    ),
    "phi3": Spec(fused_qkv="qkv_proj", ffn="fused"),
    "glm": Spec(qkv_bias=("attention_bias", True), ffn="fused"),
    "glm4": Spec(qkv_bias=("attention_bias", True), ffn="fused", layer_norms=_GLM4_NORMS),
    "mixtral": Spec(ffn="mixtral"),
    "qwen2_moe": Spec(qkv_bias=("qkv_bias", True), ffn="qwen_moe", shared_expert=True),
    "qwen3_moe": replace(_QWEN3, ffn="qwen_moe"),
    "qwen3_next": replace(
        _QWEN3,
        ffn="qwen_moe",
        shared_expert=True,
        mixer="qwen3_next",
        q_mult=2,
    ),
    "gpt_oss": Spec(
        qkv_bias=("attention_bias", True),
        o_bias=("attention_bias", True),
        sinks=True,
        ffn="gpt_oss",
    ),
    "deepseek_v2": Spec(mixer="mla", ffn="deepseek"),
    "deepseek_v3": Spec(mixer="mla", ffn="deepseek", router_bias_buffer=True),
    "deepseek_v32": Spec(mixer="dsa", ffn="dsa", router_bias_buffer=True),
    "glm_moe_dsa": Spec(mixer="dsa", ffn="dsa", router_bias_buffer=True),
    "jamba": Spec(
        mixer="jamba",
        ffn="jamba",
        layer_norms=("input_layernorm", "pre_ff_layernorm"),
        names={"mlp": "feed_forward", "norm": "model.final_layernorm"},
    ),
    # q_norm / k_norm over the whole projection (modeling_minimax_m2.py:292-293)
    "minimax_m2": Spec(qk_norm="proj", ffn="minimax_m2"),
    "baichuan": Spec(fused_qkv="W_pack"),
    "internlm2": Spec(
        fused_qkv="wqkv",
        qkv_bias=("bias", True),
        o_bias=("bias", True),
        layer_norms=("attention_norm", "ffn_norm"),
        names={
            "embed": "model.tok_embeddings",
            "attn": "attention",
            "o": "wo",
            "mlp": "feed_forward",
            "gate": "w1",
            "up": "w3",
            "down": "w2",
            "lm_head": "output",
        },
    ),
    "chatglm": Spec(
        fused_qkv="query_key_value",
        qkv_bias=("_qkv_bias", False),
        o_bias=("add_bias_linear", False),
        mlp_bias=("add_bias_linear", False),
        ffn="fused",
        names={
            "embed": "transformer.embedding.word_embeddings",
            "layers": "transformer.encoder.layers",
            "attn": "self_attention",
            "o": "dense",
            "gate_up": "dense_h_to_4h",
            "down": "dense_4h_to_h",
            "norm": "transformer.encoder.final_layernorm",
            "lm_head": "transformer.output_layer",
        },
    ),
}


def _generic(model_type: str) -> Callable[[dict[str, Any], Family], list[Tensor]]:
    return lambda cfg, family: _decoder(_resolve(SPECS[model_type], cfg, family))


def _chatglm(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """ChatGLM2/3 and GLM-4 remote code (modeling_chatglm.py): fused QKV with multi-query groups, SwiGLU."""
    norm = {
        "num_hidden_layers": fields.num_layers(cfg),
        "num_key_value_heads": fields.chatglm_kv_heads(cfg),
        "head_dim": fields.head_dim(cfg, family),  # kv_channels
        "intermediate_size": fields.intermediate_size(cfg),  # ffn_hidden_size
        "_qkv_bias": bool(cfg.get("add_qkv_bias") or cfg.get("add_bias_linear")),
    }
    spec = replace(
        SPECS["chatglm"],
        norm_params=1 if cfg.get("rmsnorm", True) else 2,
        final_norm=bool(cfg.get("post_layer_norm", True)),
    )
    return _decoder(_resolve(spec, {**cfg, **norm}, family))


# --------------------------------------------------------------------------------------------------------------
# Families with their own layout
# --------------------------------------------------------------------------------------------------------------


def _vocab(cfg: dict[str, Any]) -> int:
    return positive_int(cfg, *fields.VOCAB_KEYS)


def _tied(cfg: dict[str, Any]) -> bool:
    """`tie_word_embeddings`; the family's default is already filled in (kvplan.core.families)."""
    return bool(first(cfg, "tie_word_embeddings", default=False))


def _gpt2(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """GPT-2: learned positions, Conv1D projections with biases, LayerNorms with bias; tied head by default."""
    h, layers = fields.hidden_size(cfg), fields.num_layers(cfg)
    inner = fields.intermediate_size(cfg, default=4 * h)  # n_inner
    positions = fields.max_positions(cfg, default=1024) or 1024  # n_positions
    t = [
        Tensor("transformer.wte.weight", (_vocab(cfg), h), "embedding"),
        Tensor("transformer.wpe.weight", (positions, h), "embedding"),
    ]
    for i in range(layers):
        p = f"transformer.h.{i}"
        t += _norm(f"{p}.ln_1", h, 2) + _linear(f"{p}.attn.c_attn", 3 * h, h, True)
        t += _linear(f"{p}.attn.c_proj", h, h, True) + _norm(f"{p}.ln_2", h, 2)
        t += _linear(f"{p}.mlp.c_fc", inner, h, True) + _linear(f"{p}.mlp.c_proj", h, inner, True)
    return t + _norm("transformer.ln_f", h, 2) + _lm_head("lm_head", t[0].shape[0], h, _tied(cfg))


def _gpt_neox(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """GPT-NeoX / Pythia: fused QKV (3 x hidden), plain GELU MLP with biases, LayerNorms with bias, untied head."""
    h, layers = fields.hidden_size(cfg), fields.num_layers(cfg)
    inter, bias = fields.intermediate_size(cfg), bool(first(cfg, "attention_bias", default=True))
    t = [Tensor("gpt_neox.embed_in.weight", (_vocab(cfg), h), "embedding")]
    for i in range(layers):
        p = f"gpt_neox.layers.{i}"
        t += _norm(f"{p}.input_layernorm", h, 2) + _norm(f"{p}.post_attention_layernorm", h, 2)
        t += _linear(f"{p}.attention.query_key_value", 3 * h, h, bias) + _linear(f"{p}.attention.dense", h, h, bias)
        t += _linear(f"{p}.mlp.dense_h_to_4h", inter, h, True) + _linear(f"{p}.mlp.dense_4h_to_h", h, inter, True)
    return t + _norm("gpt_neox.final_layer_norm", h, 2) + _lm_head("embed_out", t[0].shape[0], h, _tied(cfg))


def _falcon_norms(cfg: dict[str, Any]) -> tuple[str, ...]:
    if not cfg.get("parallel_attn", True):
        return ("input_layernorm", "post_attention_layernorm")
    lns = cfg.get("num_ln_in_parallel_attn") or (2 if fields.falcon_new_decoder(cfg) else 1)
    return ("ln_attn", "ln_mlp") if lns == 2 else ("input_layernorm",)


def _falcon(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """Falcon (incl. RefinedWeb/RefinedWebModel configs): multi-query or grouped fused QKV, LayerNorm + bias."""
    h, heads = fields.hidden_size(cfg), fields.num_heads(cfg)
    layers, bias = fields.num_layers(cfg), bool(cfg.get("bias", False))
    qkv = (heads + 2 * fields.falcon_kv_heads(cfg)) * fields.head_dim(cfg, family)
    ffn = fields.intermediate_size(cfg, default=4 * h)  # ffn_hidden_size
    t = [Tensor("transformer.word_embeddings.weight", (_vocab(cfg), h), "embedding")]
    for i in range(layers):
        p = f"transformer.h.{i}"
        t += _linear(f"{p}.self_attention.query_key_value", qkv, h, bias)
        t += _linear(f"{p}.self_attention.dense", h, h, bias)
        t += _linear(f"{p}.mlp.dense_h_to_4h", ffn, h, bias) + _linear(f"{p}.mlp.dense_4h_to_h", h, ffn, bias)
        t += [x for n in _falcon_norms(cfg) for x in _norm(f"{p}.{n}", h, 2)]
    return t + _norm("transformer.ln_f", h, 2) + _lm_head("lm_head", t[0].shape[0], h, _tied(cfg))


_MAMBA_KEYS = {
    "expand": "expand",
    "state": "state_size",
    "conv": "conv_kernel",
    "rank": "time_step_rank",
    "proj_bias": "use_bias",
    "conv_bias": "use_conv_bias",
}


def _mamba(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """Mamba-1 (state-space model, no attention): RMSNorm per block, tied head by default."""
    h, layers = fields.hidden_size(cfg), fields.num_layers(cfg)
    t = [Tensor("backbone.embeddings.weight", (_vocab(cfg), h), "embedding")]
    for i in range(layers):
        p = f"backbone.layers.{i}"
        t += _norm(f"{p}.norm", h, 1) + _mamba_mixer(f"{p}.mixer", h, cfg, _MAMBA_KEYS)
    return t + _norm("backbone.norm_f", h, 1) + _lm_head("lm_head", t[0].shape[0], h, _tied(cfg))


# ---- Gemma 4 (text model) and MiMo-V2-Flash (issue 12)


def _gemma4_text(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """Gemma4ForCausalLM (transformers 5.24 modeling_gemma4.py): the text model only, as the wrappers'
    `text_config` describes it; a Gemma4ForConditionalGeneration checkpoint also holds a vision (and audio)
    tower and its embedders, which are not counted. Per layer: attention with the layer type's own KV heads and
    head size (`kvplan.core.shapes.gemma4_layer_heads`), no v_proj on full layers with `attention_k_eq_v`, no
    k/v projections or norms on KV-sharing consumers, q/k norms per head (the v norm has no weight); a gated MLP
    (twice as wide on consumers with `use_double_wide_mlp`); four norms; with `enable_moe_block` a router (norm
    without weight, proj, scale, per-expert scale), stacked experts and three more norms; with
    `hidden_size_per_layer_input` the per-layer-input gate, projection and norm. The `layer_scalar` buffer
    (one value per layer) is not counted."""
    h, heads, vocab = fields.hidden_size(cfg), fields.num_heads(cfg), _vocab(cfg)
    inter, bias = fields.intermediate_size(cfg), bool(cfg.get("attention_bias", False))
    layers = gemma4_layers(cfg)
    per_layer = int(cfg.get("hidden_size_per_layer_input") or 0)
    moe = bool(cfg.get("enable_moe_block", False))
    t = [Tensor("model.embed_tokens.weight", (vocab, h), "embedding")]
    if per_layer:
        n = len(layers)
        per_vocab = positive_int(cfg, "vocab_size_per_layer_input")
        t += [Tensor("model.embed_tokens_per_layer.weight", (per_vocab, n * per_layer), "embedding")]
        t += _linear("model.per_layer_model_projection", n * per_layer, h)
        t += _norm("model.per_layer_projection_norm", per_layer, 1)
    for i, (kind, reuse) in enumerate(layers):
        p, a = f"model.layers.{i}", f"model.layers.{i}.self_attn"
        kv, dim = gemma4_layer_heads(cfg, kind)
        t += _linear(f"{a}.q_proj", heads * dim, h, bias) + _norm(f"{a}.q_norm", dim, 1)
        if not reuse:
            t += _norm(f"{a}.k_norm", dim, 1) + _linear(f"{a}.k_proj", kv * dim, h, bias)
            if not (cfg.get("attention_k_eq_v") and kind == FULL):
                t += _linear(f"{a}.v_proj", kv * dim, h, bias)
        t += _linear(f"{a}.o_proj", h, heads * dim, bias)
        wide = 2 if cfg.get("use_double_wide_mlp") and reuse else 1
        t += _gated(f"{p}.mlp", h, inter * wide)
        t += [x for n in _GEMMA2_NORMS for x in _norm(f"{p}.{n}", h, 1)]
        if per_layer:
            t += _linear(f"{p}.per_layer_input_gate", per_layer, h) + _linear(f"{p}.per_layer_projection", h, per_layer)
            t += _norm(f"{p}.post_per_layer_input_norm", h, 1)
        if moe:
            experts, moe_inter = _num_experts(cfg), positive_int(cfg, "moe_intermediate_size")
            t += _linear(f"{p}.router.proj", experts, h, role="router")
            t += [
                Tensor(f"{p}.router.scale", (h,), "router"),
                Tensor(f"{p}.router.per_expert_scale", (experts,), "router"),
            ]
            t += _experts(f"{p}.experts", experts, h, moe_inter)
            t += [x for n in _GEMMA4_MOE_NORMS for x in _norm(f"{p}.{n}", h, 1)]
    return t + _norm("model.norm", h, 1) + _lm_head("lm_head", vocab, h, _tied(cfg))


_GEMMA4_MOE_NORMS = ("post_feedforward_layernorm_1", "post_feedforward_layernorm_2", "pre_feedforward_layernorm_2")


def _mimo_v2_flash(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """MiMoV2FlashForCausalLM (transformers 5.24 modeling_mimo_v2_flash.py): per layer q/k/v (V of `v_head_dim`)
    and an o_proj without bias, attention sinks on sliding layers, the sliding layers' own KV heads and head
    sizes (`kvplan.core.shapes.mimo_v2_flash_swa_heads`); a dense gated MLP where `mlp_layer_types` says "dense"
    (else where `moe_layer_freq` is 0, else the first layer), elsewhere a sigmoid router (fp32 parameter, counted
    at the model dtype) with its `e_score_correction_bias` buffer and routed experts, no shared expert."""
    h, heads, vocab, bias = fields.hidden_size(cfg), fields.num_heads(cfg), _vocab(cfg), bool(cfg.get("attention_bias"))
    kinds = mimo_v2_flash_kinds(cfg)
    kv, k_dim = fields.num_kv_heads(cfg), fields.head_dim(cfg, family)
    v_dim = positive_int(cfg, "v_head_dim", default=k_dim)
    swa = mimo_v2_flash_swa_heads(cfg)
    mlp_types = cfg.get("mlp_layer_types")
    freq = cfg.get("moe_layer_freq")
    if not mlp_types:
        if isinstance(freq, list) and len(freq) == len(kinds):
            mlp_types = ["sparse" if f else "dense" for f in freq]
        else:
            mlp_types = ["dense"] + ["sparse"] * (len(kinds) - 1)
    t = [Tensor("model.embed_tokens.weight", (vocab, h), "embedding")]
    for i, kind in enumerate(kinds):
        p, a = f"model.layers.{i}", f"model.layers.{i}.self_attn"
        n_kv, d_k, d_v = swa if kind == SLIDING else (kv, k_dim, v_dim)
        t += _linear(f"{a}.q_proj", heads * d_k, h, bias) + _linear(f"{a}.k_proj", n_kv * d_k, h, bias)
        t += _linear(f"{a}.v_proj", n_kv * d_v, h, bias) + _linear(f"{a}.o_proj", h, heads * d_v)
        if kind == SLIDING:
            t.append(Tensor(f"{a}.sinks", (heads,), "other"))
        if mlp_types[i] == "sparse":
            experts, moe_inter = _num_experts(cfg), positive_int(cfg, "moe_intermediate_size")
            t += _linear(f"{p}.mlp.gate", experts, h, role="router")
            t.append(Tensor(f"{p}.mlp.gate.e_score_correction_bias", (experts,), "buffer"))
            t += _experts(f"{p}.mlp.experts", experts, h, moe_inter)
        else:
            t += _gated(f"{p}.mlp", h, fields.intermediate_size(cfg))
        t += _norm(f"{p}.input_layernorm", h, 1) + _norm(f"{p}.post_attention_layernorm", h, 1)
    return t + _norm("model.norm", h, 1) + _lm_head("lm_head", vocab, h, _tied(cfg))


# ---- Mamba2 / short-conv hybrids (issue 12): transformers 5.24 modeling_nemotron_h.py, modeling_zamba2.py,
# modeling_lfm2.py, modeling_granitemoehybrid.py, tensor by tensor


def _mamba2_mixer(
    module: str,
    hidden: int,
    heads: int,
    inner: int,
    groups: int,
    state: int,
    kernel: int,
    proj_bias: bool,
    conv_bias: bool,
) -> list[Tensor]:
    """A Mamba2 mixer (NemotronHMamba2Mixer, Zamba2MambaMixer, GraniteMoeHybridMambaLayer): in_proj to
    z, xBC and dt; a depthwise conv over xBC; per-head dt_bias, A_log, D; a gated RMSNorm over the inner width."""
    conv_dim = inner + 2 * groups * state
    conv = [Tensor(f"{module}.conv1d.weight", (conv_dim, 1, kernel), "other")]
    conv += [Tensor(f"{module}.conv1d.bias", (conv_dim,), "bias")] if conv_bias else []
    return [
        *_linear(f"{module}.in_proj", inner + conv_dim + heads, hidden, proj_bias),
        *conv,
        Tensor(f"{module}.dt_bias", (heads,), "other"),
        Tensor(f"{module}.A_log", (heads,), "other"),
        Tensor(f"{module}.D", (heads,), "other"),
        *_norm(f"{module}.norm", inner, 1),
        *_linear(f"{module}.out_proj", hidden, inner, proj_bias),
    ]


def _plain_mlp(module: str, hidden: int, inter: int, bias: bool) -> list[Tensor]:
    return _linear(f"{module}.up_proj", inter, hidden, bias) + _linear(f"{module}.down_proj", hidden, inter, bias)


def _nemotron_h(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """Nemotron-H / Nemotron 3 (NemotronHForCausalLM): one norm + one mixer per layer, by kind: Mamba2, attention
    (no biases), a relu2 MLP (up/down) or a MoE of up/down experts over `moe_latent_size` (projected from and
    back to hidden_size when set), an fp32 sigmoid router with an `e_score_correction_bias` buffer and one shared
    up/down expert. The MTP layers (`num_nextn_predict_layers`) are not built (`_keys_to_ignore_on_load_unexpected
    = ["mtp.*"]`), and the head is never tied (`_tied_weights_keys = {}`)."""
    h, heads, kv = fields.hidden_size(cfg), fields.num_heads(cfg), fields.num_kv_heads(cfg)
    hd = fields.head_dim(cfg, family)
    m_heads, m_dim = positive_int(cfg, "mamba_num_heads"), positive_int(cfg, "mamba_head_dim")
    groups, state, kernel = (positive_int(cfg, k) for k in ("n_groups", "ssm_state_size", "conv_kernel"))
    mlp_bias = bool(cfg.get("mlp_bias", False))
    t = [Tensor("model.embeddings.weight", (_vocab(cfg), h), "embedding")]
    for i, kind in enumerate(nemotron_h_layer_kinds(cfg)):
        p = f"model.layers.{i}"
        m = f"{p}.mixer"
        t += _norm(f"{p}.norm", h, 1)
        if kind == L.STATE:
            t += _mamba2_mixer(
                m,
                h,
                m_heads,
                m_heads * m_dim,
                groups,
                state,
                kernel,
                bool(cfg.get("use_bias", False)),
                bool(cfg.get("use_conv_bias", True)),
            )
        elif kind == L.FULL:
            t += _linear(f"{m}.q_proj", heads * hd, h) + _linear(f"{m}.k_proj", kv * hd, h)
            t += _linear(f"{m}.v_proj", kv * hd, h) + _linear(f"{m}.o_proj", h, heads * hd)
        elif _nemotron_h_is_moe(cfg, i):
            experts, inter = _num_experts(cfg), positive_int(cfg, "moe_intermediate_size")
            latent = positive_int(cfg, "moe_latent_size", default=None)
            width = latent or h
            t += [
                Tensor(f"{m}.experts.up_proj", (experts, inter, width), "expert"),
                Tensor(f"{m}.experts.down_proj", (experts, width, inter), "expert"),
                Tensor(f"{m}.gate.weight", (experts, h), "router"),
                Tensor(f"{m}.gate.e_score_correction_bias", (experts,), "buffer"),
            ]
            t += _plain_mlp(
                f"{m}.shared_experts", h, positive_int(cfg, "moe_shared_expert_intermediate_size"), mlp_bias
            )
            if latent:
                t += _linear(f"{m}.fc1_latent_proj", latent, h, mlp_bias) + _linear(
                    f"{m}.fc2_latent_proj", h, latent, mlp_bias
                )
        else:
            t += _plain_mlp(m, h, fields.intermediate_size(cfg), mlp_bias)
    return t + _norm("model.norm_f", h, 1) + _lm_head("lm_head", _vocab(cfg), h, False)


def _nemotron_h_is_moe(cfg: dict[str, Any], i: int) -> bool:
    listed = cfg.get("layers_block_type")
    kind = listed[i] if listed is not None else cfg["hybrid_override_pattern"][i]
    return kind in ("E", "moe")


def _zamba2(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """Zamba2 (Zamba2ForCausalLM): a Mamba2 decoder layer (mixer + input norm) in every layer; "hybrid" layers
    add a hidden x hidden `linear` and run one of `num_mem_blocks` shared transformer blocks (attention over
    2 x hidden, a gated MLP) with a LoRA adapter per hybrid layer that the block serves (`i % num_mem_blocks ==
    block`); with tied embeddings the blocks are counted once each (transformers ties the later hybrid layers'
    blocks to the first ones), else once per hybrid layer."""
    h, heads, kv = fields.hidden_size(cfg), fields.num_heads(cfg), fields.num_kv_heads(cfg)
    hd, attn_in = 2 * h // heads, 2 * h
    inter = fields.intermediate_size(cfg, default=4 * h)
    m_heads, inner = positive_int(cfg, "n_mamba_heads"), positive_int(cfg, "mamba_expand") * h
    groups, state, kernel = (positive_int(cfg, k) for k in ("mamba_ngroups", "mamba_d_state", "mamba_d_conv"))
    bias, rank, blocks = (
        bool(cfg.get("add_bias_linear", False)),
        positive_int(cfg, "adapter_rank"),
        positive_int(cfg, "num_mem_blocks"),
    )
    types = zamba2_layer_types(cfg)
    hybrid = [i for i, kind in enumerate(types) if kind == "hybrid"]
    t = [Tensor("model.embed_tokens.weight", (_vocab(cfg), h), "embedding")]
    for i, kind in enumerate(types):
        p = f"model.layers.{i}"
        d = f"{p}.mamba_decoder" if kind == "hybrid" else p
        t += _mamba2_mixer(f"{d}.mamba", h, m_heads, inner, groups, state, kernel, bias, True)
        t += _norm(f"{d}.input_layernorm", h, 1)
        if kind == "hybrid":
            t += _linear(f"{p}.linear", h, h)
    # the hybrid layers that own a block: with tied embeddings transformers ties every later hybrid layer's block
    # to the first `num_mem_blocks` ones (get_expanded_tied_weights_keys ties nothing when tie_word_embeddings
    # is false, so each hybrid layer keeps its own)
    owners = range(min(blocks, len(hybrid))) if _tied(cfg) else range(len(hybrid))
    for j_owner in owners:
        b = j_owner % blocks
        s = f"model.layers.{hybrid[j_owner]}.shared_transformer"
        a = f"{s}.self_attn"
        t += _linear(f"{a}.q_proj", heads * hd, attn_in) + _linear(f"{a}.k_proj", kv * hd, attn_in)
        t += _linear(f"{a}.v_proj", kv * hd, attn_in) + _linear(f"{a}.o_proj", h, heads * hd)
        served = [j for j in range(len(hybrid)) if j % blocks == b]
        if cfg.get("use_shared_attention_adapter"):
            for j in served:
                for x in "qkv":
                    ad = f"{a}.linear_{x}_adapter_list.{j}"
                    t += _linear(f"{ad}.0", rank, attn_in) + _linear(f"{ad}.1", attn_in, rank)
        f = f"{s}.feed_forward"
        t += _linear(f"{f}.gate_up_proj", 2 * inter, h, bias) + _linear(f"{f}.down_proj", h, inter, bias)
        for j in served:
            ad = f"{f}.gate_up_proj_adapter_list.{j}"
            t += _linear(f"{ad}.0", rank, h) + _linear(f"{ad}.1", 2 * inter, rank)
        t += _norm(f"{s}.input_layernorm", attn_in, 1) + _norm(f"{s}.pre_ff_layernorm", h, 1)
    return t + _norm("model.final_layernorm", h, 1) + _lm_head("lm_head", _vocab(cfg), h, _tied(cfg))


def _lfm2_ff_dim(cfg: dict[str, Any]) -> int:
    """Lfm2MLP's width: `intermediate_size` (`block_ff_dim`), or with `block_auto_adjust_ff_dim` 2/3 of it, times
    `block_ffn_dim_multiplier`, rounded up to `block_multiple_of`."""
    inter = int(first(cfg, "block_ff_dim", "intermediate_size"))
    if not cfg.get("block_auto_adjust_ff_dim", True):
        return inter
    inter = int(2 * inter / 3)
    multiplier = cfg.get("block_ffn_dim_multiplier", 1.0)
    if multiplier is not None:
        inter = int(multiplier * inter)
        step = int(cfg.get("block_multiple_of", 256))
        inter = step * ((inter + step - 1) // step)
    return inter


def _lfm2(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """LFM2 (Lfm2ForCausalLM): short-conv layers (in_proj to 3 x hidden, a depthwise conv of `conv_L_cache` taps,
    out_proj; biases with `conv_bias`) or attention layers (q/k/v/out_proj without biases, per-head q/k RMSNorms),
    each with a SwiGLU MLP (w1, w3, w2) and two norms; the final norm is `embedding_norm`."""
    h, heads, kv = fields.hidden_size(cfg), fields.num_heads(cfg), fields.num_kv_heads(cfg)
    hd, inter = h // heads, _lfm2_ff_dim(cfg)
    kernel, bias = positive_int(cfg, "conv_L_cache"), bool(cfg.get("conv_bias", False))
    types = ["conv" if isinstance(layer[0], L.RecurrentState) else "full_attention" for layer in lfm2(cfg)]
    t = [Tensor("model.embed_tokens.weight", (_vocab(cfg), h), "embedding")]
    for i, kind in enumerate(types):
        p = f"model.layers.{i}"
        if kind == "conv":
            c = f"{p}.conv"
            t += [Tensor(f"{c}.conv.weight", (h, 1, kernel), "other")]
            t += [Tensor(f"{c}.conv.bias", (h,), "bias")] if bias else []
            t += _linear(f"{c}.in_proj", 3 * h, h, bias) + _linear(f"{c}.out_proj", h, h, bias)
        else:
            a = f"{p}.self_attn"
            t += _linear(f"{a}.q_proj", heads * hd, h) + _linear(f"{a}.k_proj", kv * hd, h)
            t += _linear(f"{a}.v_proj", kv * hd, h) + _linear(f"{a}.out_proj", h, heads * hd)
            t += _norm(f"{a}.q_layernorm", hd, 1) + _norm(f"{a}.k_layernorm", hd, 1)
        f = f"{p}.feed_forward"
        t += _linear(f"{f}.w1", inter, h) + _linear(f"{f}.w3", inter, h) + _linear(f"{f}.w2", h, inter)
        t += _norm(f"{p}.operator_norm", h, 1) + _norm(f"{p}.ffn_norm", h, 1)
    return t + _norm("model.embedding_norm", h, 1) + _lm_head("lm_head", _vocab(cfg), h, _tied(cfg))


def _granitemoehybrid(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """Granite 4 (GraniteMoeHybridForCausalLM): per layer a Mamba2 mixer or attention, two norms, routed experts
    (a router and fused gate_up / down stacks, when `num_local_experts` > 0) and a shared SwiGLU MLP
    (`shared_mlp.input_linear` to 2 x shared_intermediate_size, `output_linear`)."""
    h, heads, kv = fields.hidden_size(cfg), fields.num_heads(cfg), fields.num_kv_heads(cfg)
    hd, bias = fields.head_dim(cfg, family), bool(cfg.get("attention_bias", False))
    experts, inter = int(cfg.get("num_local_experts") or 0), fields.intermediate_size(cfg)
    shared = int(cfg.get("shared_intermediate_size") or 0)
    m_heads, inner = positive_int(cfg, "mamba_n_heads"), positive_int(cfg, "mamba_expand") * h
    groups, state, kernel = (positive_int(cfg, k) for k in ("mamba_n_groups", "mamba_d_state", "mamba_d_conv"))
    proj_bias, conv_bias = bool(cfg.get("mamba_proj_bias", False)), bool(cfg.get("mamba_conv_bias", True))
    t = [Tensor("model.embed_tokens.weight", (_vocab(cfg), h), "embedding")]
    for i, layer in enumerate(granitemoehybrid(cfg)):
        p = f"model.layers.{i}"
        t += _norm(f"{p}.input_layernorm", h, 1) + _norm(f"{p}.post_attention_layernorm", h, 1)
        if experts:
            moe = f"{p}.block_sparse_moe"
            t += _linear(f"{moe}.router", experts, h, role="router")
            t += [
                Tensor(f"{moe}.experts.gate_up_proj", (experts, 2 * inter, h), "expert"),
                Tensor(f"{moe}.experts.down_proj", (experts, h, inter), "expert"),
            ]
        if shared:
            t += _linear(f"{p}.shared_mlp.input_linear", 2 * shared, h) + _linear(
                f"{p}.shared_mlp.output_linear", h, shared
            )
        if isinstance(layer[0], L.RecurrentState):
            t += _mamba2_mixer(f"{p}.mamba", h, m_heads, inner, groups, state, kernel, proj_bias, conv_bias)
        else:
            a = f"{p}.self_attn"
            t += _linear(f"{a}.q_proj", heads * hd, h, bias) + _linear(f"{a}.k_proj", kv * hd, h, bias)
            t += _linear(f"{a}.v_proj", kv * hd, h, bias) + _linear(f"{a}.o_proj", h, heads * hd, bias)
    return t + _norm("model.norm", h, 1) + _lm_head("lm_head", _vocab(cfg), h, _tied(cfg))


# ---- Qwen3.5 / 3.6 / 3.8 and the Qwen3-VL text towers (transformers 5.24 modeling_qwen3_5.py,
# modeling_qwen3_5_moe.py, modeling_qwen3_vl.py, modeling_qwen3_vl_moe.py)

# Qwen3_5ForConditionalGeneration / Qwen3_5MoeForConditionalGeneration checkpoints keep the text model under
# `model.language_model` (the names modelopt's `quantized_layers` list); text-only ones (Qwen3_5MoeForCausalLM)
# under `model`.
_LANGUAGE_MODEL_NAMES = {
    "embed": "model.language_model.embed_tokens",
    "layers": "model.language_model.layers",
    "norm": "model.language_model.norm",
}


def _qwen3_5_gated_delta_net(o: Opts, i: int, p: str) -> list[Tensor]:
    """Qwen3_5GatedDeltaNet: Qwen3-Next's DeltaNet with the projections unfused (in_proj_qkv, in_proj_z,
    in_proj_b, in_proj_a instead of in_proj_qkvz and in_proj_ba: the same parameters, other module names)."""
    c, a = o.cfg, f"{p}.linear_attn"
    v_heads, k_heads = positive_int(c, "linear_num_value_heads"), positive_int(c, "linear_num_key_heads")
    v_head = positive_int(c, "linear_value_head_dim")
    v_dim, k_dim = v_heads * v_head, k_heads * positive_int(c, "linear_key_head_dim")
    return [
        Tensor(f"{a}.dt_bias", (v_heads,), "other"),
        Tensor(f"{a}.A_log", (v_heads,), "other"),
        Tensor(f"{a}.conv1d.weight", (2 * k_dim + v_dim, 1, positive_int(c, "linear_conv_kernel_dim")), "other"),
        *_linear(f"{a}.in_proj_qkv", 2 * k_dim + v_dim, o.hidden),
        *_linear(f"{a}.in_proj_z", v_dim, o.hidden),
        *_linear(f"{a}.in_proj_b", v_heads, o.hidden),
        *_linear(f"{a}.in_proj_a", v_heads, o.hidden),
        *_norm(f"{a}.norm", v_head, 1),
        *_linear(f"{a}.out_proj", o.hidden, v_dim),
    ]


def _qwen3_5_mixer(o: Opts, i: int, p: str) -> list[Tensor]:
    """`layer_types` (Qwen3_5TextConfig fills it from `full_attention_interval`, default 4)."""
    types = o.cfg.get("layer_types")
    if not types:
        interval = positive_int(o.cfg, "full_attention_interval", default=4)
        types = ["linear_attention" if (j + 1) % interval else "full_attention" for j in range(o.layers)]
    return _qwen3_5_gated_delta_net(o, i, p) if types[i] == "linear_attention" else _attention(o, i, p)


def _ffn_qwen3_5_moe(o: Opts, i: int, p: str) -> list[Tensor]:
    """Qwen3_5MoeSparseMoeBlock on every layer (Qwen3_5MoeDecoderLayer reads neither `mlp_only_layers` nor
    `decoder_sparse_step`): router, routed experts, a shared expert and its one-output gate."""
    c, m = o.cfg, f"{p}.mlp"
    experts = _num_experts(c)
    t = _linear(f"{m}.gate", experts, o.hidden, role="router")
    t += _experts(f"{m}.experts", experts, o.hidden, positive_int(c, "moe_intermediate_size"))
    t += _gated(f"{m}.shared_expert", o.hidden, positive_int(c, "shared_expert_intermediate_size"))
    return t + _linear(f"{m}.shared_expert_gate", 1, o.hidden, role="router")


_MIXERS["qwen3_5"] = _qwen3_5_mixer
_FFN["qwen3_5_moe"] = _ffn_qwen3_5_moe
# gated attention (q_proj doubled), q/k RMSNorms over head_dim; dense MLP (3.5) or the sparse block (3.5 MoE)
_QWEN3_5_SPEC = replace(SPECS["qwen3"], mixer="qwen3_5", q_mult=2)
_QWEN3_5_SPECS = {"qwen3_5_text": _QWEN3_5_SPEC, "qwen3_5_moe_text": replace(_QWEN3_5_SPEC, ffn="qwen3_5_moe")}


def _qwen3_5(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    spec = _QWEN3_5_SPECS[family.name]
    if cfg.get("_outer_model_type") in family.aliases:  # a multimodal wrapper's text_config
        spec = replace(spec, names=_LANGUAGE_MODEL_NAMES)
    return _decoder(_resolve(spec, cfg, family))


def _qwen3_vl(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """Qwen3-VL text towers: Qwen3's decoder (q/k norms over head_dim), Qwen3-MoE's sparse blocks for the MoE
    one (`mlp_only_layers` and `decoder_sparse_step` honoured, no shared expert); the checkpoints keep the text
    model under `model.language_model`."""
    spec = SPECS["qwen3_moe" if family.name == "qwen3_vl_moe_text" else "qwen3"]
    return _decoder(_resolve(replace(spec, names=_LANGUAGE_MODEL_NAMES), cfg, family))


# --------------------------------------------------------------------------------------------------------------
# Attention-only families of 2025-26 (issue 12): Llama 4, SmolLM3, GLM-4.5 (glm4_moe), Hunyuan-A13B
# --------------------------------------------------------------------------------------------------------------


def _llama4_moe_layers(c: dict[str, Any], layers: int) -> list[int]:
    """Llama4TextConfig.__post_init__: `moe_layers`, else every `interleave_moe_layer_step`-th layer from step-1."""
    listed = c.get("moe_layers")
    if listed is not None:
        return [int(i) for i in listed]
    step = positive_int(c, "interleave_moe_layer_step", default=1)
    return list(range(step - 1, layers, step))


def _ffn_llama4(o: Opts, i: int, p: str) -> list[Tensor]:
    """Llama 4 (modeling_llama4.py Llama4TextDecoderLayer): MoE layers hold a router, fused experts of
    `intermediate_size` (gate_up_proj stored as (experts, hidden, 2 x inter)) and one shared expert of the same
    width; the other layers a dense MLP of `intermediate_size_mlp`. Tensors here are (experts, out, in)."""
    c, m = o.cfg, f"{p}.feed_forward"
    inter = fields.intermediate_size(c)
    if i not in _llama4_moe_layers(c, o.layers):
        return _gated(m, o.hidden, positive_int(c, "intermediate_size_mlp"))
    experts = _num_experts(c)
    return [
        *_linear(f"{m}.router", experts, o.hidden, role="router"),
        Tensor(f"{m}.experts.gate_up_proj", (experts, 2 * inter, o.hidden), "expert"),
        Tensor(f"{m}.experts.down_proj", (experts, o.hidden, inter), "expert"),
        *_gated(f"{m}.shared_expert", o.hidden, inter),
    ]


def _hunyuan_attention(o: Opts, i: int, p: str) -> list[Tensor]:
    """Hunyuan (remote code, modeling_hunyuan.py HunYuanAttention): with `use_cla`, the layers whose index is not
    a multiple of `cla_share_factor` are "cross" layers with no k_proj / v_proj (they take the K/V projections of
    the last "self" layer)."""
    t = _attention(o, i, p)
    if o.cfg.get("use_cla") and i % positive_int(o.cfg, "cla_share_factor", default=1) != 0:
        t = [x for x in t if x.module.rsplit(".", 1)[-1] not in (o.name("k"), o.name("v"))]
    return t


def _ffn_hunyuan(o: Opts, i: int, p: str) -> list[Tensor]:
    """Hunyuan (modeling_hunyuan.py HunYuanDecoderLayer / HunYuanMoE / HunYuanMLP): with `num_experts` > 1 every
    layer is MoE: `num_experts` experts of `intermediate_size` (the remote code ignores moe_intermediate_size),
    an fp32 gate `wg`, and with `use_mixed_mlp_moe` a shared MLP of intermediate_size x num_shared_expert[0];
    otherwise one dense MLP of `intermediate_size`. (SGLang 0.5.23's hunyuan.py sizes experts by
    moe_intermediate_size[layer] and the shared MLP by num_shared_expert[layer]: the same for Hunyuan-A13B.)"""
    c, m, inter = o.cfg, f"{p}.mlp", fields.intermediate_size(o.cfg)
    experts = int(c.get("num_experts") or 1)
    if experts <= 1:
        return _gated(m, o.hidden, inter)
    t = []
    if c.get("use_mixed_mlp_moe"):
        shared = c.get("num_shared_expert", 1)
        t += _gated(f"{m}.shared_mlp", o.hidden, inter * int(shared[0] if isinstance(shared, list) else shared))
    t += _linear(f"{m}.gate.wg", experts, o.hidden, role="router")
    return t + _experts(f"{m}.experts", experts, o.hidden, inter)


_FFN.update({"llama4": _ffn_llama4, "hunyuan": _ffn_hunyuan})
_MIXERS["hunyuan"] = _hunyuan_attention
SPECS.update(
    {
        # Llama4TextAttention: q/k/v/o bias = attention_bias; its qk_norm is an L2 norm without parameters
        "llama4_text": replace(_LLAMA, mlp_bias=False, ffn="llama4", names={"mlp": "feed_forward"}),
        # SmolLM3Attention / SmolLM3MLP: llama's projections (NoPE layers have the same weights as RoPE layers)
        "smollm3": _LLAMA,
        # Glm4MoeAttention: q/k/v bias = attention_bias, o_proj without; per-head q_norm/k_norm with use_qk_norm;
        # Glm4MoeDecoderLayer: dense MLP below first_k_dense_replace, then router (+ e_score_correction_bias
        # buffer), routed experts and n_shared_experts x moe_intermediate_size shared experts (DeepSeek's block);
        # the num_nextn_predict_layers MTP layer is not built by transformers (Glm4MoePreTrainedModel ignores
        # model.layers.92.*), nor counted here
        "glm4_moe": Spec(
            qkv_bias=("attention_bias", False),
            qk_norm="head",
            qk_norm_flag=("use_qk_norm", False),
            ffn="deepseek",
            router_bias_buffer=True,
        ),
        # HunYuanAttention: every projection biased by attention_bias; query_layernorm / key_layernorm per head
        "hunyuan": replace(
            _LLAMA,
            mlp_bias=False,
            qk_norm="head",
            qk_norm_flag=("use_qk_norm", False),
            mixer="hunyuan",
            ffn="hunyuan",
            names={"q_norm": "query_layernorm", "k_norm": "key_layernorm"},
        ),
    }
)


def _deepseek_v4_layer(cfg: dict[str, Any]) -> Callable[[str, int, bool], list[Tensor]]:
    """DeepSeek-V4's decoder layer (transformers 5.24 modeling_deepseek_v4.py) as a function of its module prefix,
    compress ratio and hash routing: low-rank Q, one shared K=V projection, grouped low-rank output, per-head
    sinks; CSA / HCA compressors (CSA with the lightning indexer); hash-routed MoE (a frozen `tid2eid` table) or
    top-k routing; manifold hyper-connections (`hc_mult` streams) around attention and MLP."""
    h, heads = fields.hidden_size(cfg), fields.num_heads(cfg)
    hd, q_rank = positive_int(cfg, "head_dim"), positive_int(cfg, "q_lora_rank")
    groups, o_rank = positive_int(cfg, "o_groups"), positive_int(cfg, "o_lora_rank")
    ihd, iheads = positive_int(cfg, "index_head_dim"), positive_int(cfg, "index_n_heads")
    experts, inter = _num_experts(cfg), positive_int(cfg, "moe_intermediate_size")
    topk = positive_int(cfg, "num_experts_per_tok")
    hc = positive_int(cfg, "hc_mult", default=4)
    vocab = _vocab(cfg)

    def compressor(module: str, ratio: int, width: int, overlap: bool) -> list[Tensor]:
        proj = (1 + overlap) * width
        return [
            Tensor(f"{module}.position_bias", (ratio, proj), "other", _F32),
            *_linear(f"{module}.kv_proj", proj, h, role="other"),
            *_linear(f"{module}.gate_proj", proj, h, role="other"),
            *_f32_norm(f"{module}.kv_norm", width),
        ]

    def layer(p: str, ratio: int, hashed: bool) -> list[Tensor]:
        a = f"{p}.self_attn"
        t = [Tensor(f"{a}.sinks", (heads,), "other", _F32)]
        t += _linear(f"{a}.q_a_proj", q_rank, h) + _f32_norm(f"{a}.q_a_norm", q_rank)
        t += _linear(f"{a}.q_b_proj", heads * hd, q_rank)
        t += _linear(f"{a}.kv_proj", hd, h) + _f32_norm(f"{a}.kv_norm", hd)
        t += _linear(f"{a}.o_a_proj", groups * o_rank, heads * hd // groups)
        t += _linear(f"{a}.o_b_proj", h, groups * o_rank)
        if ratio:
            c = f"{a}.compressor"
            t += compressor(c, ratio, hd, overlap=ratio == 4)
            if ratio == 4:  # CSA: the lightning indexer
                t += compressor(f"{c}.indexer", ratio, ihd, overlap=True)
                t += _linear(f"{c}.indexer.q_b_proj", iheads * ihd, q_rank)
                t += _linear(f"{c}.indexer.scorer.weights_proj", iheads, h, role="other")
        m = f"{p}.mlp"
        t += _linear(f"{m}.gate", experts, h, role="router") + _experts(f"{m}.experts", experts, h, inter)
        if hashed:
            t.append(Tensor(f"{m}.gate.tid2eid", (vocab, topk), "buffer", "int64"))
        else:
            t.append(Tensor(f"{m}.gate.e_score_correction_bias", (experts,), "buffer", _F32))
        t += _gated(f"{m}.shared_experts", h, inter)  # DeepseekV4MLP: config.intermediate_size is moe's
        t += _f32_norm(f"{p}.input_layernorm", h) + _f32_norm(f"{p}.post_attention_layernorm", h)
        t += _v4_hyper(f"{p}.attn_hc", (2 + hc) * hc, 3, ("fn", "base", "scale"), hc * h)
        t += _v4_hyper(f"{p}.ffn_hc", (2 + hc) * hc, 3, ("fn", "base", "scale"), hc * h)
        return t

    return layer


# DeepseekV4PreTrainedModel (modeling_deepseek_v4.py:1241-1264): `_keep_in_fp32_modules_strict` (norms,
# hyper-connections, sinks, position biases, the router bias) are float32 whatever the model dtype; the
# compressor / indexer projections and the indexer's weights_proj "ship in BF16 with no companion scale_inv"
# (never FP8-quantized: role "other").
_F32 = "float32"


def _f32_norm(module: str, width: int) -> list[Tensor]:
    return [Tensor(f"{module}.weight", (width,), "norm", _F32)]


def _v4_hyper(module: str, outputs: int, scales: int, names: tuple[str, str, str], width: int) -> list[Tensor]:
    return [
        Tensor(f"{module}.{names[0]}", (outputs, width), "other", _F32),
        Tensor(f"{module}.{names[1]}", (outputs,), "other", _F32),
        Tensor(f"{module}.{names[2]}", (scales,), "other", _F32),
    ]


def _v4_hashed(cfg: dict[str, Any], layers: int) -> list[bool]:
    mlp_types = cfg.get("mlp_layer_types")
    if mlp_types is None:
        hashed = int(cfg.get("num_hash_layers", 3))
        mlp_types = ["hash_moe"] * min(layers, hashed) + ["moe"] * max(0, layers - hashed)
    return [t == "hash_moe" for t in mlp_types]


def _deepseek_v4(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """DeepSeek-V4 (transformers 5.24 modeling_deepseek_v4.py): the embeddings, `_deepseek_v4_layer` for each
    decoder layer (hash-routed MoE on the first `num_hash_layers`), the final norm, `hc_head` and the LM head. The
    MTP layers of the checkpoint are not built (`_deepseek_v4_mtp`). Norms are float32 parameters in
    transformers; counted here as parameters like any other."""
    h, layers = fields.hidden_size(cfg), fields.num_layers(cfg)
    hc = positive_int(cfg, "hc_mult", default=4)
    vocab, layer = _vocab(cfg), _deepseek_v4_layer(cfg)
    hashed = _v4_hashed(cfg, layers)
    t = [Tensor("model.embed_tokens.weight", (vocab, h), "embedding")]
    for i, ratio in enumerate(deepseek_v4_ratios(cfg, layers)):
        t += layer(f"model.layers.{i}", ratio, hashed[i])
    t += _f32_norm("model.norm", h) + _v4_hyper("model.hc_head", hc, 1, ("hc_fn", "hc_base", "hc_scale"), hc * h)
    return t + _lm_head("lm_head", vocab, h, _tied(cfg))


def _deepseek_v4_mtp(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """DeepSeek-V4's `num_nextn_predict_layers` MTP layers as the checkpoint stores them (`mtp.{k}.*`, here named
    `model.layers.{num_hidden_layers + k}.*` as vLLM remaps them, vllm-0.26.0 models/deepseek_v4/nvidia/mtp.py:
    363-369), read from vLLM 0.26.0's DeepSeekV4MultiTokenPredictorLayer (nvidia/mtp.py:84-130): enorm and hnorm,
    the separate h x h `e_proj` and `h_proj` (ReplicatedLinear with the quant config: fp8 like any linear), the
    float32 `hc_head_fn` / `_base` / `_scale` (:109-120), `shared_head.norm`, and a decoder layer with no
    compressor (a layer past num_hidden_layers gets compress ratio 1, models/deepseek_v4/attention.py:187-190,
    whatever the config's extra `compress_ratios` entry: 0 in the released configs) and top-k routing (hashed only
    below num_hash_layers, nvidia/model.py:564). The embeddings and LM head are the target's (vLLM shares them,
    v1/spec_decode/llm_base_proposer.py:1473-1479, :1548-1575)."""
    h, layers = fields.hidden_size(cfg), fields.num_layers(cfg)
    hc = positive_int(cfg, "hc_mult", default=4)
    hashed = int(cfg.get("num_hash_layers", 3))
    layer = _deepseek_v4_layer(cfg)
    t: list[Tensor] = []
    for i in range(layers, layers + int(cfg.get("num_nextn_predict_layers") or 0)):
        p = f"model.layers.{i}"
        t += _f32_norm(f"{p}.enorm", h) + _f32_norm(f"{p}.hnorm", h)
        t += _linear(f"{p}.e_proj", h, h) + _linear(f"{p}.h_proj", h, h)
        t += _v4_hyper(f"{p}.hc_head", hc, 1, ("hc_head_fn", "hc_head_base", "hc_head_scale"), hc * h)
        t += _f32_norm(f"{p}.shared_head.norm", h)
        t += layer(p, 0, i < hashed)
    return t


# ---- Kimi Linear / Kimi K3 (issue 12): transformers 5.24 modeling_kimi_linear.py for what it builds, vLLM 0.33's
# models/kimi_k3/nvidia (model.py, kda.py, mla.py), which serves both KimiLinearForCausalLM and
# KimiK3ForConditionalGeneration (model_executor/models/registry.py:148-150, :488-490), for what only K3 has

_K3 = "vllm-0.33.0/vllm/models/kimi_k3/nvidia"


def _kimi_linear_moe_layers(cfg: dict[str, Any], layers: int) -> list[bool]:
    """Which layers hold the MoE block. transformers: `mlp_layer_types` "sparse", else the layers from
    `first_k_dense_replace` (default 1; configuration_kimi_linear.py __post_init__), with `num_experts` defaulting
    to 256; vLLM: `num_experts` given, layer >= `first_k_dense_replace` (default 0) and layer % `moe_layer_freq`
    == 0 (model.py:701-706, transformers_utils/configs/kimi_linear.py defaults). Where the two build different
    layers the config is refused rather than one of them picked."""
    listed = cfg.get("mlp_layer_types")
    if listed is not None:
        if not isinstance(listed, list) or len(listed) != layers or not set(map(str, listed)) <= {"dense", "sparse"}:
            raise ConfigError(
                f"config `mlp_layer_types` must list {layers} entries of 'dense' or 'sparse'", hint="fix config.json"
            )
        hf = [str(t) == "sparse" for t in listed]
    else:
        hf = [i >= int(first(cfg, "first_k_dense_replace", default=1)) for i in range(layers)]
    freq = positive_int(cfg, "moe_layer_freq", default=1)
    moe = first(cfg, *fields.EXPERT_KEYS, default=None) is not None
    dense = int(first(cfg, "first_k_dense_replace", default=0))
    vllm = [moe and i >= dense and i % freq == 0 for i in range(layers)]
    if hf != vllm:
        raise UnsupportedArchitecture(
            "kimi_linear config: transformers and vLLM build different MoE layers from it (transformers: "
            "`mlp_layer_types`, else dense below `first_k_dense_replace` (default 1) and 256 experts by default; "
            "vLLM: `num_experts` given, dense below `first_k_dense_replace` (default 0), MoE where layer % "
            "`moe_layer_freq` == 0)",
            hint="give num_experts and first_k_dense_replace (and moe_layer_freq 1) in config.json",
        )
    return hf


def _kimi_shared_experts(cfg: dict[str, Any]) -> int:
    """Shared experts per MoE layer: transformers reads `num_shared_experts` / `n_shared_experts` (default 1),
    vLLM only `num_shared_experts` (default 0; model.py:449-450). A config they read differently is refused."""
    hf = int(first(cfg, "num_shared_experts", "n_shared_experts", default=1))
    vllm = int(cfg.get("num_shared_experts") or 0)
    if hf != vllm:
        raise UnsupportedArchitecture(
            f"kimi_linear config: transformers builds {hf} shared expert(s), vLLM {vllm} (vLLM reads only "
            "`num_shared_experts`, default 0)",
            hint="give num_shared_experts in config.json",
        )
    return hf


def _kimi_linear(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """Kimi Linear and Kimi K3's text model (`kimi_linear`): KDA and MLA layers as `kimi_linear_kinds` reads them,
    a dense MLP or a MoE block, two norms per layer.

    - KDA (transformers KimiLinearDeltaAttention; vLLM kda.py:635-880): q/k/v projections of heads x head_dim,
      one depthwise conv over the three (no bias), the forget gate's f_a (hidden -> head_dim) and f_b (head_dim ->
      projection), dt_bias (projection), A_log (heads), b_proj (hidden -> heads), the output gate, o_norm
      (head_dim) and o_proj. The output gate is g_a + g_b (low rank, as transformers builds it) or, with
      `linear_attn_config.use_full_rank_gate` (K3), one full-rank g_proj (kda.py:635-663: q, k, v, g of
      `projection_size` each). conv1d, dt_bias and A_log are held in float32 as vLLM holds them (kda.py:671-684,
      :814-816; transformers keeps dt_bias in float32 too, conv1d and A_log in the model dtype).
    - MLA (transformers KimiLinearAttention; vLLM mla.py:218-303): q_a_proj + q_a_layernorm + q_b_proj with
      `q_lora_rank`, else q_proj; kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj (biases on q_a, kv_a and o
      with `attention_bias`, as transformers builds them); with `mla_use_output_gate` (K3) a g_proj of heads x
      v_head_dim (mla.py:222-234 fuses it with q_a/kv_a, :279 alone).
    - MoE (transformers KimiLinearMoE; vLLM model.py:437-560): a router (vLLM's GateLinear keeps the model dtype,
      :437-443; transformers keeps it in float32), its float32 `e_score_correction_bias` (:445-447; a buffer in
      transformers), routed experts and `num_shared_experts` x moe_intermediate_size shared experts. With
      `routed_expert_hidden_size` (K3's latent MoE) the experts work at that width, between
      routed_expert_down_proj (hidden -> latent), an RMSNorm with `latent_moe_use_norm` and routed_expert_up_proj
      (:476-500, :532-547); both projections take the checkpoint's quantization.
    - `attn_res_block_size` (K3's attention residuals, model.py:796-821, :1004-1015): per layer two norms and two
      hidden -> 1 projections (built with quant_config=None: never quantized, role "other"), and one of each before
      the final norm.

    The head is never tied. The MTP layers (`num_nextn_predict_layers`) are not counted; vLLM's TP padding of narrow experts (model.py:
    419-428) and of the fused KDA input projection (kda.py:643-652) is no checkpoint tensor."""
    h, heads, layers = fields.hidden_size(cfg), fields.num_heads(cfg), fields.num_layers(cfg)
    vocab, f32 = _vocab(cfg), "float32"
    kinds = kimi_linear_kinds(cfg)
    state = kda_state(cfg)
    k_heads, k_dim, _ = state.ssm_shape
    proj, kernel = k_heads * k_dim, state.conv_kernel
    raw_linear = cfg.get("linear_attn_config")
    full_rank_gate = bool(raw_linear.get("use_full_rank_gate")) if isinstance(raw_linear, dict) else False
    kv_rank, rope = positive_int(cfg, "kv_lora_rank"), positive_int(cfg, "qk_rope_head_dim")
    nope, v_dim = positive_int(cfg, "qk_nope_head_dim"), positive_int(cfg, "v_head_dim")
    q_rank = positive_int(cfg, "q_lora_rank", default=None)
    bias, gate = bool(cfg.get("attention_bias", False)), bool(cfg.get("mla_use_output_gate"))
    moe_layers = _kimi_linear_moe_layers(cfg, layers)
    res_block = cfg.get("attn_res_block_size")
    latent = positive_int(cfg, "routed_expert_hidden_size", default=None)
    t = [Tensor("model.embed_tokens.weight", (vocab, h), "embedding")]
    for i, kind in enumerate(kinds):
        p, a = f"model.layers.{i}", f"model.layers.{i}.self_attn"
        if kind == L.STATE:
            t += _linear(f"{a}.q_proj", proj, h) + _linear(f"{a}.k_proj", proj, h) + _linear(f"{a}.v_proj", proj, h)
            t.append(Tensor(f"{a}.conv1d.weight", (3 * proj, 1, kernel), "other", f32))
            t += _linear(f"{a}.f_a_proj", k_dim, h) + _linear(f"{a}.f_b_proj", proj, k_dim)
            t += [Tensor(f"{a}.dt_bias", (proj,), "other", f32), Tensor(f"{a}.A_log", (k_heads,), "other", f32)]
            t += _linear(f"{a}.b_proj", k_heads, h)
            if full_rank_gate:
                t += _linear(f"{a}.g_proj", proj, h)
            else:
                t += _linear(f"{a}.g_a_proj", k_dim, h) + _linear(f"{a}.g_b_proj", proj, k_dim)
            t += _norm(f"{a}.o_norm", k_dim, 1) + _linear(f"{a}.o_proj", h, proj)
        else:
            if q_rank:
                t += _linear(f"{a}.q_a_proj", q_rank, h, bias) + _norm(f"{a}.q_a_layernorm", q_rank, 1)
                t += _linear(f"{a}.q_b_proj", heads * (nope + rope), q_rank)
            else:
                t += _linear(f"{a}.q_proj", heads * (nope + rope), h)
            t += _linear(f"{a}.kv_a_proj_with_mqa", kv_rank + rope, h, bias)
            t += _norm(f"{a}.kv_a_layernorm", kv_rank, 1) + _linear(f"{a}.kv_b_proj", heads * (nope + v_dim), kv_rank)
            if gate:
                t += _linear(f"{a}.g_proj", heads * v_dim, h)
            t += _linear(f"{a}.o_proj", h, heads * v_dim, bias)
        m = f"{p}.mlp"
        if moe_layers[i]:
            experts, inter = _num_experts(cfg), positive_int(cfg, "moe_intermediate_size")
            t += _linear(f"{m}.gate", experts, h, role="router")
            t.append(Tensor(f"{m}.gate.e_score_correction_bias", (experts,), "buffer", f32))
            t += _experts(f"{m}.experts", experts, latent or h, inter)
            shared = _kimi_shared_experts(cfg)
            if shared:
                t += _gated(f"{m}.shared_experts", h, inter * shared)
            if latent:
                t += _linear(f"{m}.routed_expert_down_proj", latent, h)
                if cfg.get("latent_moe_use_norm"):
                    t += _norm(f"{m}.routed_expert_norm", latent, 1)
                t += _linear(f"{m}.routed_expert_up_proj", h, latent)
        else:
            t += _gated(m, h, fields.intermediate_size(cfg))
        t += _norm(f"{p}.input_layernorm", h, 1) + _norm(f"{p}.post_attention_layernorm", h, 1)
        if res_block is not None:
            t += _norm(f"{p}.self_attention_res_norm", h, 1) + _norm(f"{p}.mlp_res_norm", h, 1)
            t += _linear(f"{p}.self_attention_res_proj", 1, h, role="other")
            t += _linear(f"{p}.mlp_res_proj", 1, h, role="other")
    t += _norm("model.norm", h, 1)
    if res_block is not None:
        t += _norm("model.output_attn_res_norm", h, 1) + _linear("model.output_attn_res_proj", 1, h, role="other")
    # never tied: transformers' KimiLinearForCausalLM has `_tied_weights_keys = {}`, vLLM builds its own lm_head
    # (model.py:1422-1428) whatever `tie_word_embeddings` says
    return t + _lm_head("lm_head", vocab, h, False)


# ---- MiniMax-M3 (issue 12): transformers 5.24 modeling_minimax_m3_vl.py (MiniMaxM3VLForCausalLM, the text model)
# and vLLM 0.33's models/minimax_m3/nvidia/model.py


def _minimax_m3_layer_flags(cfg: dict[str, Any], key: str, layers: int, default: bool) -> list[bool]:
    """A per-layer 0/1 list of the config (`moe_layer_freq`, `sparse_attention_freq`), `default` when absent."""
    listed = cfg.get(key)
    if listed is None:
        return [default] * layers
    if not isinstance(listed, list) or len(listed) != layers:
        raise ConfigError(f"config `{key}` must list {layers} entries of 0 or 1", hint="fix config.json")
    return [bool(f) for f in listed]


def _minimax_m3(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """MiniMax-M3's language model. Per layer: q/k/v/o without biases and per-head q_norm / k_norm
    (MiniMaxM3VLAttention, modeling_minimax_m3_vl.py:408-431); on the layers `sparse_attention_config.
    sparse_attention_freq` marks, the lightning indexer's q_proj (index heads x index dim), k_proj (one index key),
    q_norm and k_norm (:543-551; vLLM fuses them into qkv_proj, nvidia/model.py:443-455, and never builds the
    index value / output projections); where `moe_layer_freq` is 1 (all layers when absent; :649 and vLLM :110-115)
    a router (vLLM keeps it in float32, :230-239), its float32 `e_score_correction_bias` (a buffer in transformers,
    :241; vLLM :218-228), routed experts of `intermediate_size` (:194-203; vLLM :251-262) and one shared expert of
    `shared_intermediate_size` (:261; vLLM intermediate_size x n_shared_experts, :241-249: a config where they
    differ is refused), elsewhere a dense MLP of `dense_intermediate_size` (:175-182; vLLM :747-752); two norms.
    The `mtp.*` modules are not built (`_keys_to_ignore_on_load_unexpected`, :700); the head is tied only with
    `tie_word_embeddings` (:871). vLLM supports `attention_output_gate` false only (nvidia/model.py:3-9)."""
    h, heads, kv, layers = (
        fields.hidden_size(cfg),
        fields.num_heads(cfg),
        fields.num_kv_heads(cfg),
        fields.num_layers(cfg),
    )
    hd, vocab, f32 = fields.head_dim(cfg, family), _vocab(cfg), "float32"
    if cfg.get("attention_output_gate"):
        raise UnsupportedArchitecture(
            "minimax_m3 config with `attention_output_gate`: neither transformers 5.24 nor vLLM 0.33 builds its gate",
            hint="report the model at kvplan's issue tracker",
        )
    raw_sparse = cfg.get("sparse_attention_config")
    sparse_cfg: dict[str, Any] = raw_sparse if isinstance(raw_sparse, dict) else {}
    sparse = _minimax_m3_layer_flags(sparse_cfg, "sparse_attention_freq", layers, False)
    moe = _minimax_m3_layer_flags(cfg, "moe_layer_freq", layers, True)
    inter = fields.intermediate_size(cfg)
    t = [Tensor("model.embed_tokens.weight", (vocab, h), "embedding")]
    for i in range(layers):
        p, a = f"model.layers.{i}", f"model.layers.{i}.self_attn"
        t += _linear(f"{a}.q_proj", heads * hd, h) + _linear(f"{a}.k_proj", kv * hd, h)
        t += _linear(f"{a}.v_proj", kv * hd, h) + _linear(f"{a}.o_proj", h, heads * hd)
        t += _norm(f"{a}.q_norm", hd, 1) + _norm(f"{a}.k_norm", hd, 1)
        if sparse[i]:
            x = f"{a}.indexer"
            i_heads = positive_int(sparse_cfg, "sparse_num_index_heads", default=positive_int(cfg, "index_n_heads"))
            i_dim = positive_int(sparse_cfg, "sparse_index_dim", default=positive_int(cfg, "index_head_dim"))
            t += _linear(f"{x}.q_proj", i_heads * i_dim, h) + _linear(f"{x}.k_proj", i_dim, h)
            t += _norm(f"{x}.q_norm", i_dim, 1) + _norm(f"{x}.k_norm", i_dim, 1)
        m = f"{p}.mlp"
        if moe[i]:
            experts = _num_experts(cfg)
            shared = positive_int(cfg, "shared_intermediate_size")
            vllm_shared = inter * int(cfg.get("n_shared_experts") or 0)
            if shared != vllm_shared:
                raise UnsupportedArchitecture(
                    f"minimax_m3 config: transformers builds a shared expert of `shared_intermediate_size` {shared}, "
                    f"vLLM one of intermediate_size x n_shared_experts = {vllm_shared}",
                    hint="fix shared_intermediate_size or n_shared_experts in config.json",
                )
            t += [Tensor(f"{m}.gate.weight", (experts, h), "router", f32)]
            t.append(Tensor(f"{m}.gate.e_score_correction_bias", (experts,), "buffer", f32))
            t += _experts(f"{m}.experts", experts, h, inter) + _gated(f"{m}.shared_experts", h, shared)
        else:
            t += _gated(m, h, positive_int(cfg, "dense_intermediate_size"))
        t += _norm(f"{p}.input_layernorm", h, 1) + _norm(f"{p}.post_attention_layernorm", h, 1)
    return t + _norm("model.norm", h, 1) + _lm_head("lm_head", vocab, h, _tied(cfg))


# Weights layouts by the names the family table uses (kvplan.core.families.Family.weights): (config with the
# family's defaults, family) -> tensors. Which model_types use which layout is the table's business, not this one's.
LAYOUTS: dict[str, Callable[[dict[str, Any], Family], list[Tensor]]] = {
    **{name: _generic(name) for name in SPECS if name != "chatglm"},
    "chatglm": _chatglm,
    "gpt2": _gpt2,
    "gpt_neox": _gpt_neox,
    "falcon": _falcon,
    "mamba": _mamba,
    "gemma4_text": _gemma4_text,
    "mimo_v2_flash": _mimo_v2_flash,
    "nemotron_h": _nemotron_h,
    "zamba2": _zamba2,
    "lfm2": _lfm2,
    "granitemoehybrid": _granitemoehybrid,
    "qwen3_5_text": _qwen3_5,
    "qwen3_5_moe_text": _qwen3_5,
    "qwen3_vl_text": _qwen3_vl,
    "qwen3_vl_moe_text": _qwen3_vl,
    "deepseek_v4": _deepseek_v4,
    "kimi_linear": _kimi_linear,
    "minimax_m3": _minimax_m3,
}


def _fp32_router(layout: Callable[[dict[str, Any], Family], list[Tensor]]) -> Callable[..., list[Tensor]]:
    """`layout` with its router weights and router buffers held in fp32 whatever the model dtype: glm4_moe
    (transformers Glm4MoeTopkRouter: weight and e_score_correction_bias created float32; vLLM 0.33 glm4_moe.py:141-150
    GateLinear params_dtype=torch.float32 and a float32 bias) and hunyuan (modeling_hunyuan.py HunYuanTopKGate:
    `nn.Linear(..., dtype=torch.float32)`)."""

    def fp32(cfg: dict[str, Any], family: Family) -> list[Tensor]:
        return [t._replace(dtype="float32") if t.role in ("router", "buffer") else t for t in layout(cfg, family)]

    return fp32


def _hunyuan(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """Hunyuan-A13B remote code (hunyuan.py HunYuanModel / HunYuanMoEV1ForCausalLM): the generic decoder above;
    with `add_classification_head` the model has no final norm and adds pool_head (h x h) and pool_head2."""
    if not cfg.get("add_classification_head"):
        return _decoder(_resolve(SPECS["hunyuan"], cfg, family))
    t = _decoder(_resolve(replace(SPECS["hunyuan"], final_norm=False), cfg, family))
    h = fields.hidden_size(cfg)
    return t + _linear("pool_head", h, h) + _linear("pool_head2", positive_int(cfg, "class_num"), h)


LAYOUTS["hunyuan"] = _fp32_router(_hunyuan)
LAYOUTS["glm4_moe"] = _fp32_router(LAYOUTS["glm4_moe"])


# --------------------------------------------------------------------------------------------------------------
# Family resolution
# --------------------------------------------------------------------------------------------------------------


def _squash(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def _family_from_architectures(cfg: dict[str, Any]) -> Family | None:
    """The family with a weights layout whose model_type (or an alias) is the stem of an `architectures` class."""
    known = {_squash(t): f for f in POLICY.values() if f.weights is not None for t in f.model_types}
    for name in cfg.get("architectures") or []:
        stem = re.sub(r"(ForCausalLM|LMHeadModel|ForConditionalGeneration|Model)$", "", str(name))
        if _squash(stem) in known:
            return known[_squash(stem)]
    return None


def _family(cfg: dict[str, Any]) -> tuple[Family, bool]:
    """(family, assumed): the family whose layout sizes `cfg`, and whether it was guessed rather than named.

    A model_type of a family without a weights layout (kvplan.core.families says so with `weights=None`) is
    sized like an unknown one: from `architectures`, else the llama layout, and reported as assumed."""
    family = family_of(cfg)
    if family is not None and family.weights is not None:
        return family, False
    return _family_from_architectures(cfg) or POLICY["llama"], True


def language_model_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's config of a raw config.json (a ConfigError when it is not a JSON object)."""
    if not isinstance(config, dict):
        raise ConfigError("config is not a JSON object", hint="pass the model's config.json")
    return text_config(config)


def uncounted_parts(config: dict[str, Any]) -> tuple[str, ...]:
    """Notes naming what the analytic count leaves out of a multimodal wrapper: the language model (its
    `text_config`) is counted exactly; the wrapper's other towers (`vision_config`, `audio_config`, ...) and their
    projectors are not. Empty for a plain language-model config."""
    if not isinstance(config, dict) or text_config(config) is config:
        return ()
    skip = (*fields.NESTED_TEXT_KEYS, "quantization_config")
    towers = sorted(k for k, v in config.items() if k.endswith("_config") and isinstance(v, dict) and k not in skip)
    wrapper = next((str(a) for a in config.get("architectures") or [] if "ConditionalGeneration" in str(a)), None)
    if towers:
        parts = "this wrapper's " + ", ".join(f"`{k}`" for k in towers) + " tower and its projector are"
    elif wrapper:
        parts = f"the other towers of {wrapper} (vision encoder, projector) are"
    else:
        return ()
    return (f"weights: the language model only (text_config); {parts} not counted",)


def assumed_family(config: dict[str, Any]) -> str | None:
    """None when the config's model_type has a weights layout; else the layout used instead (its family's name)."""
    family, assumed = _family(language_model_config(config))
    return family.weights if assumed else None


def weight_tensors(config: dict[str, Any]) -> list[Tensor]:
    """Every stored tensor of the language model (with buffers, role "buffer"); see `Tensor`."""
    cfg = language_model_config(config)
    family, _ = _family(cfg)
    layout = family.weights or "llama"  # _family only returns families with a layout
    return LAYOUTS[layout](with_defaults(cfg, family), family)


# The MTP layers a checkpoint stores beside the model, by weights layout (what a drafter loads, named
# `model.layers.{num_hidden_layers + k}`); the model's own count leaves them out.
MTP_LAYOUTS: dict[str, Callable[[dict[str, Any], Family], list[Tensor]]] = {"deepseek_v4": _deepseek_v4_mtp}


def mtp_tensors(config: dict[str, Any]) -> list[Tensor]:
    """The stored tensors of the checkpoint's MTP layers where the family's layout builds them (MTP_LAYOUTS), else
    none: the drafter's rules then price copies of the model's own decoder layers."""
    cfg = language_model_config(config)
    family, _ = _family(cfg)
    build = MTP_LAYOUTS.get(family.weights or "")
    return build(with_defaults(cfg, family), family) if build else []


def count_parameters(config: dict[str, Any]) -> int:
    """Exact number of parameters of the language model as transformers' AutoModelForCausalLM builds it.

    Unknown model types are counted with an assumed family's formula (see `assumed_family`).
    """
    return sum(t.numel for t in weight_tensors(config) if t.role != "buffer")
