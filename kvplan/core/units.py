"""Units: the one dtype table (spellings and bytes), parsing of lengths ("32k") and sizes ("58.11GiB"), byte
formatting, and the integer helpers (ceiling division, exact TP splits) the specs and engines share.

Pure Python, imports only kvplan.errors. All byte counts in kvplan are `int`.
"""

from __future__ import annotations

import re
from fractions import Fraction

from kvplan.errors import Text, UsageError

# The one table of dtypes: canonical name -> bytes per element. Packed formats (int4, nvfp4) are Fractions;
# engines add their own scale/metadata bytes on top (see kvplan.engines). Every spelling kvplan reads (user
# flags, config `torch_dtype`, plan files, torch names) resolves to one of these names through `_ALIASES`.
DTYPES: dict[str, Fraction] = {
    "float64": Fraction(8),
    "float32": Fraction(4),
    "tf32": Fraction(4),  # stored as float32
    "bfloat16": Fraction(2),
    "float16": Fraction(2),
    "fp8_e4m3": Fraction(1),
    "fp8_e5m2": Fraction(1),
    "int8": Fraction(1),
    "uint8": Fraction(1),
    "int64": Fraction(8),  # integer buffers stored with the weights (DeepSeek-V4's hash-routing table)
    "int4": Fraction(1, 2),
    "nvfp4": Fraction(1, 2),
    # SGLang's block-16 FP4 KV recipe (--kv-cache-dtype fp4_mx_block16): the FP4 values; its one uint8 scale per 16
    # values is the engine's (sglang-0.5.23 srt/layers/quantization/fp4_kv_cache_quant_method.py:771-779, :897-914)
    "fp4_mx_block16": Fraction(1, 2),
    # llama.cpp (ggml) block types: bytes per block / 32 values, scales included (ggml/src/ggml-common.h:
    # block_q8_0 = fp16 d + 32 int8 = 34 B; block_q4_0 = d + 16 B = 18; block_q4_1 = d, m + 16 = 20;
    # block_q5_0 = d + qh[4] + 16 = 22; block_q5_1 = d, m + qh[4] + 16 = 24; block_iq4_nl = d + 16 = 18, QK = 32).
    "q8_0": Fraction(34, 32),
    "q4_0": Fraction(18, 32),
    "q4_1": Fraction(20, 32),
    "q5_0": Fraction(22, 32),
    "q5_1": Fraction(24, 32),
    "iq4_nl": Fraction(18, 32),
}

# Dtypes a checkpoint may store weights in but that no KV cache or compute dtype kvplan plans uses.
STORAGE_ONLY_DTYPES = ("float64", "tf32", "uint8", "int64")
# The dtypes a KV cache or a model's compute may use (what `--dtype` / `--kv-dtype` resolve to), with their bytes.
DTYPE_BYTES: dict[str, Fraction] = {k: v for k, v in DTYPES.items() if k not in STORAGE_ONLY_DTYPES}
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")

# ggml block-quantized KV types: only the llama.cpp engine stores them (other engines raise a UsageError).
GGML_BLOCK_TYPES = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl")
GGML_BLOCK_SIZE = 32

# KV dtypes that only some engines store: the engines whose EngineEntry.kv_own names one size it, every other engine
# refuses it naming those (kvplan.engines.entry.EngineEntry.kv_dtype). Not "mxfp4": SGLang keeps that name for a
# true block-32 MXFP4 cache (fp4_kv_cache_quant_method.py:1037-1042), so no alias points here.
ENGINE_ONLY_KV_DTYPES = ("fp4_mx_block16",)

_ALIASES = {
    "fp64": "float64",
    "double": "float64",
    "fp32": "float32",
    "float": "float32",
    "f32": "float32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "half": "float16",
    "f16": "float16",
    "fp8": "fp8_e4m3",
    "fp8_e4m3fn": "fp8_e4m3",
    "float8_e4m3fn": "fp8_e4m3",
    "e4m3": "fp8_e4m3",
    "float8_e5m2": "fp8_e5m2",
    "e5m2": "fp8_e5m2",
    "fp4": "nvfp4",
}

KV_DTYPE_CHOICES = (
    "auto",
    "fp32",
    "bf16",
    "fp16",
    "fp8",
    "fp8_e4m3",
    "fp8_e5m2",
    "int8",
    "int4",
    "nvfp4",
    *ENGINE_ONLY_KV_DTYPES,
    *GGML_BLOCK_TYPES,
)
MODEL_DTYPE_CHOICES = ("auto", "fp32", "bf16", "fp16")

SHORT_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
# llama.cpp's names for the float types (`--cache-type-k f16`)
GGML_NAMES = {"float32": "f32", "bfloat16": "bf16", "float16": "f16", **{t: t for t in GGML_BLOCK_TYPES}}


def dtype_name(name: object) -> str | None:
    """The canonical name of any dtype spelling in the table ("bf16", "torch.bfloat16", "double"), else None."""
    key = str(name).strip().lower().removeprefix("torch.")
    key = _ALIASES.get(key, key)
    return key if key in DTYPES else None


def canonical_dtype(name: str, *, what: str = "dtype") -> str:
    """Map a user or config dtype spelling ("bf16", "torch.bfloat16", "fp8") to its canonical name.

    Only KV-cache and compute dtypes (`DTYPE_BYTES`) are accepted; storage-only ones (float64, uint8) are refused.
    """
    key = dtype_name(name)
    if key not in DTYPE_BYTES:
        raise UsageError(
            f"unknown {what} {name!r}",
            hint="use one of: " + ", ".join(KV_DTYPE_CHOICES if what == "kv dtype" else MODEL_DTYPE_CHOICES[1:]),
        )
    return key


def dtype_bytes(name: str) -> Fraction:
    """Bytes per element of a canonical dtype (a Fraction for packed types)."""
    return DTYPE_BYTES[canonical_dtype(name)]


def short_dtype(name: str) -> str:
    """The short display name of a canonical dtype ("bfloat16" -> "bf16")."""
    return SHORT_NAMES.get(name, name)


def fp8_block_scaled_bytes(values: int, block: int = 128) -> int:
    """Bytes of `values` stored as fp8 with one fp32 scale per `block` of them: DeepSeek's sparse-attention layout,
    which the engines share for a DSA/CSA indexer key (128 -> 132 B) and the fp8_ds_mla latent's 512 values
    (-> 528 B, beside its RoPE part) (vllm-0.33.0 models/deepseek_v32/attention.py:90-99, sglang-0.5.23
    mem_cache/deepseek_v4_memory_pool.py:57, TensorRT-LLM sparse/dsa/cache_manager.py:32-38 at 0bbb76d2)."""
    return values + values // block * 4


def cdiv(a: int, b: int) -> int:
    """Ceiling division of non-negative integers."""
    return -(-a // b)


def split_exact(n: int, tp: int, what: str) -> int:
    """n / tp for dimensions that tensor parallelism must divide exactly (Mamba channels, heads)."""
    if n % tp:
        raise UsageError(
            Text("{tp} {t} does not divide the model's {n} {what}", t=tp, n=n, what=what),
            hint="choose a TP size that divides it",
            field="tp",
        )
    return n // tp


_LEN_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


# The largest token count kvplan plans for (2**40, ~1.1 trillion) and the largest memory size (1 EiB): anything
# larger is a typo or a hostile input, refused in one line before arithmetic runs on it.
MAX_TOKENS = 2**40
MAX_BYTES = 2**60
# The largest count kvplan plans for (GPUs, nodes, ranks, replicas, sequences, blocks): 2**31 - 1, a typo beyond it
MAX_INT = 2**31 - 1


def parse_length(text: str | int) -> int:
    """Parse a token count: 32768, "32k" (= 32768), "128K", "1M" (= 1048576). Binary multiples, as engines use."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        if len(str(text)) > 32:  # no token count needs more characters; a 5,000-digit number is refused fast
            raise UsageError(f"cannot read {str(text)[:20]}... as a token count", hint="write e.g. 4096, 32k or 128K")
        match = _LEN_RE.match(str(text))
        if not match:
            raise UsageError(f"cannot read {text!r} as a token count", hint="write e.g. 4096, 32k or 128K")
        number, suffix = Fraction(match.group(1)), match.group(2).lower()
        number *= {"": 1, "k": 1024, "m": 1024 * 1024}[suffix]
        if number.denominator != 1:
            raise UsageError(f"{text!r} is not a whole number of tokens", hint="write e.g. 4096, 32k or 128K")
        value = int(number)
    if value <= 0:
        raise UsageError(f"token count must be positive, got {text!r}", hint="write e.g. 4096, 32k or 128K")
    if value > MAX_TOKENS:
        raise UsageError(f"token count {value:,} is beyond any model (at most {MAX_TOKENS:,})", hint="write e.g. 128k")
    return value


def parse_lengths(text: str) -> list[int]:
    """Parse one length, a comma list ("1k,4k,32k") or a doubling range ("1k..128k" = 1k, 2k, 4k, ... 128k)."""
    values: list[int] = []
    for part in str(text).split(","):
        if ".." in part:
            lo_text, hi_text = part.split("..", 1)
            lo, hi = parse_length(lo_text), parse_length(hi_text)
            if hi < lo:
                raise UsageError(f"range {part!r} runs backwards", hint="write the smaller length first, e.g. 1k..128k")
            value = lo
            while value < hi:
                values.append(value)
                value *= 2
            values.append(hi)
        else:
            values.append(parse_length(part))
    return sorted(set(values))


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}


def parse_size(text: str | int) -> int:
    """Parse a memory size: plain bytes, "40GB" (10^9), "58.11GiB" (2^30), "512MiB", "1.5TB". Returns int bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = Fraction(text)
    else:
        if len(str(text)) > 32:  # no memory size needs more characters (a 5,000-digit number is refused fast)
            raise UsageError(f"cannot read {str(text)[:20]}... as a memory size", hint="write e.g. 58.11GiB or 40GB")
        match = _SIZE_RE.match(str(text))
        if not match:
            raise UsageError(
                f"cannot read {text!r} as a memory size", hint="write e.g. 58.11GiB, 40GB, 512MiB or bytes"
            )
        unit = (match.group(2) or "").lower().removesuffix("b")
        value = Fraction(match.group(1)) * _SIZE_UNITS[unit]
    if value <= 0:
        raise UsageError(f"memory size must be positive, got {text!r}", hint="write e.g. 58.11GiB")
    if value > MAX_BYTES:
        raise UsageError(f"memory size {text!r} is beyond any machine (at most 1 EiB)", hint="write e.g. 80GB")
    return int(value)


def format_bytes(n: int | float | None) -> str:
    """Human-readable binary size: 134217728 -> "128.0 MiB"."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_tokens(n: int) -> str:
    """Token counts as people write them: 32768 -> "32k", 131072 -> "128k", 1000 -> "1000"."""
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}k"
    return str(n)


class DtypeDisplay:
    """Display names of a result's canonical `model_dtype` and `cache_dtype` ("bfloat16" -> `dtype` "bf16")."""

    model_dtype: str
    cache_dtype: str

    @property
    def dtype(self) -> str:
        return short_dtype(self.model_dtype)

    @property
    def kv_dtype(self) -> str:
        return short_dtype(self.cache_dtype)
