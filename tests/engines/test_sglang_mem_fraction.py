"""SGLang 0.5.23's default --mem-fraction-static (`handle_gpu_memory_settings`, srt/arg_groups/memory_hook.py:47-354):

    mem_fraction_static = round((gpu_mem - reserved_mem) / gpu_mem, 3)
    reserved_mem = 512 + 1.5 x max(chunked_prefill_size, 2048) + tp x pp / 8 x 1024
                   + decode CUDA-graph max_bs x 2 + prefill CUDA-graph reserve, at least 10240 above 60 GiB

with chunked_prefill_size and the decode max_bs from the GPU's memory tier (:89-170), the decode max_bs lowered to a
max_running_requests given (:182-188), and the prefill reserve 8 MiB per captured token bucket (:384-386, buckets of
cuda_graph_hook.py:480-497 up to chunked_prefill_size, :233-238) or 1.5 GiB for MLA (:387-389), none where the
breakable prefill graphs are off (cuda_graph_hook.py:136-255: PP, DeepSeek-V4, KDA, an unlisted multimodal model).
It runs after `handle_cuda_graph_config` and before the model-specific adjustments (arg_groups/pipeline.py:191,
:218, :225).

Every expected figure below is worked out by hand from the GPU profile's total (MiB) and those lines, not read back
from kvplan. The cited lines are read back where the SGLang tree is on this machine."""

from __future__ import annotations

import pytest

from kvplan.engines.sglang import (
    prefill_capture_sizes,
    sglang_fraction_for,
    sglang_gpu_tier,
    sglang_mem_fraction,
)
from kvplan.errors import UsageError
from kvplan.planning.recommend import recommend

from conftest import ENGINE_SOURCES, check_cited_line, config_path, load_config

_SOURCES = ENGINE_SOURCES / "sglang-0.5.23" / "sglang"
_MH = "srt/arg_groups/memory_hook.py"
_CG = "srt/arg_groups/cuda_graph_hook.py"
_MC = "srt/configs/model_config.py"
_CITED = [
    (_MH, 90, "if gpu_mem < 20 * 1024:"),
    (_MH, 97, "chunked_prefill_size=2048,"),
    (_MH, 100, "decode_cuda_graph_config.max_bs = 8"),
    (_MH, 101, "elif gpu_mem < 35 * 1024:"),
    (_MH, 111, "chunked_prefill_size=4096,"),
    (_MH, 115, "decode_cuda_graph_config.max_bs = 48"),
    (_MH, 117, "decode_cuda_graph_config.max_bs = 160"),
    (_MH, 118, "elif gpu_mem < 60 * 1024:"),
    (_MH, 129, "decode_cuda_graph_config.max_bs = 32"),
    (_MH, 132, "elif gpu_mem < 90 * 1024:"),
    (_MH, 139, "chunked_prefill_size=8192,"),
    (_MH, 143, "decode_cuda_graph_config.max_bs = 256"),
    (_MH, 145, "decode_cuda_graph_config.max_bs = 512"),
    (_MH, 146, "elif gpu_mem < 160 * 1024:"),
    (_MH, 153, "chunked_prefill_size=8192,"),
    (_MH, 167, "chunked_prefill_size=16384,"),
    (_MH, 170, "decode_cuda_graph_config.max_bs = 512"),
    (_MH, 188, "decode_cuda_graph_config.max_bs = cfg.max_running_requests"),
    (_MH, 236, "prefill_cuda_graph_config.max_bs = cfg.chunked_prefill_size"),
    (_MH, 238, "prefill_cuda_graph_config.max_bs = min(8192, cfg.chunked_prefill_size)"),
    (_MH, 260, 'if "llama-2" in cfg.model_path.lower():'),
    (_MH, 305, "activation_tokens = max(cfg.chunked_prefill_size, 2048)"),
    (_MH, 309, "reserved_mem = 512"),
    (_MH, 310, "reserved_mem += activation_tokens * 1.5"),
    (_MH, 312, "reserved_mem += cfg.tp_size * cfg.pp_size / 8 * 1024"),
    (_MH, 313, "reserved_mem += reserve_for_graph_mb(server_args)"),
    (_MH, 315, "reserved_mem = max(reserved_mem, 10 * 1024)"),
    (_MH, 325, "round((gpu_mem - reserved_mem) / gpu_mem, 3)"),
    (_MH, 368, "reserved_mem += decode_cuda_graph_config.max_bs * 2"),
    (_MH, 386, "reserved_mem += len(prefill_cuda_graph_config.bs) * 8"),
    (_MH, 389, "reserved_mem += 1.5 * 1024"),
    (_MH, 438, "base_mem_fraction_reduction_ratio = 0.95"),
    (_MH, 440, 'vit_num_layers = getattr(vision_config, "num_hidden_layers", 24)'),
    (_MH, 459, "dynamic_adjustment_factor = max(0.8, min(1.05, dynamic_adjustment_factor))"),
    (_CG, 150, "if cfg.pp_size > 1 and cfg.cuda_graph_config.prefill.backend == Backend.BREAKABLE:"),
    (_CG, 487, "list(range(4, 33, 4))"),
    (_CG, 492, "+ list(range(4608, max_bs + 1, 512))"),
    ("srt/model_executor/cuda_graph_config.py", 123, "return Backend.BREAKABLE if is_cuda() else Backend.DISABLED"),
    ("srt/arg_groups/pipeline.py", 191, "run_hook(handle_cuda_graph_config, server_args)"),
    ("srt/arg_groups/pipeline.py", 218, "run_hook(handle_gpu_memory_settings, server_args)"),
    ("srt/arg_groups/pipeline.py", 225, "run_hook(handle_model_specific_adjustments, server_args)"),
    ("srt/arg_groups/muse_spark_hook.py", 23, "(envs.SGLANG_ENABLE_POST_CAPTURE_KV_SIZING, True),"),
    ("srt/arg_groups/model_overrides/qwen3_vl.py", 62, "decode_config.max_bs = max_running_requests"),
    (_MC, 2507, '"Qwen3_5ForConditionalGeneration",'),
    # Gemma 3: multimodal off by default, the tower built all the same
    (_MC, 693, '"Gemma3ForConditionalGeneration",'),
    (_MC, 702, "enable_multimodal = False"),
    ("srt/models/gemma3_mm.py", 185, "self.vision_tower = SiglipVisionModel("),
    ("srt/models/gemma3_mm.py", 191, "self.multi_modal_projector = Gemma3MultiModalProjector(config)"),
]


@pytest.mark.parametrize(("path", "line", "text"), _CITED)
def test_cited_engine_source_lines(path, line, text):
    check_cited_line(_SOURCES / path, line, text)


def test_prefill_buckets():
    # 8 (4..32 by 4) + 14 (48..256 by 16) + 8 (288..512 by 32) + 8 (576..1024 by 64) + 12 (1280..4096 by 256)
    # + 8 (4608..8192 by 512), + 16 more to 16384; 2048: 4 of the 1280.. run
    assert len(prefill_capture_sizes(2048)) == 8 + 14 + 8 + 8 + 4
    assert len(prefill_capture_sizes(4096)) == 8 + 14 + 8 + 8 + 12
    assert len(prefill_capture_sizes(8192)) == 58
    assert len(prefill_capture_sizes(16384)) == 74
    assert prefill_capture_sizes(8192)[-1] == 8192


@pytest.mark.parametrize(
    ("mib", "tp", "tier"),
    [
        (16 * 1024 - 1, 1, (2048, 8)),
        (24207, 1, (4096, 48)),
        (24207, 4, (4096, 160)),
        (45599, 2, (4096, 32)),
        (45599, 4, (4096, 160)),
        (81090, 1, (8192, 256)),
        (95324, 4, (8192, 512)),
        (143156, 1, (8192, 256)),
        (182631, 1, (16384, 512)),
    ],
)
def test_gpu_tiers(mib, tp, tier):
    assert sglang_gpu_tier(mib, tp) == tier


# (profile, its total in bytes, tp, reserved MiB worked out by hand, the fraction)
_FIGURES = [
    # 81089.9 MiB, < 90 GiB: 512 + 1.5 x 8192 + 1/8 x 1024 + 256 x 2 + 58 x 8 = 13904
    ("h100-sxm-80gb", 85028896768, 1, 13904, 0.829),
    # TP 8: 512 + 12288 + 1024 + 512 x 2 + 464 = 15312
    ("h100-sxm-80gb", 85028896768, 8, 15312, 0.811),
    # 143156 MiB, < 160 GiB: the H100's figures
    ("h200", 150109945856, 1, 13904, 0.903),
    ("h200", 150109945856, 8, 15312, 0.893),
    # 182631 MiB: 512 + 1.5 x 16384 + 128 + 512 x 2 + 74 x 8 = 26832; TP 8: 27728
    ("b200", 191502483456, 1, 26832, 0.853),
    ("b200", 191502483456, 8, 27728, 0.848),
    # 45599 MiB, < 60 GiB: 512 + 1.5 x 4096 + 128 + 32 x 2 + 50 x 8 = 7248; TP 8: 512 + 6144 + 1024 + 160 x 2 + 400
    ("l20", 47814017024, 1, 7248, 0.841),
    ("l20", 47814017024, 8, 8400, 0.816),
    # 24207 MiB, < 35 GiB: 512 + 6144 + 128 + 48 x 2 + 400 = 7280; TP 8: 8400
    ("rtx-4090", 25382879232, 1, 7280, 0.699),
    ("rtx-4090", 25382879232, 8, 8400, 0.653),
]


@pytest.mark.parametrize(("profile", "total", "tp", "reserved", "fraction"), _FIGURES)
def test_default_fraction_by_hand(profile, total, tp, reserved, fraction):
    mib = total / 2**20
    assert round((mib - reserved) / mib, 3) == fraction  # the hand figure itself
    got = sglang_mem_fraction(total, tp, 1)
    assert (got.reserved_mb, got.value, got.floored, got.vlm_factor) == (reserved, fraction, False, None)


def test_recommend_prints_each_term():
    """Llama-3.1-8B at TP 8 on H200s: 0.893, its terms in the budget table's first row."""
    rec = recommend(
        str(config_path("meta-llama__Llama-3.1-8B")),
        engine="sglang",
        gpu_profile="h200",
        gpus=8,
        tp=8,
        max_model_len=8192,
        offline=True,
    )
    assert rec.gpu_memory_utilization == 0.893
    row = rec.budget[0]
    assert row.name == "total_x_mem_fraction_static" and row.bytes == int(150109945856 * 0.893)
    assert row.source == (
        "h200 memory x mem_fraction_static 0.893 (SGLang's default: round((143156 MiB - reserved 15312 MiB) / 143156, "
        "3), reserved = 512 (fixed) + 12288 (1.5 x chunked_prefill_size 8192) + 1024 (tp x pp 8 / 8 x 1024) + 1024 "
        "(decode CUDA graphs: max_bs 512 x 2) + 464 (prefill CUDA graphs: 58 buckets x 8) (sglang-0.5.23 "
        "srt/arg_groups/memory_hook.py:281-328))"
    )
    assert "--mem-fraction-static 0.893" in rec.flags["sglang"]
    given = recommend(
        str(config_path("meta-llama__Llama-3.1-8B")),
        engine="sglang",
        gpu_profile="h200",
        gpus=8,
        tp=8,
        max_model_len=8192,
        gpu_memory_utilization=0.85,
        offline=True,
    )
    assert given.budget[0].source == "h200 memory x mem_fraction_static 0.85"


def test_max_running_requests_caps_the_decode_graphs():
    """--max-running-requests 64 on an H100 at TP 1: decode max_bs 256 -> 64, 512 - 128 MiB less reserved: 13520,
    round((81089.9 - 13520) / 81089.9, 3) = 0.833; one above the tier's 256 changes nothing."""
    assert sglang_mem_fraction(85028896768, 1, 1, max_running_requests=64).value == 0.833
    assert sglang_mem_fraction(85028896768, 1, 1, max_running_requests=300).value == 0.829
    rec = recommend(
        str(config_path("Qwen__Qwen3-30B-A3B")),
        engine="sglang",
        gpu_profile="h100-sxm-80gb",
        max_model_len=8192,
        max_num_seqs=64,
        offline=True,
    )
    assert rec.gpu_memory_utilization == 0.833 and "max_bs 64 x 2" in rec.budget[0].source
    assert "--max-running-requests 64" in rec.flags["sglang"]


def test_pp_turns_the_prefill_graphs_off():
    """PP 2 on H100s: breakable prefill graphs off by default (cuda_graph_hook.py:150-162): 512 + 12288 + 2/8 x 1024
    + 512 = 13568 -> 0.833."""
    got = sglang_fraction_for(85028896768, 1, 2, load_config("meta-llama__Llama-3.1-8B"), None)
    assert (got.reserved_mb, got.value) == (13568, 0.833)
    assert not any("prefill CUDA graphs" in what for what, _ in got.terms)


def test_mla_reserves_a_flat_prefill_graph_term():
    """Kimi-K2 (DeepSeek-V3 MLA) at TP 8 on H200s: 512 + 12288 + 1024 + 1024 + 1536 = 16384 -> 0.886."""
    from kvplan.core.shapes import model_shape

    config = load_config("moonshotai__Kimi-K2-Instruct")
    got = sglang_fraction_for(150109945856, 8, 1, config, model_shape(config))
    assert (got.reserved_mb, got.value) == (16384, 0.886)


def test_deepseek_v4_and_kda_turn_the_prefill_graphs_off():
    from kvplan.core.shapes import model_shape

    v4 = load_config("deepseek-ai__DeepSeek-V4-Flash")
    got = sglang_fraction_for(150109945856, 8, 1, v4, model_shape(v4))
    assert got.reserved_mb == 512 + 12288 + 1024 + 1024  # no prefill term: 14848 -> 0.896
    assert got.value == 0.896
    kda = {"architectures": ["KimiLinearForCausalLM"], "linear_attn_config": {"kda_layers": [1, 2, 3]}}
    assert sglang_fraction_for(150109945856, 1, 1, kda, None).reserved_mb == 13904 - 464
    glm = {"architectures": ["Glm5NextForConditionalGeneration"], "linear_attn_config": {"kda_layers": [1]}}
    assert sglang_fraction_for(150109945856, 1, 1, glm, None).reserved_mb == 13904


def test_multimodal_reduction_and_qwen3_vl_decode_graphs():
    """Qwen3-VL-30B-A3B (multimodal, not in the breakable-graph list: no prefill term) on an H100 at TP 1:
    512 + 12288 + 128 + 512 = 13440 -> 0.834, then x 0.95 x (1 - 0.1 x (27 x 1152^2 / (24 x 1024^2) - 1))
    = 0.834 x 0.909736328125 (its vision_config's depth 27, hidden_size 1152; transformers maps num_hidden_layers
    onto depth). --max-running-requests 400 on that SM90 GPU grows the decode graphs to 400 (qwen3_vl.py:43-62):
    13728 -> 0.831 x the same; on an A100 (SM80) they stay at 256."""
    from kvplan.core.shapes import model_shape

    config = load_config("Qwen__Qwen3-VL-30B-A3B-Instruct")
    shape = model_shape(config)
    factor = 0.95 * (1 - 0.1 * (27 * 1152**2 / (24 * 1024**2) - 1))
    got = sglang_fraction_for(85028896768, 1, 1, config, shape)
    assert got.reserved_mb == 13440 and got.vlm_factor == factor and got.value == 0.834 * factor
    hopper = sglang_fraction_for(85028896768, 1, 1, config, shape, 400, compute_capability="9.0")
    assert hopper.reserved_mb == 13440 - 512 + 800 and hopper.value == 0.831 * factor
    ampere = sglang_fraction_for(84987084800, 1, 1, config, shape, 400, compute_capability="8.0")
    assert ampere.reserved_mb == 13440


def test_gemma3_is_text_only_by_default_but_keeps_its_tower():
    """SGLang 0.5.23 serves Gemma 3 with multimodal off unless --enable-multimodal (configs/model_config.py:690-705):
    no VLM reduction of the fraction, no embedding-cache reservation, and the breakable prefill graphs stay on (it is
    not multimodal to cuda_graph_hook.py:230-239), so its fraction is a text model's. But Gemma3ForConditionalGeneration
    builds the SigLIP tower and projector whatever that flag says (srt/models/gemma3_mm.py:185-191; the loader keeps
    the architecture, model_loader/utils.py), so the tower stays in SGLang's budget."""
    rec = recommend(
        str(config_path("google__gemma-3-27b-it")),
        engine="sglang",
        gpu_profile="h100-sxm-80gb",
        max_model_len=8192,
        offline=True,
    )
    assert rec.gpu_memory_utilization == 0.829  # the Llama figure above: 13904 reserved
    terms = {t.name: t.bytes for t in rec.budget}
    assert terms["multimodal_weights"] == -423_060_336 * 2
    assert "multimodal_reservation" not in terms
    tower = next(t for t in rec.budget if t.name == "multimodal_weights")
    assert "even with multimodal off" in tower.source and "--enable-multimodal" in tower.source


def test_post_capture_kv_sizing_is_refused():
    with pytest.raises(UsageError, match="post-capture KV sizing"):
        sglang_fraction_for(150109945856, 1, 1, {"architectures": ["MuseSparkForConditionalGeneration"]}, None)


def test_the_only_logged_default_is_an_older_releases_rule():
    """Of the SGLang calibration cases, one prints a default fraction: QwQ-32B at TP 4 on L4s, SGLang 0.4.3.post4 (no
    --mem-fraction-static on its command line; server_args print mem_fraction_static=0.85 and chunked_prefill_size=2048).
    kvplan models SGLang 0.5.23 only, whose rule gives the L4 (22559 MiB, < 35 GiB, TP >= 4) 512 + 1.5 x 4096 + 4/8 x
    1024 + 160 x 2 + 50 x 8 = 7888 reserved -> 0.650: a known gap, not a reproduction (the case's per-token check reads
    the 0.85 it printed)."""
    import yaml

    from conftest import FIXTURES

    case = next(
        c
        for c in yaml.safe_load((FIXTURES / "calibration" / "engine_cases.yaml").read_text())
        if c["id"] == "llms-in-clouds-sglang-qwq-32b-4xl4"
    )
    assert case["engine_version"] == "0.4.3.post4" and "--mem-fraction-static" not in case["source"]["quote"]
    assert case["mem_fraction_static"] == 0.85 and "mem_fraction_static=0.85" in case["source"]["quote"]
    got = sglang_mem_fraction(23654825984, 4, 1)
    assert (got.reserved_mb, got.value) == (7888, 0.650)


def test_qwen3_5_27b_default_on_an_h100_by_hand():
    """Qwen3.5-27B (Qwen3_5ForConditionalGeneration: multimodal, in the breakable-graph list, so its prefill graphs
    stay on): 13904 reserved -> 0.829, x 0.95 x (1 - 0.1 x (27 x 1152^2 / (24 x 1024^2) - 1)) for its vision tower
    (depth 27, hidden_size 1152; SGLang's Qwen3_5VisionConfig subclasses transformers' Qwen3VLVisionConfig, whose
    num_hidden_layers is depth). The budget: int(85,028,896,768 x that) - 54,713,457,120 B of weights and tower
    - 100 MiB = 9,308,048,757 B; SGLang's split of it (test_sglang_mamba_split.py): K = int((B x 0.9 / 1.9 -
    153,944,064) // 153,944,064) = int(27.64) = 27 state slots, (B - 28 x 153,944,064) // 65,536 = 76,257 tokens,
    27 // 5 = 5 running requests."""
    factor = 0.95 * (1 - 0.1 * (27 * 1152**2 / (24 * 1024**2) - 1))
    rec = recommend("Qwen/Qwen3.5-27B", engine="sglang", gpu_profile="h100-sxm-80gb", offline=True)
    assert rec.gpu_memory_utilization == 0.829 * factor
    assert rec.weights_bytes + rec.multimodal_weights_bytes == 54_713_457_120
    assert rec.available_kv_memory_bytes == int(85_028_896_768 * 0.829 * factor) - 54_713_457_120 - 100 * 2**20
    assert rec.available_kv_memory_bytes == 9_308_048_757
    assert (rec.kv_cache_tokens, rec.max_num_seqs) == (76_257, 5)
    assert "x 0.909736 for a multimodal model's vision tower" in rec.budget[0].source
