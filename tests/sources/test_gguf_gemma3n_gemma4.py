"""Gemma 3n and Gemma 4 GGUF files (kvplan.sources.gguf `_gemma3n`, `_gemma4`), written with the metadata
llama.cpp's converter writes (convert_hf_to_gguf.py Gemma4Model.set_gguf_parameters: one sliding flag per layer,
key/value_length = global_head_dim, key/value_length_swa = head_dim, head_count_kv per layer when the config has
num_global_key_value_heads, shared_kv_layers) and planned like the config they came from.

llama.cpp's loaders: src/models/gemma4.cpp (n_layer_kv_from_start = n_layer - shared_kv_layers) and
src/models/gemma3n.cpp (n_layer_kv_from_start = 20 written into the loader, the file's shared_kv_layers unread);
layers from n_layer_kv_from_start on hold no cache (llama_hparams::has_kv).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_gguf import GEMMA_TENSORS, hf_metadata, kv_layers, write_gguf  # skips without the gguf package

from kvplan.errors import ConfigError, UnsupportedArchitecture
from kvplan.planning.estimate import estimate
from kvplan.sources.configs import load_model_config
from kvplan.sources.gguf import config_from_metadata

from conftest import FIXTURES, config_path


def text(cfg: dict[str, Any]) -> dict[str, Any]:
    return cfg.get("text_config", cfg)


def gemma4_metadata(cfg: dict[str, Any]) -> dict[str, Any]:
    t, a = text(cfg), "gemma4"
    swa = [kind == "sliding_attention" for kind in t["layer_types"]]
    meta = hf_metadata(
        t,
        a,
        **{
            f"{a}.attention.key_length": t["global_head_dim"],
            f"{a}.attention.value_length": t["global_head_dim"],
            f"{a}.attention.key_length_swa": t["head_dim"],
            f"{a}.attention.value_length_swa": t["head_dim"],
            f"{a}.attention.sliding_window": t["sliding_window"],
            f"{a}.attention.sliding_window_pattern": swa,
            f"{a}.attention.shared_kv_layers": t["num_kv_shared_layers"],
            f"{a}.embedding_length_per_layer_input": t.get("hidden_size_per_layer_input") or 0,
            "general.file_type": 1,
        },
    )
    if t.get("num_global_key_value_heads") is not None:  # the converter's "handle num_global_key_value_heads"
        meta[f"{a}.attention.head_count_kv"] = [
            t["num_key_value_heads"] if s else t["num_global_key_value_heads"] for s in swa
        ]
    return meta


GEMMA4 = ["google__gemma-4-26B-A4B", "nvidia__Gemma-4-31B-IT-NVFP4"]


@pytest.mark.parametrize("name", GEMMA4)
@pytest.mark.parametrize("engine", ["llamacpp", "vllm"])
def test_gemma4_gguf_plans_like_its_config(tmp_path: Path, name: str, engine: str) -> None:
    cfg = json.loads(config_path(name).read_text())
    t = text(cfg)
    path = tmp_path / "gemma4.gguf"
    write_gguf(path, "gemma4", gemma4_metadata(cfg), GEMMA_TENSORS)
    read = load_model_config(str(path)).config
    assert (read["head_dim"], read["global_head_dim"]) == (t["head_dim"], t["global_head_dim"])
    assert read["num_global_key_value_heads"] == t["num_global_key_value_heads"] != read["num_key_value_heads"]
    for seq_len in (300, 4096, 65536):
        by_gguf = estimate(str(path), seq_len=seq_len, batch=2, engine=engine, kv_dtype="float16")
        by_config = estimate(cfg, seq_len=seq_len, batch=2, engine=engine, kv_dtype="float16")
        assert kv_layers(by_gguf) == kv_layers(by_config), (engine, seq_len)
        assert by_gguf.kv_cache_bytes == by_config.kv_cache_bytes > 0
    assert {k.kind for k in by_gguf.layers} == {"full_attention", "sliding_window"}


def test_gemma4_shared_kv_layers_hold_no_cache(tmp_path: Path) -> None:
    """gemma4.cpp: n_layer_kv_from_start = n_layer - shared_kv_layers. Gemma-4-26B-A4B's config with its last 10
    layers sharing K/V (as the E-series configs do): the GGUF caches what that config caches, 20 layers, less than
    the 30 of the unshared file."""
    cfg = json.loads(config_path("google__gemma-4-26B-A4B").read_text())
    text(cfg)["num_kv_shared_layers"] = 10
    path = tmp_path / "g4s.gguf"
    write_gguf(path, "gemma4", gemma4_metadata(cfg), GEMMA_TENSORS)
    by_gguf = estimate(str(path), seq_len=4096, engine="llamacpp", kv_dtype="float16")
    by_config = estimate(cfg, seq_len=4096, engine="llamacpp", kv_dtype="float16")
    assert kv_layers(by_gguf) == kv_layers(by_config)
    assert sum(k.count for k in by_gguf.layers if k.bytes) == 20
    write_gguf(path, "gemma4", {**gemma4_metadata(cfg), "gemma4.attention.shared_kv_layers": 0}, GEMMA_TENSORS)
    unshared = estimate(str(path), seq_len=4096, engine="llamacpp", kv_dtype="float16")
    assert sum(k.count for k in unshared.layers if k.bytes) == 30
    assert unshared.kv_cache_bytes > by_gguf.kv_cache_bytes


def test_gemma4_file_whose_last_layer_slides_is_refused(tmp_path: Path) -> None:
    """The synthetic KV-sharing config lists its last layer as sliding; transformers (and kvplan) make it full, but
    the converter writes the flag as listed and llama.cpp would slide it: kvplan refuses rather than guess."""
    cfg = json.loads((FIXTURES / "synthetic_configs" / "gemma4_text_kv_shared.json").read_text())
    path = tmp_path / "g4s.gguf"
    write_gguf(path, "gemma4", gemma4_metadata(cfg), GEMMA_TENSORS)
    with pytest.raises(UnsupportedArchitecture, match="last layer slides"):
        load_model_config(str(path))


def _g4_meta(**change: Any) -> dict[str, Any]:
    cfg = json.loads(config_path("google__gemma-4-26B-A4B").read_text())
    return {"general.architecture": "gemma4", **gemma4_metadata(cfg), **change}


@pytest.mark.parametrize(
    ("change", "error", "needle"),
    [
        ({"gemma4.attention.sliding_window_pattern": 6}, UnsupportedArchitecture, "not one flag per layer"),
        ({"gemma4.attention.sliding_window_pattern": [True] * 30}, UnsupportedArchitecture, "last layer slides"),
        ({"gemma4.attention.value_length_swa": 128}, ConfigError, "n_embd_head_k_swa == n_embd_head_v_swa"),
        (
            {"gemma4.attention.head_count_kv": [8] * 28 + [2, 4]},
            UnsupportedArchitecture,
            "differs between layers of one kind",
        ),
    ],
)
def test_gemma4_files_kvplan_cannot_read_are_refused(change: dict[str, Any], error: type, needle: str) -> None:
    with pytest.raises(error, match=needle):
        config_from_metadata(_g4_meta(**change), {}, {})


# --- Gemma 3n ------------------------------------------------------------------------------------------------


def gemma3n_config(n_layer: int, shared: int) -> dict[str, Any]:
    """tests/fixtures/synthetic_configs/gemma3n_text.json grown to `n_layer` layers (four sliding then one full, the
    published Gemma 3n pattern) of which the last `shared` share K/V. No real Gemma 3n config is in the repository;
    E2B's 30 layers with 10 shared is the case llama.cpp's hard-coded 20 is written for."""
    cfg = json.loads((FIXTURES / "synthetic_configs" / "gemma3n_text.json").read_text())
    cfg.update(
        num_hidden_layers=n_layer,
        num_kv_shared_layers=shared,
        intermediate_size=cfg["intermediate_size"][0],
        layer_types=["full_attention" if (i + 1) % 5 == 0 else "sliding_attention" for i in range(n_layer)],
        activation_sparsity_pattern=[0.0] * n_layer,
    )
    return cfg


def gemma3n_metadata(cfg: dict[str, Any]) -> dict[str, Any]:
    a = "gemma3n"
    return hf_metadata(
        cfg,
        a,
        **{
            f"{a}.attention.sliding_window": cfg["sliding_window"],
            f"{a}.attention.sliding_window_pattern": [t == "sliding_attention" for t in cfg["layer_types"]],
            f"{a}.attention.shared_kv_layers": float(cfg["num_kv_shared_layers"]),  # written as a float
            "general.file_type": 1,
        },
    )


@pytest.mark.parametrize("engine", ["llamacpp", "vllm"])
def test_gemma3n_gguf_with_20_cached_layers_plans_like_its_config(tmp_path: Path, engine: str) -> None:
    cfg = gemma3n_config(30, 10)
    path = tmp_path / "gemma3n.gguf"
    write_gguf(path, "gemma3n", gemma3n_metadata(cfg), GEMMA_TENSORS)
    loaded = load_model_config(str(path))
    assert loaded.config["num_kv_shared_layers"] == 10
    for seq_len in (300, 4096):
        by_gguf = estimate(str(path), seq_len=seq_len, batch=2, engine=engine, kv_dtype="float16")
        by_config = estimate(cfg, seq_len=seq_len, batch=2, engine=engine, kv_dtype="float16")
        assert kv_layers(by_gguf) == kv_layers(by_config), (engine, seq_len)
        assert by_gguf.kv_cache_bytes == by_config.kv_cache_bytes > 0
    assert sum(k.count for k in by_gguf.layers if k.bytes) == 20


def test_gemma3n_shared_kv_layers_key_is_not_what_llama_cpp_reads(tmp_path: Path) -> None:
    """src/models/gemma3n.cpp: n_layer_kv_from_start = 20 whatever the file says, so a 25-layer file that says 10
    shared layers has 5 in llama.cpp (layers 20-24), and says so in a note."""
    cfg = gemma3n_config(25, 10)
    config, notes = config_from_metadata({"general.architecture": "gemma3n", **gemma3n_metadata(cfg)}, {}, {})
    assert config["num_kv_shared_layers"] == 5
    assert notes == [
        "the GGUF file's gemma3n.attention.shared_kv_layers (10.0) is not read by llama.cpp, whose gemma3n loader "
        "caches layers 0-19 and shares the rest (5)"
    ]
    small, notes = config_from_metadata(
        {"general.architecture": "gemma3n", **gemma3n_metadata(gemma3n_config(10, 2))}, {}, {}
    )
    assert small["num_kv_shared_layers"] == 0 and "caches layers 0-9" in notes[0]


def test_gemma3n_pattern_array_other_than_period_5_is_refused() -> None:
    meta = {"general.architecture": "gemma3n", **gemma3n_metadata(gemma3n_config(30, 10))}
    meta["gemma3n.attention.sliding_window_pattern"] = [i % 2 == 0 for i in range(30)]
    with pytest.raises(UnsupportedArchitecture, match="other than llama.cpp's default period of 5"):
        config_from_metadata(meta, {}, {})
