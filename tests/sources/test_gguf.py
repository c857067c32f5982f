"""GGUF files read from their header (kvplan.sources.gguf), written here with the `gguf` package's own GGUFWriter.

Each model is written twice over: as a GGUF with the metadata llama.cpp's converter writes, and as the Hugging
Face config it came from (a catalog config, or conftest.TINY_LLAMA); kvplan must plan both the same. The weights
must be the tensors' bytes as stored, counted here from ggml's block layouts (block_q8_0: a 2-byte scale and 32
int8 values = 34 bytes per 32 values; f32: 4 bytes), not from the reader kvplan uses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kvplan.cli import app
from kvplan.errors import ConfigError, UnsupportedArchitecture, UsageError
from kvplan.planning.estimate import estimate
from kvplan.planning.recommend import recommend
from kvplan.sources.configs import load_model_config
from kvplan.sources.gguf import config_from_metadata

from conftest import TINY_LLAMA, config_path

gguf = pytest.importorskip("gguf")
np = pytest.importorskip("numpy")
Q = gguf.GGMLQuantizationType
BYTES_PER_32 = {Q.Q8_0: 34, Q.F32: 128, Q.F16: 64}  # ggml: block_q8_0 = fp16 scale + 32 x int8; f32 4 B; f16 2 B
runner = CliRunner()


def write_gguf(path: Path, arch: str, kv: dict[str, Any], tensors: list[tuple[str, list[int], Any]]) -> int:
    """A GGUF file of `arch` with metadata `kv` and zero-filled tensors (name, ggml dims ne0..., type); returns
    the tensors' bytes by ggml's block sizes."""
    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in kv.items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_array(key, value)
    total = 0
    for name, dims, qtype in tensors:
        shape = tuple(reversed(dims))  # numpy order
        n = int(np.prod(dims))
        total += n * BYTES_PER_32[qtype] // 32
        if qtype == Q.F32:
            writer.add_tensor(name, np.zeros(shape, np.float32))
        else:
            byte_shape = gguf.quants.quant_shape_to_byte_shape(shape, qtype)
            writer.add_tensor(name, np.zeros(byte_shape, np.uint8), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return total


def llama_tensors(cfg: dict[str, Any], *, output: bool = True) -> list[tuple[str, list[int], Any]]:
    """The tensors llama.cpp's llama build loads, in its names and dims (Q8_0 matrices, f32 norms)."""
    d, ff, v, hd = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["hidden_size"] // 4
    kv = cfg["num_key_value_heads"] * hd
    out = [("token_embd.weight", [d, v], Q.Q8_0), ("output_norm.weight", [d], Q.F32)]
    out += [("output.weight", [d, v], Q.Q8_0)] if output else []
    for i in range(cfg["num_hidden_layers"]):
        out += [
            (f"blk.{i}.attn_norm.weight", [d], Q.F32),
            (f"blk.{i}.attn_q.weight", [d, d], Q.Q8_0),
            (f"blk.{i}.attn_k.weight", [d, kv], Q.Q8_0),
            (f"blk.{i}.attn_v.weight", [d, kv], Q.Q8_0),
            (f"blk.{i}.attn_output.weight", [d, d], Q.Q8_0),
            (f"blk.{i}.ffn_norm.weight", [d], Q.F32),
            (f"blk.{i}.ffn_gate.weight", [d, ff], Q.Q8_0),
            (f"blk.{i}.ffn_up.weight", [d, ff], Q.Q8_0),
            (f"blk.{i}.ffn_down.weight", [ff, d], Q.Q8_0),
        ]
    return out


def llama_metadata(cfg: dict[str, Any], arch: str = "llama") -> dict[str, Any]:
    """What convert_hf_to_gguf.py writes for a llama config (its LlamaModel.set_gguf_parameters)."""
    return {
        f"{arch}.block_count": cfg["num_hidden_layers"],
        f"{arch}.context_length": cfg.get("max_position_embeddings", 4096),
        f"{arch}.embedding_length": cfg["hidden_size"],
        f"{arch}.feed_forward_length": cfg["intermediate_size"],
        f"{arch}.attention.head_count": cfg["num_attention_heads"],
        f"{arch}.attention.head_count_kv": cfg["num_key_value_heads"],
        f"{arch}.rope.freq_base": 500000.0,
        f"{arch}.attention.layer_norm_rms_epsilon": 1e-5,
        "general.file_type": 7,  # MOSTLY_Q8_0
    }


@pytest.fixture
def tiny_llama(tmp_path: Path) -> tuple[Path, int]:
    cfg = {**TINY_LLAMA, "max_position_embeddings": 8192}
    path = tmp_path / "tiny-llama-Q8_0.gguf"
    return path, write_gguf(path, "llama", llama_metadata(cfg), llama_tensors(cfg))


def catalog(name: str) -> dict[str, Any]:
    return json.loads(config_path(name).read_text())


def kv_layers(result: Any) -> list[tuple[str, int, int]]:
    return [(k.kind, k.count, k.bytes) for k in result.layers]


# --- the tiny llama: config, estimate and weights ------------------------------------------------------------


def test_llama_gguf_reads_as_its_config(tiny_llama: tuple[Path, int]) -> None:
    path, _ = tiny_llama
    loaded = load_model_config(str(path))
    assert (loaded.source, loaded.revision, loaded.folder) == ("gguf", None, None)
    for key, value in TINY_LLAMA.items():
        if key != "torch_dtype":  # a Q8_0 file has no bf16 dtype to report: llama.cpp computes in f16/f32
            assert loaded.config[key] == value, key
    assert loaded.config["head_dim"] == 64 and loaded.config["max_position_embeddings"] == 8192
    assert loaded.config["tie_word_embeddings"] is False


@pytest.mark.parametrize("engine", ["llamacpp", "vllm", "transformers"])
def test_llama_gguf_estimate_matches_the_hf_config(tiny_llama: tuple[Path, int], engine: str) -> None:
    path, _ = tiny_llama
    cfg = {**TINY_LLAMA, "max_position_embeddings": 8192}
    for seq_len in (1000, 8192):
        by_gguf = estimate(str(path), seq_len=seq_len, batch=3, engine=engine, kv_dtype="float16")
        by_config = estimate(cfg, seq_len=seq_len, batch=3, engine=engine, kv_dtype="float16")
        assert kv_layers(by_gguf) == kv_layers(by_config)
        assert by_gguf.kv_cache_bytes == by_config.kv_cache_bytes > 0


def test_llama_gguf_weights_are_the_stored_tensor_bytes(tiny_llama: tuple[Path, int]) -> None:
    path, stored = tiny_llama
    result = estimate(str(path), engine="llamacpp")
    assert (result.weights_bytes, result.weights_source) == (stored, "gguf")
    assert (result.config_source, result.revision) == ("gguf", None)
    assert stored < path.stat().st_size < stored + 64 * 1024  # the header and alignment padding are the rest
    unquantized = estimate(TINY_LLAMA, engine="llamacpp")  # the bf16 analytic count is ~1.9x the Q8_0 file
    assert unquantized.weights_bytes is not None and unquantized.weights_bytes > 1.8 * stored
    plan = recommend(str(path), gpu_profile="rtx-4090", engine="llamacpp", max_model_len=4096)
    assert (plan.weights_bytes, plan.weights_source, plan.config_source) == (stored, "gguf", "gguf")


def test_a_gguf_plans_llama_server_command_and_notes_name_the_file_as_it_is(tiny_llama: tuple[Path, int]) -> None:
    """The weights are the file's stored bytes: no note asking for --weights-bytes; and the file is already a
    .gguf: `-m tiny-llama-Q8_0.gguf`, not `-m tiny-llama-Q8_0.gguf.gguf`."""
    path, _ = tiny_llama
    plan = recommend(str(path), gpu_profile="rtx-4090", engine="llamacpp", max_model_len=4096)
    assert plan.flags["llama.cpp"].startswith(f"llama-server -m {path.name} ")
    assert not any("a quantized GGUF is smaller" in n for n in plan.notes), plan.notes


def test_tied_embeddings_when_the_file_has_no_output_tensor(tmp_path: Path) -> None:
    path = tmp_path / "tied.gguf"
    stored = write_gguf(path, "llama", llama_metadata(TINY_LLAMA), llama_tensors(TINY_LLAMA, output=False))
    loaded = load_model_config(str(path))
    assert loaded.config["tie_word_embeddings"] is True and loaded.weights_bytes == stored


def test_cli_json_validates_and_names_the_source(tiny_llama: tuple[Path, int]) -> None:
    import jsonschema

    from kvplan.schemas import schema

    path, stored = tiny_llama
    result = runner.invoke(app, ["estimate", str(path), "--engine", "llama.cpp", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    jsonschema.validate(data, schema("estimate"))
    assert (data["config_source"], data["revision"], data["weights_bytes"]) == ("gguf", None, stored)
    rec = runner.invoke(app, ["recommend", str(path), "-g", "rtx-4090", "--engine", "llama.cpp", "--json"])
    assert rec.exit_code == 0, rec.output
    jsonschema.validate(json.loads(rec.stdout), schema("recommend"))
    assert json.loads(rec.stdout)["weights_source"] == "gguf"


def test_folder_holding_one_gguf(tiny_llama: tuple[Path, int], tmp_path: Path) -> None:
    path, stored = tiny_llama
    (tmp_path / "mmproj-tiny-f16.gguf").write_bytes(b"GGUF")  # a vision projector beside it is not the model
    loaded = load_model_config(str(tmp_path))
    assert (loaded.source, loaded.path, loaded.weights_bytes) == ("gguf", path, stored)
    write_gguf(tmp_path / "other.gguf", "llama", llama_metadata(TINY_LLAMA), llama_tensors(TINY_LLAMA))
    with pytest.raises(ConfigError, match="holds several GGUF models"):
        load_model_config(str(tmp_path))


def test_split_gguf_sums_every_part(tmp_path: Path) -> None:
    cfg = {**TINY_LLAMA, "max_position_embeddings": 8192}
    writer_total = 0
    tensors = llama_tensors(cfg)
    writer = gguf.GGUFWriter(str(tmp_path / "tiny.gguf"), "llama", split_max_tensors=8)
    for key, value in llama_metadata(cfg).items():
        (writer.add_uint32 if isinstance(value, int) else writer.add_float32)(key, value)
    for name, dims, qtype in tensors:
        shape = tuple(reversed(dims))
        writer_total += int(np.prod(dims)) * BYTES_PER_32[qtype] // 32
        data = (
            np.zeros(shape, np.float32)
            if qtype == Q.F32
            else np.zeros(gguf.quants.quant_shape_to_byte_shape(shape, qtype), np.uint8)
        )
        writer.add_tensor(name, data, raw_dtype=None if qtype == Q.F32 else qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    parts = sorted(tmp_path.glob("tiny-*-of-*.gguf"))
    assert len(parts) == 3  # 21 tensors, 8 a file
    for part in (parts[0], parts[2]):  # any part names the model
        loaded = load_model_config(str(part))
        assert (loaded.config["num_hidden_layers"], loaded.weights_bytes) == (2, writer_total)
    parts[1].unlink()
    with pytest.raises(ConfigError, match=r"lacks 1 of its 3 files: tiny-00002-of-00003.gguf"):
        load_model_config(str(parts[0]))


# --- sliding windows as llama.cpp builds them ----------------------------------------------------------------


def gemma_metadata(cfg: dict[str, Any], arch: str, **extra: Any) -> dict[str, Any]:
    """What convert_hf_to_gguf.py writes for Gemma 2 / Gemma 3 (Gemma2Model / Gemma3Model.set_gguf_parameters)."""
    return {
        f"{arch}.block_count": cfg["num_hidden_layers"],
        f"{arch}.context_length": cfg["max_position_embeddings"],
        f"{arch}.embedding_length": cfg["hidden_size"],
        f"{arch}.feed_forward_length": cfg["intermediate_size"],
        f"{arch}.attention.head_count": cfg["num_attention_heads"],
        f"{arch}.attention.head_count_kv": cfg["num_key_value_heads"],
        f"{arch}.attention.key_length": cfg["head_dim"],
        f"{arch}.attention.value_length": cfg["head_dim"],
        f"{arch}.attention.layer_norm_rms_epsilon": 1e-6,
        "general.file_type": 1,
        **extra,
    }


GEMMA_TENSORS = [("token_embd.weight", [256, 64], Q.F16), ("output_norm.weight", [256], Q.F32)]


@pytest.mark.parametrize(
    ("name", "arch", "window_key"),
    [
        ("google__gemma-3-1b-it", "gemma3", True),  # sliding_window 512, five sliding layers then one full
        ("google__gemma-2-9b", "gemma2", True),  # sliding_window 4096, even layers sliding
        ("google__gemma-2-9b", "gemma2", False),  # no key: llama.cpp's Gemma 2 default of 4096
    ],
)
@pytest.mark.parametrize("engine", ["llamacpp", "vllm"])
def test_sliding_window_gemma_matches_its_hf_config(
    tmp_path: Path, name: str, arch: str, window_key: bool, engine: str
) -> None:
    cfg = catalog(name)
    extra = {f"{arch}.attention.sliding_window": cfg["sliding_window"]} if window_key else {}
    path = tmp_path / f"{arch}.gguf"
    write_gguf(path, arch, gemma_metadata(cfg, arch, **extra), GEMMA_TENSORS)
    loaded = load_model_config(str(path))
    assert loaded.config["sliding_window"] == cfg["sliding_window"]
    for seq_len in (300, 8192, 32768):
        seq = min(seq_len, cfg["max_position_embeddings"])
        by_gguf = estimate(str(path), seq_len=seq, batch=2, engine=engine, kv_dtype="float16")
        by_config = estimate(cfg, seq_len=seq, batch=2, engine=engine, kv_dtype="float16")
        assert kv_layers(by_gguf) == kv_layers(by_config), seq
        assert {k.kind for k in by_gguf.layers} == {"full_attention", "sliding_window"}


def test_gemma3_sliding_window_pattern_key_is_honoured(tmp_path: Path) -> None:
    cfg = catalog("google__gemma-3-1b-it")
    path = tmp_path / "g3.gguf"
    extra = {"gemma3.attention.sliding_window": 512, "gemma3.attention.sliding_window_pattern": 2}
    write_gguf(path, "gemma3", gemma_metadata(cfg, "gemma3", **extra), GEMMA_TENSORS)
    types = load_model_config(str(path)).config["layer_types"]
    assert types[:4] == ["sliding_attention", "full_attention"] * 2 and types.count("full_attention") == 13
    flags = [i % 3 == 0 for i in range(26)]  # a per-layer array: one flag per layer
    extra["gemma3.attention.sliding_window_pattern"] = flags
    write_gguf(path, "gemma3", gemma_metadata(cfg, "gemma3", **extra), GEMMA_TENSORS)
    types = load_model_config(str(path)).config["layer_types"]
    assert [t == "sliding_attention" for t in types] == flags


def test_qwen2_sliding_window_key_is_noted_not_used() -> None:
    meta = llama_metadata(TINY_LLAMA, "qwen2") | {
        "general.architecture": "qwen2",
        "qwen2.attention.sliding_window": 4096,
    }
    config, notes = config_from_metadata(meta, {}, {})
    assert (config["model_type"], config["use_sliding_window"]) == ("qwen2", False)
    assert notes == [
        "the GGUF file's qwen2.attention.sliding_window (4096) is not used by llama.cpp's qwen2 build: "
        "every token is cached"
    ]


# --- refusals: one error line, exit 2 --------------------------------------------------------------------------


def cli_error(*args: str) -> tuple[int, list[str]]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stderr.splitlines()


def test_unmapped_architecture_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "mamba.gguf"
    write_gguf(path, "mamba", {"mamba.block_count": 2, "mamba.embedding_length": 256}, GEMMA_TENSORS)
    with pytest.raises(UnsupportedArchitecture, match="kvplan cannot read GGUF architecture 'mamba'"):
        load_model_config(str(path))
    code, lines = cli_error("estimate", str(path))
    assert code == 2 and lines[0] == "error: kvplan cannot read GGUF architecture 'mamba'" and len(lines) == 2


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"llama.attention.key_length": 64, "llama.attention.value_length": 32}, "different head sizes"),
        ({"llama.attention.kv_lora_rank": 512}, r"llama\.attention\.kv_lora_rank \(multi-head latent attention\)"),
        ({"llama.attention.head_count_kv": [2, 1]}, "llama.attention.head_count_kv differs between layers"),
    ],
)
def test_cache_keys_the_mapping_does_not_read_are_refused(extra: dict[str, Any], needle: str) -> None:
    meta = {"general.architecture": "llama", **llama_metadata(TINY_LLAMA), **extra}
    with pytest.raises(UnsupportedArchitecture, match=needle):
        config_from_metadata(meta, {}, {})


def test_corrupt_and_truncated_gguf_are_one_error_line(tmp_path: Path, tiny_llama: tuple[Path, int]) -> None:
    path, _ = tiny_llama
    whole = path.read_bytes()
    cases = {
        "not-gguf.gguf": b"PK\x03\x04 a zip, not a model",
        "header-cut.gguf": whole[:200],
        "tensors-cut.gguf": whole[: len(whole) // 2],
        "empty.gguf": b"",
        "bad-version.gguf": b"GGUF" + (99).to_bytes(4, "little") + whole[8:400],
    }
    for name, content in cases.items():
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(ConfigError):
            load_model_config(str(bad))
        code, lines = cli_error("estimate", str(bad), "--json")
        assert code == 2, (name, lines)
        assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), (name, lines)
    assert "truncated" in cli_error("estimate", str(tmp_path / "tensors-cut.gguf"))[1][0]
    code, lines = cli_error("estimate", str(tmp_path / "missing.gguf"))
    assert code == 2 and lines[0] == f"error: no such file: {tmp_path / 'missing.gguf'}"


def test_without_the_gguf_package_a_gguf_says_what_to_install(
    tiny_llama: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = tiny_llama
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` raises ImportError
    with pytest.raises(UsageError, match="needs the `gguf` package"):
        load_model_config(str(path))
    code, lines = cli_error("estimate", str(path))
    assert code == 2 and lines == [
        "error: reading a .gguf file needs the `gguf` package, which is not installed",
        "hint: pip install 'kvplan[gguf]'",
    ]


# --- more architectures: each written as convert_hf_to_gguf.py writes a real config, planned like that config ---


def hf_metadata(cfg: dict[str, Any], arch: str, **extra: Any) -> dict[str, Any]:
    """convert_hf_to_gguf.py TextModel.set_gguf_parameters for `cfg` (key/value length when the config has
    head_dim), plus the architecture's own keys in `extra`."""
    kv = {
        f"{arch}.block_count": cfg["num_hidden_layers"],
        f"{arch}.context_length": cfg["max_position_embeddings"],
        f"{arch}.embedding_length": cfg["hidden_size"],
        f"{arch}.feed_forward_length": cfg["intermediate_size"],
        f"{arch}.attention.head_count": cfg["num_attention_heads"],
        f"{arch}.attention.head_count_kv": cfg.get("num_key_value_heads", cfg["num_attention_heads"]),
        "general.file_type": 7,
    }
    if cfg.get("head_dim"):
        kv |= {f"{arch}.attention.key_length": cfg["head_dim"], f"{arch}.attention.value_length": cfg["head_dim"]}
    return kv | extra


# Qwen/Qwen1.5-MoE-A2.7B's config.json fields (qwen2_moe; not in the catalog, the Hub unreachable here: written from
# the published config and matched against public copies of it): 60 experts of 1408, a shared one of 5632
QWEN15_MOE = {
    "model_type": "qwen2_moe",
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "moe_intermediate_size": 1408,
    "shared_expert_intermediate_size": 5632,
    "num_experts": 60,
    "num_experts_per_tok": 4,
    "decoder_sparse_step": 1,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "max_position_embeddings": 8192,
    "sliding_window": 32768,
    "use_sliding_window": False,
    "max_window_layers": 21,
    "vocab_size": 151936,
    "rope_theta": 1000000.0,
    "torch_dtype": "bfloat16",
}
# CohereForAI/c4ai-command-r7b-12-2024's config.json fields (cohere2; not in the catalog and not copied from the Hub,
# which is unreachable here: the layout's fields as published): windows of 4096, every 4th full
COMMAND_R7B = {
    "model_type": "cohere2",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 132096,
    "sliding_window": 4096,
    "sliding_window_pattern": 4,
    "vocab_size": 256000,
    "rope_theta": 50000.0,
    "torch_dtype": "bfloat16",
}


def arch_case(name: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(GGUF architecture, the HF config, the metadata its converter writes) for one real config."""
    if name == "qwen1.5-moe":
        cfg = QWEN15_MOE
        return (
            "qwen2moe",
            cfg,
            hf_metadata(
                cfg,
                "qwen2moe",
                **{
                    "qwen2moe.expert_count": 60,
                    "qwen2moe.expert_used_count": 4,
                    "qwen2moe.expert_feed_forward_length": 1408,
                    "qwen2moe.expert_shared_feed_forward_length": 5632,
                },
            ),
        )
    if name == "command-r7b":
        cfg = COMMAND_R7B
        return "cohere2", cfg, hf_metadata(cfg, "cohere2", **{"cohere2.attention.sliding_window": 4096})
    cfg = catalog(name)
    if name == "Qwen__Qwen3-30B-A3B":
        extra = {"expert_count": 128, "expert_used_count": 8, "expert_feed_forward_length": 768}
        return "qwen3moe", cfg, hf_metadata(cfg, "qwen3moe", **{f"qwen3moe.{k}": v for k, v in extra.items()})
    if name.startswith("deepseek-ai__"):  # DeepseekV2Model: MLA as MQA with larger heads
        rank, rope = cfg["kv_lora_rank"], cfg["qk_rope_head_dim"]
        extra = {
            "attention.head_count_kv": 1,
            "attention.key_length": rank + rope,
            "attention.value_length": rank,
            "attention.key_length_mla": cfg["qk_nope_head_dim"] + rope,
            "attention.value_length_mla": cfg["v_head_dim"],
            "attention.kv_lora_rank": rank,
            "rope.dimension_count": rope,
            "leading_dense_block_count": cfg["first_k_dense_replace"],
            "expert_count": cfg["n_routed_experts"],
            "expert_used_count": cfg["num_experts_per_tok"],
            "expert_shared_count": cfg["n_shared_experts"],
            "expert_feed_forward_length": cfg["moe_intermediate_size"],
            "expert_gating_func": 2 if cfg.get("scoring_func") == "sigmoid" else 1,
        }
        if cfg.get("q_lora_rank"):
            extra["attention.q_lora_rank"] = cfg["q_lora_rank"]
        return "deepseek2", cfg, hf_metadata(cfg, "deepseek2", **{f"deepseek2.{k}": v for k, v in extra.items()})
    if name.startswith("openai__gpt-oss"):
        extra = {
            "attention.sliding_window": cfg["sliding_window"],
            "expert_count": cfg["num_local_experts"],
            "expert_used_count": cfg["num_experts_per_tok"],
            "expert_feed_forward_length": cfg["intermediate_size"],
        }
        return "gpt-oss", cfg, hf_metadata(cfg, "gpt-oss", **{f"gpt-oss.{k}": v for k, v in extra.items()})
    if name.startswith("microsoft__Phi-3"):
        return "phi3", cfg, hf_metadata(cfg, "phi3", **{"phi3.attention.sliding_window": cfg["sliding_window"]})
    assert name == "CohereForAI__c4ai-command-r-v01", name
    return "command-r", cfg, hf_metadata(cfg, "command-r")


ARCH_CASES = [
    ("qwen1.5-moe", ("llamacpp", "vllm")),
    ("Qwen__Qwen3-30B-A3B", ("llamacpp", "vllm")),
    ("deepseek-ai__DeepSeek-V2-Lite", ("llamacpp", "vllm")),
    ("deepseek-ai__DeepSeek-V3", ("llamacpp", "vllm")),
    ("openai__gpt-oss-20b", ("llamacpp", "vllm")),
    ("microsoft__Phi-3-mini-4k-instruct", ("llamacpp",)),  # llama.cpp turns Phi-3's window off; vLLM keeps it
    ("CohereForAI__c4ai-command-r-v01", ("llamacpp", "vllm")),
    ("command-r7b", ("llamacpp", "vllm")),
]
EXPECTED_KINDS = {
    "deepseek2": {"mla_latent"},
    "gpt-oss": {"full_attention", "sliding_window"},
    "cohere2": {"full_attention", "sliding_window"},
}


@pytest.mark.parametrize(("name", "engines"), ARCH_CASES, ids=[c[0] for c in ARCH_CASES])
def test_more_architectures_match_their_hf_config(tmp_path: Path, name: str, engines: tuple[str, ...]) -> None:
    arch, cfg, meta = arch_case(name)
    path = tmp_path / f"{arch}.gguf"
    write_gguf(path, arch, meta, GEMMA_TENSORS)
    loaded = load_model_config(str(path))
    assert loaded.config["model_type"] == cfg["model_type"]
    for engine in engines:
        for seq_len in (300, 4096, 32768):
            seq = min(seq_len, cfg["max_position_embeddings"])
            by_gguf = estimate(str(path), seq_len=seq, batch=2, engine=engine, kv_dtype="float16")
            by_config = estimate(cfg, seq_len=seq, batch=2, engine=engine, kv_dtype="float16")
            if arch == "phi3":  # the HF config's layers are labelled sliding, but llama.cpp caches every token
                assert [k[1:] for k in kv_layers(by_gguf)] == [k[1:] for k in kv_layers(by_config)], seq
            else:
                assert kv_layers(by_gguf) == kv_layers(by_config), (engine, seq)
            assert by_gguf.kv_cache_bytes == by_config.kv_cache_bytes > 0
    kinds = {k.kind for k in estimate(str(path), seq_len=8192, engine="llamacpp").layers}
    assert kinds == EXPECTED_KINDS.get(arch, {"full_attention"}), kinds


def test_deepseek2_latent_and_routing_keys(tmp_path: Path) -> None:
    _, cfg, meta = arch_case("deepseek-ai__DeepSeek-V3")
    config, notes = config_from_metadata({"general.architecture": "deepseek2", **meta}, {}, {})
    assert notes == [] and "head_dim" not in config
    mla = {k: config[k] for k in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "q_lora_rank")}
    assert (
        mla
        == {k: cfg[k] for k in mla}
        == {
            "kv_lora_rank": 512,
            "qk_rope_head_dim": 64,
            "qk_nope_head_dim": 128,
            "v_head_dim": 128,
            "q_lora_rank": 1536,
        }
    )
    assert (config["n_routed_experts"], config["n_shared_experts"], config["first_k_dense_replace"]) == (256, 1, 3)
    lite = config_from_metadata(
        {"general.architecture": "deepseek2", **arch_case("deepseek-ai__DeepSeek-V2-Lite")[2]}, {}, {}
    )
    assert (lite[0]["model_type"], lite[0]["q_lora_rank"]) == ("deepseek_v2", None)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (  # converted before the _mla keys: llama.cpp caches decompressed per-head K and V
            {"deepseek2.attention.key_length_mla": None, "deepseek2.attention.value_length_mla": None},
            "has no key_length_mla / value_length_mla",
        ),
        ({"deepseek2.attention.head_count_kv": 16}, r"latent \(head_count_kv 16, key_length 576"),
        ({"deepseek2.attention.value_length": 128}, "is not kv_lora_rank 512 \\+ rope 64"),
    ],
)
def test_deepseek2_files_llama_cpp_would_not_read_as_mla_are_refused(change: dict[str, Any], needle: str) -> None:
    meta = {"general.architecture": "deepseek2", **arch_case("deepseek-ai__DeepSeek-V2-Lite")[2], **change}
    meta = {k: v for k, v in meta.items() if v is not None}
    with pytest.raises(UnsupportedArchitecture, match=needle):
        config_from_metadata(meta, {}, {})


def test_phi3_sliding_window_is_noted_not_used() -> None:
    meta = arch_case("microsoft__Phi-3-mini-4k-instruct")[2]
    config, notes = config_from_metadata({"general.architecture": "phi3", **meta}, {}, {})
    assert (config["model_type"], config["sliding_window"]) == ("phi3", None)
    assert notes == [
        "the GGUF file's phi3.attention.sliding_window (2047) is not used by llama.cpp's phi3 build: "
        "every token is cached"
    ]
