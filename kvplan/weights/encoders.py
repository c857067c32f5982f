"""The multimodal encoders and projectors of a wrapper checkpoint (vision tower, projector), counted from its
config (`vision_config` and the wrapper's projector keys), tensor by tensor.

kvplan.weights.tensors counts the language model only; a `...ForConditionalGeneration` checkpoint also holds
the towers that turn images into embeddings, and serving engines load them with it (vLLM builds each tower
under `_mark_tower_model` and skips it only when `--limit-mm-per-prompt` sets every modality of the tower to
0, or on pipeline stages after the first under Model Runner V2: vllm-0.33.0
vllm/model_executor/models/interfaces.py:347-398, gemma3_mm.py:552-557).

Public API
----------
- `encoder_tensors(config)`: the tensors of the towers and projectors, `[]` for a config without any
  (no `vision_config` / `audio_config`), None for a wrapper whose encoders kvplan does not count (the caller
  says "not counted"). No torch: plain arithmetic like kvplan.weights.tensors.
- `encoder_parameters(config)`: their parameter count (None: not counted).
- `ENCODERS`: the layouts, by the wrapper's model_type.

Each layout follows what transformers 5.24 builds (`AutoModelForImageTextToText.from_config`) for that wrapper;
tests/weights/test_encoders.py checks every catalog config with a layout against a meta-device build of
the wrapper (everything outside `model.language_model` and `lm_head`). Buffers (position ids, rotary tables)
are not parameters and are not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvplan.core.config import positive_int
from kvplan.errors import ConfigError
from kvplan.weights.tensors import Tensor, language_model_config

# ----------------------------------------------------------------------------------------------- building blocks


def _linear(name: str, out: int, inp: int, bias: bool) -> list[Tensor]:
    t = [Tensor(f"{name}.weight", (out, inp), "linear")]
    return t + ([Tensor(f"{name}.bias", (out,), "bias")] if bias else [])


def _layernorm(name: str, width: int) -> list[Tensor]:
    return [Tensor(f"{name}.weight", (width,), "norm"), Tensor(f"{name}.bias", (width,), "bias")]


def _rmsnorm(name: str, width: int) -> list[Tensor]:
    return [Tensor(f"{name}.weight", (width,), "norm")]


def _vit_block(p: str, h: int, inter: int, fused_qkv: bool, names: tuple[str, ...]) -> list[Tensor]:
    """A pre-norm ViT block with biased projections and LayerNorms (SigLIP, Qwen3-VL's vision blocks): q/k/v
    (fused `qkv` or separate) and the output projection, a two-layer MLP. `names`: the two norms, the
    attention, its output projection, the two MLP layers."""
    n1, n2, attn, out, fc1, fc2 = names
    qkv = _linear(f"{p}.{attn}.qkv", 3 * h, h, True) if fused_qkv else []
    if not fused_qkv:
        for x in ("q_proj", "k_proj", "v_proj"):
            qkv += _linear(f"{p}.{attn}.{x}", h, h, True)
    return (
        _layernorm(f"{p}.{n1}", h)
        + qkv
        + _linear(f"{p}.{attn}.{out}", h, h, True)
        + _layernorm(f"{p}.{n2}", h)
        + _linear(f"{p}.mlp.{fc1}", inter, h, True)
        + _linear(f"{p}.mlp.{fc2}", h, inter, True)
    )


_SIGLIP_NAMES = ("layer_norm1", "layer_norm2", "self_attn", "out_proj", "fc1", "fc2")


def _siglip(v: dict[str, Any], prefix: str) -> list[Tensor]:
    """SiglipVisionModel / Siglip2VisionModel (transformers modeling_siglip.py, modeling_siglip2.py): patch
    embedding (SigLIP: a Conv2d with bias over `image_size / patch_size` squared positions; SigLIP 2 NaFlex: a
    Linear over 3 x patch x patch pixels, `num_patches` positions), the encoder layers, the post LayerNorm, and
    the attention-pooling head only with `vision_use_head` (transformers' default True)."""
    h, inter = positive_int(v, "hidden_size"), positive_int(v, "intermediate_size")
    layers, patch = positive_int(v, "num_hidden_layers"), positive_int(v, "patch_size")
    channels = positive_int(v, "num_channels", default=3)
    e = f"{prefix}.vision_model.embeddings"
    if v.get("model_type") == "siglip2_vision_model":
        t = _linear(f"{e}.patch_embedding", h, channels * patch * patch, True)
        positions = positive_int(v, "num_patches", default=256)
    else:
        t = [Tensor(f"{e}.patch_embedding.weight", (h, channels, patch, patch), "other")]
        t += [Tensor(f"{e}.patch_embedding.bias", (h,), "bias")]
        positions = (positive_int(v, "image_size") // patch) ** 2
    t += [Tensor(f"{e}.position_embedding.weight", (positions, h), "embedding")]
    for i in range(layers):
        t += _vit_block(f"{prefix}.vision_model.encoder.layers.{i}", h, inter, False, _SIGLIP_NAMES)
    t += _layernorm(f"{prefix}.vision_model.post_layernorm", h)
    if v.get("vision_use_head", True):
        heads = f"{prefix}.vision_model.head"
        t += [Tensor(f"{heads}.probe", (1, 1, h), "other")]
        t += [Tensor(f"{heads}.attention.in_proj_weight", (3 * h, h), "linear")]
        t += [Tensor(f"{heads}.attention.in_proj_bias", (3 * h,), "bias")]
        t += _linear(f"{heads}.attention.out_proj", h, h, True)
        t += _layernorm(f"{heads}.layernorm", h)
        t += _linear(f"{heads}.mlp.fc1", inter, h, True) + _linear(f"{heads}.mlp.fc2", h, inter, True)
    return t


def _pixtral(v: dict[str, Any], prefix: str) -> list[Tensor]:
    """PixtralVisionModel (transformers modeling_pixtral.py): a bias-free Conv2d patch embedding, an RMSNorm
    before the transformer, layers of RMSNorms, bias-free q/k/v/o projections and a gated MLP (rotary position
    embeddings are a buffer)."""
    h, inter = positive_int(v, "hidden_size"), positive_int(v, "intermediate_size")
    patch, channels = positive_int(v, "patch_size"), positive_int(v, "num_channels", default=3)
    t = [Tensor(f"{prefix}.patch_conv.weight", (h, channels, patch, patch), "other")]
    t += _rmsnorm(f"{prefix}.ln_pre", h)
    for i in range(positive_int(v, "num_hidden_layers")):
        p = f"{prefix}.transformer.layers.{i}"
        t += _rmsnorm(f"{p}.attention_norm", h) + _rmsnorm(f"{p}.ffn_norm", h)
        for x in ("gate_proj", "up_proj"):
            t += _linear(f"{p}.feed_forward.{x}", inter, h, False)
        t += _linear(f"{p}.feed_forward.down_proj", h, inter, False)
        for x in ("q_proj", "k_proj", "v_proj", "o_proj"):
            t += _linear(f"{p}.attention.{x}", h, h, False)
    return t


_QWEN_VL_NAMES = ("norm1", "norm2", "attn", "proj", "linear_fc1", "linear_fc2")


def _qwen3_vl_merger(p: str, h: int, merge: int, out: int, postshuffle: bool) -> list[Tensor]:
    """Qwen3VLVisionPatchMerger: a LayerNorm (over the merged width after the shuffle for the deepstack
    mergers, over the hidden size before it for the final one) and two biased Linears."""
    merged = h * merge * merge
    return (
        _layernorm(f"{p}.norm", merged if postshuffle else h)
        + _linear(f"{p}.linear_fc1", merged, merged, True)
        + _linear(f"{p}.linear_fc2", out, merged, True)
    )


def _qwen3_vl_vision(v: dict[str, Any], prefix: str) -> list[Tensor]:
    """Qwen3VLVisionModel (transformers modeling_qwen3_vl.py; Qwen3.5 reuses it, modeling_qwen3_5.py): a Conv3d
    patch embedding with bias (temporal x spatial patch), learned position embeddings, `depth` ViT blocks with
    fused qkv, the final merger, and one post-shuffle merger per `deepstack_visual_indexes` entry."""
    h, inter = positive_int(v, "hidden_size"), positive_int(v, "intermediate_size")
    patch, temporal = positive_int(v, "patch_size"), positive_int(v, "temporal_patch_size")
    channels, merge = positive_int(v, "in_channels", default=3), positive_int(v, "spatial_merge_size")
    out = positive_int(v, "out_hidden_size")
    t = [Tensor(f"{prefix}.patch_embed.proj.weight", (h, channels, temporal, patch, patch), "other")]
    t += [Tensor(f"{prefix}.patch_embed.proj.bias", (h,), "bias")]
    t += [Tensor(f"{prefix}.pos_embed.weight", (positive_int(v, "num_position_embeddings"), h), "embedding")]
    for i in range(positive_int(v, "depth")):
        t += _vit_block(f"{prefix}.blocks.{i}", h, inter, True, _QWEN_VL_NAMES)
    t += _qwen3_vl_merger(f"{prefix}.merger", h, merge, out, False)
    for i, _ in enumerate(v.get("deepstack_visual_indexes") or ()):
        t += _qwen3_vl_merger(f"{prefix}.deepstack_merger_list.{i}", h, merge, out, True)
    return t


def _llama4_vision(v: dict[str, Any], prefix: str) -> list[Tensor]:
    """Llama4VisionModel (transformers modeling_llama4.py): an unfold patch embedding (a bias-free Linear over
    3 x patch x patch pixels), a class embedding and `(image_size / patch_size)^2 + 1` learned positions, LayerNorms
    before and after the encoder, `num_hidden_layers` pre-norm ViT blocks with biased q/k/v/o and a biased GELU MLP,
    and the pixel-shuffle adapter: two bias-free Linears, intermediate -> projector_input_dim -> projector_output_dim
    (rotary tables are buffers)."""
    h, inter = positive_int(v, "hidden_size"), positive_int(v, "intermediate_size")
    patch, channels = positive_int(v, "patch_size"), positive_int(v, "num_channels", default=3)
    positions = (positive_int(v, "image_size") // patch) ** 2 + 1
    t = _linear(f"{prefix}.patch_embedding.linear", h, channels * patch * patch, False)
    t += [Tensor(f"{prefix}.class_embedding", (h,), "embedding")]
    t += [Tensor(f"{prefix}.positional_embedding_vlm", (positions, h), "embedding")]
    t += _layernorm(f"{prefix}.layernorm_pre", h) + _layernorm(f"{prefix}.layernorm_post", h)
    names = ("input_layernorm", "post_attention_layernorm", "self_attn", "o_proj", "fc1", "fc2")
    for i in range(positive_int(v, "num_hidden_layers")):
        t += _vit_block(f"{prefix}.model.layers.{i}", h, inter, False, names)
    mid, out = positive_int(v, "projector_input_dim"), positive_int(v, "projector_output_dim")
    t += _linear(f"{prefix}.vision_adapter.mlp.fc1", mid, inter, False)
    return t + _linear(f"{prefix}.vision_adapter.mlp.fc2", out, out, False)


def _gemma4_vision(v: dict[str, Any], prefix: str) -> list[Tensor]:
    """Gemma4VisionModel (transformers modeling_gemma4.py): the patch embedder (a bias-free Linear over 3 x patch x
    patch pixels and a (2, position_embedding_size, hidden) table of x and y positions), `num_hidden_layers` layers
    of four RMSNorms, bias-free q/k/v/o (clippable Linears: their clip bounds are buffers), q and k RMSNorms over the
    head dim (v's has no weight), and a gated MLP. The pooler has no parameters; `standardize`'s bias and scale are
    buffers."""
    h, inter = positive_int(v, "hidden_size"), positive_int(v, "intermediate_size")
    heads = positive_int(v, "num_attention_heads")
    kv, hd = positive_int(v, "num_key_value_heads", default=heads), positive_int(v, "head_dim", default=h // heads)
    patch = positive_int(v, "patch_size")
    t = _linear(f"{prefix}.patch_embedder.input_proj", h, 3 * patch * patch, False)
    t += [
        Tensor(
            f"{prefix}.patch_embedder.position_embedding_table",
            (2, positive_int(v, "position_embedding_size"), h),
            "embedding",
        )
    ]
    for i in range(positive_int(v, "num_hidden_layers")):
        p = f"{prefix}.encoder.layers.{i}"
        for n in (
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
        ):
            t += _rmsnorm(f"{p}.{n}", h)
        t += _linear(f"{p}.self_attn.q_proj.linear", heads * hd, h, False)
        t += _linear(f"{p}.self_attn.k_proj.linear", kv * hd, h, False)
        t += _linear(f"{p}.self_attn.v_proj.linear", kv * hd, h, False)
        t += _linear(f"{p}.self_attn.o_proj.linear", h, heads * hd, False)
        t += _rmsnorm(f"{p}.self_attn.q_norm", hd) + _rmsnorm(f"{p}.self_attn.k_norm", hd)
        for x in ("gate_proj", "up_proj"):
            t += _linear(f"{p}.mlp.{x}.linear", inter, h, False)
        t += _linear(f"{p}.mlp.down_proj.linear", h, inter, False)
    return t


def _merge_area(v: dict[str, Any]) -> int:
    """Patches merged into one token: merge_kernel_size's height x width (both readers' default (2, 2))."""
    merge = v.get("merge_kernel_size", (2, 2))
    if not isinstance(merge, (list, tuple)) or len(merge) != 2:
        raise ConfigError(f"vision_config `merge_kernel_size` must be [height, width], got {merge!r}")
    return positive_int({"merge_kernel_size": merge[0]}, "merge_kernel_size") * positive_int(
        {"merge_kernel_size": merge[1]}, "merge_kernel_size"
    )


# transformers 5.24's Kimi_K25VisionConfig defaults (configuration_kimi_k25.py:42-52) of the keys the remote code
# spells `vt_*`
_KIMI_K25_DEFAULTS = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_attention_heads": 16,
    "num_hidden_layers": 27,
}


def _kimi_k25(cfg: dict[str, Any], text: dict[str, Any]) -> list[Tensor] | None:
    """Kimi_K25ForConditionalGeneration (transformers modeling_kimi_k25.py; vLLM builds it from the same upstream
    Kimi_K25Config: vllm-0.33.0 vllm/transformers_utils/config.py:144, models/kimi_k25_vit.py:18). The vision
    tower: a biased Conv2d patch embedding (modeling_kimi_k25.py:149), a (pos_emb_height, pos_emb_width, hidden)
    learned position grid (:104-106; its time table is a buffer, :114), `num_hidden_layers` blocks of two
    LayerNorms, biased q/k/v/proj and a biased fc1/fc2 MLP (:374-380, :294-301, :221-223), a final LayerNorm
    (:494); the projector: a LayerNorm over projection_hidden_size and biased in_proj (merged -> merged) and
    out_proj (merged -> text hidden), merged = hidden x merge_kernel_size[0] x [1] (:546-556). vLLM's
    MoonViT3dPretrainedModel and KimiK25MultiModalProjector hold the same tensors (kimi_k25_vit.py:709-760,
    :369-430, :932-946). The checkpoints' `vt_*` keys are the remote code's names; the upstream config reads
    `hidden_size`, `num_hidden_layers`, ... and falls back to its defaults (configuration_kimi_k25.py:42-52), as
    this layout does; a `vt_*` key that disagrees with the value upstream reads (a tower the checkpoint's tensors
    would not fit) is not counted (None)."""
    v = cfg["vision_config"]
    for key, default in _KIMI_K25_DEFAULTS.items():
        if f"vt_{key}" in v and v[f"vt_{key}"] != v.get(key, default):
            return None
    h, inter = positive_int(v, "hidden_size", default=1152), positive_int(v, "intermediate_size", default=4304)
    patch = positive_int(v, "patch_size", default=14)
    merged = h * _merge_area(v)
    p = "model.vision_tower"
    t = [Tensor(f"{p}.patch_embed.proj.weight", (h, 3, patch, patch), "other")]
    t += [Tensor(f"{p}.patch_embed.proj.bias", (h,), "bias")]
    grid = (positive_int(v, "pos_emb_height", default=64), positive_int(v, "pos_emb_width", default=64), h)
    t += [Tensor(f"{p}.patch_embed.pos_emb.position_embeddings", grid, "embedding")]
    for i in range(positive_int(v, "num_hidden_layers", default=27)):
        b = f"{p}.layers.{i}"
        t += _layernorm(f"{b}.norm1", h) + _layernorm(f"{b}.norm2", h)
        for x in ("q_proj", "k_proj", "v_proj", "proj"):
            t += _linear(f"{b}.attn.{x}", h, h, True)
        t += _linear(f"{b}.mlp.fc1", inter, h, True) + _linear(f"{b}.mlp.fc2", h, inter, True)
    t += _layernorm(f"{p}.final_layernorm", h)
    m = "model.mm_projector"
    t += _layernorm(f"{m}.pre_norm", positive_int(cfg, "projection_hidden_size", default=1152))
    t += _linear(f"{m}.in_proj", merged, merged, True)
    return t + _linear(f"{m}.out_proj", positive_int(text, "hidden_size"), merged, True)


def _kimi_k3(cfg: dict[str, Any], text: dict[str, Any]) -> list[Tensor]:
    """KimiK3ForConditionalGeneration: transformers 5.24 has no kimi_k3, so this follows vLLM's model file
    (vllm-0.33.0 vllm/models/kimi_k3/nvidia/model.py:1618-1667): MoonViT3dPretrainedModel and
    KimiK25MultiModalProjector (model_executor/models/kimi_k25_vit.py) over vLLM's KimiK3VisionConfig, which reads
    the `vt_*` keys with its own defaults (transformers_utils/configs/kimi_k3.py:16-83). The tower: a Conv2d patch
    embedding, biased with patch_embed_proj_bias (kimi_k25_vit.py:213-219), the (init_pos_emb_height,
    init_pos_emb_width, hidden) position grid (:141; _get_pos_emb_size :51-56; the time table is a buffer,
    :142-148), `vt_num_hidden_layers` blocks of two norms (RMSNorm or LayerNorm by norm_type, :361-366), a fused
    wqkv (hidden -> 3 x qkv_hidden_size) and wo (qkv_hidden_size -> hidden), biased with attn_bias (:413-429),
    an fc0/fc1 MLP biased with linear_bias (:336-350), and a final norm (:563-565); the patchmergerv2 projector:
    bias-free linear_1 (merged -> merged) and linear_2 (merged -> text hidden) and an RMSNorm over the text hidden
    size (:910-929; the patchmerger projector: a LayerNorm over the tower width and biased linears, :932-946)."""
    v = cfg["vision_config"]
    h, inter = positive_int(v, "vt_hidden_size", default=1024), positive_int(v, "vt_intermediate_size", default=4096)
    qkv = positive_int(v, "qkv_hidden_size", default=1536)
    patch = positive_int(v, "patch_size", default=14)
    merged = h * _merge_area(v)
    rms = v.get("norm_type", "rmsnorm") == "rmsnorm"
    attn_bias, linear_bias = bool(v.get("attn_bias", False)), bool(v.get("linear_bias", False))

    def norm(name: str, width: int) -> list[Tensor]:
        return _rmsnorm(name, width) if rms else _layernorm(name, width)

    p = "vision_tower"
    t = [Tensor(f"{p}.patch_embed.proj.weight", (h, 3, patch, patch), "other")]
    if v.get("patch_embed_proj_bias", False):
        t += [Tensor(f"{p}.patch_embed.proj.bias", (h,), "bias")]
    grid = (positive_int(v, "init_pos_emb_height", default=64), positive_int(v, "init_pos_emb_width", default=64), h)
    t += [Tensor(f"{p}.patch_embed.pos_emb.weight", grid, "embedding")]
    for i in range(positive_int(v, "vt_num_hidden_layers", default=27)):
        b = f"{p}.encoder.blocks.{i}"
        t += norm(f"{b}.norm0", h) + norm(f"{b}.norm1", h)
        t += _linear(f"{b}.wqkv", 3 * qkv, h, attn_bias) + _linear(f"{b}.wo", h, qkv, attn_bias)
        t += _linear(f"{b}.mlp.fc0", inter, h, linear_bias) + _linear(f"{b}.mlp.fc1", h, inter, linear_bias)
    t += norm(f"{p}.encoder.final_layernorm", h)
    th = positive_int(text, "hidden_size")
    if v.get("mm_projector_type", "patchmergerv2") == "patchmergerv2":
        t += _linear("mm_projector.linear_1", merged, merged, False) + _linear(
            "mm_projector.linear_2", th, merged, False
        )
        return t + _rmsnorm("mm_projector.post_norm", th)
    t += _layernorm("mm_projector.pre_norm", h)
    return (
        t + _linear("mm_projector.linear_1", merged, merged, True) + _linear("mm_projector.linear_2", th, merged, True)
    )


# ----------------------------------------------------------------------------------------------- wrappers


def _gemma3(cfg: dict[str, Any], text: dict[str, Any]) -> list[Tensor]:
    """Gemma3ForConditionalGeneration (transformers modeling_gemma3.py): a SigLIP vision tower and
    Gemma3MultiModalProjector, one (vision hidden x text hidden) matrix and an RMSNorm over the vision width."""
    v = cfg["vision_config"]
    vh = positive_int(v, "hidden_size")
    p = "model.multi_modal_projector"
    return (
        _siglip(v, "model.vision_tower")
        + [Tensor(f"{p}.mm_input_projection_weight", (vh, positive_int(text, "hidden_size")), "linear")]
        + _rmsnorm(f"{p}.mm_soft_emb_norm", vh)
    )


def _mistral3(cfg: dict[str, Any], text: dict[str, Any]) -> list[Tensor]:
    """Mistral3ForConditionalGeneration (transformers modeling_mistral3.py): a Pixtral vision tower and
    Mistral3MultiModalProjector: an RMSNorm, the patch merger (spatial_merge_size squared patches -> one, no
    bias), then vision width (x the feature layers taken) -> text hidden -> text hidden, biased with
    `multimodal_projector_bias`."""
    v = cfg["vision_config"]
    vh, th = positive_int(v, "hidden_size"), positive_int(text, "hidden_size")
    merge = positive_int(cfg, "spatial_merge_size", default=2)
    layer = cfg.get("vision_feature_layer", -1)
    feature_layers = len(layer) if isinstance(layer, list) else 1
    bias = bool(cfg.get("multimodal_projector_bias", True))
    p = "model.multi_modal_projector"
    return (
        _pixtral(v, "model.vision_tower")
        + _rmsnorm(f"{p}.norm", vh)
        + _linear(f"{p}.patch_merger.merging_layer", vh, vh * merge * merge, False)
        + _linear(f"{p}.linear_1", th, vh * feature_layers, bias)
        + _linear(f"{p}.linear_2", th, th, bias)
    )


def _qwen3_vl(cfg: dict[str, Any], text: dict[str, Any]) -> list[Tensor]:
    """Qwen3-VL / Qwen3.5 wrappers: the vision model alone (its mergers project to the text width)."""
    return _qwen3_vl_vision(cfg["vision_config"], "model.visual")


def _lfm2_vl(cfg: dict[str, Any], text: dict[str, Any]) -> list[Tensor]:
    """Lfm2VlForConditionalGeneration (transformers modeling_lfm2_vl.py): a SigLIP 2 vision tower and
    Lfm2VlMultiModalProjector: an optional LayerNorm (`projector_use_layernorm`) over the pixel-unshuffled width
    (vision hidden x downsample_factor squared), then two Linears (biased with `projector_bias`) through
    `projector_hidden_size` to the text hidden size."""
    v = cfg["vision_config"]
    merged = positive_int(v, "hidden_size") * positive_int(cfg, "downsample_factor", default=2) ** 2
    mid, th = positive_int(cfg, "projector_hidden_size", default=2560), positive_int(text, "hidden_size")
    bias = bool(cfg.get("projector_bias", True))
    p = "model.multi_modal_projector"
    t = _siglip(v, "model.vision_tower")
    if cfg.get("projector_use_layernorm", True):
        t += _layernorm(f"{p}.layer_norm", merged)
    return t + _linear(f"{p}.linear_1", mid, merged, bias) + _linear(f"{p}.linear_2", th, mid, bias)


def _llama4(cfg: dict[str, Any], text: dict[str, Any]) -> list[Tensor]:
    """Llama4ForConditionalGeneration (transformers modeling_llama4.py): the Llama 4 vision model and
    Llama4MultiModalProjector, one bias-free (vision_output_dim -> text hidden) Linear. vLLM builds the same tower
    (vllm-0.33.0 vllm/model_executor/models/mllama4.py:752-790, under `_mark_tower_model` at :765), split over TP
    unless `mm_encoder_tp_mode` is "data" (:758)."""
    v = cfg["vision_config"]
    p = "multi_modal_projector"
    return _llama4_vision(v, "vision_model") + _linear(
        f"{p}.linear_1", positive_int(text, "hidden_size"), positive_int(v, "vision_output_dim"), False
    )


def _gemma4(cfg: dict[str, Any], text: dict[str, Any]) -> list[Tensor] | None:
    """Gemma4ForConditionalGeneration (transformers modeling_gemma4.py): the Gemma 4 vision model and
    Gemma4MultimodalEmbedder, a bias-free (vision hidden -> text hidden) Linear after a weightless RMSNorm. None
    (not counted) for a checkpoint with an `audio_config`: kvplan has no layout for Gemma 4's audio tower."""
    if isinstance(cfg.get("audio_config"), dict):
        return None
    v = cfg["vision_config"]
    width = positive_int(v, "output_proj_dims", default=positive_int(v, "hidden_size"))
    return _gemma4_vision(v, "model.vision_tower") + _linear(
        "model.embed_vision.embedding_projection", positive_int(text, "hidden_size"), width, False
    )


def _minimax_m3_merge(v: dict[str, Any], key: str) -> int:
    """`spatial_merge_size` / `temporal_patch_size` of MiniMax-M3's vision tower: vLLM 0.33 reads them from
    `vision_config.img_token_compression_config` (default 2: models/minimax_m3/common/vision_tower.py:45-46,
    :309-311, :623-624), transformers 5.24 from `vision_config` itself (default 2, configuration_minimax_m3_vl.py
    MiniMaxM3VLVisionConfig); a config where the two disagree is refused."""
    compression = v.get("img_token_compression_config")
    vllm = positive_int(compression, key, default=2) if isinstance(compression, dict) else 2
    transformers = positive_int(v, key, default=2)
    if vllm != transformers:
        raise ConfigError(
            f"minimax_m3_vl vision_config gives {key} {transformers} and img_token_compression_config.{key} {vllm}: "
            "transformers reads the first, vLLM the second, so the checkpoint's tensors are ambiguous",
            hint=f"make vision_config.{key} and img_token_compression_config.{key} agree",
        )
    return vllm


def _minimax_m3_vl(cfg: dict[str, Any], text: dict[str, Any]) -> list[Tensor]:
    """MiniMaxM3SparseForConditionalGeneration (transformers 5.24 modeling_minimax_m3_vl.py MiniMaxM3VLVisionModel
    and MiniMaxM3VLMultiModalProjector; vLLM 0.33 MiniMaxVLVisionModel, models/minimax_m3/common/vision_tower.py,
    built under `_mark_tower_model` for image and video, nvidia/model.py:1161-1168): a bias-free Conv3d patch
    embedding (channels x temporal_patch_size x patch x patch), a LayerNorm before the encoder and none after it
    (the checkpoint has none: vision_tower.py:629-636), `num_hidden_layers` CLIP blocks with biased q/k/v/out and a
    biased fc1/fc2 MLP, then the projector, vision hidden -> projector_hidden_size -> text hidden (biased), and the
    patch merger, spatial_merge_size^2 x text hidden -> projector_hidden_size -> text hidden (biased; vLLM's
    `patch_merge_mlp`, transformers' merge_linear_1/2). projector_hidden_size: the wrapper's (vLLM falls back to the
    text hidden size, vision_tower.py:541 and :581; transformers to 6144: kvplan takes the config's or vLLM's)."""
    v = cfg["vision_config"]
    h, inter = positive_int(v, "hidden_size"), positive_int(v, "intermediate_size")
    patch, channels = positive_int(v, "patch_size"), positive_int(v, "num_channels", default=3)
    temporal, merge = _minimax_m3_merge(v, "temporal_patch_size"), _minimax_m3_merge(v, "spatial_merge_size")
    th = positive_int(text, "hidden_size")
    mid = positive_int(cfg, "projector_hidden_size", default=th)
    p = "model.vision_tower"
    t = [Tensor(f"{p}.embeddings.proj.weight", (h, channels, temporal, patch, patch), "linear")]
    t += _layernorm(f"{p}.pre_layrnorm", h)
    for i in range(positive_int(v, "num_hidden_layers")):
        t += _vit_block(f"{p}.layers.{i}", h, inter, False, _SIGLIP_NAMES)
    q = "model.multi_modal_projector"
    t += _linear(f"{q}.linear_1", mid, h, True) + _linear(f"{q}.linear_2", th, mid, True)
    return (
        t
        + _linear(f"{q}.merge_linear_1", mid, th * merge * merge, True)
        + _linear(f"{q}.merge_linear_2", th, mid, True)
    )


# The layouts by the wrapper's model_type: (raw config, language model config) -> tensors (None: not counted).
ENCODERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[Tensor] | None]] = {
    "gemma3": _gemma3,
    "mistral3": _mistral3,
    "qwen3_vl": _qwen3_vl,
    "qwen3_vl_moe": _qwen3_vl,
    "qwen3_5": _qwen3_vl,
    "qwen3_5_moe": _qwen3_vl,
    "lfm2_vl": _lfm2_vl,
    "llama4": _llama4,
    "gemma4": _gemma4,
    "kimi_k25": _kimi_k25,
    "kimi_k3": _kimi_k3,
    "minimax_m3_vl": _minimax_m3_vl,
}
_ENCODER_KEYS = ("vision_config", "audio_config")


def has_encoders(config: dict[str, Any]) -> bool:
    """The config describes a multimodal wrapper: it holds a `vision_config` or an `audio_config`."""
    return isinstance(config, dict) and any(isinstance(config.get(k), dict) for k in _ENCODER_KEYS)


def encoder_tensors(config: dict[str, Any]) -> list[Tensor] | None:
    """The encoders' and projectors' tensors ([] without encoders; None: a wrapper kvplan does not count)."""
    if not has_encoders(config):
        return []
    layout = ENCODERS.get(str(config.get("model_type") or ""))
    if layout is None or not isinstance(config.get("vision_config"), dict):
        return None
    return layout(config, language_model_config(config))


def encoder_parameters(config: dict[str, Any]) -> int | None:
    """Parameters of the multimodal encoders and projectors (0 without any; None: not counted)."""
    tensors = encoder_tensors(config)
    return None if tensors is None else sum(t.numel for t in tensors if t.role != "buffer")
