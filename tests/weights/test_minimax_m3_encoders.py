"""MiniMax-M3's vision tower and projectors (MiniMaxM3SparseForConditionalGeneration): kvplan's layout against
transformers 5.24's meta-device build tensor by tensor, against what vLLM 0.33 builds (cited lines), and the
checkpoint's total against vLLM's own recipe figure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from kvplan.engines.vllm import TOWER_MODALITIES
from kvplan.errors import ConfigError
from kvplan.weights.encoders import encoder_parameters, encoder_tensors
from kvplan.weights.tensors import count_parameters, weight_tensors
from tests.engines.test_minimax_m3_vllm import _config

from conftest import ENGINE_SOURCES, check_cited_line

_TRANSFORMERS = importlib.util.find_spec("transformers")  # cited where installed (skipped otherwise)
HF = Path(_TRANSFORMERS.origin if _TRANSFORMERS and _TRANSFORMERS.origin else "/nonexistent").parent / (
    "models/minimax_m3_vl/configuration_minimax_m3_vl.py"
)
VLLM = ENGINE_SOURCES / "vllm-0.33.0"
TOWER = VLLM / "vllm/models/minimax_m3/common/vision_tower.py"

CITED = [
    # transformers 5.24's vision defaults (the values the test config spells out)
    (HF, 168, "hidden_size: int = 1280"),
    (HF, 169, "intermediate_size: int = 5120"),
    (HF, 170, "num_hidden_layers: int = 32"),
    (HF, 171, "num_attention_heads: int = 16"),
    (HF, 172, "num_channels: int = 3"),
    (HF, 174, "patch_size: int = 14"),
    (HF, 175, "temporal_patch_size: int = 2"),
    (HF, 176, "spatial_merge_size: int = 2"),
    (HF, 202, "projector_hidden_size: int = 6144"),
    # vLLM's tower: Conv3d without bias, merge sizes from img_token_compression_config, no post-LayerNorm, the
    # projector and the patch merger (text hidden x merge^2 in)
    (TOWER, 45, "compression = config.img_token_compression_config"),
    (TOWER, 46, 'temporal_patch_size = compression.get("temporal_patch_size", 2)'),
    (TOWER, 60, "bias=False,"),
    (TOWER, 359, "self.pre_layrnorm = nn.LayerNorm(embed_dim, eps=config.layer_norm_eps)"),
    (TOWER, 541, "mid = projector_hidden_size if projector_hidden_size else text_hidden_size"),
    (TOWER, 582, "merge_in = text_hidden_size * spatial_merge_size**2"),
    (TOWER, 624, 'spatial_merge_size: int = compression.get("spatial_merge_size", 2)'),
    (TOWER, 635, "require_post_norm=False,"),
    (
        VLLM / "vllm/models/minimax_m3/nvidia/model.py",
        1161,
        'with self._mark_tower_model(vllm_config, {"image", "video"}):',
    ),
    # the checkpoint's size as vLLM's recipe gives it
    (VLLM / "recipes/models/MiniMaxAI/MiniMax-M3.yaml", 37, "# 427.04B total from safetensors metadata"),
    (VLLM / "recipes/models/MiniMaxAI/MiniMax-M3.yaml", 37, "(BF16: 426.99B + F32: 46.3M)"),
    (TOWER, 65, "if self.patch_embedding.weight.dtype != pixel_values.dtype:"),
]


@pytest.mark.parametrize(("source", "line", "text"), CITED, ids=[f"{s.name}:{n}" for s, n, _ in CITED])
def test_cited_lines(source, line, text):
    check_cited_line(source, line, text)


VISION = {
    "model_type": "clip_vision_model",
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "num_channels": 3,
    "patch_size": 14,
    "img_token_compression_config": {"spatial_merge_size": 2, "temporal_patch_size": 2},
}


def _wrapper(text_layers: int | None = None) -> dict:
    config = {**_config(), "vision_config": dict(VISION), "projector_hidden_size": 6144}
    if text_layers is not None:
        text = dict(config["text_config"])
        sparse = dict(text["sparse_attention_config"])
        for key in ("sparse_attention_freq", "sparse_disable_index_value"):
            sparse[key] = sparse[key][:text_layers]
        text.update(num_hidden_layers=text_layers, moe_layer_freq=text["moe_layer_freq"][:text_layers])
        config["text_config"] = {**text, "sparse_attention_config": sparse}
    return config


# conv 1280 x 3 x 2 x 14 x 14, the pre-LayerNorm, 32 blocks of 19,677,440, the projector (1280 -> 6144 -> 6144)
# and the merger (4 x 6144 -> 6144 -> 6144), every Linear biased
_BLOCK = 2 * 2 * 1280 + 4 * (1280 * 1280 + 1280) + (5120 * 1280 + 5120) + (1280 * 5120 + 1280)
_TOWER = 1280 * 3 * 2 * 14 * 14 + 2 * 1280 + 32 * _BLOCK
_PROJECTORS = (6144 * 1280 + 6144) + (6144 * 6144 + 6144) + (6144 * 4 * 6144 + 6144) + (6144 * 6144 + 6144)


def test_minimax_m3_tower_and_projectors_count():
    assert _BLOCK == 19_677_440
    assert encoder_parameters(_wrapper()) == _TOWER + _PROJECTORS == 865_567_232


def test_minimax_m3_checkpoint_total_is_vllms_recipe_figure():
    """The language model (kvplan.weights.tensors) and the towers add up to the 427.04B vLLM's recipe reads from
    the checkpoint's safetensors metadata, and its split too: "F32: 46.3M" are the float32 routers (57 x 128 x
    6144), their e_score_correction_bias buffers (57 x 128) and, by elimination, the Conv3d patch embedding
    (1,505,280: vLLM casts it to the pixel dtype, vision_tower.py:65-66); "BF16: 426.99B" the rest."""
    config = _wrapper()
    total = count_parameters(config) + encoder_parameters(config)
    assert round(total / 1e9, 2) == 427.04
    text = weight_tensors(config)
    buffers = sum(t.numel for t in text if t.role == "buffer")
    f32 = sum(t.numel for t in text if t.dtype == "float32")
    conv = next(t for t in encoder_tensors(config) or [] if t.name.endswith("embeddings.proj.weight"))
    assert (buffers, f32) == (57 * 128, 57 * 128 * 6144 + 57 * 128)
    assert round((f32 + conv.numel) / 1e6, 1) == 46.3
    assert round((total + buffers - f32 - conv.numel) / 1e9, 2) == 426.99


@pytest.mark.torch
def test_minimax_m3_tensors_match_transformers_meta_build():
    """Every tensor outside the language model, by name and shape, as transformers 5.24's meta-device
    MiniMaxM3SparseForConditionalGeneration holds it (its language model cut to one layer)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    config = _wrapper(text_layers=1)
    kwargs = {k: v for k, v in config.items() if k not in ("auto_map", "model_type")}
    hf_config = transformers.AutoConfig.for_model("minimax_m3_vl", **kwargs)
    with torch.device("meta"):
        model = transformers.AutoModelForImageTextToText.from_config(hf_config)
    assert type(model).__name__ == "MiniMaxM3SparseForConditionalGeneration"
    theirs = {
        name: tuple(p.shape)
        for name, p in model.named_parameters()
        if not name.startswith(("model.language_model.", "lm_head."))
    }
    ours = {t.name: tuple(t.shape) for t in encoder_tensors(config) or []}
    assert ours == theirs
    assert len(ours) == 523


def test_minimax_m3_merge_sizes_that_disagree_are_refused():
    config = _wrapper()
    config["vision_config"] = {**VISION, "spatial_merge_size": 4}  # transformers would read 4, vLLM 2
    with pytest.raises(ConfigError, match="img_token_compression_config.spatial_merge_size"):
        encoder_tensors(config)


def test_vllm_counts_the_minimax_m3_tower_for_images_and_video():
    assert TOWER_MODALITIES["minimax_m3_vl"] == ("image", "video")
