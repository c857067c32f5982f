"""A llama.cpp GGUF file read from its header: the config kvplan's families read, and the weights' bytes as stored.

Only the header is parsed (the `gguf` package's `GGUFReader`, which maps the file and reads the key/value metadata
and the tensor infos; no tensor data is touched). The metadata keys are the ones llama.cpp reads
(`llama-model.cpp` `load_hparams`, `llama-arch.cpp` LLM_KV names; the `gguf` package's `Keys`):

- `general.architecture`; `<arch>.block_count` (n_layer), `<arch>.embedding_length` (n_embd),
  `<arch>.attention.head_count` (n_head), `<arch>.attention.head_count_kv` (default n_head),
  `<arch>.attention.key_length` / `value_length` (default n_embd / n_head), `<arch>.context_length` (n_ctx_train),
  `<arch>.feed_forward_length`, `<arch>.rope.freq_base`, `<arch>.expert_count` / `expert_used_count` /
  `expert_feed_forward_length`, the vocabulary from `token_embd.weight` (n_embd x n_vocab), tied embeddings when
  the file has no `output.weight`.
- Sliding windows as llama.cpp builds them: Gemma 2 (`src/models/gemma2.cpp`: `swa_period` 2 read with
  `get_key_or_arr(sliding_window_pattern)`, `n_swa` default 4096 unless `<arch>.attention.sliding_window`), Gemma 3
  (`llama-model.cpp` LLM_ARCH_GEMMA3: `set_swa_pattern(6)`, `sliding_window` required; a `sliding_window_pattern`
  in the file is honoured as Gemma 2's loader honours it). `src/llama-hparams.cpp`
  `llama_hparams::set_swa_pattern(n)`: layer `il` slides when `n == 0 || il % n < n - 1`; a pattern array marks
  each layer. Cohere 2 (`set_swa_pattern(4)`) and gpt-oss (LLM_ARCH_OPENAI_MOE: `set_swa_pattern(2)`) require
  `sliding_window` likewise. llama.cpp's llama, mistral3, qwen2, qwen2moe, qwen3, qwen3moe, command-r and gemma
  builds never slide, and its phi3 loader reads a `sliding_window` and switches it off ("Phi SWA is currently
  disabled"), so their configs say full attention (a `sliding_window` key there is noted, not used).
- DeepSeek V2/V3 (`deepseek2`): MLA as llama.cpp's converter writes it (head_count_kv 1, key_length
  kv_lora_rank + rope dims, value_length kv_lora_rank, the per-head sizes under `key_length_mla` /
  `value_length_mla`); llama.cpp then caches the one latent row per token (llama-kv-cache.cpp `has_v = !is_mla`),
  which is what the HF config's `kv_lora_rank` + `qk_rope_head_dim` gives. A file without the `_mla` keys (an
  older conversion, where llama.cpp caches decompressed per-head K and V) is refused.

Read from llama.cpp `src/llama-model.cpp` at commit 00342301d01add50835550e8a916f12097d94517 (load_hparams, the
cases LLM_ARCH_QWEN2MOE, DEEPSEEK2, PHI3, COMMAND_R, COHERE2, OPENAI_MOE) and `convert_hf_to_gguf.py`
(DeepseekV2Model.set_gguf_parameters).

- Gemma 3n (`gemma3n`, src/models/gemma3n.cpp) and Gemma 4 (`gemma4`, src/models/gemma4.cpp): sliding layers,
  and layers without a cache of their own (llama_hparams::has_kv: `il < n_layer_kv_from_start`; gemma3n writes 20
  into its loader, gemma4 reads `n_layer - shared_kv_layers`), mapped to kvplan's num_kv_shared_layers; Gemma 4's
  full and sliding layers with their own head sizes (key_length / key_length_swa) and KV heads (a per-layer
  head_count_kv). See `_gemma3n` and `_gemma4`.

- Kimi Linear / Kimi K3 (`kimi-linear`, `kimi-k3`) and MiniMax-01 (`minimax-01`), read at ggml-org/llama.cpp@0c1e57098:
  KDA layers where head_count_kv is 0 beside MLA latent layers, and lightning layers beside GQA layers (every 8th
  softmax, as the converter leaves it). See `_kimi` and `_minimax01`.

Architectures mapped: llama (with experts: Mixtral), mistral3, qwen2, qwen2moe (with its shared expert), qwen3,
qwen3moe, deepseek2, deepseek4, deepseek32 and glm-dsa (DSA: `_dsa`), phi3, command-r, cohere2, gpt-oss, gemma,
gemma2, gemma3, gemma3n, gemma4, kimi-linear, kimi-k3, minimax-01. Any other is refused with its name, and so is a
key that changes the cache in a way these mappings do not read (per-layer head counts that differ, K and V head
sizes that differ, MLA outside deepseek2, deepseek32, glm-dsa and the Kimi archs, shared KV layers and SWA head
sizes outside gemma3n/gemma4).
The weights are the sum of the tensors' bytes as stored (`ReaderTensor.n_bytes`: ggml's block sizes), the
quantized size llama.cpp loads; a split model (`split.count`) is summed over all its files.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvplan.errors import ConfigError, UnsupportedArchitecture, UsageError

MAGIC = b"GGUF"
INSTALL_HINT = "pip install 'kvplan[gguf]'"
_SPLIT = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
# llama.cpp's LlamaFileType (gguf.constants): the model dtype a file of that type stands for
_FILE_DTYPES = {0: "float32", 1: "float16", 32: "bfloat16"}
# keys that change the KV cache in ways the mappings below do not read: refused when present
_UNREAD_KEYS = {
    "attention.kv_lora_rank": "multi-head latent attention",
    "attention.key_length_mla": "multi-head latent attention",
    "attention.shared_kv_layers": "layers that share another layer's KV cache",
    "attention.key_length_swa": "sliding-window layers with their own key size",
    "attention.value_length_swa": "sliding-window layers with their own value size",
    "ssm.state_size": "recurrent (SSM) state",
}

# architectures whose mapper reads some of those keys itself (and checks K and V head sizes itself)
_READS = {
    "deepseek2": frozenset({"attention.kv_lora_rank", "attention.key_length_mla"}),
    "deepseek32": frozenset({"attention.kv_lora_rank", "attention.key_length_mla"}),
    "glm-dsa": frozenset({"attention.kv_lora_rank", "attention.key_length_mla"}),
    "gemma3n": frozenset({"attention.shared_kv_layers"}),  # read only to say llama.cpp ignores it
    "gemma4": frozenset({"attention.shared_kv_layers", "attention.key_length_swa", "attention.value_length_swa"}),
    "kimi-linear": frozenset({"attention.kv_lora_rank", "attention.key_length_mla"}),
    "kimi-k3": frozenset({"attention.kv_lora_rank", "attention.key_length_mla"}),
}
_MLA_ARCHS = frozenset({"deepseek2", "deepseek32", "glm-dsa", "kimi-linear", "kimi-k3"})
# architectures whose head_count_kv array is 0 on the recurrent (KDA) layers (conversion/kimi_k3.py:174-182,
# kimi_linear.py:88-98): the attention layers' count is the largest, and their mapper reads the array itself
_RECURRENT_ZERO_KV_HEADS = frozenset({"kimi-linear", "kimi-k3"})
# architectures whose head_count_kv may be a per-layer array their mapper reads itself (Gemma 4: sliding and full
# layers have their own KV head counts, convert_hf_to_gguf.py Gemma4Model.set_gguf_parameters)
_PER_LAYER_KV_HEADS = frozenset({"gemma4"})


@dataclass(frozen=True)
class GgufModel:
    """What a GGUF header says: the config for kvplan's families, the tensors' bytes, and notes."""

    config: dict[str, Any]
    weights_bytes: int
    files: tuple[Path, ...]
    notes: tuple[str, ...] = ()


def is_gguf(path: Path) -> bool:
    """True for a regular file that starts with the GGUF magic (whatever its name)."""
    try:
        if not path.is_file():
            return False
        with path.open("rb") as stream:
            return stream.read(4) == MAGIC
    except OSError:
        return False


def gguf_in_folder(folder: Path) -> Path | None:
    """The one model GGUF in `folder` (a split model's first file; `mmproj*` projector files left out), None when
    the folder holds none; ConfigError when it holds several models."""
    try:
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".gguf" and p.is_file())
    except OSError:
        return None
    models = [p for p in found if not p.name.lower().startswith("mmproj")]
    firsts = [p for p in models if (m := _SPLIT.match(p.name)) is None or int(m["no"]) == 1]
    if not firsts:
        return None
    if len(firsts) > 1:
        names = ", ".join(p.name for p in firsts)
        raise ConfigError(f"folder {folder} holds several GGUF models: {names}", hint="pass the .gguf file to plan")
    return firsts[0]


def read_gguf(path: Path) -> GgufModel:
    """The config and weights of the GGUF file at `path` (a split model: any of its files)."""
    path = Path(path)
    if not path.is_file():
        if path.exists():
            raise ConfigError(f"{path} is not a regular file", hint="pass the .gguf model file")
        raise ConfigError(f"no such file: {path}", hint="check the path")
    reader_class = _reader_class()
    files = _split_files(path)
    metadata, tensors, shapes = _read(reader_class, files[0])
    split_count = _int(metadata.get("split.count", 1), "split.count")
    if len(files) == 1 and split_count > 1:
        raise ConfigError(
            f"{path} is part 1 of a split GGUF of {split_count} files, but its name does not say which "
            "(llama.cpp names them NAME-00001-of-0000N.gguf)",
            hint="keep the split files' names as gguf-split wrote them",
        )
    total = sum(tensors.values())
    for other in files[1:]:
        total += sum(_read(reader_class, other)[1].values())  # the other parts' tensors; metadata is part 1's
    config, notes = config_from_metadata(metadata, tensors, shapes)
    return GgufModel(config, total, tuple(files), tuple(notes))


def config_from_metadata(
    metadata: dict[str, Any], tensors: dict[str, int], shapes: dict[str, list[int]]
) -> tuple[dict[str, Any], list[str]]:
    """The HF-style config kvplan's families read for GGUF metadata (llama.cpp's keys), and notes on what llama.cpp
    does not use. `tensors`: tensor name -> bytes (names say whether `output.weight` exists); `shapes`: tensor
    name -> ggml dims (`token_embd.weight` gives the vocabulary); both from the header."""
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise ConfigError("the GGUF file has no general.architecture", hint="pass a llama.cpp model GGUF")
    mapper = _ARCHS.get(arch)
    if mapper is None:
        raise UnsupportedArchitecture(
            f"kvplan cannot read GGUF architecture {arch!r}",
            hint="kvplan maps " + ", ".join(sorted(_ARCHS)) + "; pass the model's Hugging Face config.json instead",
        )
    for key, what in _UNREAD_KEYS.items():
        if f"{arch}.{key}" in metadata and key not in _READS.get(arch, ()):
            raise UnsupportedArchitecture(
                f"the GGUF file's {arch}.{key} ({what}) is not read by kvplan's {arch} mapping",
                hint="pass the model's Hugging Face config.json instead",
            )
    m = _Meta(arch, metadata, tensors)
    n_embd, n_layer = m.integer("embedding_length"), m.integer("block_count")
    n_head = m.uniform("attention.head_count", n_layer)
    if arch in _PER_LAYER_KV_HEADS and isinstance(m.raw("attention.head_count_kv"), list):
        n_head_kv = min(m.per_layer("attention.head_count_kv", n_layer))  # the mapper sets the heads per kind
    elif arch in _RECURRENT_ZERO_KV_HEADS and isinstance(m.raw("attention.head_count_kv"), list):
        n_head_kv = max(m.per_layer("attention.head_count_kv", n_layer))  # the mapper reads which layers are KDA
    else:
        n_head_kv = m.uniform("attention.head_count_kv", n_layer, default=n_head)
    if n_head < 1 or n_layer < 1 or n_embd < 1 or n_head_kv < 1:
        raise ConfigError(
            f"the GGUF file's {arch} sizes are not positive (block_count {n_layer}, embedding_length {n_embd}, "
            f"head_count {n_head}, head_count_kv {n_head_kv})",
            hint="the file is damaged or not a model",
        )
    key_length = m.integer("attention.key_length", default=n_embd // n_head)
    value_length = m.integer("attention.value_length", default=n_embd // n_head)
    if key_length != value_length and arch not in _MLA_ARCHS:  # an MLA file's K and V are checked by its mapper
        raise UnsupportedArchitecture(
            f"the GGUF file's {arch} keys ({key_length}) and values ({value_length}) have different head sizes, "
            "which kvplan's mapping does not read",
            hint="pass the model's Hugging Face config.json instead",
        )
    config: dict[str, Any] = {
        "hidden_size": n_embd,
        "num_hidden_layers": n_layer,
        "num_attention_heads": n_head,
        "num_key_value_heads": n_head_kv,
        "head_dim": key_length,
        "max_position_embeddings": m.integer("context_length"),
        "torch_dtype": _FILE_DTYPES.get(_int(metadata.get("general.file_type", 1), "general.file_type"), "float16"),
        "tie_word_embeddings": "output.weight" not in tensors,
    }
    vocab = shapes.get("token_embd.weight")
    if vocab is not None and len(vocab) >= 2:
        config["vocab_size"] = int(vocab[1])
    elif f"{arch}.vocab_size" in metadata:
        config["vocab_size"] = m.integer("vocab_size")
    if f"{arch}.feed_forward_length" in metadata:
        config["intermediate_size"] = m.uniform("feed_forward_length", n_layer)
    if f"{arch}.rope.freq_base" in metadata:
        config["rope_theta"] = float(metadata[f"{arch}.rope.freq_base"])
    notes = mapper(m, config)
    return config, notes


class _Meta:
    """The metadata of one architecture, read with llama.cpp's key names and its one-line errors."""

    def __init__(self, arch: str, metadata: dict[str, Any], tensors: dict[str, int] | None = None) -> None:
        self.arch, self.metadata = arch, metadata
        self.tensors = tensors or {}  # tensor name -> bytes (empty: metadata alone)

    def has(self, key: str) -> bool:
        return f"{self.arch}.{key}" in self.metadata

    def raw(self, key: str) -> Any:
        return self.metadata.get(f"{self.arch}.{key}")

    def integer(self, key: str, default: int | None = None) -> int:
        name = f"{self.arch}.{key}"
        if name not in self.metadata:
            if default is not None:
                return default
            raise ConfigError(f"the GGUF file has no {name}", hint="the file is damaged or not a llama.cpp model")
        return _int(self.metadata[name], name)

    def per_layer(self, key: str, n_layer: int) -> list[int]:
        """A per-layer integer array of exactly `n_layer` entries."""
        name = f"{self.arch}.{key}"
        value = self.metadata.get(name)
        if not isinstance(value, list) or len(value) != n_layer:
            raise ConfigError(f"the GGUF file's {name} does not list {n_layer} layers", hint="the file is damaged")
        return [_int(v, name) for v in value]

    def uniform(self, key: str, n_layer: int, default: int | None = None) -> int:
        """A scalar, or a per-layer array whose entries are all equal (llama.cpp's get_key_or_arr)."""
        name = f"{self.arch}.{key}"
        value = self.metadata.get(name)
        if not isinstance(value, list):
            return self.integer(key, default)
        values = {_int(v, name) for v in value}
        if len(value) != n_layer or len(values) != 1:
            raise UnsupportedArchitecture(
                f"the GGUF file's {name} differs between layers, which kvplan's {self.arch} mapping does not read",
                hint="pass the model's Hugging Face config.json instead",
            )
        return values.pop()


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"the GGUF file's {name} is not an integer: {value!r}", hint="the file is damaged")
    return value


def _swa_layers(m: _Meta, n_layer: int, period: int) -> list[bool]:
    """Which layers slide: the file's `sliding_window_pattern` (a period or one flag per layer), else `period`;
    llama_hparams::set_swa_pattern(n): layer il slides when n == 0 or il % n < n - 1."""
    pattern = m.raw("attention.sliding_window_pattern")
    if isinstance(pattern, list):
        if len(pattern) != n_layer or not all(isinstance(v, (bool, int)) for v in pattern):
            raise ConfigError(
                f"the GGUF file's {m.arch}.attention.sliding_window_pattern does not list {n_layer} layers",
                hint="the file is damaged",
            )
        return [bool(v) for v in pattern]
    if pattern is not None:
        period = _int(pattern, f"{m.arch}.attention.sliding_window_pattern")
    return [period == 0 or il % period < period - 1 for il in range(n_layer)]


def _layer_types(flags: list[bool]) -> list[str]:
    return ["sliding_attention" if slides else "full_attention" for slides in flags]


def _never_slides(model_type: str) -> Callable[[_Meta, dict[str, Any]], list[str]]:
    def mapper(m: _Meta, config: dict[str, Any]) -> list[str]:
        config["model_type"] = model_type
        notes = []
        if m.has("attention.sliding_window"):
            notes.append(
                f"the GGUF file's {m.arch}.attention.sliding_window ({m.raw('attention.sliding_window')}) is not "
                f"used by llama.cpp's {m.arch} build: every token is cached"
            )
        if model_type == "qwen2":
            config["use_sliding_window"] = False
        return notes

    return mapper


def _llama(m: _Meta, config: dict[str, Any]) -> list[str]:
    notes = _never_slides("llama")(m, config)
    experts = m.integer("expert_count", default=0)
    if experts > 0:  # a Mixtral-style llama: experts in every layer
        config.update(
            model_type="mixtral",
            num_local_experts=experts,
            num_experts_per_tok=m.integer("expert_used_count"),
            sliding_window=None,
        )
    return notes


def _qwen3moe(m: _Meta, config: dict[str, Any]) -> list[str]:
    notes = _never_slides("qwen3_moe")(m, config)
    config.update(
        num_experts=m.integer("expert_count"),
        num_experts_per_tok=m.integer("expert_used_count"),
        moe_intermediate_size=m.integer("expert_feed_forward_length"),
        decoder_sparse_step=1,
        mlp_only_layers=[],
        use_sliding_window=False,
    )
    return notes


def _qwen2moe(m: _Meta, config: dict[str, Any]) -> list[str]:
    """llama-model.cpp LLM_ARCH_QWEN2MOE: n_ff_exp and the optional n_ff_shexp (the shared expert) are read; every
    layer has experts and full attention (convert_hf_to_gguf.py Qwen2MoeModel writes expert_count,
    expert_used_count, expert_feed_forward_length, expert_shared_feed_forward_length)."""
    notes = _never_slides("qwen2_moe")(m, config)
    config.update(
        num_experts=m.integer("expert_count"),
        num_experts_per_tok=m.integer("expert_used_count"),
        moe_intermediate_size=m.integer("expert_feed_forward_length"),
        # the qwen2moe tensors: n_ff_shexp = hparams.n_ff_shexp ? hparams.n_ff_shexp : n_ff
        shared_expert_intermediate_size=m.integer(
            "expert_shared_feed_forward_length", default=config.get("intermediate_size", 0)
        ),
        decoder_sparse_step=1,
        mlp_only_layers=[],
        use_sliding_window=False,
    )
    return notes


def _deepseek2(m: _Meta, config: dict[str, Any]) -> list[str]:
    """llama-model.cpp LLM_ARCH_DEEPSEEK2 (kv_lora_rank, key_length_mla / value_length_mla, rope.dimension_count as
    n_rot). convert_hf_to_gguf.py DeepseekV2Model writes MLA as MQA with larger heads: head_count_kv 1,
    key_length kv_lora_rank + qk_rope_head_dim, value_length kv_lora_rank, and the per-head sizes under the _mla
    keys; llama_hparams::is_mla() is true when both _mla keys are non-zero, and the KV cache then holds that one
    latent row per cell (llama-kv-cache.cpp: has_v = !is_mla). A file without the _mla keys (converted before
    them) makes llama.cpp cache every head's decompressed K and V: refused."""
    n_head, rope = config["num_attention_heads"], m.integer("rope.dimension_count")
    rank = m.integer("attention.kv_lora_rank")
    if not (m.has("attention.key_length_mla") and m.has("attention.value_length_mla")):
        raise UnsupportedArchitecture(
            f"the GGUF file's {m.arch} attention has no key_length_mla / value_length_mla (an older conversion): "
            f"llama.cpp then caches every head's decompressed K and V, which kvplan's {m.arch} mapping does not read",
            hint="convert the model again with a current convert_hf_to_gguf.py, or pass its Hugging Face config.json",
        )
    k_mla, v_mla = m.integer("attention.key_length_mla"), m.integer("attention.value_length_mla")
    key_length = m.integer("attention.key_length", default=0)
    value_length = m.integer("attention.value_length", default=0)
    if (config["num_key_value_heads"], key_length, value_length) != (1, rank + rope, rank) or not 0 < rope < k_mla:
        raise UnsupportedArchitecture(
            f"the GGUF file's {m.arch} latent (head_count_kv {config['num_key_value_heads']}, key_length "
            f"{key_length}, value_length {value_length}) is not kv_lora_rank {rank} + rope {rope} as llama.cpp's "
            "converter writes it",
            hint="pass the model's Hugging Face config.json instead",
        )
    experts = m.integer("expert_count", default=0)
    config.pop("head_dim")
    config.update(
        # deepseek_v3 where the router is sigmoid (expert_gating_func 2: V3, R1, Kimi K2), else V2's softmax
        model_type="deepseek_v3" if m.integer("expert_gating_func", default=1) == 2 else "deepseek_v2",
        num_key_value_heads=n_head,  # the HF config's spelling: one latent per token, whatever this says
        kv_lora_rank=rank,
        q_lora_rank=m.integer("attention.q_lora_rank") if m.has("attention.q_lora_rank") else None,
        qk_rope_head_dim=rope,
        qk_nope_head_dim=k_mla - rope,
        v_head_dim=v_mla,
        first_k_dense_replace=m.integer("leading_dense_block_count", default=0),
        moe_layer_freq=1,
    )
    if experts > 0:
        config.update(
            n_routed_experts=experts,
            num_experts_per_tok=m.integer("expert_used_count"),
            n_shared_experts=m.integer("expert_shared_count", default=0),
            moe_intermediate_size=m.integer("expert_feed_forward_length"),
        )
    return []


def _phi3(m: _Meta, config: dict[str, Any]) -> list[str]:
    """llama-model.cpp LLM_ARCH_PHI3: a sliding_window in the file is read and then switched off ("Phi SWA is
    currently disabled", swa_type NONE, set_swa_pattern(1)): every token is cached."""
    notes = _never_slides("phi3")(m, config)
    config["sliding_window"] = None
    return notes


def _command_r(m: _Meta, config: dict[str, Any]) -> list[str]:
    """llama-model.cpp LLM_ARCH_COMMAND_R: logit scale and layer-norm eps only; no sliding window."""
    return _never_slides("cohere")(m, config)


def _cohere2(m: _Meta, config: dict[str, Any]) -> list[str]:
    """llama-model.cpp LLM_ARCH_COHERE2: swa_type STANDARD, set_swa_pattern(4) (three sliding layers, then one
    full), sliding_window required."""
    n_layer = config["num_hidden_layers"]
    config.update(
        model_type="cohere2",
        sliding_window=m.integer("attention.sliding_window"),
        layer_types=_layer_types(_swa_layers(m, n_layer, 4)),
    )
    return []


def _gpt_oss(m: _Meta, config: dict[str, Any]) -> list[str]:
    """llama-model.cpp LLM_ARCH_OPENAI_MOE ("gpt-oss"): swa_type STANDARD, set_swa_pattern(2) (even layers
    slide), sliding_window required, n_ff_exp; the attention sinks are weights (attn_sinks), not cache."""
    n_layer = config["num_hidden_layers"]
    config.update(
        model_type="gpt_oss",
        sliding_window=m.integer("attention.sliding_window"),
        layer_types=_layer_types(_swa_layers(m, n_layer, 2)),
        num_local_experts=m.integer("expert_count"),
        num_experts_per_tok=m.integer("expert_used_count"),
        intermediate_size=m.integer("expert_feed_forward_length"),
    )
    return []


def _gemma2(m: _Meta, config: dict[str, Any]) -> list[str]:
    n_layer = config["num_hidden_layers"]
    config.update(
        model_type="gemma2",
        sliding_window=m.integer("attention.sliding_window", default=4096),  # llama.cpp: "default value of gemma 2"
        layer_types=_layer_types(_swa_layers(m, n_layer, 2)),
    )
    return []


def _gemma3(m: _Meta, config: dict[str, Any]) -> list[str]:
    n_layer = config["num_hidden_layers"]
    config.update(
        model_type="gemma3_text",
        sliding_window=m.integer("attention.sliding_window"),  # required by llama.cpp's gemma3 loader
        layer_types=_layer_types(_swa_layers(m, n_layer, 6)),
    )
    return []


GEMMA3N_KV_FROM_START = 20  # src/models/gemma3n.cpp load_arch_hparams: hparams.n_layer_kv_from_start = 20


def _gemma3n(m: _Meta, config: dict[str, Any]) -> list[str]:
    """llama.cpp's gemma3n loader (src/models/gemma3n.cpp llama_model_gemma3n::load_arch_hparams): swa_type
    STANDARD, `set_swa_pattern(swa_period)` with swa_period 5 unless the file's sliding_window_pattern is a scalar,
    sliding_window required, and `n_layer_kv_from_start = 20` written into the loader: layers 20 and on have no
    cache of their own (llama_hparams::has_kv, llama-kv-cache.cpp "does not have KV cache"; create_memory's
    `reuse` maps them to layer 18 (sliding) or 19 (full)). The file's shared_kv_layers is not read. kvplan's
    gemma3n family says the same with num_kv_shared_layers = block_count - 20 (its last layers reuse the last
    earlier layer of their type). A pattern array other than the period-5 one is refused: kvplan has not read
    how the loader's scalar read treats an array."""
    n_layer = config["num_hidden_layers"]
    period_flags = [il % 5 < 4 for il in range(n_layer)]
    pattern = m.raw("attention.sliding_window_pattern")
    flags = _swa_layers(m, n_layer, 5)
    if isinstance(pattern, list) and flags != period_flags:
        raise UnsupportedArchitecture(
            "the GGUF file's gemma3n.attention.sliding_window_pattern is an array other than llama.cpp's default "
            "period of 5, and kvplan has not read how llama.cpp's gemma3n loader reads an array there",
            hint="pass the model's Hugging Face config.json instead",
        )
    shared = max(0, n_layer - GEMMA3N_KV_FROM_START)
    notes = []
    written = m.raw("attention.shared_kv_layers")
    if written is not None and written != shared:
        notes.append(
            f"the GGUF file's gemma3n.attention.shared_kv_layers ({written}) is not read by llama.cpp, whose gemma3n "
            f"loader caches layers 0-{min(n_layer, GEMMA3N_KV_FROM_START) - 1} and shares the rest ({shared})"
        )
    config.update(
        model_type="gemma3n_text",
        sliding_window=m.integer("attention.sliding_window"),
        layer_types=_layer_types(flags),
        num_kv_shared_layers=shared,
    )
    return notes


def _gemma4(m: _Meta, config: dict[str, Any]) -> list[str]:
    """llama.cpp's gemma4 loader (src/models/gemma4.cpp llama_model_gemma4::load_arch_hparams): swa_type
    STANDARD; `get_key_or_arr(sliding_window_pattern, is_swa, n_layer)` (required; convert_hf_to_gguf.py
    Gemma4Model writes one flag per layer from layer_types); `n_layer_kv_from_start = n_layer - shared_kv_layers`
    (layers from there on have no cache, llama_hparams::has_kv); sliding_window; key/value_length are the full
    layers' head size (the converter writes global_head_dim) and key/value_length_swa the sliding layers' (head_dim;
    load_arch_tensors requires K == V for each); head_count_kv one entry per layer when the config has
    num_global_key_value_heads (the sliding layers' num_key_value_heads, the full layers' global count).

    In kvplan's gemma4 family the full layers take num_global_key_value_heads only under attention_k_eq_v
    (shapes.gemma4_layer_heads), so a file whose full layers have their own KV head count is mapped with
    attention_k_eq_v set: that is what makes the config's cache the file's. The weights are the file's tensors.
    A scalar pattern (get_key_or_arr would give every layer that one flag) and a last layer that slides (kvplan's
    gemma4 reader makes it full, as transformers does; llama.cpp would not) are refused."""
    n_layer = config["num_hidden_layers"]
    pattern = m.raw("attention.sliding_window_pattern")
    if not isinstance(pattern, list):
        raise UnsupportedArchitecture(
            "the GGUF file's gemma4.attention.sliding_window_pattern is "
            + ("missing" if pattern is None else "not one flag per layer")
            + ": llama.cpp's gemma4 loader requires it and kvplan maps only the per-layer array its converter writes",
            hint="pass the model's Hugging Face config.json instead",
        )
    flags = _swa_layers(m, n_layer, 0)
    if flags[-1]:
        raise UnsupportedArchitecture(
            "the GGUF file's gemma4 last layer slides; kvplan's gemma4 reader makes the last layer full "
            "(as transformers does), so it cannot say what llama.cpp caches for this file",
            hint="pass the model's Hugging Face config.json instead",
        )
    k_swa, v_swa = m.integer("attention.key_length_swa"), m.integer("attention.value_length_swa")
    if k_swa != v_swa:
        raise ConfigError(
            f"the GGUF file's gemma4 sliding layers have keys of {k_swa} and values of {v_swa}: llama.cpp's gemma4 "
            "loader requires n_embd_head_k_swa == n_embd_head_v_swa",
            hint="the file is damaged or not a llama.cpp Gemma 4 model",
        )
    raw = m.raw("attention.head_count_kv")
    heads = (
        m.per_layer("attention.head_count_kv", n_layer)
        if isinstance(raw, list)
        else [config["num_key_value_heads"]] * n_layer
    )
    by_kind: dict[bool, set[int]] = {True: set(), False: set()}
    for slides, count in zip(flags, heads, strict=True):
        by_kind[slides].add(count)
    if len(by_kind[True]) > 1 or len(by_kind[False]) > 1:
        raise UnsupportedArchitecture(
            "the GGUF file's gemma4.attention.head_count_kv differs between layers of one kind, which kvplan's "
            "gemma4 mapping does not read",
            hint="pass the model's Hugging Face config.json instead",
        )
    full_heads = next(iter(by_kind[False]))
    swa_heads = next(iter(by_kind[True]), full_heads)
    config.update(
        model_type="gemma4_text",
        layer_types=_layer_types(flags),
        sliding_window=m.integer("attention.sliding_window"),
        head_dim=k_swa,
        global_head_dim=config["head_dim"],  # key_length: the full layers' head size
        num_key_value_heads=swa_heads,
        num_kv_shared_layers=m.integer("attention.shared_kv_layers", default=0),
    )
    if full_heads != swa_heads:
        config.update(attention_k_eq_v=True, num_global_key_value_heads=full_heads)
    return []


def _deepseek4(m: _Meta, config: dict[str, Any]) -> list[str]:
    """llama.cpp's deepseek4 loader (ggml-org/llama.cpp@0c1e57098 src/models/deepseek4.cpp:19-80
    load_arch_hparams) and converter (conversion/deepseek.py:527-689 DeepseekV4Model): block_count is
    num_hidden_layers (:550; the `mtp.*` tensors are skipped, :584-586, or written alone to an MTP GGUF whose
    block_count adds nextn_predict_layers, :551-552 / :688-689); key_length = value_length = head_dim (conversion/base.py:1541-1543),
    head_count_kv 1; attention.sliding_window (deepseek4.cpp:30); attention.indexer.key_length, the lightning
    indexer's key size (:42); attention.compress_ratios, the HF list with its MTP entries after the decoder layers,
    of which llama.cpp reads the first block_count (:55-61: shorter is an error). The KV these size is
    kvplan.engines.llamacpp's DSV4 model; the weights are the file's tensors."""
    n_layer = config["num_hidden_layers"]
    if m.integer("nextn_predict_layers", default=0) > 0:
        raise UnsupportedArchitecture(
            "the GGUF file is a DeepSeek-V4 MTP draft (deepseek4.nextn_predict_layers > 0): llama.cpp caches it in a "
            "plain iSWA cache of its nextn layers (llama-model.cpp:2591-2611), which kvplan does not size",
            hint="plan the main model's GGUF (or its Hugging Face config.json)",
        )
    if config["num_key_value_heads"] != 1 or config["head_dim"] != m.integer("attention.value_length"):
        raise UnsupportedArchitecture(
            f"the GGUF file's deepseek4 attention (head_count_kv {config['num_key_value_heads']}, key_length "
            f"{config['head_dim']}, value_length {m.integer('attention.value_length')}) is not the one shared K=V "
            "head llama.cpp's DeepSeek-V4 cache stores",
            hint="pass the model's Hugging Face config.json instead",
        )
    ratios = m.raw("attention.compress_ratios")
    if not isinstance(ratios, list) or len(ratios) < n_layer:
        raise ConfigError(
            f"the GGUF file's deepseek4.attention.compress_ratios does not list {n_layer} layers "
            '(llama.cpp: "DeepSeek-V4 compress_ratios is shorter than block_count")',
            hint="the file is damaged or not a llama.cpp DeepSeek-V4 model",
        )
    config.update(
        model_type="deepseek_v4",
        sliding_window=m.integer("attention.sliding_window"),
        compress_ratios=[_int(r, "deepseek4.attention.compress_ratios") for r in ratios[:n_layer]],
        num_nextn_predict_layers=0,  # the main GGUF holds no MTP layer (its tensors are skipped, :584-586)
        index_head_dim=m.integer("attention.indexer.key_length"),
        index_n_heads=m.integer("attention.indexer.head_count"),
        index_topk=m.integer("attention.indexer.top_k"),
        q_lora_rank=m.integer("attention.q_lora_rank"),
        o_groups=m.integer("attention.output_group_count"),
        o_lora_rank=m.integer("attention.output_lora_rank"),
        n_routed_experts=m.integer("expert_count"),
        num_experts_per_tok=m.integer("expert_used_count"),
        moe_intermediate_size=m.integer("expert_feed_forward_length"),
        n_shared_experts=m.integer("expert_shared_count", default=0),
        hc_mult=m.integer("hyper_connection.count"),
        num_hash_layers=m.integer("hash_layer_count", default=0),
    )
    return []


# src/models/glm-dsa.cpp:59-66 at ggml-org/llama.cpp@0c1e57098: a GGUF without attention.indexer.types (the
# converter writes it only from a config's indexer_types, conversion/glm.py:380-382) gets every layer a full indexer
# when n_ctx_train < 1048576 (GLM-5, 5.1: "BC for GLM 5, 5.1"), else GLM_5_2_DEFAULT_INDEXER_TYPES (:6-27: layers 0
# and 1 full, then one full layer in every four from layer 2; the std::array's entries past the 78 listed are 0)
GLM_DSA_PRE_5_2_CTX = 1048576
GLM_5_2_DEFAULT_INDEXER_FULL = (True, True) + (True, False, False, False) * 19


def glm_dsa_default_indexer_full(n_layers: int, n_ctx_train: int | None) -> tuple[bool, ...]:
    """The full-indexer layers llama.cpp's glm-dsa loader gives a GGUF without attention.indexer.types."""
    if n_ctx_train is not None and n_ctx_train < GLM_DSA_PRE_5_2_CTX:
        return (True,) * n_layers
    table = GLM_5_2_DEFAULT_INDEXER_FULL
    return tuple(il < len(table) and table[il] for il in range(n_layers))


def _dsa(model_type: str) -> Callable[[_Meta, dict[str, Any]], list[str]]:
    """DeepSeek-V3.2 (`deepseek32`) and GLM-5.x (`glm-dsa`) at ggml-org/llama.cpp@0c1e57098: written by
    conversion/deepseek.py:466-522 DeepseekV32Model and conversion/glm.py:316-382 GlmMoeDsaModel, both subclasses of
    DeepseekV2Model (the MLA keys `_deepseek2` reads), plus attention.indexer.head_count / key_length / top_k
    (deepseek.py:520-522, glm.py:377-379) and, for glm-dsa, attention.indexer.types from the config's indexer_types
    (glm.py:380-382). block_count counts the appended NextN/MTP block unless converted with --no-mtp
    (deepseek.py:474-476, glm.py:330-332) and nextn_predict_layers says how many (deepseek.py:516-517, glm.py:373-374);
    llama.cpp's trunk is n_layer() = block_count - nextn_predict_layers (llama-hparams.cpp:348-349), the layers its
    DSA cache holds (llama-model.cpp:2429-2431), mapped to num_hidden_layers. The glm-dsa loader reads the full-
    indexer layers from attention.indexer.types (an array of n_layer() entries, else an error; a scalar gives every
    layer that value: llama-model-loader.cpp:473-495), else glm_dsa_default_indexer_full; they are written into the
    config as indexer_types and index_topk_pattern, which kvplan's dsa reader follows (core/shapes.indexer_layers).
    A GGUF of the NextN block alone (converted with --mtp: no blk.0.attn_norm.weight, src/models/deepseek32.cpp:49,
    glm-dsa.cpp:79) is an MTP draft with a plain cache of its own, refused."""

    def mapper(m: _Meta, config: dict[str, Any]) -> list[str]:
        notes = _deepseek2(m, config)
        n_all = config["num_hidden_layers"]
        nextn = m.integer("nextn_predict_layers", default=0)
        if not 0 <= nextn < n_all:
            raise ConfigError(
                f"the GGUF file's {m.arch}.nextn_predict_layers ({nextn}) leaves no trunk layer of its {n_all} blocks",
                hint="the file is damaged or not a llama.cpp model",
            )
        if nextn and m.tensors and "blk.0.attn_norm.weight" not in m.tensors:
            raise UnsupportedArchitecture(
                f"the GGUF file holds only the {m.arch} NextN/MTP block (converted with --mtp): llama.cpp runs it as "
                "an MTP draft in a plain cache of its nextn layers (llama-model.cpp:2400-2422), which kvplan does not "
                "size",
                hint="plan the main model's GGUF (or its Hugging Face config.json)",
            )
        n_layer = n_all - nextn
        mtp = sum(
            b for name, b in m.tensors.items() if any(name.startswith(f"blk.{il}.") for il in range(n_layer, n_all))
        )
        if mtp:  # TENSOR_SKIP without load_mtp (deepseek32.cpp:55-56, glm-dsa.cpp:88-89; llama-model-loader.cpp:1178)
            notes.append(
                f"the file's NextN/MTP block (blk.{n_layer}, {mtp:,} B) is counted in the weights; llama.cpp loads it "
                "only with --spec-type draft-mtp (common/common.cpp:1625) and otherwise skips its tensors"
            )
        config.update(
            model_type=model_type,
            num_hidden_layers=n_layer,
            num_nextn_predict_layers=nextn,
            index_n_heads=m.integer("attention.indexer.head_count"),
            index_head_dim=m.integer("attention.indexer.key_length"),
            index_topk=m.integer("attention.indexer.top_k"),
        )
        if model_type == "glm_moe_dsa":
            raw = m.raw("attention.indexer.types")
            if raw is None:
                full = glm_dsa_default_indexer_full(n_layer, config["max_position_embeddings"])
            elif isinstance(raw, list):
                if len(raw) != n_layer or not all(isinstance(v, (bool, int)) for v in raw):
                    raise ConfigError(  # llama-model-loader.cpp:477-478 "key %s has wrong array length"
                        f"the GGUF file's {m.arch}.attention.indexer.types does not list {n_layer} layers "
                        "(llama.cpp: wrong array length)",
                        hint="the file is damaged",
                    )
                full = tuple(bool(v) for v in raw)
            else:
                full = (bool(_int(raw, f"{m.arch}.attention.indexer.types")),) * n_layer  # get_key<uint32_t>
            config.update(
                indexer_types=["full" if f else "shared" for f in full],
                index_topk_pattern="".join("F" if f else "S" for f in full),
            )
        return notes

    return mapper


def _kimi(m: _Meta, config: dict[str, Any]) -> list[str]:
    """Kimi Linear / Kimi K3 (`kimi-linear`, `kimi-k3`), read at ggml-org/llama.cpp@0c1e57098: the loaders
    (src/models/kimi-linear.cpp:4-19, kimi-k3.cpp:16-33) require key_length_mla, value_length_mla, kv_lora_rank,
    ssm.conv_kernel and kda.head_dim, and mark a layer recurrent (KDA) where head_count_kv is 0; the converters
    (conversion/kimi_k3.py:165-227, kimi_linear.py:78-142) write MLA as MQA (head_count_kv 1 on the attention layers,
    key_length kv_lora_rank + qk_rope_head_dim, rope.dimension_count qk_rope_head_dim) and n_head from
    num_attention_heads, which llama.cpp's KDA state sizes use (llama-hparams.cpp:219-246). The KV this sizes is
    kvplan.engines.llamacpp's (MLA latent rows and F32 KDA states); the weights are the file's tensors."""
    n_layer, n_head = config["num_hidden_layers"], config["num_attention_heads"]
    raw = m.raw("attention.head_count_kv")
    kv = (
        m.per_layer("attention.head_count_kv", n_layer)
        if isinstance(raw, list)
        else [config["num_key_value_heads"]] * n_layer
    )
    missing = [
        k
        for k in ("attention.key_length_mla", "attention.value_length_mla", "ssm.conv_kernel", "kda.head_dim")
        if not m.has(k)
    ]
    if missing:
        raise ConfigError(
            f"the GGUF file has no {', '.join(f'{m.arch}.{k}' for k in missing)}, which llama.cpp's {m.arch} loader "
            "requires (src/models/kimi-linear.cpp:6-10, kimi-k3.cpp:18-23)",
            hint="convert the model again with a current convert_hf_to_gguf.py, or pass its Hugging Face config.json",
        )
    rank, rope = m.integer("attention.kv_lora_rank"), m.integer("rope.dimension_count")
    k_mla, v_mla = m.integer("attention.key_length_mla"), m.integer("attention.value_length_mla")
    key_length = m.integer("attention.key_length", default=0)
    if set(kv) - {0, 1} or key_length != rank + rope or not 0 < rope < k_mla:
        raise UnsupportedArchitecture(
            f"the GGUF file's {m.arch} attention (head_count_kv {sorted(set(kv))}, key_length {key_length}) is not "
            f"one latent row of kv_lora_rank {rank} + rope {rope} as llama.cpp's converter writes it",
            hint="pass the model's Hugging Face config.json instead",
        )
    linear: dict[str, Any] = {
        "kda_layers": [i + 1 for i in range(n_layer) if kv[i] == 0],  # 1-based, as the HF lists
        "full_attn_layers": [i + 1 for i in range(n_layer) if kv[i] != 0],
        "num_heads": n_head,  # llama.cpp's KDA heads are n_head (llama-hparams.cpp:222, :246)
        "head_dim": m.integer("kda.head_dim"),
        "short_conv_kernel_size": m.integer("ssm.conv_kernel"),
    }
    if m.has("kda.gate_lower_bound"):
        bound = m.raw("kda.gate_lower_bound")
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise ConfigError(
                f"the GGUF file's {m.arch}.kda.gate_lower_bound is not a number: {bound!r}", hint="the file is damaged"
            )
        linear["gate_lower_bound"] = float(bound)
    config.pop("head_dim")
    config.update(
        model_type="kimi_linear",
        num_key_value_heads=n_head,  # the HF config's spelling: one latent per token, whatever this says
        kv_lora_rank=rank,
        q_lora_rank=m.integer("attention.q_lora_rank") if m.has("attention.q_lora_rank") else None,
        qk_rope_head_dim=rope,
        qk_nope_head_dim=k_mla - rope,
        v_head_dim=v_mla,
        linear_attn_config=linear,
        first_k_dense_replace=m.integer("leading_dense_block_count", default=0),
    )
    if m.integer("expert_count", default=0) > 0:
        config.update(
            num_experts=m.integer("expert_count"),
            num_experts_per_token=m.integer("expert_used_count"),
            num_shared_experts=m.integer("expert_shared_count", default=0),
            moe_intermediate_size=m.integer("expert_feed_forward_length"),
        )
    return []


MINIMAX01_FULL_ATTN_INTERVAL = 8  # src/models/minimax-01.cpp:13 at 0c1e57098


def _minimax01(m: _Meta, config: dict[str, Any]) -> list[str]:
    """MiniMax-Text-01 / M1 (`minimax-01`), read at ggml-org/llama.cpp@0c1e57098: src/models/minimax-01.cpp:11-18 takes
    the lightning (recurrent) layers from attention.recurrent_layers, else every full_attention_interval-th layer
    (default 8) is softmax attention; its converter (conversion/minimax.py:62-82) writes neither key, so a converted
    file runs every 8th layer as softmax attention, and that is the one pattern kvplan's llama.cpp engine sizes
    (kda_lightning_rules): a file that declares another is refused. key_length is the HF head_dim
    (conversion/base.py), the lightning state's head size too (minimax-01.cpp:9)."""
    n_layer = config["num_hidden_layers"]
    if m.has("attention.recurrent_layers"):
        raw = m.raw("attention.recurrent_layers")
        raw = raw if isinstance(raw, list) else [raw] * n_layer  # get_key_or_arr: a scalar fills every layer
        if len(raw) != n_layer:  # get_key_or_arr: "wrong array length" unless n == its length (loader.cpp:476-478)
            raise ConfigError(
                f"the GGUF file's minimax-01.attention.recurrent_layers does not list {n_layer} layers",
                hint="the file is damaged",
            )
        recurrent = [bool(v) for v in raw]
    else:
        interval = m.integer("full_attention_interval", default=MINIMAX01_FULL_ATTN_INTERVAL)
        if interval < 1:
            raise ConfigError(
                f"the GGUF file's minimax-01.full_attention_interval is {interval}, not a layer interval",
                hint="the file is damaged",
            )
        recurrent = [(i + 1) % interval != 0 for i in range(n_layer)]
    if recurrent != [(i + 1) % MINIMAX01_FULL_ATTN_INTERVAL != 0 for i in range(n_layer)]:
        raise UnsupportedArchitecture(
            "the GGUF file's minimax-01 layers are not every 8th softmax attention, the pattern llama.cpp's converter "
            "gives (conversion/minimax.py writes no layer list), which is the one kvplan's llama.cpp engine sizes",
            hint="pass the model's Hugging Face config.json instead",
        )
    config.update(
        model_type="minimax",
        layer_types=["linear_attention" if r else "full_attention" for r in recurrent],
    )
    if m.integer("expert_count", default=0) > 0:
        config.update(num_local_experts=m.integer("expert_count"), num_experts_per_tok=m.integer("expert_used_count"))
    return []


_ARCHS: dict[str, Callable[[_Meta, dict[str, Any]], list[str]]] = {
    "llama": _llama,
    "mistral3": _never_slides("mistral"),
    "qwen2": _never_slides("qwen2"),
    "qwen3": _never_slides("qwen3"),
    "qwen2moe": _qwen2moe,
    "qwen3moe": _qwen3moe,
    "deepseek2": _deepseek2,
    "deepseek4": _deepseek4,
    "deepseek32": _dsa("deepseek_v32"),
    "glm-dsa": _dsa("glm_moe_dsa"),
    "phi3": _phi3,
    "command-r": _command_r,
    "cohere2": _cohere2,
    "gpt-oss": _gpt_oss,
    "gemma": _never_slides("gemma"),
    "gemma2": _gemma2,
    "gemma3": _gemma3,
    "gemma3n": _gemma3n,
    "gemma4": _gemma4,
    "kimi-linear": _kimi,
    "kimi-k3": _kimi,
    "minimax-01": _minimax01,
}


def _reader_class() -> Any:
    try:
        from gguf import GGUFReader
    except ImportError:
        raise UsageError(
            "reading a .gguf file needs the `gguf` package, which is not installed", hint=INSTALL_HINT
        ) from None
    return GGUFReader


def _split_files(path: Path) -> list[Path]:
    """The files of the model: [path], or every part of a split model `NAME-0000i-of-0000N.gguf` (part 1 first);
    ConfigError naming a missing part."""
    match = _SPLIT.match(path.name)
    if match is None:
        return [path]
    count, width = int(match["count"]), len(match["no"])
    files = [path.with_name(f"{match['prefix']}-{i:0{width}d}-of-{match['count']}.gguf") for i in range(1, count + 1)]
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        raise ConfigError(
            f"split GGUF {path.name} lacks {len(missing)} of its {count} files: {', '.join(missing[:3])}"
            + (" ..." if len(missing) > 3 else ""),
            hint="download every part of the model into the same folder",
        )
    return files


# what the gguf package raises for a file that is not a whole GGUF (bad magic, truncated header, bad types)
_READ_ERRORS = (ValueError, IndexError, KeyError, TypeError, OverflowError, UnicodeDecodeError, MemoryError)


def _read(reader_class: Any, path: Path) -> tuple[dict[str, Any], dict[str, int], dict[str, list[int]]]:
    """(metadata, tensor name -> bytes, tensor name -> ggml dims) of one GGUF file."""
    try:
        with path.open("rb") as stream:
            magic = stream.read(4)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", hint="check the path's permissions") from None
    if magic != MAGIC:
        raise ConfigError(f"{path} is not a GGUF file (it does not start with GGUF)", hint="pass a llama.cpp .gguf")
    try:
        reader = reader_class(str(path), "r")
        metadata: dict[str, Any] = {}
        for name, field in reader.fields.items():
            if name.startswith("tokenizer.") or name.startswith("GGUF."):
                continue  # the vocabulary's strings are not needed (token_embd.weight's shape gives its size)
            metadata[name] = field.contents()
        tensors = {str(t.name): int(t.n_bytes) for t in reader.tensors}
        shapes = {str(t.name): [int(d) for d in t.shape] for t in reader.tensors}
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    except _READ_ERRORS as exc:
        raise ConfigError(
            f"{path} is not a readable GGUF file (truncated or damaged): {_first_line(exc)}",
            hint="download the file again",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}", hint="check the path's permissions") from None
    size = path.stat().st_size
    if end > size:
        raise ConfigError(
            f"{path} is truncated: its tensors end at byte {end:,}, the file has {size:,}",
            hint="download the file again",
        )
    return metadata, tensors, shapes


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
