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
from kvplan.core.config import first, positive_int, text_config, with_defaults
from kvplan.core.families import FAMILIES as POLICY
from kvplan.core.families import Family, family_of
from kvplan.core.shapes import deepseek_v4_ratios  # DeepSeek-V4's layer schedule, one reader for cache and weights
from kvplan.errors import ConfigError

__all__ = [
    "LAYOUTS",
    "Tensor",
    "assumed_family",
    "count_parameters",
    "weight_tensors",
]


class Tensor(NamedTuple):
    """One stored tensor. Matrices are (out_features, in_features); stacked experts are (experts, out, in).

    `role` is one of: linear, expert (quantizable matmul weights), router, embedding, lm_head, norm, bias,
    other (conv kernels, SSM parameters, attention sinks, matmul weights a checkpoint ships unquantized) and
    buffer (stored but not a parameter). `dtype`: the tensor's own dtype whatever the model dtype and
    quantization (transformers' `_keep_in_fp32_modules_strict`, integer buffers); None: the model dtype.
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


def _ffn_jamba(o: Opts, i: int, p: str) -> list[Tensor]:
    c, m = o.cfg, f"{p}.feed_forward"
    period, offset = positive_int(c, "expert_layer_period", default=2), int(c.get("expert_layer_offset", 1))
    experts, inter = positive_int(c, "num_experts", default=16), fields.intermediate_size(c)
    if experts > 1 and i % period == offset:
        router = _linear(f"{m}.router", experts, o.hidden, role="router")
        return router + _experts(f"{m}.experts", experts, o.hidden, inter)
    return _gated(m, o.hidden, inter)


_FFN: dict[str, Callable[[Opts, int, str], list[Tensor]]] = {
    "gated": _ffn_gated,
    "fused": _ffn_fused,
    "plain": _ffn_plain,
    "mixtral": _ffn_mixtral,
    "qwen_moe": _ffn_qwen_moe,
    "gpt_oss": _ffn_gpt_oss,
    "deepseek": _ffn_deepseek,
    "jamba": _ffn_jamba,
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
    "jamba": Spec(
        mixer="jamba",
        ffn="jamba",
        layer_norms=("input_layernorm", "pre_ff_layernorm"),
        names={"mlp": "feed_forward", "norm": "model.final_layernorm"},
    ),
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


def _deepseek_v4(cfg: dict[str, Any], family: Family) -> list[Tensor]:
    """DeepSeek-V4 (transformers 5.24 modeling_deepseek_v4.py): low-rank Q, one shared K=V projection, grouped
    low-rank output, per-head sinks; CSA / HCA compressors (CSA with the lightning indexer); hash-routed MoE on
    the first `num_hash_layers` layers (a frozen `tid2eid` table), top-k routing after; manifold hyper-connections
    (`hc_mult` streams) around attention and MLP, and a final `hc_head`. The MTP layers of the checkpoint are not
    built. Norms are float32 parameters in transformers; counted here as parameters like any other."""
    h, layers, heads = fields.hidden_size(cfg), fields.num_layers(cfg), fields.num_heads(cfg)
    hd, q_rank = positive_int(cfg, "head_dim"), positive_int(cfg, "q_lora_rank")
    groups, o_rank = positive_int(cfg, "o_groups"), positive_int(cfg, "o_lora_rank")
    ihd, iheads = positive_int(cfg, "index_head_dim"), positive_int(cfg, "index_n_heads")
    experts, inter = _num_experts(cfg), positive_int(cfg, "moe_intermediate_size")
    topk = positive_int(cfg, "num_experts_per_tok")
    hc = positive_int(cfg, "hc_mult", default=4)
    mlp_types = cfg.get("mlp_layer_types")
    if mlp_types is None:
        hashed = int(cfg.get("num_hash_layers", 3))
        mlp_types = ["hash_moe"] * min(layers, hashed) + ["moe"] * max(0, layers - hashed)
    vocab = _vocab(cfg)

    # DeepseekV4PreTrainedModel (modeling_deepseek_v4.py:1241-1264): `_keep_in_fp32_modules_strict` (norms,
    # hyper-connections, sinks, position biases, the router bias) are float32 whatever the model dtype; the
    # compressor / indexer projections and the indexer's weights_proj "ship in BF16 with no companion scale_inv"
    # (never FP8-quantized: role "other").
    f32 = "float32"

    def norm(module: str, width: int) -> list[Tensor]:
        return [Tensor(f"{module}.weight", (width,), "norm", f32)]

    def hyper(module: str, outputs: int, scales: int, names: tuple[str, str, str]) -> list[Tensor]:
        return [
            Tensor(f"{module}.{names[0]}", (outputs, hc * h), "other", f32),
            Tensor(f"{module}.{names[1]}", (outputs,), "other", f32),
            Tensor(f"{module}.{names[2]}", (scales,), "other", f32),
        ]

    def compressor(module: str, ratio: int, width: int, overlap: bool) -> list[Tensor]:
        proj = (1 + overlap) * width
        return [
            Tensor(f"{module}.position_bias", (ratio, proj), "other", f32),
            *_linear(f"{module}.kv_proj", proj, h, role="other"),
            *_linear(f"{module}.gate_proj", proj, h, role="other"),
            *norm(f"{module}.kv_norm", width),
        ]

    t = [Tensor("model.embed_tokens.weight", (vocab, h), "embedding")]
    for i, ratio in enumerate(deepseek_v4_ratios(cfg, layers)):
        p, a = f"model.layers.{i}", f"model.layers.{i}.self_attn"
        t += [Tensor(f"{a}.sinks", (heads,), "other", f32)]
        t += _linear(f"{a}.q_a_proj", q_rank, h) + norm(f"{a}.q_a_norm", q_rank)
        t += _linear(f"{a}.q_b_proj", heads * hd, q_rank)
        t += _linear(f"{a}.kv_proj", hd, h) + norm(f"{a}.kv_norm", hd)
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
        if mlp_types[i] == "hash_moe":
            t.append(Tensor(f"{m}.gate.tid2eid", (vocab, topk), "buffer", "int64"))
        else:
            t.append(Tensor(f"{m}.gate.e_score_correction_bias", (experts,), "buffer", f32))
        t += _gated(f"{m}.shared_experts", h, inter)  # DeepseekV4MLP: config.intermediate_size is moe's
        t += norm(f"{p}.input_layernorm", h) + norm(f"{p}.post_attention_layernorm", h)
        t += hyper(f"{p}.attn_hc", (2 + hc) * hc, 3, ("fn", "base", "scale"))
        t += hyper(f"{p}.ffn_hc", (2 + hc) * hc, 3, ("fn", "base", "scale"))
    t += norm("model.norm", h) + hyper("model.hc_head", hc, 1, ("hc_fn", "hc_base", "hc_scale"))
    return t + _lm_head("lm_head", vocab, h, _tied(cfg))


# Weights layouts by the names the family table uses (kvplan.core.families.Family.weights): (config with the
# family's defaults, family) -> tensors. Which model_types use which layout is the table's business, not this one's.
LAYOUTS: dict[str, Callable[[dict[str, Any], Family], list[Tensor]]] = {
    **{name: _generic(name) for name in SPECS if name != "chatglm"},
    "chatglm": _chatglm,
    "gpt2": _gpt2,
    "gpt_neox": _gpt_neox,
    "falcon": _falcon,
    "mamba": _mamba,
    "deepseek_v4": _deepseek_v4,
}


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


def count_parameters(config: dict[str, Any]) -> int:
    """Exact number of parameters of the language model as transformers' AutoModelForCausalLM builds it.

    Unknown model types are counted with an assumed family's formula (see `assumed_family`).
    """
    return sum(t.numel for t in weight_tensors(config) if t.role != "buffer")
