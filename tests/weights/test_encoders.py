"""kvplan.weights.encoders: multimodal towers and projectors, against transformers' meta-device builds of the
wrappers (AutoModelForImageTextToText: everything outside `model.language_model` and `lm_head`)."""

from __future__ import annotations

import pytest

from kvplan.weights.encoders import ENCODERS, encoder_parameters, has_encoders

from conftest import all_config_names, load_config

# wrappers with a tower in their config (Llama-4-Maverick's copy has its vision_config since aiconfigurator@64c5ddb6,
# SOURCES-2026.md); kimi_k3 is not in transformers 5.24, its layout follows vLLM's model file (tested below)
NO_TRANSFORMERS_CLASS = {"kimi_k3"}
WRAPPERS = [
    n
    for n in all_config_names()
    if load_config(n).get("model_type") in ENCODERS
    and load_config(n).get("model_type") not in NO_TRANSFORMERS_CLASS
    and has_encoders(load_config(n))
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
    kimi = load_config("moonshotai__Kimi-K2.5")  # a vt_* key upstream does not read, disagreeing with its default
    wider = {**kimi, "vision_config": {**kimi["vision_config"], "vt_hidden_size": 2048}}
    assert encoder_parameters(kimi) and encoder_parameters(wider) is None
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
def test_llama4_maverick_vision_tower_matches_transformers_meta_count():
    """Llama-4-Maverick's catalog config (aiconfigurator@64c5ddb6, SOURCES-2026.md) has its `vision_config`: the same
    tower and projector as Scout's (the same vision_config, the same 5120 text hidden size), 871,932,416 parameters,
    against transformers 5.24's meta-device build with the language model cut to one layer."""
    config = load_config("meta-llama__Llama-4-Maverick-17B-128E-Instruct")
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


_DEEPSEEK_TEXT = {
    "model_type": "deepseek_v3",
    "hidden_size": 96,
    "intermediate_size": 192,
    "moe_intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "q_lora_rank": 32,
    "kv_lora_rank": 16,
    "qk_rope_head_dim": 8,
    "qk_nope_head_dim": 16,
    "v_head_dim": 16,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "first_k_dense_replace": 1,
    "vocab_size": 1000,
}


@pytest.mark.torch
@pytest.mark.parametrize("name", ["moonshotai__Kimi-K2.5", "moonshotai__Kimi-K2.6"])
def test_kimi_k25_vision_tower_matches_transformers_meta_count(name):
    """Kimi K2.5 / K2.6's MoonViT tower and projector against transformers 5.24's meta-device
    Kimi_K25ForConditionalGeneration (vLLM builds the same from the same upstream config: kimi_k25.py:349-370), its
    language model cut to one layer: 471,143,920 parameters (27 blocks of 1152 wide, a (64, 64, 1152) position grid,
    a 4608 -> 4608 -> 7168 projector), 0.88 GiB in bf16."""
    config = load_config(name)
    small = {**config, "text_config": {**config["text_config"], "num_hidden_layers": 1}}
    assert encoder_parameters(config) == 471_143_920 == meta_encoder_count(small)


@pytest.mark.torch
def test_synthetic_kimi_k25_matches_transformers_meta_count():
    """Non-default sizes read from the upstream keys (hidden, layers, intermediate, grid, merge, projector norm)."""
    vision = {"hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2, "num_attention_heads": 4}
    vision |= {"pos_emb_height": 8, "pos_emb_width": 6, "patch_size": 7, "merge_kernel_size": [2, 3]}
    config = {"model_type": "kimi_k25", "projection_hidden_size": 64, "vision_config": vision}
    config["text_config"] = _DEEPSEEK_TEXT
    assert encoder_parameters(config) == meta_encoder_count(config)


def _kimi_k3_block(h: int, qkv: int, inter: int, *, norm: int, attn_bias: bool, linear_bias: bool) -> int:
    """One MoonViTEncoderLayer as vLLM builds it (kimi_k25_vit.py:399-429): norm0/norm1, wqkv (QKVParallelLinear,
    3 x qkv_hidden_size out), wo (qkv_hidden_size in), MLP2 fc0/fc1."""
    return 2 * norm * h + 4 * qkv * h + attn_bias * (3 * qkv + h) + 2 * h * inter + linear_bias * (inter + h)


def test_kimi_k3_vision_tower_follows_vllm_model_file():
    """Kimi K3 (transformers 5.24 has no kimi_k3; vLLM's model file: models/kimi_k3/nvidia/model.py:1618-1667 over
    KimiK3VisionConfig's vt_* keys): 27 bias-free RMSNorm blocks 1024 wide with qkv_hidden_size 1536, a bias-free
    Conv2d, the (64, 64, 1024) grid, a final RMSNorm, and the patchmergerv2 projector (4096 -> 4096 -> 7168, bias-free,
    an RMSNorm over 7168): 447,358,976 parameters."""
    config = load_config("moonshotai__Kimi-K3")
    v = config["vision_config"]
    h, qkv, inter, th = v["vt_hidden_size"], v["qkv_hidden_size"], v["vt_intermediate_size"], 7168
    blocks = v["vt_num_hidden_layers"] * _kimi_k3_block(h, qkv, inter, norm=1, attn_bias=False, linear_bias=False)
    tower = blocks + h * 3 * 14 * 14 + 64 * 64 * h + h
    projector = (4 * h) ** 2 + th * 4 * h + th
    assert encoder_parameters(config) == tower + projector == 447_358_976


def test_kimi_k3_switches_follow_vllm_model_file():
    """attn_bias, linear_bias, patch_embed_proj_bias, norm_type layernorm and the patchmerger projector each add
    what kimi_k25_vit.py builds for them (:413-429, :336-350, :213-219, :361-366, :932-946)."""
    config = load_config("moonshotai__Kimi-K3")
    v, base = config["vision_config"], encoder_parameters(config)
    assert base is not None
    h, qkv, inter, layers = v["vt_hidden_size"], v["qkv_hidden_size"], v["vt_intermediate_size"], 27

    def with_(**keys):
        return encoder_parameters({**config, "vision_config": {**v, **keys}})

    assert with_(attn_bias=True) - base == layers * (3 * qkv + h)
    assert with_(linear_bias=True) - base == layers * (inter + h)
    assert with_(patch_embed_proj_bias=True) - base == h
    assert with_(norm_type="layernorm") - base == (2 * layers + 1) * h
    merged = 4 * h
    # + pre_norm LayerNorm(h) + linear_1 and linear_2 biases - the post_norm RMSNorm(7168)
    assert with_(mm_projector_type="patchmerger") - base == 2 * h + merged + 7168 - 7168
