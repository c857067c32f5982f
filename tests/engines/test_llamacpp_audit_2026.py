"""llama.cpp's caches for the 2026 families, read at ggml-org/llama.cpp@0c1e57098 (LLAMACPP_COMMIT): MiniMax-M3's MSA
cache, and MiMo-V2-Flash and OLMo 3, whose sliding layers llama.cpp keeps in an iSWA cache.

Every figure below is derived by hand in its docstring (cells x row bytes x layers x streams) and asserted without
the tree; `_CITED` reads back each line kvplan.engines.llamacpp cites where the tree is on this machine.

- MiniMax-M3: llama.cpp's converter takes `architectures[0]` (conversion/base.py:2884-2885) and knows MiniMax-M3 only
  as MiniMaxM3SparseForCausalLM / MiniMaxM3SparseForConditionalGeneration (conversion/__init__.py:185-186): the
  published config's MiniMaxM3ForCausalLM is refused ("not supported!", :394-395). For a config it converts,
  create_memory builds llama_kv_cache_msa (llama-model.cpp:2375-2395): a plain KV cache of every layer's GQA K/V
  (llama-kv-cache-msa.cpp:34-37) and an indexer cache of the same cells (:46-49) on layers il >= n_layer_dense_lead
  (llama-model.cpp:2379; the leading zeros of moe_layer_freq, conversion/minimax.py:191-198) with one KV head (:40)
  of K width indexer_head_size (:41, from sparse_index_dim: conversion/minimax.py:186) and V of the model's
  n_embd_head_v, allocated because M3 is not MLA (llama-kv-cache.cpp:231).
- MiMo-V2-Flash: models/mimo2.cpp:6 sets LLAMA_SWA_TYPE_STANDARD whatever the GGUF says, n_swa the config's
  `sliding_window` (conversion/mimo.py:159), so its sliding layers get GGML_PAD(min(n_ctx_seq, n_swa + n_ubatch),
  256) cells (llama-kv-cache-iswa.cpp:73).
- OLMo 3: Olmo3ForCausalLM converts to LLM_ARCH_OLMO2 (conversion/olmo.py:49-52), with `sliding_window` written when
  the config has one (:57-58), and models/olmo2.cpp:6-8 then turns SWA on.
"""

from __future__ import annotations

import copy
import json

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines import Request
from kvplan.engines.llamacpp import (
    LLAMACPP_MINIMAX_M3,
    SWA_FAMILIES,
    LlamaCppEngine,
    model_args,
)
from kvplan.errors import UsageError

from conftest import ENGINE_SOURCES, FIXTURES, check_cited_line, load_config

LLAMA_CPP = ENGINE_SOURCES / "llama.cpp-0c1e57098"
runner = CliRunner()

_CITED = [
    ("conversion/base.py", 2885, "arch = arches[0]"),
    ("conversion/base.py", 2901, 'arch = text_config["architectures"][0]'),
    ("conversion/__init__.py", 185, '"MiniMaxM3SparseForCausalLM": "minimax",'),
    ("conversion/__init__.py", 186, '"MiniMaxM3SparseForConditionalGeneration": "minimax",'),
    ("conversion/__init__.py", 394, "if name not in relevant_map:"),
    ("conversion/__init__.py", 395, 'raise NotImplementedError(f"Architecture {name!r} not supported!")'),
    (
        "conversion/minimax.py",
        167,
        '@ModelBase.register("MiniMaxM3SparseForCausalLM", "MiniMaxM3SparseForConditionalGeneration")',
    ),
    ("conversion/minimax.py", 185, 'self.gguf_writer.add_indexer_head_count(sac["sparse_num_index_heads"])'),
    ("src/models/minimax-m3.cpp", 382, 'GGML_ASSERT(HKV == Hd && "MSA: one indexer head per GQA group");'),
    ("conversion/minimax.py", 186, 'self.gguf_writer.add_indexer_key_length(sac["sparse_index_dim"])'),
    ("conversion/minimax.py", 191, 'moe_layer_freq = self.find_hparam(["moe_layer_freq"])'),
    ("conversion/minimax.py", 194, "if v == 0:"),
    ("conversion/minimax.py", 198, "self.gguf_writer.add_leading_dense_block_count(n_dense)"),
    ("src/llama-model.cpp", 2375, "case LLM_ARCH_MINIMAX_M3:"),
    ("src/llama-model.cpp", 2379, "[&](int32_t il) { return (uint32_t) il >= hparams.n_layer_dense_lead; };"),
    ("src/llama-model.cpp", 2381, "res = new llama_kv_cache_msa("),
    ("src/llama-kv-cache-msa.cpp", 34, "kv_base = std::make_unique<llama_kv_cache>("),
    ("src/llama-kv-cache-msa.cpp", 35, "model, model.hparams, type_k, type_v,"),
    (
        "src/llama-kv-cache-msa.cpp",
        40,
        "std::fill(hparams_idx.n_head_kv_arr.begin(), hparams_idx.n_head_kv_arr.end(), 1);",
    ),
    ("src/llama-kv-cache-msa.cpp", 41, "hparams_idx.n_embd_head_k_full = model.hparams.indexer_head_size;"),
    ("src/llama-kv-cache-msa.cpp", 46, "kv_idx = std::make_unique<llama_kv_cache>("),
    ("src/llama-kv-cache-msa.cpp", 47, "model, hparams_idx, type_k, type_v,"),
    ("src/llama-kv-cache-msa.cpp", 48, "v_trans, offload, unified, kv_size, n_seq_max, n_pad,"),
    ("src/llama-kv-cache-msa.cpp", 49, "n_swa, swa_type, nullptr, filter_idx, reuse, nullptr);"),
    ("src/llama-kv-cache.cpp", 231, "const bool has_v = !is_mla;"),
    ("src/llama-kv-cache.cpp", 234, "ggml_new_tensor_3d(ctx, type_v, n_embd_v_gqa, kv_size, n_stream)"),
    (
        "src/models/minimax-m3.cpp",
        15,
        "ml.get_key(LLM_KV_LEADING_DENSE_BLOCK_COUNT,   hparams.n_layer_dense_lead, false);",
    ),
    ("src/models/minimax-m3.cpp", 22, "ml.get_key(LLM_KV_ATTENTION_INDEXER_KEY_LENGTH,    hparams.indexer_head_size);"),
    ("src/models/minimax-m3.cpp", 273, "n_ps = GGML_PAD((int64_t) mctx_msa->get_n_pos(), blk);"),
    ("src/models/minimax-m3.cpp", 282, "inp->pos_mask = ggml_new_tensor_2d(ctx0, GGML_TYPE_F32, n_ps, n_tokens);"),
    ("src/models/minimax-m3.cpp", 476, "ggml_tensor * sc = ggml_mul_mat(ctx0, ikp,"),
    ("src/models/minimax-m3.cpp", 480, "sc = ggml_reshape_3d(ctx0, sc, n_ps, Hd, n_tps);"),
    ("src/models/mimo2.cpp", 6, "hparams.swa_type = LLAMA_SWA_TYPE_STANDARD;"),
    ("conversion/mimo.py", 159, 'self.gguf_writer.add_sliding_window(self.hparams["sliding_window"])'),
    ("conversion/olmo.py", 49, '@ModelBase.register("Olmo3ForCausalLM")'),
    ("conversion/olmo.py", 52, "model_arch = gguf.MODEL_ARCH.OLMO2"),
    ("conversion/olmo.py", 57, 'if "sliding_window" in self.hparams:'),
    ("conversion/olmo.py", 58, 'self.gguf_writer.add_sliding_window(self.hparams["sliding_window"])'),
    ("src/models/olmo2.cpp", 6, "ml.get_key(LLM_KV_ATTENTION_SLIDING_WINDOW, hparams.n_swa, false);"),
    ("src/models/olmo2.cpp", 8, "hparams.swa_type = LLAMA_SWA_TYPE_STANDARD;"),
    ("conversion/base.py", 1280, "config = AutoConfig.from_pretrained(dir_model, trust_remote_code=False).to_dict()"),
    ("conversion/olmo.py", 61, 'if "layer_types" in self.hparams:'),
    ("conversion/olmo.py", 67, "sliding_window_pattern.append((i + 1) % 4 != 0)"),
    ("requirements/requirements-convert_legacy_llama.txt", 4, "transformers==4.57.6"),
    ("requirements/requirements-convert_hf_to_gguf.txt", 1, "-r ./requirements-convert_legacy_llama.txt"),
    ("conversion/base.py", 1288, 'with open(dir_model / "config.json", "r", encoding="utf-8") as f:'),
    ("src/llama-kv-cache-iswa.cpp", 73, "hparams.n_swa*(unified ? n_seq_max : 1) + n_ubatch), 256);"),
]


@pytest.mark.parametrize(("path", "line", "text"), _CITED)
def test_cited_llama_cpp_source_lines(path, line, text):
    check_cited_line(LLAMA_CPP / path, line, text)


def _req(seq_len: int = 8192, batch: int = 2, kv: str = "float16") -> Request:
    return Request(seq_len=seq_len, batch=batch, kv_dtype=kv, model_dtype="bfloat16")


def _costs(cfg: dict, req: Request, **kw) -> dict[str, tuple[int, int, int]]:
    shape = model_shape(cfg)
    engine = LlamaCppEngine(shape.model_type, **kw, **model_args(shape))
    return {c.kind: (c.layers, c.tokens, c.bytes) for c in engine.stage_costs(shape.caches(), req)}


# ------------------------------------------------------------------------------------------------- MiniMax-M3


def _m3(arch: str = "MiniMaxM3SparseForCausalLM") -> dict:
    cfg = copy.deepcopy(load_config("MiniMaxAI__MiniMax-M3"))
    cfg["architectures"] = [arch]
    return cfg


def test_published_m3_config_is_refused_naming_what_llamacpp_converts():
    """The catalog config names MiniMaxM3ForCausalLM, which conversion/__init__.py:394-395 refuses."""
    cfg = load_config("MiniMaxAI__MiniMax-M3")
    assert cfg["architectures"] == ["MiniMaxM3ForCausalLM"]
    with pytest.raises(UsageError, match=r"refuses MiniMaxM3ForCausalLM .*conversion/__init__.py:394-395") as err:
        _costs(cfg, _req())
    assert "MiniMaxM3SparseForCausalLM" in str(err.value) and "MiniMaxM3SparseForCausalLM" in str(err.value.hint)
    assert LLAMACPP_MINIMAX_M3 == ("MiniMaxM3SparseForCausalLM", "MiniMaxM3SparseForConditionalGeneration")


def test_published_m3_config_cli_is_one_error_and_one_hint():
    result = runner.invoke(
        app, ["estimate", "MiniMaxAI/MiniMax-M3", "--engine", "llamacpp", "--seq-len", "8192", "--batch", "2"]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], lines
    assert "MiniMaxM3SparseForCausalLM" in lines[0] and "MiniMaxM3ForCausalLM" in lines[0]


@pytest.mark.parametrize("arch", LLAMACPP_MINIMAX_M3)
def test_m3_sparse_config_is_msa_kv_plus_indexer_k_and_v(arch):
    """-c 16384 -np 2: 8192 cells, 2 streams. Base cache: 60 layers x (4 x 128 K + 4 x 128 V) x 2 B = 2048 B a cell:
    60 x 2048 x 8192 x 2 = 2,013,265,920 B. Indexer cache on the 57 layers after moe_layer_freq's 3 dense ones:
    (128 K + 128 V) x 2 B = 512 B a cell: 57 x 512 x 8192 x 2 = 478,150,656 B. Total 2,491,416,576 B (2.32 GiB);
    152,064 B per token. Read as keys only (transformers' idx_keys) it would be 239,075,328 B of index cache."""
    costs = _costs(_m3(arch), _req())
    assert costs == {
        L.FULL: (60, 8192, 2_013_265_920),
        L.INDEX: (57, 8192, 478_150_656),
    }
    assert 60 * 2048 * 8192 * 2 == 2_013_265_920 and 57 * 512 * 8192 * 2 == 478_150_656
    assert sum(b for _, _, b in costs.values()) == 2_491_416_576


def test_m3_index_cache_q8_0_and_fa_off_and_unified():
    """q8_0: 34 B per 32 values, so an index cell is 4 x 34 + 4 x 34 = 272 B and a base cell 16 x 34 x 2 = 1088 B:
    57 x 272 x 8192 x 2 = 254,017,536 and 60 x 1088 x 8192 x 2 = 1,069,547,520. -fa off: the indexer hparams have
    one KV head everywhere, so the widest V row is still 128 (llama-kv-cache.cpp:210): the same bytes. -kvu: one
    stream of 16384 cells, the same total."""
    q8 = _costs(_m3(), _req(kv="q8_0"))
    assert q8[L.INDEX] == (57, 8192, 254_017_536) and q8[L.FULL] == (60, 8192, 1_069_547_520)
    assert _costs(_m3(), _req(), flash_attn="off") == _costs(_m3(), _req())
    unified = _costs(_m3(), _req(), kv_unified=True)
    assert unified[L.INDEX] == (57, 16384, 478_150_656)


def test_m3_sparse_layers_llamacpp_would_put_elsewhere_are_refused():
    """llama.cpp's indexer sits on il >= the leading dense count of moe_layer_freq (llama-model.cpp:2379), whatever
    sparse_attention_freq says: a config whose sparse layers differ, or without moe_layer_freq, is refused."""
    cfg = _m3()
    cfg["sparse_attention_config"]["sparse_attention_freq"][10] = 0
    cfg["sparse_attention_config"]["sparse_disable_index_value"][10] = 0
    with pytest.raises(UsageError, match="leading dense layers"):
        _costs(cfg, _req())
    cfg = _m3()
    del cfg["moe_layer_freq"]
    with pytest.raises(UsageError, match="no moe_layer_freq"):
        _costs(cfg, _req())


def test_m3_without_sparse_index_dim_is_refused():
    """conversion/minimax.py:186 reads sparse_index_dim only (a KeyError without it)."""
    cfg = _m3()
    cfg["index_head_dim"] = cfg["sparse_attention_config"].pop("sparse_index_dim")
    with pytest.raises(UsageError, match="sparse_index_dim"):
        _costs(cfg, _req())


def test_m3_estimate_note_says_the_index_v_row(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_m3()))
    result = runner.invoke(
        app, ["estimate", str(path), "--engine", "llamacpp", "--seq-len", "8192", "--batch", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kv_cache_bytes"] == 2_491_416_576 and doc["bytes_per_token"] == 152_064
    assert any("57 layers" in n and "128 K and 128 V" in n for n in doc["notes"])


# ---------------------------------------------------------------------------------------------- MiMo-V2-Flash


def test_mimo_and_olmo3_are_iswa_families():
    assert {"mimo_v2_flash", "olmo3"} <= SWA_FAMILIES


def test_mimo_v2_flash_sliding_layers_hold_window_plus_ubatch():
    """n_swa 128 (sliding_window), n_ubatch 512: GGML_PAD(min(8192, 640), 256) = 768 cells a stream. Sliding cell:
    8 heads x (192 K + 128 V) x 2 B = 5120 B: 39 x 5120 x 768 x 2 = 306,708,480 B. Full layers keep 8192 cells:
    4 x (192 + 128) x 2 = 2560 B, 9 x 2560 x 8192 x 2 = 377,487,360 B. Total 684,195,840 B (every token cached, as
    before: 3,649,044,480 B)."""
    costs = _costs(load_config("XiaomiMiMo__MiMo-V2-Flash"), _req())
    assert costs == {L.FULL: (9, 8192, 377_487_360), L.SLIDING: (39, 768, 306_708_480)}
    assert 39 * 5120 * 768 * 2 == 306_708_480 and 9 * 2560 * 8192 * 2 == 377_487_360


def test_mimo_window_is_sliding_window_not_transformers_plus_one():
    """-kvu -np 4 -c 32768: the SWA cache is GGML_PAD(min(32768, 128 x 4 + 512), 256) = 1024 cells; transformers'
    window (sliding_window_size + 1 = 129) would give 129 x 4 + 512 = 1028 -> 1280."""
    costs = _costs(load_config("XiaomiMiMo__MiMo-V2-Flash"), _req(batch=4), kv_unified=True)
    assert costs[L.SLIDING] == (39, 1024, 39 * 5120 * 1024)
    assert costs[L.FULL][1] == 32768


def test_mimo_config_whose_window_keys_differ_is_refused():
    cfg = load_config("XiaomiMiMo__MiMo-V2-Flash")
    cfg["sliding_window"] = 256
    with pytest.raises(UsageError, match="conversion/mimo.py:159"):
        _costs(cfg, _req())
    del cfg["sliding_window"]
    with pytest.raises(UsageError, match="absent or differs"):
        _costs(cfg, _req())


# --------------------------------------------------------------------------------------------------------- OLMo 3


def test_olmo3_sliding_layers_hold_window_plus_ubatch():
    """Olmo-3.1-32B: sliding_window 4096, 8 KV heads x 128: 4096 B a cell (K + V, f16). Sliding: GGML_PAD(min(8192,
    4096 + 512), 256) = 4608 cells: 48 x 4096 x 4608 x 2 = 1,811,939,328 B; full: 16 x 4096 x 8192 x 2 =
    1,073,741,824 B. Total 2,885,681,152 B (every token cached, as before: 4,294,967,296 B)."""
    costs = _costs(load_config("allenai__Olmo-3.1-32B-Instruct"), _req())
    assert costs == {L.SLIDING: (48, 4608, 1_811_939_328), L.FULL: (16, 8192, 1_073_741_824)}
    assert 48 * 4096 * 4608 * 2 == 1_811_939_328


def test_olmo3_without_layer_types_is_three_sliding_then_one_full():
    """Olmo3Config.__post_init__ (transformers 4.57.6, which llama.cpp's converter pins and reads the config through,
    conversion/base.py:1280; and 5.24): layer_types (i + 1) % 4 != 0 -> sliding, sliding_window 4096 by default.
    kvplan read such a config as sliding on all 64 layers (every engine); llama.cpp's olmo.py:61-67 writes the same
    pattern. Without layer_types the Olmo-3.1-32B figures are those of the published config: 2,885,681,152 B."""
    cfg = load_config("allenai__Olmo-3.1-32B-Instruct")
    published = _costs(cfg, _req())
    del cfg["layer_types"]
    assert _costs(cfg, _req()) == published
    del cfg["sliding_window"]  # Olmo3Config's default window, 4096
    assert _costs(cfg, _req()) == published
    kinds = [c.kind for layer in model_shape(cfg).layers for c in layer]
    assert kinds == [L.FULL if (i + 1) % 4 == 0 else L.SLIDING for i in range(64)]


def test_m3_llamacpp_plan_is_refused_for_its_context_sized_compute_buffer(tmp_path):
    """The MSA graph's position mask and block scores grow with the cached positions (minimax-m3.cpp:282, :476-480),
    which llama.cpp's n_ubatch x (n_vocab + n_embd) x 4 budget term does not hold: recommend refuses, estimate sizes."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_m3()))
    result = runner.invoke(
        app,
        [
            "recommend",
            str(path),
            "--engine",
            "llamacpp",
            "--gpu-profile",
            "h200",
            "--gpus",
            "8",
            "--max-model-len",
            "32768",
        ],
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], lines
    assert "MSA compute buffer" in lines[0] and "minimax-m3.cpp:282" in lines[0]


def test_smollm3_sliding_layers_are_cached_whole_in_llamacpp():
    """models/smollm3.cpp sets no swa_type (LLAMA_SWA_TYPE_NONE, the default): the plain cache, every token kept,
    whatever the config's sliding layers; the estimate says so."""
    if (LLAMA_CPP / "src/models/smollm3.cpp").exists():
        assert "swa" not in (LLAMA_CPP / "src/models/smollm3.cpp").read_text()
    assert "smollm3" not in SWA_FAMILIES
    cfg = json.loads((FIXTURES / "synthetic_configs" / "smollm3_sw.json").read_text())
    costs = _costs(cfg, _req())
    assert L.SLIDING in costs and {tokens for _, tokens, _ in costs.values()} == {8192}


def test_m3_index_heads_other_than_kv_heads_are_refused():
    """minimax-m3.cpp:382 asserts one index head per GQA group: 4 KV heads need 4 index heads (the catalog's)."""
    cfg = _m3()
    assert cfg["sparse_attention_config"]["sparse_num_index_heads"] == cfg["num_key_value_heads"] == 4
    cfg["sparse_attention_config"]["sparse_num_index_heads"] = 8
    with pytest.raises(UsageError, match="one index head per GQA group"):
        _costs(cfg, _req())
