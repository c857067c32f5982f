"""llama.cpp's DeepSeek-V4 KV cache (kvplan.engines.llamacpp `dsv4_layer_buffers`), read from
ggml-org/llama.cpp@0c1e57098: the master tree llama-cpp-python 0.3.36 vendors (its CHANGELOG.md: "update llama.cpp to
ggml-org/llama.cpp@0c1e57098"; the sdist is on PyPI, `pip download --no-binary :all: llama-cpp-python==0.3.36`,
vendor/llama.cpp/). DeepSeek-V4 came to master with PR #24162; the cited lines are kept below as data and read back
where that tree is on this machine (KVPLAN_ENGINE_SOURCES, default /work/src, as llama.cpp-0c1e57098/...).

What llama.cpp allocates for the main context (llama-model.cpp:2613-2627; an MTP draft context gets a plain iSWA
cache instead), per stream, `n_seq_max` streams whatever --kv-unified says, `kv_size` = n_ctx_seq cells:

    raw ring, every layer:   GGML_PAD(min(kv_size, n_swa + n_ubatch), 256) x head_dim        type_k (K only)
    CSA layers (ratio 4):    GGML_PAD(max(1, cdiv(kv_size, 4)), 256)     x head_dim          type_k
      lightning indexer:     the same cells                               x index_head_dim    type_k
      compressor states:     2 (kv, score) x 8 rows x 2 x head_dim, 2 x 8 rows x 2 x index_head_dim,  F32
    HCA layers (ratio 128):  GGML_PAD(max(1, cdiv(kv_size, 128)), 256)   x head_dim          type_k
      compressor state:      2 x 128 rows x head_dim                                           F32

DeepSeek-V4-Flash (kvplan's catalog config): 43 layers, compress_ratios[:43] = 2 x 0, 21 x 4, 20 x 128,
head_dim 512, index_head_dim 128, sliding_window 128. At -c 64000 -np 1, bf16, -ub 4096 (kv_size 64000):

    raw        GGML_PAD(min(64000, 128 + 4096)) = 4352 cells x 43 x 512 x 2 B = 191,627,264 B = 182.75 MiB
    CSA        GGML_PAD(16000) = 16128 cells x 21 x 512 x 2 B                  = 346,816,512 B = 330.75 MiB
    indexer    16128 x 21 x 128 x 2 B                                           =  86,704,128 B =  82.69 MiB
    HCA        GGML_PAD(500) = 512 cells x 20 x 512 x 2 B                       =  10,485,760 B =  10.00 MiB
    csa state  21 x 2 x 8 x 1024 x 4 B                                          =   1,376,256 B =   1.31 MiB
    hca state  20 x 2 x 128 x 512 x 4 B                                         =  10,485,760 B =  10.00 MiB
    lid state  21 x 2 x 8 x 256 x 4 B                                           =     344,064 B =   0.33 MiB
    total                                                                         647,839,744 B

llama.cpp issue #27680 (DeepSeek-V4-Flash-0731 GGUF, CUDA, bf16 cache, 1/1 seqs, n_ctx_seq 64000) logs the raw ring
(4352 cells, 182.75 MiB) and the three states (1.31, 10.00 and 0.33 MiB) to the figure; its excerpt shows neither the
compressed caches' lines nor -ub (4352 = GGML_PAD(128 + n_ubatch, 256) for any n_ubatch from 3969 to 4224).

At kvplan's default -ub 512 the ring is GGML_PAD(128 + 512) = 768 cells: 768 x 43 x 1024 = 33,816,576 B, and the
Flash total at 64000 is 33,816,576 + 346,816,512 + 86,704,128 + 10,485,760 + 12,206,080 = 490,029,056 B.
DeepSeek-V4-Pro (61 layers: 30 CSA, 31 HCA) at the same -c 64000 -np 1 -ub 512, f16: ring 768 x 61 x 1024 =
47,972,352; CSA 16128 x 30 x 1024 = 495,452,160; indexer 16128 x 30 x 256 = 123,863,040; HCA 512 x 31 x 1024 =
16,252,928; states 30 x 65,536 + 31 x 524,288 + 30 x 16,384 = 18,710,528; total 702,251,008 B.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines.base import Request
from kvplan.engines.llamacpp import (
    LlamaCppEngine,
    context_cells,
    dsv4_buffers,
    dsv4_compressed_cells,
    dsv4_layer_buffers,
    dsv4_ring_cells,
)
from kvplan.errors import ConfigError, UnsupportedArchitecture, UsageError
from kvplan.sources.gguf import config_from_metadata

from conftest import ENGINE_SOURCES, check_cited_line, load_config

MIB = 2**20
runner = CliRunner()
FLASH, PRO = "deepseek-ai__DeepSeek-V4-Flash", "deepseek-ai__DeepSeek-V4-Pro"
LLAMA_CPP = ENGINE_SOURCES / "llama.cpp-0c1e57098"

# (path, line, snippet) at ggml-org/llama.cpp@0c1e57098, and the rule each one carries
CITED = [
    ("src/llama-kv-cache-dsv4.cpp", 18, "static constexpr uint32_t DSV4_CSA_RATIO = 4;"),
    ("src/llama-kv-cache-dsv4.cpp", 19, "static constexpr uint32_t DSV4_HCA_RATIO = 128;"),
    ("src/llama-kv-cache-dsv4.cpp", 29, "return std::max<uint32_t>(1, (kv_size + ratio - 1)/ratio);"),  # comp_size
    ("src/llama-kv-cache-dsv4.cpp", 884, "llama_kv_cache uses hparams.is_mla() to allocate K-only storage."),
    ("src/llama-kv-cache-dsv4.cpp", 964, "const uint32_t n_planes = n_stream*(1 + n_rs_seq);"),
    ("src/llama-kv-cache-dsv4.cpp", 965, "ggml_new_tensor_3d(ctx, GGML_TYPE_F32, n_embd_state, state_size, n_planes);"),
    ("src/llama-kv-cache-dsv4.cpp", 966, "ggml_new_tensor_3d(ctx, GGML_TYPE_F32, n_embd_state, state_size, n_planes);"),
    ("src/llama-kv-cache-dsv4.cpp", 1244, "const bool unified_raw = false;"),
    ("src/llama-kv-cache-dsv4.cpp", 1253, "dsv4_make_k_only(hparams_raw);"),
    (
        "src/llama-kv-cache-dsv4.cpp",
        1257,
        "v_trans, offload, swa_full, unified_raw, kv_size, n_seq_max, n_ubatch, n_pad,",
    ),
    (
        "src/llama-kv-cache-dsv4.cpp",
        1263,
        "std::fill(hparams_lid.n_head_kv_arr.begin(), hparams_lid.n_head_kv_arr.end(), 1);",
    ),
    ("src/llama-kv-cache-dsv4.cpp", 1264, "hparams_lid.n_embd_head_k_full = model.hparams.indexer_head_size;"),
    ("src/llama-kv-cache-dsv4.cpp", 1276, "return model.hparams.dsv4_compress_ratios[il] == DSV4_CSA_RATIO;"),
    ("src/llama-kv-cache-dsv4.cpp", 1284, "return model.hparams.dsv4_compress_ratios[il] == DSV4_HCA_RATIO;"),
    ("src/llama-kv-cache-dsv4.cpp", 1287, "const bool unified_compressed = false;"),
    ("src/llama-kv-cache-dsv4.cpp", 1294, "GGML_PAD(dsv4_comp_size(kv_size, DSV4_CSA_RATIO), 256u), n_seq_max, n_pad,"),
    ("src/llama-kv-cache-dsv4.cpp", 1302, "GGML_PAD(dsv4_comp_size(kv_size, DSV4_HCA_RATIO), 256u), n_seq_max, n_pad,"),
    ("src/llama-kv-cache-dsv4.cpp", 1310, "GGML_PAD(dsv4_comp_size(kv_size, DSV4_CSA_RATIO), 256u), n_seq_max, n_pad,"),
    (
        "src/llama-kv-cache-dsv4.cpp",
        1316,
        "model, offload, unified_compressed, n_seq_max, DSV4_CSA_RATIO, 2*DSV4_CSA_RATIO,",
    ),
    ("src/llama-kv-cache-dsv4.cpp", 1317, '2*model.hparams.n_embd_head_k(), n_rs_seq, "csa", filter_csa);'),
    (
        "src/llama-kv-cache-dsv4.cpp",
        1322,
        "model, offload, unified_compressed, n_seq_max, DSV4_HCA_RATIO, DSV4_HCA_RATIO,",
    ),
    ("src/llama-kv-cache-dsv4.cpp", 1323, 'model.hparams.n_embd_head_k(), n_rs_seq, "hca", filter_hca);'),
    (
        "src/llama-kv-cache-dsv4.cpp",
        1328,
        "model, offload, unified_compressed, n_seq_max, DSV4_CSA_RATIO, 2*DSV4_CSA_RATIO,",
    ),
    ("src/llama-kv-cache-dsv4.cpp", 1329, '2*model.hparams.indexer_head_size, n_rs_seq, "lid", filter_csa);'),
    ("src/llama-kv-cache-iswa.cpp", 73, "hparams.n_swa*(unified ? n_seq_max : 1) + n_ubatch), 256);"),
    ("src/llama-kv-cache.cpp", 231, "const bool has_v = !is_mla;"),
    ("src/llama-kv-cache.cpp", 291, 'LLAMA_LOG_INFO("%s: %10s KV buffer size = %8.2f MiB\\n"'),
    ("src/llama-kv-cache-dsv4.cpp", 998, "rs_seq = %u, layers = %zu, size = %7.2f MiB"),
    ("src/llama-model.cpp", 2613, "res = new llama_kv_cache_dsv4("),
    ("src/llama-model.cpp", 2621, "cparams.n_ctx_seq,"),
    ("src/llama-model.cpp", 2625, "cparams.n_rs_seq,"),
    ("src/models/deepseek4.cpp", 68, "hparams.set_swa_pattern(0);"),
    ("src/models/deepseek4.cpp", 61, "ml.get_arr(LLM_KV_ATTENTION_COMPRESS_RATIOS, hparams.dsv4_compress_ratios);"),
    ("src/models/deepseek4.cpp", 42, "ml.get_key(LLM_KV_ATTENTION_INDEXER_KEY_LENGTH, hparams.indexer_head_size);"),
    ("src/llama-context.cpp", 3760, "/*.n_rs_seq                    =*/ 0,"),
    ("common/common.cpp", 1635, "cparams.n_rs_seq          = params.speculative.need_n_rs_seq();"),
    ("conversion/deepseek.py", 550, 'self.block_count = self.hparams["num_hidden_layers"]'),
    ("conversion/deepseek.py", 680, 'self.gguf_writer.add_attention_compress_ratios(hparams["compress_ratios"])'),
    ("conversion/deepseek.py", 675, 'self.gguf_writer.add_indexer_key_length(hparams["index_head_dim"])'),
]


@pytest.mark.parametrize(("path", "line", "text"), CITED, ids=[f"{p}:{n}" for p, n, _ in CITED])
def test_cited_llama_cpp_lines(path, line, text):
    check_cited_line(LLAMA_CPP / path, line, text)


def _shape(name: str):
    return model_shape(load_config(name))


def _req(seq_len: int = 64000, batch: int = 1, kv: str = "bfloat16", **kw) -> Request:
    return Request(seq_len, batch, kv, "bfloat16", **kw)


def _mib(nbytes: int) -> str:
    """llama.cpp's `%8.2f MiB` of a byte count, stripped."""
    return f"{nbytes / MIB:.2f}"


# ------------------------------------------------------------------ the logged figures (llama.cpp issue #27680)

ISSUE_27680 = "https://github.com/ggml-org/llama.cpp/issues/27680"
LOGGED = {  # the quoted lines of that issue's start-up log (DeepSeek-V4-Flash-0731, bf16, n_ctx_seq 64000, 1/1 seqs)
    "raw": "llama_kv_cache:      CUDA0 KV buffer size =   182.75 MiB",  # after "creating     SWA KV cache, size = 4352"
    "csa_state": "csa ratio = 4, state = 8 x 1024, streams = 1, rs_seq = 0, layers = 21, size =    1.31 MiB",
    "hca_state": "hca ratio = 128, state = 128 x 512, streams = 1, rs_seq = 0, layers = 20, size =   10.00 MiB",
    "lid_state": "lid ratio = 4, state = 8 x 256, streams = 1, rs_seq = 0, layers = 21, size =    0.33 MiB",
}


def test_flash_reproduces_the_logged_ring_and_states_of_issue_27680():
    """The log prints 4352 SWA cells for the raw ring; kvplan's ring rule gives 4352 at -ub 4096, and the bytes of
    the ring and of every compressor state match the logged MiB (layers and state shapes too)."""
    shape = _shape(FLASH)
    req = _req(n_ubatch=4096)
    v4 = shape.caches()
    assert dsv4_ring_cells(v4[0], context_cells(64000, 1), 4096) == 4352
    got = dsv4_buffers(v4, req, context_cells(64000, 1))
    for name, line in LOGGED.items():  # llama_kv_cache prints "%8.2f MiB", llama_dsv4_comp_state "size = %7.2f MiB"
        width = 8 if name == "raw" else 7
        assert line.endswith(f"= {got[name] / MIB:{width}.2f} MiB"), (name, got[name])
    ratios = [c.compress_ratio for c in v4]
    assert (ratios.count(4), ratios.count(128), ratios.count(0)) == (21, 20, 2)  # "layers = 21" / "layers = 20"


def test_flash_at_64000_is_the_hand_derived_total():
    got = dsv4_buffers(_shape(FLASH).caches(), _req(n_ubatch=4096), 64000)
    assert got == {
        "raw": 191_627_264,
        "csa": 346_816_512,
        "lid": 86_704_128,
        "hca": 10_485_760,
        "csa_state": 1_376_256,
        "hca_state": 10_485_760,
        "lid_state": 344_064,
    }
    assert _mib(got["csa"]) == "330.75" and _mib(got["lid"]) == "82.69" and sum(got.values()) == 647_839_744


def test_stage_costs_are_the_buffers_by_layer_kind():
    shape = _shape(FLASH)
    req = _req(n_ubatch=4096)
    costs = {c.kind: c for c in LlamaCppEngine(shape.model_type).stage_costs(shape.caches(), req)}
    assert set(costs) == {L.V4_SLIDING, L.CSA, L.HCA}
    assert sum(c.bytes for c in costs.values()) == 647_839_744
    assert costs[L.V4_SLIDING].bytes == 2 * 4352 * 1024 and costs[L.V4_SLIDING].layers == 2
    # a CSA layer: ring + compressed K + indexer K + both states; an HCA layer: ring + compressed K + its state
    assert costs[L.CSA].bytes == 21 * (4352 * 1024 + 16128 * 1024 + 16128 * 256 + 65_536 + 16_384)
    assert costs[L.HCA].bytes == 20 * (4352 * 1024 + 512 * 1024 + 524_288)
    # one more token: a compressed row (and an indexer row) every 4 tokens, one every 128; the full ring adds none
    assert costs[L.CSA].bytes_per_token == 21 * (1024 + 256) / 4 == 6720
    assert costs[L.HCA].bytes_per_token == 20 * 1024 / 128 == 160
    assert costs[L.V4_SLIDING].bytes_per_token == 0


def test_pro_at_64000_default_ubatch():
    got = dsv4_buffers(_shape(PRO).caches(), _req(kv="float16"), 64000)
    assert got["raw"] == 768 * 61 * 1024 == 47_972_352
    assert (got["csa"], got["lid"], got["hca"]) == (495_452_160, 123_863_040, 16_252_928)
    assert got["csa_state"] + got["hca_state"] + got["lid_state"] == 18_710_528
    assert sum(got.values()) == 702_251_008


def test_every_cache_has_one_stream_per_slot():
    """-c 4 x 64000 -np 4: four streams of 64000 cells (unified_raw / unified_compressed are false): four times one."""
    v4 = _shape(FLASH).caches()
    one = dsv4_buffers(v4, _req(), context_cells(64000, 1))
    four = dsv4_buffers(v4, _req(batch=4), context_cells(4 * 64000, 4))
    assert four == {name: 4 * nbytes for name, nbytes in one.items()}


def test_compressed_rows_round_up_then_pad_to_256():
    assert dsv4_compressed_cells(1, 4) == 256  # max(1, cdiv(1, 4)) = 1 -> 256
    assert dsv4_compressed_cells(1024, 4) == 256
    assert dsv4_compressed_cells(1028, 4) == 512  # cdiv 257 -> 512
    assert dsv4_compressed_cells(256, 128) == 256 and dsv4_compressed_cells(32768 + 1, 128) == 512


def test_the_ring_is_capped_by_the_context():
    ring = L.CompressedAttention(512, 128)
    assert dsv4_ring_cells(ring, 512, 512) == 512  # min(512, 640) = 512
    assert dsv4_ring_cells(ring, 4096, 512) == 768


def test_quantized_cache_type_applies_to_every_k_cache_but_not_the_states():
    """-ctk q8_0: rows of 512 / 128 values take 544 / 136 B (34 B per 32); the F32 states do not change."""
    v4 = _shape(FLASH).caches()
    q8 = dsv4_buffers(v4, _req(kv="q8_0"), 64000)
    bf16 = dsv4_buffers(v4, _req(), 64000)
    assert q8["raw"] == 768 * 43 * 544 and q8["csa"] == 16128 * 21 * 544 and q8["lid"] == 16128 * 21 * 136
    assert q8["hca"] == 512 * 20 * 544
    assert all(q8[n] == bf16[n] for n in ("csa_state", "hca_state", "lid_state"))


def test_a_ratio_llama_cpp_does_not_load_is_refused():
    with pytest.raises(UsageError, match=r"only supports compression ratios 0, 4 and 128"):
        dsv4_layer_buffers(L.CompressedAttention(512, 128, 16), "float16", 4096, 1, 512)


# -------------------------------------------------------------------------------------------------------- CLI


def test_cli_estimate_json_is_the_hand_derived_total():
    result = runner.invoke(
        app,
        [
            "estimate",
            "deepseek-ai/DeepSeek-V4-Flash",
            "--engine",
            "llamacpp",
            "--seq-len",
            "64000",
            "--offline",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kv_cache_bytes"] == 490_029_056 and doc["bytes_per_token"] == 6720 + 160
    assert {layer["kind"]: layer["count"] for layer in doc["layers"]} == {L.V4_SLIDING: 2, L.CSA: 21, L.HCA: 20}
    assert any("768-cell raw K ring on 43 layers" in note for note in doc["notes"])


def test_cli_estimate_pro_batch_2():
    result = runner.invoke(
        app,
        ["estimate", "deepseek-ai/DeepSeek-V4-Pro", "--engine", "llamacpp", "--seq-len", "64000", "--batch", "2"]
        + ["--kv-dtype", "f16", "--offline", "--json"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kv_cache_bytes"] == 2 * 702_251_008


# ------------------------------------------------------------------------------------------------------- GGUF


def flash_metadata(cfg: dict, **change) -> dict:
    """What conversion/deepseek.py DeepseekV4Model (and conversion/base.py TextModel) writes for `cfg`."""
    a = "deepseek4"
    meta = {
        "general.architecture": a,
        "general.file_type": 1,
        f"{a}.block_count": cfg["num_hidden_layers"],
        f"{a}.context_length": cfg["max_position_embeddings"],
        f"{a}.embedding_length": cfg["hidden_size"],
        f"{a}.attention.head_count": cfg["num_attention_heads"],
        f"{a}.attention.head_count_kv": cfg["num_key_value_heads"],
        f"{a}.attention.key_length": cfg["head_dim"],
        f"{a}.attention.value_length": cfg["head_dim"],
        f"{a}.attention.q_lora_rank": cfg["q_lora_rank"],
        f"{a}.attention.sliding_window": cfg["sliding_window"],
        f"{a}.attention.indexer.head_count": cfg["index_n_heads"],
        f"{a}.attention.indexer.key_length": cfg["index_head_dim"],
        f"{a}.attention.indexer.top_k": cfg["index_topk"],
        f"{a}.attention.output_group_count": cfg["o_groups"],
        f"{a}.attention.output_lora_rank": cfg["o_lora_rank"],
        f"{a}.attention.compress_ratios": cfg["compress_ratios"],  # the HF list, MTP entry included
        f"{a}.expert_count": cfg["n_routed_experts"],
        f"{a}.expert_used_count": cfg["num_experts_per_tok"],
        f"{a}.expert_feed_forward_length": cfg["moe_intermediate_size"],
        f"{a}.expert_shared_count": cfg["n_shared_experts"],
        f"{a}.hyper_connection.count": cfg["hc_mult"],
        f"{a}.hash_layer_count": cfg["num_hash_layers"],
        f"{a}.vocab_size": cfg["vocab_size"],
    }
    return meta | {f"{a}.{k}": v for k, v in change.items()}


@pytest.mark.parametrize("name", [FLASH, PRO])
def test_gguf_metadata_sizes_like_the_config(name):
    cfg = load_config(name)
    config, notes = config_from_metadata(flash_metadata(cfg), {}, {})
    assert notes == [] and config["model_type"] == "deepseek_v4"
    assert config["compress_ratios"] == cfg["compress_ratios"][: cfg["num_hidden_layers"]]
    from_gguf, from_hf = model_shape(config), model_shape(cfg)
    assert from_gguf.caches() == from_hf.caches()
    req = _req()
    assert dsv4_buffers(from_gguf.caches(), req, 64000) == dsv4_buffers(from_hf.caches(), req, 64000)


def test_gguf_mtp_draft_is_refused():
    cfg = load_config(FLASH)
    with pytest.raises(UnsupportedArchitecture, match=r"MTP draft .* plain iSWA cache"):
        config_from_metadata(flash_metadata(cfg, nextn_predict_layers=1), {}, {})


def test_gguf_short_compress_ratios_is_an_error_like_llama_cpp():
    cfg = load_config(FLASH)
    with pytest.raises(ConfigError, match=r"compress_ratios is shorter than block_count"):
        config_from_metadata(flash_metadata(cfg, **{"attention.compress_ratios": [0] * 42}), {}, {})


def test_gguf_more_than_one_kv_head_is_refused():
    cfg = load_config(FLASH)
    with pytest.raises(UnsupportedArchitecture, match=r"shared K=V head"):
        config_from_metadata(flash_metadata(cfg, **{"attention.head_count_kv": 2}), {}, {})


def test_a_deepseek4_gguf_file_estimates_like_its_config(tmp_path):
    """A .gguf written with that metadata (the gguf package's writer, one zero-filled tensor) plans as the config."""
    gguf = pytest.importorskip("gguf")
    import numpy as np

    from kvplan.planning.estimate import estimate

    cfg = load_config(FLASH)
    path = tmp_path / "DeepSeek-V4-Flash-F16.gguf"
    writer = gguf.GGUFWriter(str(path), "deepseek4")
    for key, value in flash_metadata(cfg).items():
        if key == "general.architecture":
            continue
        (writer.add_array if isinstance(value, list) else writer.add_uint32)(key, value)
    writer.add_tensor("token_embd.weight", np.zeros((cfg["vocab_size"], 8), np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    by_gguf = estimate(str(path), seq_len=64000, engine="llamacpp", kv_dtype="float16")
    by_config = estimate(cfg, seq_len=64000, engine="llamacpp", kv_dtype="float16")
    assert by_gguf.kv_cache_bytes == by_config.kv_cache_bytes == 490_029_056


def test_recommend_refuses_deepseek_v4_because_its_compute_buffer_grows_with_the_context():
    """The llama.cpp budget's compute buffer (n_ubatch x (n_vocab + n_embd) x 4 B) does not hold DeepSeek-V4's,
    which unsloth PR #6940 measured at about 65.5 GiB at 1M context (-ub 512): recommend says so in one line."""
    result = runner.invoke(
        app,
        ["recommend", "deepseek-ai/DeepSeek-V4-Flash", "--engine", "llamacpp", "--gpu-profile", "h200", "--offline"],
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("error: kvplan's llama.cpp budget does not size DeepSeek-V4's compute buffer")
    assert lines[1].startswith("hint: `kvplan estimate` sizes its llama.cpp KV cache")


def test_kv_unified_gives_each_slot_its_own_stream_of_all_of_c():
    """llama-kv-cache-dsv4.cpp:1244 (`unified_raw = false`) and :1287 (`unified_compressed = false`): with -kvu (or
    llama-server without -np) every slot keeps its own DeepSeek-V4 streams, each of n_ctx_seq = all of -c cells, so 4
    unified slots of -c 16384 hold 4 x the one-slot cache of 16384 tokens; the notes say so (not "one stream")."""
    unified = runner.invoke(
        app,
        ["estimate", "deepseek-ai/DeepSeek-V4-Flash", "-e", "llamacpp", "--kv-unified", "on", "--batch", "4"]
        + ["--offline", "--json"],
    )
    one = runner.invoke(
        app,
        ["estimate", "deepseek-ai/DeepSeek-V4-Flash", "-e", "llamacpp", "--seq-len", "16384", "--offline", "--json"],
    )
    assert unified.exit_code == 0 and one.exit_code == 0, unified.output + one.output
    doc = json.loads(unified.stdout)
    assert doc["kv_cache_bytes"] == 4 * json.loads(one.stdout)["kv_cache_bytes"]
    notes = " ".join(doc["notes"])
    assert "each of the 4 slots its own DeepSeek-V4 stream of 16384 cells" in notes and "one stream" not in notes
    for line, text in ((1244, "const bool unified_raw = false;"), (1287, "const bool unified_compressed = false;")):
        check_cited_line(LLAMA_CPP / "src" / "llama-kv-cache-dsv4.cpp", line, text)
