"""llama.cpp's memory for Kimi Linear / Kimi K3 (KDA + MLA) and MiniMax-01 (lightning + softmax attention), read at
ggml-org/llama.cpp@0c1e57098 (LLAMACPP_COMMIT, the tree llama-cpp-python 0.3.36 vendors; the cited lines are kept
below as data and read back where that tree is on this machine).

All three archs are hybrids without a sliding window, so create_memory builds a llama_memory_hybrid: a
llama_kv_cache of n_ctx_seq cells (n_stream = unified ? 1 : n_seq_max) over the non-recurrent layers and a
llama_memory_recurrent of max(1, n_seq_max) cells over the recurrent ones, r and s in F32, per layer:

    KDA        r = 3 x (d_conv - 1) x n_head x kda_head_dim     s = kda_head_dim^2 x n_head
    lightning  r = 0 (no ssm_d_conv)                           s = head_dim^2 x n_head

Kimi K3 (kvplan's catalog config: 93 layers, 69 KDA + 24 MLA, 96 heads, kda head_dim 128, short_conv_kernel_size 4,
kv_lora_rank 512, qk_rope_head_dim 64) at `-c 65536 -np 2` (seq_len 32768, batch 2), f16:

    KDA        r = 3 x 3 x 96 x 128 = 110,592, s = 128 x 128 x 96 = 1,572,864 values; x 4 B = 6,733,824 B a layer
               69 layers x 2 slots x 6,733,824 B                          =   929,267,712 B (886.22 MiB)
    MLA        one K row of 512 + 64 = 576 values, no V (has_v = !is_mla): 1152 B a cell
               24 layers x 32768 cells x 2 streams x 1152 B               = 1,811,939,328 B (1728.00 MiB)
    total                                                                    2,741,207,040 B

MiniMax-01 has no config in kvplan's catalog, so its figures below come from a synthetic 16-layer config
(tests/fixtures/synthetic_configs/minimax.json with llama.cpp's every-8th-layer softmax pattern): 4 heads, 2 KV heads,
head_dim 16: lightning s = 16 x 16 x 4 = 1024 values = 4096 B a layer and slot; softmax K + V 2 x 2 x 16 values =
128 B a cell at f16.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.core import specs as L
from kvplan.core.shapes import model_shape
from kvplan.engines.base import Request
from kvplan.engines.llamacpp import ENTRY, LlamaCppEngine, rs_state_bytes, rs_values
from kvplan.errors import UsageError

from conftest import ENGINE_SOURCES, check_cited_line, load_config

runner = CliRunner()
LLAMA_CPP = ENGINE_SOURCES / "llama.cpp-0c1e57098"
K3 = "moonshotai__Kimi-K3"

CITED = [
    ("src/llama-arch.cpp", 1096, "case LLM_ARCH_KIMI_LINEAR:"),  # llm_arch_is_hybrid
    ("src/llama-arch.cpp", 1098, "case LLM_ARCH_KIMI_K3:"),
    ("src/llama-arch.cpp", 1104, "case LLM_ARCH_MINIMAX_01:"),
    ("src/llama-hparams.h", 171, "llama_swa_type swa_type = LLAMA_SWA_TYPE_NONE;"),
    ("src/llama-model.cpp", 2756, "res = new llama_memory_hybrid("),
    ("src/llama-model.cpp", 2765, "/* recurrent_type_k  */ GGML_TYPE_F32,"),
    ("src/llama-model.cpp", 2766, "/* recurrent_type_v  */ GGML_TYPE_F32,"),
    ("src/llama-model.cpp", 2767, "/* recurrent_kv_size */ std::max((uint32_t) 1, cparams.n_seq_max),"),
    ("src/llama-memory-hybrid.cpp", 49, "[&](int32_t il) { return !hparams.is_recr(il); }"),
    ("src/llama-memory-hybrid.cpp", 63, "[&](int32_t il) { return hparams.is_recr(il); }"),
    ("src/llama-memory-recurrent.cpp", 101, "const uint32_t n_rows = mem_size * (1 + n_rs_seq);"),
    ("src/llama-memory-recurrent.cpp", 102, "ggml_new_tensor_2d(ctx, type_r, hparams.n_embd_r(), n_rows);"),
    ("src/llama-memory-recurrent.cpp", 103, "ggml_new_tensor_2d(ctx, type_s, hparams.n_embd_s(), n_rows);"),
    ("common/common.cpp", 1635, "cparams.n_rs_seq          = params.speculative.need_n_rs_seq();"),
    ("common/common.h", 396, "uint32_t need_n_rs_seq() const {"),
    ("common/common.h", 401, "return needs_rs_seq ? draft.n_max : 0u;"),
    ("common/arg.cpp", 4140, '{"--spec-draft-n-max"}, "N",'),
    ("common/speculative.cpp", 37, '{"draft-mtp",     COMMON_SPECULATIVE_TYPE_DRAFT_MTP},'),
    ("src/llama-hparams.cpp", 219, "if (n_embd_head_kda != 0) {"),
    ("src/llama-hparams.cpp", 222, "const uint32_t d_inner = n_head() * n_embd_head_kda;"),
    ("src/llama-hparams.cpp", 223, "return 3 * (ssm_d_conv > 0 ? ssm_d_conv - 1 : 3) * d_inner;"),
    ("src/llama-hparams.cpp", 229, "const uint32_t n_conv = (ssm_d_conv > 0 ? ssm_d_conv - 1 : 0)"),
    ("src/llama-hparams.cpp", 246, "return n_embd_head_kda * n_embd_head_kda * n_head();"),
    ("src/llama-hparams.cpp", 249, "if (n_embd_head_la != 0) {"),
    ("src/llama-hparams.cpp", 253, "return n_embd_head_la * n_embd_head_la * n_head();"),
    ("src/llama-kv-cache.cpp", 231, "const bool has_v = !is_mla;"),
    ("src/models/kimi-k3.cpp", 18, "ml.get_key(LLM_KV_ATTENTION_KEY_LENGTH_MLA,    hparams.n_embd_head_k_mla_impl);"),
    ("src/models/kimi-k3.cpp", 19, "ml.get_key(LLM_KV_ATTENTION_VALUE_LENGTH_MLA,  hparams.n_embd_head_v_mla_impl);"),
    ("src/models/kimi-k3.cpp", 23, "ml.get_key(LLM_KV_KDA_HEAD_DIM,                hparams.n_embd_head_kda);"),
    ("src/models/kimi-k3.cpp", 32, "hparams.is_recr_impl[i] = hparams.n_head_kv(i) == 0;"),
    ("src/models/kimi-linear.cpp", 18, "hparams.is_recr_impl[i] = hparams.n_head_kv(i) == 0;"),
    ("src/models/kimi-linear.cpp", 59, "{ssm_d_conv, 1, n_embd_head_k_kda * n_head, 1}, TENSOR_NOT_REQUIRED);"),
    ("src/models/minimax-01.cpp", 9, "hparams.n_embd_head_la = hparams.n_embd_head_k_full;"),
    ("src/models/minimax-01.cpp", 12, "if (!ml.get_key_or_arr(LLM_KV_ATTENTION_RECURRENT_LAYERS, hparams.is_recr_impl"),
    ("src/models/minimax-01.cpp", 13, "uint32_t full_attn_interval = 8;"),
    ("src/models/minimax-01.cpp", 16, "((i + 1) % full_attn_interval != 0);"),
    ("conversion/base.py", 1449, 'if (n_head := self.find_hparam(["num_attention_heads", "n_head", "n_heads"]'),
    ("conversion/kimi_k3.py", 186, 'self.gguf_writer.add_kda_head_dim(linear_attn_config["head_dim"])'),
    ("conversion/kimi_k3.py", 203, "self.gguf_writer.add_key_length(kv_lora_rank + qk_rope_head_dim)"),
    ("conversion/kimi_linear.py", 103, "self.gguf_writer.add_kda_head_dim(kda_head_dim)"),
    ("conversion/kimi_linear.py", 119, "self.gguf_writer.add_key_length(kv_lora_rank + qk_rope_head_dim)"),
    ("conversion/minimax.py", 62, "def set_gguf_parameters(self):"),
    ("conversion/minimax.py", 82, 'self.gguf_writer.add_rope_dimension_count(self.hparams["rotary_dim"])'),
]


@pytest.mark.parametrize(("path", "line", "text"), CITED, ids=[f"{p}:{n}" for p, n, _ in CITED])
def test_cited_llama_cpp_lines(path, line, text):
    check_cited_line(LLAMA_CPP / path, line, text)


def test_the_converter_writes_no_minimax_01_layer_list():
    """conversion/minimax.py MiniMaxText01Model.set_gguf_parameters (:62-82) writes neither
    attention.recurrent_layers nor full_attention_interval, so llama.cpp's loader takes every 8th layer."""
    path = LLAMA_CPP / "conversion/minimax.py"
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    body = "\n".join(path.read_text().splitlines()[61:82])
    assert "recurrent_layers" not in body and "full_attention_interval" not in body


def _costs(shape, req: Request, **options) -> dict[str, int]:
    engine = ENTRY.configured_storage(shape, options) if options else ENTRY.storage(shape)
    return {c.kind: c.bytes for c in engine.stage_costs(shape.caches(), req)}


def _req(seq_len: int, batch: int, kv: str = "float16") -> Request:
    return Request(seq_len, batch, kv, "bfloat16")


# ------------------------------------------------------------------------------------------ Kimi K3 (KDA + MLA)


def test_k3_kda_row_sizes_are_llama_hparams_n_embd_r_and_n_embd_s():
    (state,) = {c for c in model_shape(load_config(K3)).caches() if isinstance(c, L.RecurrentState)}
    assert rs_values(state) == (110_592, 1_572_864)
    assert rs_state_bytes(state) == 6_733_824


def test_k3_at_32768_tokens_and_2_slots_is_the_hand_derived_total():
    costs = _costs(model_shape(load_config(K3)), _req(32768, 2))
    assert costs == {L.STATE: 929_267_712, L.MLA: 1_811_939_328}
    assert sum(costs.values()) == 2_741_207_040


def test_k3_state_is_per_slot_and_the_latent_one_stream_with_kv_unified():
    """-kvu: the latent cache is one stream of GGML_PAD(65536, 256) cells (the same bytes as 2 x 32768); the
    recurrent memory still keeps max(1, n_seq_max) = 2 cells."""
    costs = _costs(model_shape(load_config(K3)), _req(32768, 2), kv_unified=True)
    assert costs == {L.STATE: 929_267_712, L.MLA: 24 * 65536 * 1152}


def test_k3_flash_attn_off_changes_nothing_as_mla_has_no_v():
    shape = model_shape(load_config(K3))
    assert _costs(shape, _req(32768, 2), flash_attn="off") == _costs(shape, _req(32768, 2))


def test_k3_q8_0_cache_quantizes_the_latent_but_not_the_f32_state():
    """q8_0: 576 values = 18 blocks of 34 B = 612 B a cell; r and s stay F32 (llama-model.cpp:2765-2766)."""
    costs = _costs(model_shape(load_config(K3)), _req(32768, 2, "q8_0"))
    assert costs == {L.STATE: 929_267_712, L.MLA: 24 * 32768 * 2 * 612}


def test_k3_without_np_llama_server_holds_4_states():
    costs = _costs(model_shape(load_config(K3)), _req(16384, 4), kv_unified=True)
    assert costs[L.STATE] == 4 * 69 * 6_733_824


def test_cli_estimate_k3_json():
    result = runner.invoke(
        app,
        ["estimate", "moonshotai/Kimi-K3", "--engine", "llamacpp", "--seq-len", "32768", "--batch", "2"]
        + ["--offline", "--json"],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kv_cache_bytes"] == 2_741_207_040 and doc["bytes_per_token"] == 24 * 1152
    assert {layer["kind"]: layer["count"] for layer in doc["layers"]} == {L.STATE: 69, L.MLA: 24}
    (note,) = (n for n in doc["notes"] if "KDA state" in n)
    assert "69 layers x (r 110,592 + s 1,572,864 values) = 443.11 MiB per slot, 2 slot(s)" in note
    assert "multiplies these rows by 1 + n_rs_seq" in note


def test_kda_heads_other_than_the_attention_heads_are_refused():
    """The synthetic Kimi Linear config has linear_attn_config.num_heads 3 and num_attention_heads 4: llama.cpp's
    n_embd_r / n_embd_s use n_head() (4) and its loader shapes the conv tensors by it, so the GGUF would not load."""
    shape = model_shape(load_config("synthetic/kimi_linear"))
    with pytest.raises(UsageError, match=r"attention head count \(4.*num_heads is 3"):
        ENTRY.storage(shape)


def test_synthetic_kimi_linear_with_matching_heads():
    """num_heads 4, head_dim 16, kernel 4: r = 3 x 3 x 4 x 16 = 576, s = 16 x 16 x 4 = 1024 values, 6400 B a layer;
    3 KDA layers x 3 slots = 57,600 B. MLA: 2 layers x (32 + 8) values x 2 B x 512 cells x 3 streams = 245,760 B."""
    config = load_config("synthetic/kimi_linear")
    config["linear_attn_config"]["num_heads"] = 4
    assert _costs(model_shape(config), _req(512, 3)) == {L.STATE: 57_600, L.MLA: 245_760}


# ------------------------------------------------------------------------------- MiniMax-01 (lightning + softmax)


def _minimax(n_layer: int = 16) -> dict:
    config = load_config("synthetic/minimax")
    config["num_hidden_layers"] = n_layer
    config["layer_types"] = [
        "full_attention" if (i + 1) % 8 == 0 else "linear_attention" for i in range(n_layer)
    ]  # llama.cpp's own pattern (models/minimax-01.cpp:13-16)
    return config


def test_lightning_state_has_no_conv_row():
    (state,) = {c for c in model_shape(_minimax()).caches() if isinstance(c, L.RecurrentState)}
    assert rs_values(state) == (0, 1024) and rs_state_bytes(state) == 4096


def test_minimax_01_sizes_14_lightning_and_2_softmax_layers():
    """-c 2048 -np 2: 1024 cells a stream. Lightning 14 x 2 slots x 4096 B = 114,688; softmax 2 x 1024 x 2 x 128 B
    = 524,288."""
    assert _costs(model_shape(_minimax()), _req(1024, 2)) == {L.STATE: 114_688, L.FULL: 524_288}


def test_minimax_01_state_ignores_kv_unified_and_flash_attn():
    shape = model_shape(_minimax())
    costs = _costs(shape, _req(1024, 2), kv_unified=True, flash_attn="off")
    assert costs == {L.STATE: 114_688, L.FULL: 2 * 2048 * 128}


def test_a_layer_pattern_llama_cpp_does_not_build_is_refused():
    """The fixture's softmax layers 2 and 4 are not llama.cpp's every-8th (its converter writes no layer list)."""
    shape = model_shape(load_config("synthetic/minimax"))
    with pytest.raises(UsageError, match=r"every 8th layer as softmax attention.*layers \[2, 4\]"):
        ENTRY.storage(shape)


def test_cli_refusal_is_one_error_line_and_a_hint(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(load_config("synthetic/minimax")))
    result = runner.invoke(app, ["estimate", str(path), "--engine", "llamacpp", "--offline"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("error: llama.cpp's MiniMax-01 GGUF runs every 8th layer as softmax attention")
    assert lines[1].startswith("hint:")


def test_the_plain_engine_still_sizes_mamba_states_as_before():
    """rs_values keeps the Mamba rule for the other families: (d_conv - 1) x channels and the SSM state."""
    state = L.RecurrentState("mamba", 8, 4, (8, 16))
    assert rs_values(state) == (24, 128)
    req = _req(100, 3)
    assert LlamaCppEngine()._layer(state, req, 256)[1] == 3 * (24 + 128) * 4


# ------------------------------------------------------------------------------------------------------- GGUF


def kimi_metadata(cfg: dict, arch: str = "kimi-k3", **change) -> dict:
    """What conversion/kimi_k3.py KimiK3Model.set_gguf_parameters (:165-227, over conversion/base.py TextModel)
    writes for `cfg` (a text config): head_count_kv 1 on the full_attn_layers and 0 on the KDA layers (:174-182),
    key_length kv_lora_rank + qk_rope_head_dim, value_length kv_lora_rank, the per-head sizes under the _mla keys."""
    linear = cfg["linear_attn_config"]
    full = set(linear["full_attn_layers"])
    meta = {
        "general.architecture": arch,
        "general.file_type": 1,
        f"{arch}.block_count": cfg["num_hidden_layers"],
        f"{arch}.context_length": cfg["max_position_embeddings"],
        f"{arch}.embedding_length": cfg["hidden_size"],
        f"{arch}.attention.head_count": cfg["num_attention_heads"],
        f"{arch}.attention.head_count_kv": [1 if i + 1 in full else 0 for i in range(cfg["num_hidden_layers"])],
        f"{arch}.ssm.conv_kernel": linear["short_conv_kernel_size"],
        f"{arch}.kda.head_dim": linear["head_dim"],
        f"{arch}.attention.kv_lora_rank": cfg["kv_lora_rank"],
        f"{arch}.rope.dimension_count": cfg["qk_rope_head_dim"],
        f"{arch}.attention.key_length": cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"],
        f"{arch}.attention.value_length": cfg["kv_lora_rank"],
        f"{arch}.attention.key_length_mla": cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"],
        f"{arch}.attention.value_length_mla": cfg["v_head_dim"],
        f"{arch}.vocab_size": cfg["vocab_size"],
    }
    if cfg.get("q_lora_rank") is not None:
        meta[f"{arch}.attention.q_lora_rank"] = cfg["q_lora_rank"]
    if linear.get("gate_lower_bound") is not None:
        meta[f"{arch}.kda.gate_lower_bound"] = linear["gate_lower_bound"]
    return meta | {f"{arch}.{k}": v for k, v in change.items()}


def test_k3_gguf_metadata_gives_the_configs_caches():
    from kvplan.sources.gguf import config_from_metadata

    text = load_config(K3)["text_config"]
    config, notes = config_from_metadata(kimi_metadata(text), {}, {})
    assert notes == [] and config["model_type"] == "kimi_linear"
    assert config["linear_attn_config"]["kda_layers"] == text["linear_attn_config"]["kda_layers"]
    shape = model_shape(config)
    assert shape.caches() == model_shape(load_config(K3)).caches()
    assert sum(_costs(shape, _req(32768, 2)).values()) == 2_741_207_040


def test_kimi_linear_gguf_without_value_length_still_maps():
    """conversion/kimi_linear.py writes no value_length (llama.cpp then defaults it, unused: MLA has no V)."""
    from kvplan.sources.gguf import config_from_metadata

    config = load_config("synthetic/kimi_linear")
    config["linear_attn_config"]["num_heads"] = 4
    meta = kimi_metadata(config, "kimi-linear")
    del meta["kimi-linear.attention.value_length"]
    mapped, _ = config_from_metadata(meta, {}, {})
    assert model_shape(mapped).caches() == model_shape(config).caches()


def test_kimi_gguf_without_the_mla_keys_is_an_error_like_llama_cpp():
    from kvplan.errors import ConfigError
    from kvplan.sources.gguf import config_from_metadata

    meta = kimi_metadata(load_config(K3)["text_config"])
    del meta["kimi-k3.attention.value_length_mla"]
    with pytest.raises(ConfigError, match=r"no kimi-k3.attention.value_length_mla, which llama.cpp's kimi-k3 loader"):
        config_from_metadata(meta, {}, {})


def test_kimi_gguf_with_more_than_one_latent_head_is_refused():
    from kvplan.errors import UnsupportedArchitecture
    from kvplan.sources.gguf import config_from_metadata

    text = load_config(K3)["text_config"]
    kv = [2 if i + 1 in text["linear_attn_config"]["full_attn_layers"] else 0 for i in range(93)]
    with pytest.raises(UnsupportedArchitecture, match="not one latent row"):
        config_from_metadata(kimi_metadata(text, **{"attention.head_count_kv": kv}), {}, {})


def minimax_metadata(cfg: dict, **change) -> dict:
    """What conversion/minimax.py MiniMaxText01Model (:62-82, over conversion/base.py) writes: no layer list."""
    a = "minimax-01"
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
        f"{a}.vocab_size": cfg["vocab_size"],
    }
    return meta | {f"{a}.{k}": v for k, v in change.items()}


def test_minimax_01_gguf_runs_every_8th_layer_as_softmax():
    from kvplan.sources.gguf import config_from_metadata

    config, notes = config_from_metadata(minimax_metadata(_minimax()), {}, {})
    assert notes == [] and config["model_type"] == "minimax"
    shape = model_shape(config)
    assert shape.caches() == model_shape(_minimax()).caches()
    assert _costs(shape, _req(1024, 2)) == {L.STATE: 114_688, L.FULL: 524_288}


@pytest.mark.parametrize(
    "change",
    [
        {"full_attention_interval": 2},
        {"attention.recurrent_layers": [True, False] * 8},
        {"attention.recurrent_layers": True},  # get_key_or_arr: one value for every layer
    ],
    ids=["interval", "layer-list", "scalar"],
)
def test_minimax_01_gguf_with_another_layer_pattern_is_refused(change):
    from kvplan.errors import UnsupportedArchitecture
    from kvplan.sources.gguf import config_from_metadata

    with pytest.raises(UnsupportedArchitecture, match="not every 8th softmax attention"):
        config_from_metadata(minimax_metadata(_minimax(), **change), {}, {})


def test_a_kimi_k3_gguf_file_estimates_like_its_config(tmp_path):
    """A .gguf written with that metadata (the gguf package's writer, one zero-filled tensor) sizes as the config."""
    gguf = pytest.importorskip("gguf")
    import numpy as np

    from kvplan.planning.estimate import estimate

    text = load_config(K3)["text_config"]
    path = tmp_path / "Kimi-K3-F16.gguf"
    writer = gguf.GGUFWriter(str(path), "kimi-k3")
    for key, value in kimi_metadata(text).items():
        if key == "general.architecture":
            continue
        if isinstance(value, list):
            writer.add_array(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        else:
            writer.add_uint32(key, value)
    writer.add_tensor("token_embd.weight", np.zeros((8, 8), np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    by_gguf = estimate(str(path), seq_len=32768, batch=2, engine="llamacpp", kv_dtype="float16")
    assert by_gguf.kv_cache_bytes == 2_741_207_040
