"""llama.cpp's DeepSeek Sparse Attention cache (kvplan.engines.llamacpp `check_dsa`, `dsa_row_bytes`, `dsa_layout`;
kvplan.sources.gguf `_dsa`), read from ggml-org/llama.cpp@0c1e57098 (the tree llama-cpp-python 0.3.36 vendors). The
cited lines are kept below as data and read back where that tree is on this machine (KVPLAN_ENGINE_SOURCES, default
/work/src, as llama.cpp-0c1e57098/...); every figure is also asserted without it.

What llama.cpp allocates for the main context of `deepseek32` (DeepSeek-V3.2) and `glm-dsa` (GLM-5.x),
llama-model.cpp:2397-2448 -> llama_kv_cache_dsa (llama-kv-cache-dsa.cpp), over the trunk layers (n_layer() =
block_count - nextn_predict_layers), `n_seq_max` streams (one with -kvu) of n_ctx_seq cells:

    kv_mla, every trunk layer:       (kv_lora_rank + qk_rope_head_dim) x 1 head    type_k, K only (is_mla)
    kv_lid, full-indexer layers:     indexer_head_size x 1 head                    type_k, K only

deepseek32 gives every trunk layer an indexer; glm-dsa the layers `is_indexer_full` marks (attention.indexer.types,
else all when n_ctx_train < 1048576, else GLM_5_2_DEFAULT_INDEXER_TYPES).

Per token, f16 (2 B a value), 576-value latent and 128-value indexer keys:

    DeepSeek-V3.2   61 layers x (576 + 128) x 2 B                       = 85,888 B
    GLM-5, 5.1      78 layers x (576 + 128) x 2 B                       = 109,824 B
    GLM-5.2         78 x 576 x 2 + 21 full-indexer layers x 128 x 2     = 89,856 + 5,376 = 95,232 B

At -c 32768 -np 1 (32768 cells): DeepSeek-V3.2 85,888 x 32768 = 2,814,377,984 B; GLM-5 109,824 x 32768 =
3,598,712,832 B; GLM-5.2 95,232 x 32768 = 3,120,562,176 B. q8_0 (34 B per 32 values): DeepSeek-V3.2
61 x (612 + 136) = 45,628 B a token, 1,495,138,304 B at 32768. -c 3000 -np 3: n_ctx GGML_PAD(3000, 256) = 3072, per
stream GGML_PAD(3072 / 3, 256) = 1024 cells, 3 streams: 85,888 x 1024 x 3 = 263,847,936 B.
"""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.core import specs as L
from kvplan.core.shapes import DSA_INDEXER_TYPES_LISTED, model_shape
from kvplan.engines.base import Request
from kvplan.engines.llamacpp import LlamaCppEngine, check_dsa, dsa_refusal, dsa_row_bytes, llamacpp_indexer_full
from kvplan.errors import ConfigError, UnsupportedArchitecture, UsageError
from kvplan.planning.estimate import estimate
from kvplan.sources.gguf import GLM_5_2_DEFAULT_INDEXER_FULL, config_from_metadata, glm_dsa_default_indexer_full

from conftest import ENGINE_SOURCES, check_cited_line, load_config

runner = CliRunner()
LLAMA_CPP = ENGINE_SOURCES / "llama.cpp-0c1e57098"
V32, GLM5, GLM51, GLM52 = (
    "deepseek-ai__DeepSeek-V3.2",
    "zai-org__GLM-5",
    "zai-org__GLM-5.1",
    "zai-org__GLM-5.2",
)

# (path, line, snippet) at ggml-org/llama.cpp@0c1e57098
CITED = [
    ("src/llama-model.cpp", 2397, "case LLM_ARCH_GLM_DSA:"),
    ("src/llama-model.cpp", 2398, "case LLM_ARCH_DEEPSEEK32:"),
    ("src/llama-model.cpp", 2400, "if (params.ctx_type == LLAMA_CONTEXT_TYPE_MTP && hparams.n_layer_nextn > 0) {"),
    ("src/llama-model.cpp", 2429, "filter_mla = [&](uint32_t il) { return il < hparams.n_layer(); };"),
    (
        "src/llama-model.cpp",
        2431,
        "return il < hparams.n_layer() && (arch != LLM_ARCH_GLM_DSA || hparams.is_indexer_full(il)); };",
    ),
    ("src/llama-model.cpp", 2433, "res = new llama_kv_cache_dsa("),
    ("src/llama-hparams.cpp", 349, "return n_layer_all - n_layer_nextn;"),
    ("src/llama-kv-cache-dsa.cpp", 29, "n_stream(unified ? 1 : n_seq_max)"),
    ("src/llama-kv-cache-dsa.cpp", 34, "model, model.hparams, type_k, type_v,"),  # kv_mla
    (
        "src/llama-kv-cache-dsa.cpp",
        44,
        "std::fill(hparams_lid.n_head_kv_arr.begin(), hparams_lid.n_head_kv_arr.end(), 1);",
    ),
    ("src/llama-kv-cache-dsa.cpp", 45, "hparams_lid.n_embd_head_k_full = model.hparams.indexer_head_size;"),
    ("src/llama-kv-cache-dsa.cpp", 51, "model, hparams_lid, type_k, type_v,"),  # kv_lid: type_k too
    ("src/llama-kv-cache.cpp", 231, "const bool has_v = !is_mla;"),
    ("src/llama-kv-cache.cpp", 233, "ggml_new_tensor_3d(ctx, type_k, n_embd_k_gqa, kv_size, n_stream)"),
    ("src/llama-graph.cpp", 3362, "inp->self_k_rot_lid = mctx_cur->get_lid()->build_input_k_rot(ctx0);"),
    ("src/models/glm-dsa.cpp", 60, "const bool is_pre_5_2 = hparams.n_ctx_train < 1048576;"),
    (
        "src/models/glm-dsa.cpp",
        62,
        "std::fill(hparams.is_indexer_full_impl.begin(), hparams.is_indexer_full_impl.end(), 1);",
    ),
    ("src/models/glm-dsa.cpp", 64, "hparams.is_indexer_full_impl = GLM_5_2_DEFAULT_INDEXER_TYPES;"),
    (
        "src/models/glm-dsa.cpp",
        66,
        "ml.get_key_or_arr(LLM_KV_ATTENTION_INDEXER_TYPES, hparams.is_indexer_full_impl, hparams.n_layer(), false);",
    ),
    ("src/models/glm-dsa.cpp", 79, 'ml.get_weight("blk.0.attn_norm.weight") == nullptr'),
    ("src/models/glm-dsa.cpp", 264, "if (hparams.is_indexer_full(il)) {"),
    ("src/models/deepseek32.cpp", 49, 'ml.get_weight("blk.0.attn_norm.weight") == nullptr'),
    ("src/models/deepseek32.cpp", 110, "{hparams.indexer_head_size}, flags);"),  # required on every layer
    (
        "src/models/deepseek32.cpp",
        260,
        "ggml_build_forward_expand(gf, mctx_lid->cpy_k(ctx0, indexer_k, k_idxs_lid, il));",
    ),
    ("src/models/deepseek32.cpp", 280, "indexer_score = ggml_lightning_indexer(ctx0, indexer_q, indexer_k,"),
    ("src/models/deepseek32.cpp", 290, "ggml_tensor * indexer_kq = ggml_mul_mat(ctx0, indexer_k, indexer_q);"),
    ("src/llama-model-loader.cpp", 477, "if (n != arr_info.length) {"),
    ("src/llama-model-loader.cpp", 1178, "if (info.op == GGML_OP_NONE || (flags & TENSOR_SKIP)) {"),
    ("src/models/deepseek32.cpp", 55, "if (!ml.load_mtp) {"),
    ("src/models/deepseek32.cpp", 56, "mtp_flags |= TENSOR_SKIP;"),
    ("src/models/glm-dsa.cpp", 88, "if (!ml.load_mtp) {"),
    ("common/common.cpp", 1625, "mparams.load_mtp"),
    ("src/llama-model-loader.cpp", 491, "for (uint32_t i = 0; i < n; i++) {"),  # a scalar: every layer
    ("conversion/deepseek.py", 350, 'self.gguf_writer.add_key_length(kv_lora_rank + hparams["qk_rope_head_dim"])'),
    ("conversion/deepseek.py", 476, 'self.block_count += self.hparams.get("num_nextn_predict_layers", 0)'),
    ("conversion/deepseek.py", 517, "self.gguf_writer.add_nextn_predict_layers(num_nextn_predict_layers)"),
    ("conversion/deepseek.py", 521, 'self.gguf_writer.add_indexer_key_length(self.hparams["index_head_dim"])'),
    ("conversion/glm.py", 332, 'self.block_count += self.hparams.get("num_nextn_predict_layers", 0)'),
    ("conversion/glm.py", 378, 'self.gguf_writer.add_indexer_key_length(self.hparams["index_head_dim"])'),
    ("conversion/glm.py", 380, 'if (indexer_types := self.hparams.get("indexer_types")) is not None:'),
    ("conversion/glm.py", 382, "self.gguf_writer.add_indexer_types(indexer_types)"),
]


@pytest.mark.parametrize(("path", "line", "text"), CITED, ids=[f"{p}:{n}" for p, n, _ in CITED])
def test_cited_llama_cpp_lines(path, line, text):
    check_cited_line(LLAMA_CPP / path, line, text)


def test_glm_5_2_default_table_is_the_one_in_glm_dsa_cpp():
    """GLM_5_2_DEFAULT_INDEXER_FULL is the array at src/models/glm-dsa.cpp:6-27, read back from the tree."""
    source = LLAMA_CPP / "src" / "models" / "glm-dsa.cpp"
    check_cited_line(source, 6, "const std::array<uint32_t, LLAMA_MAX_LAYERS> GLM_5_2_DEFAULT_INDEXER_TYPES = {")
    lines = source.read_text().splitlines()
    body, end = "\n".join(lines[6:26]), lines[26]  # lines 7-26, then line 27
    assert end == "};"
    assert tuple(v == "1" for v in re.findall(r"[01]", body)) == GLM_5_2_DEFAULT_INDEXER_FULL


def test_glm_5_2_default_table_is_the_glm_5_2_configs_indexer_types():
    """Without the tree: the table is GLM-5.2's own indexer_types (glm-dsa.cpp:5 cites that config), 21 full."""
    cfg = load_config(GLM52)
    assert tuple(t == "full" for t in cfg["indexer_types"]) == GLM_5_2_DEFAULT_INDEXER_FULL
    assert len(GLM_5_2_DEFAULT_INDEXER_FULL) == 78 and sum(GLM_5_2_DEFAULT_INDEXER_FULL) == 21
    assert [il for il in range(12) if GLM_5_2_DEFAULT_INDEXER_FULL[il]] == [0, 1, 2, 6, 10]


def _req(seq_len: int = 32768, batch: int = 1, kv: str = "float16", **kw) -> Request:
    return Request(seq_len, batch, kv, "bfloat16", **kw)


def _bytes(name: str, req: Request, engine: LlamaCppEngine | None = None) -> tuple[int, int]:
    shape = model_shape(load_config(name))
    engine = engine or LlamaCppEngine(shape.model_type, dsa_refusal=dsa_refusal(shape))
    costs = engine.stage_costs(shape.caches(), req)
    return sum(c.bytes for c in costs), int(sum(c.bytes_per_token for c in costs))


@pytest.mark.parametrize(
    ("name", "total", "per_token"),
    [
        (V32, 2_814_377_984, 85_888),
        (GLM5, 3_598_712_832, 109_824),
        (GLM51, 3_598_712_832, 109_824),
        (GLM52, 3_120_562_176, 95_232),
    ],
)
def test_hand_derived_bytes_at_32768(name, total, per_token):
    assert _bytes(name, _req()) == (total, per_token)


def test_row_is_the_latent_plus_the_indexer_keys_each_a_ggml_row():
    full, shared = L.MlaLatent(512, 64, 128, sparse=True), L.MlaLatent(512, 64, 0, sparse=True)
    assert (dsa_row_bytes(full, "float16"), dsa_row_bytes(shared, "float16")) == (1408, 1152)
    assert (dsa_row_bytes(full, "q8_0"), dsa_row_bytes(full, "float32")) == (612 + 136, 2816)


def test_quantized_cache_type_applies_to_the_indexer_keys_too():
    """kv_lid is created with type_k like kv_mla (llama-kv-cache-dsa.cpp:51): -ctk q8_0 stores both at 34 B / 32."""
    assert _bytes(V32, _req(kv="q8_0")) == (1_495_138_304, 45_628)


def test_one_stream_per_slot_of_the_padded_share_of_c():
    """-c 3000 -np 3: 3 streams of 1024 cells (llama-context.cpp's n_ctx_seq), 85,888 B a cell."""
    shape = model_shape(load_config(V32))
    engine = LlamaCppEngine(shape.model_type, dsa_refusal=dsa_refusal(shape))
    assert sum(c.bytes for c in engine.context_costs(shape.caches(), _req(1000, 3), 3000)) == 263_847_936
    unified = LlamaCppEngine(shape.model_type, kv_unified=True, dsa_refusal=dsa_refusal(shape))
    assert sum(c.bytes for c in unified.context_costs(shape.caches(), _req(1000, 3), 3000)) == 85_888 * 3072


def test_llama_cpp_indexer_layers_per_arch():
    assert llamacpp_indexer_full("deepseek_v32", 61, 163840, listed=False) == (True,) * 61
    assert llamacpp_indexer_full("glm_moe_dsa", 78, 202752, listed=False) == (True,) * 78  # GLM-5, 5.1
    assert llamacpp_indexer_full("glm_moe_dsa", 78, 1048576, listed=False) == GLM_5_2_DEFAULT_INDEXER_FULL
    assert llamacpp_indexer_full("glm_moe_dsa", 78, 1048576, listed=True) is None  # the config's list reaches the GGUF
    assert llamacpp_indexer_full("deepseek_v3", 61, 163840, listed=False) is None
    # past the 78 entries listed, the std::array is zero: shared
    assert glm_dsa_default_indexer_full(80, None)[78:] == (False, False)


def test_listed_indexer_types_are_a_shape_feature_and_leave_nothing_to_refuse():
    shapes = {name: model_shape(load_config(name)) for name in (V32, GLM5, GLM52)}
    assert DSA_INDEXER_TYPES_LISTED in shapes[GLM52].features
    assert DSA_INDEXER_TYPES_LISTED not in shapes[GLM5].features | shapes[V32].features
    assert [dsa_refusal(shape) for shape in shapes.values()] == [None, None, None]


def test_glm_config_without_indexer_types_whose_freq_llama_cpp_would_not_follow_is_refused():
    """GLM-5.2's freq/offset without its indexer_types list at a 202752 context: the converter writes no
    attention.indexer.types, so llama.cpp's loader gives all 78 layers an indexer (glm-dsa.cpp:60-62), not 21."""
    cfg = load_config(GLM52)
    cfg.pop("indexer_types")
    cfg["max_position_embeddings"] = 202752
    with pytest.raises(UsageError, match=r"glm-dsa loader would run its own indexer on 78 of 78 layers .* give 21"):
        estimate(cfg, seq_len=4096, engine="llamacpp")
    with pytest.raises(UsageError, match=r"first difference at layer 3"):  # every pipeline stage alike
        estimate(cfg, seq_len=4096, engine="llamacpp", pp=4)
    cfg["max_position_embeddings"] = 1048576  # then the loader's GLM-5.2 table: the same 21 layers
    assert estimate(cfg, seq_len=32768, engine="llamacpp").kv_cache_bytes == 3_120_562_176


def test_deepseek32_with_a_shared_indexer_layer_is_refused():
    caches = [L.MlaLatent(512, 64, 128, sparse=True), L.MlaLatent(512, 64, 0, sparse=True)]
    with pytest.raises(UsageError, match=r"deepseek32 runs and caches a lightning indexer on every layer"):
        check_dsa(caches, "deepseek_v32")


def test_a_sparse_latent_of_another_model_type_is_refused():
    with pytest.raises(UsageError, match=r"has not read how llama.cpp stores sparse-attention \(DSA\) model_type 'x'"):
        LlamaCppEngine("x").check([L.MlaLatent(512, 64, 128, sparse=True)], _req())


# ------------------------------------------------------------------ the logged figures (a public llama-server run)

# dfch/biz.dfch.LlmOps@835f2ed26f98939cbae7383374a9b41babc79348
# .specmgr/feat/feat-2-glm-5.2-onprem-deployment/bin/logs/2026-08-19T220559Z-kv-cache-sweep.txt: llama-server (llama.cpp
# master build 10505, ee4c505a4, 2026-08-19: after PR #26474 gave glm-dsa's indexer cache to its full layers only) on
# unsloth's GLM-5.2-UD-Q5_K_XL GGUF (glm-dsa, block_count 79 with nextn_predict_layers 1, context_length 1048576 and no
# attention.indexer.types: the loader's GLM-5.2 table), -np 1, f16 cache, 4 CUDA devices holding layers 0-54, 55-63,
# 64-71 and 72-77. The "KV buffer size" lines per device, MiB, of the main (kv_mla) and indexer (kv_lid) caches:
SWEEP = {
    4096: ((247.50, 40.50, 36.00, 27.00), (16.00, 2.00, 2.00, 1.00)),
    32768: ((1980.00, 324.00, 288.00, 216.00), (128.00, 16.00, 16.00, 8.00)),
    131072: ((7920.00, 1296.00, 1152.00, 864.00), (512.00, 64.00, 64.00, 32.00)),
    262144: ((15840.00, 2592.00, 2304.00, 1728.00), (1024.00, 128.00, 128.00, 64.00)),
    524288: ((31680.00, 5184.00, 4608.00, 3456.00), (2048.00, 256.00, 256.00, 128.00)),
}
DEVICE_LAYERS = ((0, 55), (55, 64), (64, 72), (72, 78))
# ...bin/logs/2026-08-19T220559Z-kv-ctx32768.log (same commit of that repository), the two caches' summaries:
LOGGED_32768 = (
    "llama_kv_cache: size = 2808.00 MiB ( 32768 cells,  78 layers,  1/1 seqs), K (f16): 2808.00 MiB, V (f16):    0.00 MiB",
    "llama_kv_cache: size =  168.00 MiB ( 32768 cells,  21 layers,  1/1 seqs), K (f16):  168.00 MiB, V (f16):    0.00 MiB",
)
MIB = 2**20


@pytest.mark.parametrize("cells", sorted(SWEEP))
def test_glm_5_2_reproduces_every_logged_kv_buffer_of_the_sweep(cells):
    """Each device's latent and indexer buffers, from the layers it holds, to the logged MiB."""
    shape = model_shape(load_config(GLM52))
    caches, req = shape.caches(), _req(cells)
    engine = LlamaCppEngine(shape.model_type, dsa_refusal=dsa_refusal(shape))
    latent_only = [L.MlaLatent(c.kv_lora_rank, c.rope_head_dim, 0, sparse=True) for c in caches]
    main, lid = SWEEP[cells]
    for (a, b), logged_main, logged_lid in zip(DEVICE_LAYERS, main, lid, strict=True):
        on_device = sum(c.bytes for c in engine.stage_costs(caches[a:b], req))
        latent = sum(c.bytes for c in engine.stage_costs(latent_only[a:b], req))
        assert (latent / MIB, (on_device - latent) / MIB) == (logged_main, logged_lid), (a, b)


def test_glm_5_2_logged_totals_at_32768_are_kvplans_and_its_gguf_metadata_maps_to_them():
    """The logged summaries add to kvplan's 3,120,562,176 B; the run's own GGUF metadata (its kv dump: no
    indexer.types, context_length 1048576) maps to the same 21 indexer layers."""
    sizes = [float(re.search(r"size = +([\d.]+) MiB", line)[1]) for line in LOGGED_32768]
    layers = [int(re.search(r"cells, +(\d+) layers", line)[1]) for line in LOGGED_32768]
    assert (sizes, layers) == ([2808.0, 168.0], [78, 21])
    assert (sizes[0] + sizes[1]) * MIB == _bytes(GLM52, _req())[0] == 3_120_562_176
    meta = dsa_metadata(load_config(GLM52), "glm-dsa", **{"attention.indexer.types": None})
    config = config_from_metadata(meta, {}, {})[0]
    assert config["indexer_types"].count("full") == 21
    assert estimate(config, seq_len=32768, engine="llamacpp").kv_cache_bytes == 3_120_562_176


# the GGUF's own metadata as that run's loader dumped it (kv 18-47 of ...-kv-ctx32768.log; tokenizer keys left out)
LOGGED_GGUF = {
    "general.architecture": "glm-dsa",
    "general.file_type": 17,
    "glm-dsa.block_count": 79,
    "glm-dsa.context_length": 1048576,
    "glm-dsa.embedding_length": 6144,
    "glm-dsa.feed_forward_length": 12288,
    "glm-dsa.attention.head_count": 64,
    "glm-dsa.attention.head_count_kv": 1,
    "glm-dsa.rope.freq_base": 8000000.0,
    "glm-dsa.attention.layer_norm_rms_epsilon": 0.00001,
    "glm-dsa.expert_count": 256,
    "glm-dsa.expert_used_count": 8,
    "glm-dsa.expert_group_count": 1,
    "glm-dsa.expert_group_used_count": 1,
    "glm-dsa.expert_gating_func": 2,
    "glm-dsa.attention.key_length": 576,
    "glm-dsa.attention.value_length": 512,
    "glm-dsa.leading_dense_block_count": 3,
    "glm-dsa.vocab_size": 154880,
    "glm-dsa.attention.q_lora_rank": 2048,
    "glm-dsa.attention.kv_lora_rank": 512,
    "glm-dsa.attention.key_length_mla": 256,
    "glm-dsa.attention.value_length_mla": 256,
    "glm-dsa.expert_feed_forward_length": 2048,
    "glm-dsa.expert_shared_count": 1,
    "glm-dsa.expert_weights_scale": 2.5,
    "glm-dsa.expert_weights_norm": True,
    "glm-dsa.rope.dimension_count": 64,
    "glm-dsa.nextn_predict_layers": 1,
    "glm-dsa.attention.indexer.head_count": 32,
    "glm-dsa.attention.indexer.key_length": 128,
    "glm-dsa.attention.indexer.top_k": 2048,
}


def test_the_logged_gguf_metadata_sizes_the_logged_caches():
    """That file's header (no attention.indexer.types) maps to 78 trunk layers, 21 of them with indexer keys, and
    the logged 2808 + 168 MiB at 32768 cells; its shape is the GLM-5.2 catalog config's."""
    config, notes = config_from_metadata(LOGGED_GGUF, {}, {})
    assert notes == [] and (config["model_type"], config["num_hidden_layers"]) == ("glm_moe_dsa", 78)
    assert model_shape(config).caches() == model_shape(load_config(GLM52)).caches()
    assert estimate(config, seq_len=32768, engine="llamacpp").kv_cache_bytes == (2808 + 168) * MIB


# -------------------------------------------------------------------------------------------------------- CLI


def test_cli_estimate_deepseek_v3_2_json():
    result = runner.invoke(
        app,
        ["estimate", "deepseek-ai/DeepSeek-V3.2", "--engine", "llamacpp", "--seq-len", "32768", "--offline", "--json"],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["kv_cache_bytes"], doc["bytes_per_token"]) == (2_814_377_984, 85_888)
    assert [(x["kind"], x["count"]) for x in doc["layers"]] == [(L.MLA, 61)]
    assert any("128-value lightning-indexer key row on 61" in note for note in doc["notes"])


def test_cli_estimate_glm_5_2_notes_the_shared_layers():
    result = runner.invoke(
        app, ["estimate", "zai-org/GLM-5.2", "--engine", "llamacpp", "--seq-len", "32768", "--offline", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kv_cache_bytes"] == 3_120_562_176
    assert any("key row on 21 (57 shared-indexer layers keep none)" in note for note in doc["notes"])


def test_recommend_refuses_dsa_because_its_indexer_scores_grow_with_the_context():
    result = runner.invoke(
        app, ["recommend", "deepseek-ai/DeepSeek-V3.2", "--engine", "llamacpp", "--gpu-profile", "h200", "--offline"]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("error: kvplan's llama.cpp budget does not size the DSA lightning indexer's score")
    assert lines[1].startswith("hint: `kvplan estimate` sizes its llama.cpp KV cache")


# ------------------------------------------------------------------------------------------------------- GGUF


def dsa_metadata(cfg: dict, arch: str, **change) -> dict:
    """What conversion/deepseek.py DeepseekV32Model / conversion/glm.py GlmMoeDsaModel (DeepseekV2Model and
    conversion/base.py TextModel underneath) write for `cfg`: block_count with the NextN block appended."""
    rank, rope = cfg["kv_lora_rank"], cfg["qk_rope_head_dim"]
    nextn = cfg.get("num_nextn_predict_layers", 0)
    meta = {
        "general.architecture": arch,
        "general.file_type": 1,
        f"{arch}.block_count": cfg["num_hidden_layers"] + nextn,
        f"{arch}.context_length": cfg["max_position_embeddings"],
        f"{arch}.embedding_length": cfg["hidden_size"],
        f"{arch}.feed_forward_length": cfg["intermediate_size"],
        f"{arch}.attention.head_count": cfg["num_attention_heads"],
        f"{arch}.attention.head_count_kv": 1,
        f"{arch}.attention.key_length": rank + rope,
        f"{arch}.attention.value_length": rank,
        f"{arch}.attention.key_length_mla": cfg["qk_nope_head_dim"] + rope,
        f"{arch}.attention.value_length_mla": cfg["v_head_dim"],
        f"{arch}.attention.kv_lora_rank": rank,
        f"{arch}.attention.q_lora_rank": cfg["q_lora_rank"],
        f"{arch}.rope.dimension_count": rope,
        f"{arch}.leading_dense_block_count": cfg["first_k_dense_replace"],
        f"{arch}.expert_count": cfg["n_routed_experts"],
        f"{arch}.expert_used_count": cfg["num_experts_per_tok"],
        f"{arch}.expert_shared_count": cfg["n_shared_experts"],
        f"{arch}.expert_feed_forward_length": cfg["moe_intermediate_size"],
        f"{arch}.expert_gating_func": 2,
        f"{arch}.nextn_predict_layers": nextn,
        f"{arch}.attention.indexer.head_count": cfg["index_n_heads"],
        f"{arch}.attention.indexer.key_length": cfg["index_head_dim"],
        f"{arch}.attention.indexer.top_k": cfg["index_topk"],
        f"{arch}.vocab_size": cfg["vocab_size"],
    }
    if cfg.get("indexer_types") is not None:  # conversion/glm.py:380-382
        meta[f"{arch}.attention.indexer.types"] = [t == "full" for t in cfg["indexer_types"]]
    meta |= {f"{arch}.{k}": v for k, v in change.items()}
    return {k: v for k, v in meta.items() if v is not None}


CASES = [
    (V32, "deepseek32", 85_888),
    (GLM5, "glm-dsa", 109_824),
    (GLM51, "glm-dsa", 109_824),
    (GLM52, "glm-dsa", 95_232),
]


@pytest.mark.parametrize(("name", "arch", "per_token"), CASES)
def test_gguf_metadata_sizes_like_the_config(name, arch, per_token):
    cfg = load_config(name)
    config, notes = config_from_metadata(dsa_metadata(cfg, arch), {}, {})
    assert notes == [] and config["model_type"] == cfg["model_type"]
    assert (config["num_hidden_layers"], config["num_nextn_predict_layers"]) == (cfg["num_hidden_layers"], 1)
    from_gguf, from_hf = model_shape(config), model_shape(cfg)
    assert from_gguf.caches() == from_hf.caches()
    by_gguf = estimate(config, seq_len=32768, engine="llamacpp", kv_dtype="float16")
    assert by_gguf.kv_cache_bytes == per_token * 32768


def test_gguf_glm_without_indexer_types_takes_the_loaders_rule():
    """No attention.indexer.types: all full below n_ctx_train 1048576, else GLM-5.2's table (glm-dsa.cpp:59-66)."""
    cfg = load_config(GLM52)
    short = config_from_metadata(
        dsa_metadata(cfg, "glm-dsa", **{"attention.indexer.types": None, "context_length": 202752}), {}, {}
    )[0]
    assert short["indexer_types"] == ["full"] * 78 and short["index_topk_pattern"] == "F" * 78
    long = config_from_metadata(dsa_metadata(cfg, "glm-dsa", **{"attention.indexer.types": None}), {}, {})[0]
    assert long["indexer_types"] == cfg["indexer_types"]
    assert estimate(long, seq_len=32768, engine="llamacpp").kv_cache_bytes == 3_120_562_176
    scalar = config_from_metadata(dsa_metadata(cfg, "glm-dsa", **{"attention.indexer.types": 1}), {}, {})[0]
    assert scalar["indexer_types"] == ["full"] * 78  # get_key_or_arr copies a scalar to every layer


def test_gguf_indexer_types_of_the_wrong_length_is_an_error_like_llama_cpp():
    cfg = load_config(GLM52)
    with pytest.raises(ConfigError, match=r"indexer.types does not list 78 layers .*wrong array length"):
        config_from_metadata(dsa_metadata(cfg, "glm-dsa", **{"attention.indexer.types": [True] * 79}), {}, {})


def test_gguf_converted_with_no_mtp_has_no_nextn_block():
    cfg = load_config(V32) | {"num_nextn_predict_layers": 0}
    config = config_from_metadata(dsa_metadata(cfg, "deepseek32"), {}, {})[0]
    assert (config["num_hidden_layers"], config["num_nextn_predict_layers"]) == (61, 0)


def test_gguf_of_the_mtp_block_alone_is_refused():
    """--mtp writes the NextN block alone: no blk.0.attn_norm.weight (deepseek32.cpp:49), an MTP draft."""
    meta = dsa_metadata(load_config(V32), "deepseek32")
    with pytest.raises(UnsupportedArchitecture, match=r"only the deepseek32 NextN/MTP block"):
        config_from_metadata(meta, {"blk.61.nextn.eh_proj.weight": 1, "token_embd.weight": 1}, {})
    trunk = {"blk.0.attn_norm.weight": 1, "token_embd.weight": 1, "output.weight": 1}
    config, notes = config_from_metadata(meta, trunk, {})
    assert config["num_hidden_layers"] == 61 and notes == []


def test_gguf_notes_the_nextn_tensors_llama_cpp_skips_without_an_mtp_draft():
    """The NextN block's tensors are created TENSOR_SKIP unless load_mtp (deepseek32.cpp:55-56): the file's bytes
    overstate what llama-server loads without --spec-type draft-mtp, and the note says by how much."""
    meta = dsa_metadata(load_config(V32), "deepseek32")
    tensors = {"blk.0.attn_norm.weight": 10, "blk.60.attn_norm.weight": 10, "blk.61.nextn.eh_proj.weight": 3000}
    tensors |= {"blk.61.attn_norm.weight": 14}
    notes = config_from_metadata(meta, tensors, {})[1]
    assert notes == [
        "the file's NextN/MTP block (blk.61, 3,014 B) is counted in the weights; llama.cpp loads it only with "
        "--spec-type draft-mtp (common/common.cpp:1625) and otherwise skips its tensors"
    ]


def test_gguf_latent_not_as_the_converter_writes_it_is_refused():
    meta = dsa_metadata(load_config(GLM5), "glm-dsa", **{"attention.key_length": 256})
    with pytest.raises(UnsupportedArchitecture, match=r"glm-dsa latent \(head_count_kv 1, key_length 256"):
        config_from_metadata(meta, {}, {})


def test_a_deepseek32_gguf_file_estimates_like_its_config(tmp_path):
    """A .gguf written with that metadata (the gguf package's writer, one zero-filled tensor) plans as the config."""
    gguf = pytest.importorskip("gguf")
    import numpy as np

    cfg = load_config(V32)
    path = tmp_path / "DeepSeek-V3.2-F16.gguf"
    writer = gguf.GGUFWriter(str(path), "deepseek32")
    for key, value in dsa_metadata(cfg, "deepseek32").items():
        if key == "general.architecture":
            continue
        (writer.add_array if isinstance(value, list) else writer.add_uint32)(key, value)
    writer.add_tensor("blk.0.attn_norm.weight", np.zeros((8,), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    by_gguf = estimate(str(path), seq_len=32768, engine="llamacpp", kv_dtype="float16")
    by_config = estimate(cfg, seq_len=32768, engine="llamacpp", kv_dtype="float16")
    assert by_gguf.kv_cache_bytes == by_config.kv_cache_bytes == 2_814_377_984
