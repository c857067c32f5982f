"""The family policy table: every model family kvplan knows, in ONE place.

A `Family` names, for one architecture: the `model_type` spellings its configs use (the canonical one first,
then aliases such as `kimi_k2` for DeepSeek V3 or `RefinedWeb` for Falcon), whether its modelling code honours
an explicit `head_dim` or always derives `hidden_size / num_attention_heads`, the values transformers assumes
when a config omits a field (vocabulary size, head_dim, tied embeddings, ...), the shape reader that turns its
config into per-layer caches (a name in `kvplan.core.shapes.READERS`) and its weights layout (a name in
`kvplan.weights.tensors.LAYOUTS`, or None when kvplan has no exact layout: weights are then sized with an
assumed family, and `kvplan.weights.tensors.assumed_family` says so).

Adding a family is adding one entry here (or calling `register`): the shape reader, the weights count, the lint
and the budget's vocabulary read it from this table. Readers and layouts are named, not imported, so this module
is pure data: it imports nothing from kvplan and never imports torch, the engines, planning or the CLI.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "FAMILIES",
    "Family",
    "canonical_model_type",
    "family_of",
    "register",
    "registered",
    "unregister",
]


@dataclass(frozen=True, eq=False)
class Family:
    """One architecture's policy. `name` is the canonical model_type; `weights` must be given, None included.

    - `shape`: the reader in `kvplan.core.shapes.READERS` ("dense" for llama-like decoders).
    - `weights`: the layout in `kvplan.weights.tensors.LAYOUTS`, or None: kvplan has no exact weights layout
      for the family (weights are then sized with an assumed one, and reported as assumed).
    - `aliases`: other model_type spellings of the same architecture (remote-code names, multimodal wrappers
      whose text model this is).
    - `honours_head_dim`: False when the modelling code always uses hidden_size / num_attention_heads and
      ignores a `head_dim` in the config (the shape reader and the weights then ignore it too; lint warns).
    - `defaults`: what transformers' config class assumes for fields a config.json omits.
    """

    name: str
    _: KW_ONLY
    shape: str
    weights: str | None
    aliases: tuple[str, ...] = ()
    honours_head_dim: bool = True
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    @property
    def model_types(self) -> tuple[str, ...]:
        """Every model_type spelling of this family, the canonical one first."""
        return (self.name, *self.aliases)


_GEMMA = {"head_dim": 256, "vocab_size": 256000, "tie_word_embeddings": True}
_QWEN3_5 = {
    "head_dim": 256,
    "vocab_size": 248320,
    "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 32,
}
_QWEN3_VL = {"head_dim": 128, "vocab_size": 151936}

_TABLE = (
    # ---- families with an exact weights layout
    Family("llama", shape="dense", weights="llama"),
    Family("granite", shape="dense", weights="granite"),
    Family("minicpm", shape="dense", weights="minicpm"),
    Family("mistral", shape="dense", weights="mistral"),
    Family("mixtral", shape="dense", weights="mixtral"),
    Family("qwen2", shape="qwen2", weights="qwen2"),
    Family("qwen2_moe", shape="qwen2", weights="qwen2_moe"),
    Family("qwen3", shape="qwen2", weights="qwen3", defaults={"head_dim": 128}),
    Family("qwen3_moe", shape="qwen2", weights="qwen3_moe"),
    Family(
        "qwen3_next",
        shape="qwen3_next",
        weights="qwen3_next",
        defaults={
            "head_dim": 256,
            "linear_conv_kernel_dim": 4,
            "linear_key_head_dim": 128,
            "linear_value_head_dim": 128,
            "linear_num_key_heads": 16,
            "linear_num_value_heads": 32,
        },
    ),
    # ---- Qwen3.5 / 3.6 / 3.8 (gated DeltaNet + gated full attention) and the Qwen3-VL text towers: the text
    # configs' model_types, the multimodal wrappers as aliases (their `text_config` is what is read); defaults
    # are transformers 5.24's Qwen3_5TextConfig, Qwen3_5MoeTextConfig, Qwen3VLTextConfig, Qwen3VLMoeTextConfig
    Family("qwen3_5_text", shape="qwen3_next", weights="qwen3_5_text", aliases=("qwen3_5",), defaults=_QWEN3_5),
    Family(
        "qwen3_5_moe_text",
        shape="qwen3_next",
        weights="qwen3_5_moe_text",
        aliases=("qwen3_5_moe",),
        defaults={**_QWEN3_5, "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512},
    ),
    Family("qwen3_vl_text", shape="qwen3_vl", weights="qwen3_vl_text", aliases=("qwen3_vl",), defaults=_QWEN3_VL),
    Family(
        "qwen3_vl_moe_text",
        shape="qwen3_vl",
        weights="qwen3_vl_moe_text",
        aliases=("qwen3_vl_moe",),
        # no tie_word_embeddings default: Qwen3VLMoeTextConfig's True is never used, the model is only built as
        # the wrapper, whose Qwen3VLMoeConfig says False
        defaults={"vocab_size": 151936},
    ),
    Family("gemma", shape="dense", weights="gemma", defaults=_GEMMA),
    Family("gemma2", shape="gemma2", weights="gemma2", defaults=_GEMMA),
    Family(
        "gemma3_text",
        shape="gemma3",
        weights="gemma3_text",
        aliases=("gemma3",),
        # max_position_embeddings: Gemma3TextConfig's 131,072 (configuration_gemma3.py:81; vLLM's rope tables read it)
        defaults={**_GEMMA, "vocab_size": 262208, "max_position_embeddings": 131072},
    ),
    Family("olmo", shape="dense", weights="olmo"),
    Family("olmo2", shape="dense", weights="olmo2"),
    # OLMo 3: Olmo3Config's sliding_window 4096 and 3-sliding-1-full layer_types (kvplan.core.shapes.olmo3)
    Family("olmo3", shape="olmo3", weights="olmo3", defaults={"sliding_window": 4096}),
    Family("cohere", shape="dense", weights="cohere", defaults={"tie_word_embeddings": True}),
    # no head_dim default: Cohere2Config derives hidden_size / num_attention_heads when a config names none
    Family("cohere2", shape="cohere2", weights="cohere2", defaults={"tie_word_embeddings": True}),
    Family("starcoder2", shape="dense", weights="starcoder2", defaults={"tie_word_embeddings": True}),
    Family("phi", shape="dense", weights="phi", honours_head_dim=False),
    Family("phi3", shape="dense", weights="phi3"),
    Family("glm", shape="dense", weights="glm", defaults={"head_dim": 128}),
    Family("glm4", shape="dense", weights="glm4", defaults={"head_dim": 128}),
    Family("chatglm", shape="chatglm", weights="chatglm"),
    Family("gpt_oss", shape="gpt_oss", weights="gpt_oss", defaults={"head_dim": 64}),
    Family("deepseek_v2", shape="mla", weights="deepseek_v2"),
    # kimi_k25: the Kimi-K2.5/K2.6 wrapper, whose text_config is kimi_k2 (Kimi_K25Config builds it as deepseek_v3)
    Family("deepseek_v3", shape="mla", weights="deepseek_v3", aliases=("kimi_k2", "kimi_k25")),
    Family("deepseek_v32", shape="dsa", weights="deepseek_v32"),
    Family("glm_moe_dsa", shape="dsa", weights="glm_moe_dsa"),
    Family("jamba", shape="jamba", weights="jamba", honours_head_dim=False),
    Family("baichuan", shape="dense", weights="baichuan", honours_head_dim=False),
    Family("internlm2", shape="dense", weights="internlm2", honours_head_dim=False),
    Family("gpt2", shape="dense", weights="gpt2", honours_head_dim=False, defaults={"tie_word_embeddings": True}),
    Family("gpt_neox", shape="dense", weights="gpt_neox", honours_head_dim=False),
    Family(
        "falcon",
        shape="falcon",
        weights="falcon",
        aliases=("RefinedWeb", "RefinedWebModel", "rw"),
        honours_head_dim=False,
        defaults={"tie_word_embeddings": True},
    ),
    Family("mamba", shape="mamba", weights="mamba", defaults={"tie_word_embeddings": True}),
    # Gemma 4, Gemma 3n, MiMo-V2-Flash (issue 12): defaults from transformers 5.24's config classes
    # (configuration_gemma4.py Gemma4TextConfig, configuration_gemma3n.py Gemma3nTextConfig,
    # configuration_mimo_v2_flash.py MiMoV2FlashConfig)
    Family(
        "gemma4_text",
        shape="gemma4",
        weights="gemma4_text",
        aliases=("gemma4",),
        defaults={
            "vocab_size": 262144,
            "head_dim": 256,
            "global_head_dim": 512,
            "tie_word_embeddings": True,
            "sliding_window": 512,
            "num_kv_shared_layers": 0,
            "attention_k_eq_v": False,
            "hidden_size_per_layer_input": 256,
            "vocab_size_per_layer_input": 262144,
        },
    ),
    Family(
        "mimo_v2_flash",
        shape="mimo_v2_flash",
        weights="mimo_v2_flash",
        defaults={"vocab_size": 152576, "head_dim": 192, "v_head_dim": 128, "tie_word_embeddings": False},
    ),
    # ---- attention-only families of 2025-26 (issue 12); defaults are the config classes' field defaults
    Family(
        "llama4_text",
        shape="llama4",
        weights="llama4_text",
        aliases=("llama4",),
        defaults={
            "head_dim": 128,  # Llama4TextConfig: head_dim = 128 unless given (not hidden_size / heads)
            "vocab_size": 202048,
            "intermediate_size": 8192,
            "intermediate_size_mlp": 16384,
            "num_local_experts": 16,
        },
    ),
    Family("smollm3", shape="smollm3", weights="smollm3", defaults={"tie_word_embeddings": True, "vocab_size": 128256}),
    Family(
        "glm4_moe",
        shape="dense",
        weights="glm4_moe",
        defaults={
            "vocab_size": 151552,
            "first_k_dense_replace": 1,
            "n_shared_experts": 1,
            "n_routed_experts": 128,
            "moe_intermediate_size": 1408,
        },
    ),
    # Ministral3Config: mistral's layout (no biases), head_dim 128 unless given; `mistral3` is the wrapper of
    # both Mistral and Ministral 3 text models, so it stays the text_config's business and is no alias here
    Family("ministral3", shape="dense", weights="mistral", defaults={"head_dim": 128, "vocab_size": 131072}),
    # Hunyuan-A13B remote code (Tencent-Hunyuan/Hunyuan-A13B models/configuration_hunyuan.py, modeling_hunyuan.py):
    # head_dim is always hidden_size / num_attention_heads (the attention never reads attention_head_dim); every
    # layer caches K/V, CLA "cross" layers included (modeling_hunyuan.py:684; SGLang's hunyuan.py:380 likewise);
    # vLLM 0.33 serves HunYuanMoEV1ForCausalLM through its Transformers backend (registry.py:756)
    Family(
        "hunyuan",
        shape="dense",
        weights="hunyuan",
        honours_head_dim=False,
        defaults={"vocab_size": 290943, "tie_word_embeddings": False},  # num_experts 1 (dense) when absent
    ),
    # ---- families kvplan reads the caches of but has no exact weights layout for (weights assumed, and said so)
    Family("gptj", shape="dense", weights=None, honours_head_dim=False),
    Family("bloom", shape="dense", weights=None, honours_head_dim=False),
    Family("opt", shape="dense", weights=None, honours_head_dim=False),
    Family("mpt", shape="dense", weights=None, honours_head_dim=False),
    Family("stablelm", shape="dense", weights=None, honours_head_dim=False),
    Family("gpt_bigcode", shape="gpt_bigcode", weights=None, honours_head_dim=False),
    Family("granitemoe", shape="dense", weights=None),
    Family("olmoe", shape="dense", weights=None),
    Family("internlm", shape="dense", weights=None),
    Family("yi", shape="dense", weights=None),
    Family("deepseek", shape="dense", weights=None),
    Family("exaone", shape="dense", weights=None),
    Family("hunyuan_v1_dense", shape="dense", weights=None),
    Family("ernie4_5", shape="dense", weights=None),
    Family("seed_oss", shape="dense", weights=None),
    Family("arcee", shape="dense", weights=None),
    Family("apertus", shape="dense", weights=None),
    Family("helium", shape="dense", weights=None),
    Family("mamba2", shape="mamba2", weights=None),
    Family("bamba", shape="bamba", weights=None),
    Family("falcon_h1", shape="falcon_h1", weights=None),
    Family(
        "gemma3n_text",
        shape="gemma3n",
        weights=None,
        aliases=("gemma3n",),
        defaults={
            "vocab_size": 262400,
            "head_dim": 256,
            "tie_word_embeddings": True,
            "sliding_window": 512,
            "num_kv_shared_layers": 15,
        },
    ),
    # ---- Mamba2 / short-conv hybrids (issue 12); defaults: transformers 5.24's config classes
    Family(
        "nemotron_h",
        shape="nemotron_h",
        weights="nemotron_h",
        defaults={
            "vocab_size": 131072,
            "head_dim": 128,
            "num_key_value_heads": 8,
            "mamba_num_heads": 128,
            "mamba_head_dim": 64,
            "n_groups": 8,
            "ssm_state_size": 128,
            "conv_kernel": 4,
            "chunk_size": 128,
            "mamba_ssm_cache_dtype": "float32",
            "intermediate_size": 21504,
            "moe_intermediate_size": 7688,
            "moe_shared_expert_intermediate_size": 7688,
            "n_routed_experts": 8,
            "tie_word_embeddings": False,
        },
    ),
    Family(
        "zamba2",
        shape="zamba2",
        weights="zamba2",
        defaults={
            "vocab_size": 32000,
            "num_attention_heads": 32,
            "mamba_d_state": 64,
            "mamba_d_conv": 4,
            "mamba_expand": 2,
            "mamba_ngroups": 1,
            "n_mamba_heads": 8,
            "chunk_size": 256,
            "num_mem_blocks": 1,
            "adapter_rank": 128,
            "tie_word_embeddings": True,
        },
    ),
    Family(
        "lfm2",
        shape="lfm2",
        weights="lfm2",
        defaults={"vocab_size": 65536, "num_key_value_heads": 8, "conv_L_cache": 3, "tie_word_embeddings": True},
    ),
    Family(
        "granitemoehybrid",
        shape="granitemoehybrid",
        weights="granitemoehybrid",
        defaults={
            "vocab_size": 32000,
            "mamba_n_heads": 128,
            "mamba_n_groups": 1,
            "mamba_d_state": 256,
            "mamba_d_head": "auto",
            "mamba_d_conv": 4,
            "mamba_expand": 2,
            "mamba_chunk_size": 256,
            "num_local_experts": 8,
            "shared_intermediate_size": 1024,
            "tie_word_embeddings": False,
        },
    ),
    # ---- Kimi Linear / K3 and MiniMax (issue 12); defaults: transformers 5.24 KimiLinearConfig, MiniMaxConfig
    # (no defaults for the MoE fields: transformers' and vLLM's KimiLinearConfig differ there, and the weights
    # layout refuses a config they would build differently)
    Family(
        "kimi_linear",
        shape="kimi_linear",
        weights="kimi_linear",
        defaults={
            "linear_head_dim": 128,
            "linear_num_heads": 32,
            "linear_conv_kernel_dim": 4,
            "kv_lora_rank": 512,
            "qk_rope_head_dim": 64,
            "qk_nope_head_dim": 128,
            "v_head_dim": 128,
            "vocab_size": 163840,
        },
    ),
    Family("minimax_m2", shape="minimax_m2", weights="minimax_m2", defaults={"head_dim": 128, "vocab_size": 200064}),
    Family("minimax", shape="minimax", weights=None),
    # transformers 5.24 knows MiniMax-M3 only as the minimax_m3_vl wrapper of a minimax_m3_vl_text model; vLLM 0.33's
    # own config names its text backbone minimax_m3_text (vllm/transformers_utils/configs/minimax_m3.py:14, built
    # from the wrapper's text_config dict at :141-143): every spelling reads the same caches
    # (kvplan.core.shapes.minimax_m3)
    Family(
        "minimax_m3",
        shape="minimax_m3",
        weights="minimax_m3",
        aliases=("minimax_m3_vl_text", "minimax_m3_vl", "minimax_m3_text"),
        # MiniMaxM3VLTextConfig's defaults (transformers 5.24 configuration_minimax_m3_vl.py)
        defaults={"vocab_size": 200064, "head_dim": 128, "index_n_heads": 4, "index_head_dim": 128},
    ),
    # DeepseekV4Config's defaults (transformers 5.24 configuration_deepseek_v4.py)
    Family(
        "deepseek_v4",
        shape="deepseek_v4",
        weights="deepseek_v4",
        defaults={"head_dim": 512, "sliding_window": 128, "index_head_dim": 128, "num_nextn_predict_layers": 1},
    ),
)

# canonical name -> Family, and every model_type spelling -> Family (kept in step by register / unregister)
FAMILIES: dict[str, Family] = {}
_BY_MODEL_TYPE: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family to the table; a model_type another family already claims is refused (ValueError)."""
    taken = [t for t in family.model_types if t in _BY_MODEL_TYPE]
    if taken:
        raise ValueError(f"model_type {taken[0]!r} already belongs to family {_BY_MODEL_TYPE[taken[0]].name!r}")
    FAMILIES[family.name] = family
    for model_type in family.model_types:
        _BY_MODEL_TYPE[model_type] = family
    return family


def unregister(name: str) -> Family:
    """Remove the family called `name` (its canonical model_type) from the table and return it."""
    family = FAMILIES.pop(name)
    for model_type in family.model_types:
        _BY_MODEL_TYPE.pop(model_type, None)
    return family


@contextlib.contextmanager
def registered(family: Family) -> Iterator[Family]:
    """The table with `family` added for the duration of a `with` block (tests, experiments)."""
    register(family)
    try:
        yield family
    finally:
        unregister(family.name)


for _family in _TABLE:
    register(_family)
del _family


def family_of(model_type: str | Mapping[str, Any] | None) -> Family | None:
    """The family of a model_type (or of a config dict's `model_type`); None when kvplan does not know it."""
    if isinstance(model_type, Mapping):
        model_type = model_type.get("model_type")
    if not model_type:
        return None
    return _BY_MODEL_TYPE.get(str(model_type))


def canonical_model_type(model_type: str) -> str:
    """The canonical spelling of a model_type (`kimi_k2` -> `deepseek_v3`); unknown types come back unchanged."""
    family = family_of(model_type)
    return family.name if family is not None else model_type
