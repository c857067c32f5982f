"""kvplan.weights.encoders: multimodal towers and projectors, against transformers' meta-device builds of the
wrappers (AutoModelForImageTextToText: everything outside `model.language_model` and `lm_head`)."""

from __future__ import annotations

import pytest

from kvplan.weights.encoders import ENCODERS, encoder_parameters, has_encoders

from conftest import all_config_names, load_config

# wrappers with a tower in their config (the trimmed Llama-4-Maverick copy holds no vision_config: kvplan counts
# nothing there, while transformers would build its default tower)
WRAPPERS = [
    n for n in all_config_names() if load_config(n).get("model_type") in ENCODERS and has_encoders(load_config(n))
]


def meta_encoder_count(d: dict) -> int:
    """Parameters of the wrapper transformers builds on the meta device, outside its language model and head."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    kwargs = {k: v for k, v in d.items() if k not in ("auto_map", "model_type")}
    cfg = transformers.AutoConfig.for_model(d["model_type"], **kwargs)
    with torch.device("meta"):
        model = transformers.AutoModelForImageTextToText.from_config(cfg)
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        # Llama 4's wrapper names its language model `language_model.` (no `model.` prefix)
        if not name.startswith(("model.language_model.", "language_model.", "lm_head."))
    )


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("name", WRAPPERS)
def test_catalog_wrappers_match_transformers_meta_count(name):
    config = load_config(name)
    assert encoder_parameters(config) == meta_encoder_count(config)


_SIGLIP = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
_TEXT = {
    "hidden_size": 96,
    "intermediate_size": 192,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 24,
    "vocab_size": 1000,
}
SYNTHETIC = {
    "siglip_with_head": {  # vision_use_head (transformers' default): the attention-pooling head is built
        "model_type": "gemma3",
        "mm_tokens_per_image": 4,
        "vision_config": {**_SIGLIP, "model_type": "siglip_vision_model", "image_size": 32, "patch_size": 8},
        "text_config": {**_TEXT, "model_type": "gemma3_text"},
    },
    "lfm2_vl_layernorm": {  # projector_use_layernorm, an unbiased projector, downsample 2
        "model_type": "lfm2_vl",
        "projector_hidden_size": 80,
        "projector_bias": False,
        "projector_use_layernorm": True,
        "vision_config": {
            **_SIGLIP,
            "model_type": "siglip2_vision_model",
            "num_patches": 16,
            "patch_size": 4,
            "vision_use_head": False,
        },
        "text_config": {**_TEXT, "model_type": "lfm2", "layer_types": ["full_attention", "conv"], "conv_L_cache": 3},
    },
}


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_wrappers_match_transformers_meta_count(name):
    assert encoder_parameters(SYNTHETIC[name]) == meta_encoder_count(SYNTHETIC[name])


def test_counts_checked_against_the_meta_builds():
    """transformers 5.24 meta-device builds: Gemma-3-27B-it's SigLIP tower 416,866,032 + projector 6,194,304
    (0.79 GiB in bf16 of the 1.14 GiB kvplan missed on the llm-d vLLM 0.19.0 log); Qwen3-VL-32B's vision model
    595,266,800 (three deepstack mergers); Devstral-Small-2's Pixtral tower 403,305,472 + projector 35,652,608."""
    assert encoder_parameters(load_config("google__gemma-3-27b-it")) == 416_866_032 + 6_194_304
    assert encoder_parameters(load_config("Qwen__Qwen3-VL-32B-Instruct")) == 595_266_800
    assert encoder_parameters(load_config("mistralai__Devstral-Small-2-24B-Instruct")) == 403_305_472 + 35_652_608


def test_text_models_have_none_and_unknown_wrappers_are_not_counted():
    llama = load_config("meta-llama__Llama-3.1-8B")
    assert not has_encoders(llama) and encoder_parameters(llama) == 0
    kimi = load_config("moonshotai__Kimi-K2.5")  # kimi_k25's MoonViT tower: no layout
    assert has_encoders(kimi) and encoder_parameters(kimi) is None
    gemma4 = load_config("google__gemma-4-26B-A4B")  # an audio tower beside the vision one: no layout for it
    with_audio = {**gemma4, "audio_config": {"model_type": "gemma4_audio", "hidden_size": 1024}}
    assert encoder_parameters(gemma4) and encoder_parameters(with_audio) is None


@pytest.mark.torch
def test_llama4_scout_vision_tower_matches_transformers_meta_count():
    """Llama-4-Scout's vision model and projector (the catalog config's `vision_config`) against transformers 5.24's
    meta-device Llama4ForConditionalGeneration, its language model cut to one layer (the count outside it does not
    depend on the layers; the projector reads the text hidden size): 871,932,416 parameters, 1.62 GiB in bf16, of
    which vLLM holds 1/TP per GPU (mllama4.py:752-790, split unless mm_encoder_tp_mode is "data")."""
    config = load_config("meta-llama__Llama-4-Scout-17B-16E-Instruct")
    small = {**config, "text_config": {**config["text_config"], "num_hidden_layers": 1}}
    assert encoder_parameters(config) == 871_932_416 == meta_encoder_count(small)


@pytest.mark.torch
@pytest.mark.parametrize("name", ["google__gemma-4-26B-A4B", "nvidia__Gemma-4-31B-IT-NVFP4"])
def test_gemma4_vision_tower_matches_transformers_meta_count(name):
    """Gemma 4's vision model and embedder (both catalog configs hold `audio_config: null`) against transformers
    5.24's meta-device Gemma4ForConditionalGeneration, its language model cut to one layer: 26B-A4B 572,792,112
    parameters (27 layers of 1152 wide, the (2, 10240, 1152) position table, a 1152 -> 2816 projection); 31B
    575,741,232 (its text hidden size 5376)."""
    config = load_config(name)
    text = config["text_config"]
    small = {**config, "text_config": {**text, "num_hidden_layers": 1, "layer_types": text["layer_types"][:1]}}
    small.pop("quantization_config", None)  # the tower's parameter count, not its storage
    expected = {"google__gemma-4-26B-A4B": 572_792_112, "nvidia__Gemma-4-31B-IT-NVFP4": 575_741_232}[name]
    assert encoder_parameters(config) == expected == meta_encoder_count(small)
